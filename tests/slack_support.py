"""End-to-end Slack test kit: a fake Slack Web API on a free loopback port that records every
call and fails on demand; the real ASGI server (uvicorn on create_app) on another; requests
signed with the signing secret exactly as Slack signs them; payloads shaped as in Slack's docs."""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import uvicorn
from slack_sdk.signature import SignatureVerifier

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TOKEN = "xoxb-test-token"
TEAM = "TS"


@dataclass
class Call:
    method: str
    args: dict
    status: int


class FakeSlack:
    """Slack's Web API, as much of it as we use. `fail(n, status, retry_after)` makes the next n
    calls fail (optionally for one method); then it recovers."""

    def __init__(self, emails: dict[str, str] | None = None):
        self.calls: list[Call] = []
        self.emails = dict(emails or {})  # slack user id -> email (users.info, users.lookupByEmail)
        self._failures: list[tuple[str | None, int, float | None]] = []
        self._ts = itertools.count(1)
        self._views = itertools.count(1)
        self.views: dict[str, dict] = {}  # view id -> last view JSON sent for it
        self.lock = threading.RLock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Slack's API does

            def log_message(self, *a):
                pass

            def do_POST(self):
                path, _, query = self.path.partition("?")
                method = path.rsplit("/", 1)[-1]
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode() or query
                if "json" in (self.headers.get("Content-Type") or ""):
                    args = json.loads(raw or "{}")
                else:
                    args = {k: v[0] for k, v in urllib.parse.parse_qs(raw).items()}
                for k in ("view", "blocks"):
                    if isinstance(args.get(k), str):
                        args[k] = json.loads(args[k])
                status, body, headers = fake.answer(method, args)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST  # users.info and users.lookupByEmail go as GET with a query string

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def fail(self, n: int, status: int = 500, retry_after: float | None = None, method: str | None = None):
        with self.lock:
            self._failures += [(method, status, retry_after)] * n

    def answer(self, method: str, args: dict) -> tuple[int, dict, dict]:
        with self.lock:
            for i, (m, status, ra) in enumerate(self._failures):
                if m in (None, method):
                    del self._failures[i]
                    self.calls.append(Call(method, args, status))
                    if status == 429:
                        return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(int(ra or 1))}
                    return status, {"ok": False, "error": "internal_error"}, {}
            self.calls.append(Call(method, args, 200))
            return 200, self._ok(method, args), {}

    def _ok(self, method: str, args: dict) -> dict:
        if method == "auth.test":
            return {"ok": True, "user_id": "UBOT", "bot_id": "BBOT", "team_id": TEAM, "team": "Test",
                    "url": "https://test.slack.com/"}
        if method in ("views.open", "views.push"):
            vid = f"V{next(self._views):04d}"
            self.views[vid] = args["view"]
            return {"ok": True, "view": {**args["view"], "id": vid}}
        if method == "views.update":
            vid = args.get("view_id")
            self.views[vid] = args["view"]
            return {"ok": True, "view": {**args["view"], "id": vid}}
        if method == "views.publish":
            return {"ok": True, "view": {**args["view"], "id": "VHOME"}}
        if method == "conversations.open":
            return {"ok": True, "channel": {"id": "D" + str(args["users"])}}
        if method in ("chat.postMessage", "chat.update"):
            ts = args.get("ts") or f"1764000000.{next(self._ts):06d}"
            return {"ok": True, "channel": args["channel"], "ts": ts, "message": {"text": args.get("text")}}
        if method == "apps.connections.open":
            return {"ok": True, "url": self.socket_url} if getattr(self, "socket_url", None) else \
                {"ok": False, "error": "not_allowed_token_type"}
        if method == "users.info":
            email = self.emails.get(args.get("user"))
            if email is None:
                return {"ok": False, "error": "user_not_found"}
            return {"ok": True, "user": {"id": args["user"], "profile": {"email": email}}}
        if method == "users.lookupByEmail":
            for uid, email in self.emails.items():
                if email == args.get("email"):
                    return {"ok": True, "user": {"id": uid}}
            return {"ok": False, "error": "users_not_found"}
        return {"ok": True}

    # -- reading what happened

    def of(self, method: str, ok_only: bool = True) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.method == method and (c.status == 200 or not ok_only)]

    def last_view(self) -> tuple[str, dict]:
        with self.lock:
            for c in reversed(self.calls):
                if c.method in ("views.open", "views.push", "views.update") and c.status == 200:
                    vid = c.args.get("view_id") or [k for k, v in self.views.items() if v is c.args["view"]][-1]
                    return vid, c.args["view"]
        raise AssertionError("no view was opened")

    def wait(self, pred, timeout: float = 5.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                got = pred(self)
            if got:
                return got
            time.sleep(0.02)
        raise AssertionError("timed out waiting for a Slack API call")


class Server:
    """uvicorn serving create_app(settings, store) on a free loopback port, in a thread."""

    def __init__(self, app):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        end = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > end or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.02)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def signed_headers(body: str, content_type: str, *, secret: str = SECRET, ts: int | None = None,
                   retry: int | None = None) -> dict:
    ts = int(time.time()) if ts is None else ts
    headers = {"Content-Type": content_type, "X-Slack-Request-Timestamp": str(ts),
               "X-Slack-Signature": SignatureVerifier(secret).generate_signature(timestamp=str(ts), body=body)}
    if retry is not None:
        headers.update({"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"})
    return headers


