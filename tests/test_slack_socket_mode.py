"""Socket Mode (`serve --socket-mode`): the same app over a WebSocket instead of the Request
URL. A loopback WebSocket endpoint plays Slack's side (apps.connections.open -> wss URL ->
hello -> envelopes, each acknowledged by envelope_id)."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from aiohttp import web

from tests.slack_support import SECRET, TEAM, TOKEN, FakeSlack, Server, trigger_id


class FakeSocketMode:
    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.received: list[dict] = []
        self.ws = None
        self.connected = threading.Event()
        ready = threading.Event()

        async def handler(request):
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            self.ws = ws
            await ws.send_str(json.dumps({"type": "hello", "num_connections": 1,
                                          "connection_info": {"app_id": "A1"}, "debug_info": {"host": "test"}}))
            self.connected.set()
            async for msg in ws:
                if msg.type == web.WSMsgType.TEXT:
                    self.received.append(json.loads(msg.data))
            return ws

        async def start():
            app = web.Application()
            app.router.add_get("/link", handler)
            self.runner = web.AppRunner(app)
            await self.runner.setup()
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()

        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(start(), self.loop)
        ready.wait(10)
        self.url = f"ws://127.0.0.1:{self.port}/link"

    def send(self, envelope: dict) -> None:
        asyncio.run_coroutine_threadsafe(self.ws.send_str(json.dumps(envelope)), self.loop).result(5)

    def acked(self, envelope_id: str, timeout: float = 5) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for r in self.received:
                if r.get("envelope_id") == envelope_id:
                    return r
            time.sleep(0.02)
        raise AssertionError(f"envelope {envelope_id} not acknowledged")

    def close(self):
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture
def socket_env(store):
    from bot.server import create_app
    from bot.settings import load_settings
    from tests.flow_support import build_world

    build_world(store)
    fake, sm = FakeSlack(), FakeSocketMode()
    fake.socket_url = sm.url
    settings = load_settings(SLACK_BOT_TOKEN=TOKEN, SLACK_APP_TOKEN="xapp-1-A1-test", SLACK_API_URL=fake.url,
                             DATABASE_URL="sqlite:///unused.db")
    server = Server(create_app(settings, store, slack_socket_mode=True))
    assert sm.connected.wait(10), "the app did not connect over Socket Mode"
    yield fake, sm, server
    server.stop()
    sm.close()
    fake.close()


def test_socket_mode_serves_the_same_app(socket_env):
    fake, sm, server = socket_env
    assert fake.of("apps.connections.open")
    sm.send({"envelope_id": "env-1", "type": "slash_commands", "accepts_response_payload": True,
             "payload": {"token": "x", "team_id": TEAM, "team_domain": "test", "channel_id": "C1",
                         "user_id": "UTEACHERS", "command": "/concern", "text": "", "api_app_id": "A1",
                         "response_url": "https://hooks.slack.com/commands/T/1/x", "trigger_id": trigger_id()}})
    assert sm.acked("env-1")["envelope_id"] == "env-1"
    fake.wait(lambda f: [c for c in f.of("views.open") if c.args["view"]["callback_id"] == "report_concern_modal"])
    # an event retried by Slack (retry_attempt) is handled once
    event = {"token": "x", "team_id": TEAM, "api_app_id": "A1", "type": "event_callback", "event_id": "EvS1",
             "event_time": int(time.time()),
             "event": {"type": "message", "channel_type": "im", "channel": "DUTEACHERS", "user": "UTEACHERS",
                       "text": "help", "ts": "7.7"}}
    sm.send({"envelope_id": "env-2", "type": "events_api", "accepts_response_payload": False, "payload": event,
             "retry_attempt": 0, "retry_reason": ""})
    sm.send({"envelope_id": "env-3", "type": "events_api", "accepts_response_payload": False, "payload": event,
             "retry_attempt": 1, "retry_reason": "timeout"})
    sm.acked("env-2"), sm.acked("env-3")
    fake.wait(lambda f: f.of("chat.postMessage"))
    time.sleep(0.3)
    assert len(fake.of("chat.postMessage")) == 1
    # over HTTP, with no signing secret, nothing is accepted
    import httpx

    assert httpx.post(server.url + "/slack/events", content="{}").status_code == 401


def test_serve_socket_mode_without_an_app_token_refuses(cli_env):
    from tests.conftest import run_cli

    env = {**cli_env, "SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": SECRET}
    r = run_cli(["serve", "--socket-mode", "--port", "0"], env, timeout=60)
    assert r.returncode == 2
    assert "SLACK_APP_TOKEN" in r.stderr and "Traceback" not in r.stderr
    r = run_cli(["serve", "--port", "0"], {**cli_env, "SLACK_BOT_TOKEN": "xoxb-1"}, timeout=60)
    assert r.returncode == 2 and "SLACK_SIGNING_SECRET" in r.stderr