_trigger = itertools.count(1)


def trigger_id() -> str:
    return f"{next(_trigger)}.1234.abcdef{time.time_ns()}"


class Slack:
    """What Slack sends to our Request URL, for a given user."""

    def __init__(self, base_url: str, http: httpx.Client | None = None):
        self.url = base_url + "/slack/events"
        self.http = http or httpx.Client(timeout=10)

    def post_form(self, fields: dict, **kw) -> httpx.Response:
        body = urllib.parse.urlencode(fields)
        return self.http.post(self.url, content=body,
                              headers=signed_headers(body, "application/x-www-form-urlencoded", **kw))

    def post_payload(self, payload: dict, **kw) -> httpx.Response:
        return self.post_form({"payload": json.dumps(payload)}, **kw)

    def post_event(self, event: dict, event_id: str, **kw) -> httpx.Response:
        body = json.dumps({"token": "x", "team_id": TEAM, "api_app_id": "A1", "event": event,
                           "type": "event_callback", "event_id": event_id, "event_time": int(time.time()),
                           "authorizations": [{"team_id": TEAM, "user_id": "UBOT", "is_bot": True}]})
        return self.http.post(self.url, content=body, headers=signed_headers(body, "application/json", **kw))

    # -- payloads (shapes from api.slack.com: slash commands, interactivity, options, Events API)

    def command(self, user: str, command: str = "/concern", text: str = "", channel: str = "C0GENERAL", **kw):
        return self.post_form({"token": "x", "team_id": TEAM, "team_domain": "test", "channel_id": channel,
                               "channel_name": "general", "user_id": user, "user_name": user.lower(),
                               "command": command, "text": text, "api_app_id": "A1",
                               "is_enterprise_install": "false",
                               "response_url": "https://hooks.slack.com/commands/T/1/x",
                               "trigger_id": trigger_id()}, **kw)

    @staticmethod
    def _user(user):
        return {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM}

    def shortcut(self, user: str, callback_id: str, **kw):
        return self.post_payload({"type": "shortcut", "token": "x", "action_ts": f"{time.time():.6f}",
                                  "team": {"id": TEAM, "domain": "test"}, "user": self._user(user),
                                  "is_enterprise_install": False, "enterprise": None, "callback_id": callback_id,
                                  "trigger_id": trigger_id()}, **kw)

    def message_action(self, user: str, callback_id: str, channel: str, ts: str, text: str, **kw):
        return self.post_payload({"type": "message_action", "token": "x", "action_ts": f"{time.time():.6f}",
                                  "team": {"id": TEAM, "domain": "test"}, "user": self._user(user),
                                  "channel": {"id": channel, "name": "staffroom"}, "is_enterprise_install": False,
                                  "callback_id": callback_id, "trigger_id": trigger_id(), "message_ts": ts,
                                  "message": {"type": "message", "user": "UOTHER", "ts": ts, "text": text},
                                  "response_url": "https://hooks.slack.com/app/T/1/x"}, **kw)

    def click_in_message(self, user: str, channel: str, message_ts: str, block: dict, action_id: str, **kw):
        """Press the button `action_id` of a message we sent (its blocks as sent)."""
        button = find_button(block, action_id)
        return self.post_payload({
            "type": "block_actions", "user": self._user(user), "api_app_id": "A1", "token": "x",
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": False},
            "trigger_id": trigger_id(), "team": {"id": TEAM, "domain": "test"}, "enterprise": None,
            "is_enterprise_install": False, "channel": {"id": channel, "name": "directmessage"},
            "message": {"type": "message", "ts": message_ts, "blocks": block, "text": "x"},
            "response_url": "https://hooks.slack.com/actions/T/1/x",
            "actions": [{"action_id": action_id, "block_id": button["_block"], "text": button["text"],
                         "value": button.get("value"), "type": "button", "action_ts": f"{time.time():.6f}"}]}, **kw)

    def click_in_view(self, user: str, view_id: str, view: dict, action_id: str, *, state: dict | None = None, **kw):
        button = find_button(view["blocks"], action_id)
        return self.post_payload({
            "type": "block_actions", "user": self._user(user), "api_app_id": "A1", "token": "x",
            "container": {"type": "view", "view_id": view_id}, "trigger_id": trigger_id(),
            "team": {"id": TEAM, "domain": "test"}, "is_enterprise_install": False,
            "view": {**view, "id": view_id, "type": view.get("type", "modal"), "hash": "h1",
                     "state": {"values": state or {}}},
            "actions": [{"action_id": action_id, "block_id": button["_block"], "text": button["text"],
                         "value": button.get("value"), "type": "button", "action_ts": f"{time.time():.6f}"}]}, **kw)

    def home_click(self, user: str, view: dict, action_id: str, value: str, **kw):
        view = {**view, "id": "VHOME", "hash": "h1", "state": {"values": {}}}
        return self.post_payload({
            "type": "block_actions", "user": self._user(user), "api_app_id": "A1", "token": "x",
            "container": {"type": "view", "view_id": "VHOME"}, "trigger_id": trigger_id(),
            "team": {"id": TEAM, "domain": "test"}, "view": view,
            "actions": [{"action_id": action_id, "block_id": "x", "value": value, "type": "button",
                         "action_ts": f"{time.time():.6f}"}]}, **kw)

    def select_in_view(self, user: str, view_id: str, view: dict, state: dict, action_id: str, **kw):
        """A dispatch_action input changed (e.g. a radio button)."""
        block = next(b for b in view["blocks"] if b.get("element", {}).get("action_id") == action_id)
        return self.post_payload({
            "type": "block_actions", "user": self._user(user), "api_app_id": "A1", "token": "x",
            "container": {"type": "view", "view_id": view_id}, "trigger_id": trigger_id(),
            "team": {"id": TEAM, "domain": "test"},
            "view": {**view, "id": view_id, "hash": "h1", "state": {"values": state}},
            "actions": [{"action_id": action_id, "block_id": block["block_id"], "type": block["element"]["type"],
                         "selected_option": state[block["block_id"]][action_id].get("selected_option"),
                         "action_ts": f"{time.time():.6f}"}]}, **kw)

    def submit(self, user: str, view_id: str, view: dict, state: dict, **kw):
        return self.post_payload({
            "type": "view_submission", "team": {"id": TEAM, "domain": "test"}, "user": self._user(user),
            "api_app_id": "A1", "token": "x", "trigger_id": trigger_id(),
            "view": {**view, "id": view_id, "team_id": TEAM, "type": "modal", "hash": "h1",
                     "state": {"values": state}, "root_view_id": view_id, "app_id": "A1",
                     "previous_view_id": view.get("_previous")},
            "response_urls": [], "is_enterprise_install": False, "enterprise": None}, **kw)

    def suggest(self, user: str, view_id: str, view: dict, action_id: str, value: str, **kw):
        block = next(b for b in view["blocks"] if b.get("element", {}).get("action_id") == action_id)
        return self.post_payload({
            "type": "block_suggestion", "user": self._user(user), "container": {"type": "view", "view_id": view_id},
            "api_app_id": "A1", "token": "x", "action_id": action_id, "block_id": block["block_id"], "value": value,
            "team": {"id": TEAM, "domain": "test"}, "view": {**view, "id": view_id, "state": {"values": {}}}}, **kw)


def find_button(blocks: list, action_id: str) -> dict:
    for b in blocks:
        for el in b.get("elements", []) + ([b["accessory"]] if b.get("accessory") else []):
            if el.get("type") == "button" and el.get("action_id") == action_id:
                return {**el, "_block": b.get("block_id", "b")}
    raise AssertionError(f"no button {action_id}")


def fill(view: dict, raw: dict[str, Any], labels: dict[str, str] | None = None) -> dict:
    """The `state.values` Slack would send for these answers in this view (only its input blocks)."""
    state: dict = {}
    for b in view["blocks"]:
        if b.get("type") != "input":
            continue
        el = b["element"]
        aid, t = el["action_id"], el["type"]
        name = aid.split(".", 1)[1]
        v = raw.get(name)
        if t == "plain_text_input":
            st = {"type": t, "value": v}
        elif t in ("radio_buttons", "static_select"):
            opt = next((o for o in el["options"] if o["value"] == v), None)
            st = {"type": t, "selected_option": opt}
        elif t == "external_select":
            st = {"type": t, "selected_option": {"text": {"type": "plain_text", "text": (labels or {}).get(name, v)},
                                                 "value": v} if v else None}
        elif t == "multi_static_select":
            st = {"type": t, "selected_options": [o for o in el["options"] if o["value"] in (v or [])]}
        elif t == "datetimepicker":
            st = {"type": t, "selected_date_time": v}
        elif t == "datepicker":
            st = {"type": t, "selected_date": v}
        else:
            raise AssertionError(t)
        state[b["block_id"]] = {aid: st}
    return state


# ---------------------------------------------------------------- a whole set-up

@dataclass
class Env:
    store: Any
    world: Any
    fake: FakeSlack
    server: Server
    slack: Slack
    transport: Any
    app: Any

    def user(self, key: str) -> str:
        return "U" + key.upper() + "S"  # build_world: slack_user_id "U" + email local part + slug

    def deliver(self, now=None) -> dict:
        return deliver_pending(self.store, self.transport, now)


def make_env(store, *, emails: dict | None = None) -> Env:
    from bot.server import create_app
    from bot.settings import load_settings
    from bot.slack.delivery import build_transport
    from tests.flow_support import build_world

    world = build_world(store)
    fake = FakeSlack(emails)
    settings = load_settings(SLACK_BOT_TOKEN=TOKEN, SLACK_SIGNING_SECRET=SECRET, SLACK_API_URL=fake.url,
                             DATABASE_URL=store.url if store.url.startswith("sqlite") else "sqlite:///unused.db")
    app = create_app(settings, store)
    server = Server(app)
    return Env(store, world, fake, server, Slack(server.url), build_transport(settings, store), app)


def close_env(env: Env) -> None:
    env.server.stop()
    env.fake.close()


def deliver_pending(store, transport, now=None) -> dict:
    """One outbox pass of the real worker (bot/worker.py) with the Slack transport only."""
    from bot.worker import Counts, Worker
    from storage.models import utcnow

    counts = Counts()
    Worker(store, transports=[transport], worker_id="slack-test").deliver(now or utcnow(), counts)
    return {"sent": counts.sent, "retried": counts.retried, "dead": counts.dead}
