"""Ack latency of the Slack app: p50/p99 of `/concern` and of a report view submission at 20
concurrent senders, against a bare slack-bolt AsyncApp that only acks the same requests, in
the same server stack (uvicorn + Starlette + Bolt's async Starlette adapter), in one run.

    python bench/slack_ack.py [--requests 600] [--concurrency 20] [--database-url URL]

Each server runs in its own process on a free loopback port; a fake Slack Web API (the one
the tests use) runs in a third, so that our app's work after the ack (views.open/update,
saving the concern) really happens and competes for the CPU as it would in production.
Requests are signed as Slack signs them. Loopback only; bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- the servers (child processes)

def serve_fake(port: int) -> None:
    from tests.slack_support import FakeSlack

    fake = FakeSlack()
    fake.calls = _Discard()  # keep no history: a long run would only grow memory
    print(json.dumps({"url": fake.url}), flush=True)
    sys.stdin.read()  # until the parent closes our stdin


class _Discard(list):
    def append(self, item):
        pass


def serve_app(kind: str, port: int, api_url: str, db_url: str, key: str) -> None:
    import logging

    import uvicorn

    from bot.settings import load_settings
    from tests.slack_support import SECRET, TOKEN

    logging.disable(logging.WARNING)
    settings = load_settings(SLACK_BOT_TOKEN=TOKEN, SLACK_SIGNING_SECRET=SECRET, SLACK_API_URL=api_url,
                             DATABASE_URL=db_url, SAFEGUARDING_DATA_KEY=key)
    if kind == "ours":
        from bot.server import create_app
        from storage.db import Store

        app = create_app(settings, Store(db_url, key))
    else:
        from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
        from slack_bolt.async_app import AsyncApp
        from slack_sdk.web.async_client import AsyncWebClient
        from starlette.applications import Starlette
        from starlette.routing import Route

        bolt = AsyncApp(client=AsyncWebClient(token=TOKEN, base_url=api_url), signing_secret=SECRET)

        @bolt.command("/concern")
        async def command(ack):
            await ack()

        @bolt.view("report_concern_modal")
        async def view(ack):
            await ack()

        handler = AsyncSlackRequestHandler(bolt)

        async def events(request):
            return await handler.handle(request)

        app = Starlette(routes=[Route("/slack/events", events, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False)


# ---------------------------------------------------------------- the load

def bodies(n: int, world, kind: str) -> list[tuple[str, str]]:
    """Signed (body, content type) pairs: slash commands, or report submissions (one view id each)."""
    from flows.report import report_form
    from bot.slack import render
    from tests.flow_support import report_values
    from tests.slack_support import TEAM, fill, trigger_id

    out = []
    if kind == "command":
        for _ in range(n):
            out.append(urllib.parse.urlencode({
                "token": "x", "team_id": TEAM, "team_domain": "test", "channel_id": "C1", "channel_name": "general",
                "user_id": "UTEACHERS", "user_name": "tom", "command": "/concern", "text": "", "api_app_id": "A1",
                "response_url": "https://hooks.slack.com/commands/T/1/x", "trigger_id": trigger_id()}))
        return out
    view = render.report_modal(report_form())
    raw = report_values(world, occurred_at=int(time.time()) - 3600)
    state = fill(view, raw, {"child": "Amira Zed (Year 5)"})
    for i in range(n):
        out.append(urllib.parse.urlencode({"payload": json.dumps({
            "type": "view_submission", "team": {"id": TEAM, "domain": "test"},
            "user": {"id": "UTEACHERS", "team_id": TEAM}, "api_app_id": "A1", "token": "x",
            "trigger_id": trigger_id(),
            "view": {**view, "id": f"VB{time.time_ns()}{i}", "team_id": TEAM, "hash": "h",
                     "state": {"values": state}}})}))
    return out


async def fire(url: str, payloads: list[str], concurrency: int) -> list[float]:
    import aiohttp

    from tests.slack_support import signed_headers

    queue: asyncio.Queue = asyncio.Queue()
    for p in payloads:
        queue.put_nowait(p)
    lat: list[float] = []
    errors = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as client:
        async def sender():
            nonlocal errors
            while True:
                try:
                    body = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                headers = signed_headers(body, "application/x-www-form-urlencoded")
                t0 = time.perf_counter()
                async with client.post(url, data=body.encode(), headers=headers) as r:
                    await r.read()
                    lat.append((time.perf_counter() - t0) * 1000)
                    if r.status != 200:
                        errors += 1

        await asyncio.gather(*(sender() for _ in range(concurrency)))
    if errors:
        print(f"WARNING: {errors} of {len(payloads)} requests were not acknowledged with 200", file=sys.stderr)
    return lat


def wait_saved(store, expected: int, timeout: float) -> tuple[int, float]:
    from sqlalchemy import func
    from sqlmodel import select

    from storage.models import Concern

    t0 = time.monotonic()
    while True:
        with store.session() as s:
            n = s.exec(select(func.count(Concern.id))).one()
        if n >= expected or time.monotonic() - t0 > timeout:
            return n, time.monotonic() - t0
        time.sleep(0.2)


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def wait_up(port: int, proc) -> None:
    end = time.monotonic() + 60
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit("a server did not start")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("a server did not start in 60 s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=600, help="measured requests per case (after 60 warm-up)")
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--database-url", default=None, help="default: a fresh SQLite file in a temporary folder")
    ap.add_argument("--serve", choices=["fake", "ours", "bare"], help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--api", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve == "fake":
        return serve_fake(args.port)
    if args.serve:
        return serve_app(args.serve, args.port, args.api, args.database_url, os.environ["SAFEGUARDING_DATA_KEY"])

    from storage.crypto import generate_key
    from storage.db import Store
    from tests.flow_support import build_world

    tmp = tempfile.mkdtemp(prefix="slack-bench-")
    db_url = args.database_url or f"sqlite:///{tmp}/bench.sqlite3"
    key = generate_key()
    store = Store(db_url, key)
    world = build_world(store, slug="s", trust_slug="bench")
    env = {**os.environ, "SAFEGUARDING_DATA_KEY": key, "PYTHONPATH": str(ROOT)}
    env = {k: v for k, v in env.items() if not k.startswith("TEAMS_")}
    me = [sys.executable, __file__]
    procs = []
    try:
        fake = subprocess.Popen(me + ["--serve", "fake", "--port", "0"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, env=env, text=True)
        procs.append(fake)
        api = json.loads(fake.stdout.readline())["url"]
        ports = {}
        for kind in ("ours", "bare"):
            ports[kind] = free_port()
            p = subprocess.Popen(me + ["--serve", kind, "--port", str(ports[kind]), "--api", api,
                                       "--database-url", db_url], env=env, stdin=subprocess.DEVNULL)
            procs.append(p)
            wait_up(ports[kind], p)
        results = {}
        for case in ("command", "view_submission"):
            for kind in ("bare", "ours"):
                url = f"http://127.0.0.1:{ports[kind]}/slack/events"
                asyncio.run(fire(url, bodies(60, world, case), args.concurrency))  # warm-up
                lat = asyncio.run(fire(url, bodies(args.requests, world, case), args.concurrency))
                results[(case, kind)] = (statistics.median(lat), pct(lat, 99), max(lat))
                if case == "view_submission" and kind == "ours":
                    saved_after = wait_saved(store, 60 + args.requests, 120)
                else:
                    time.sleep(1.0)  # let the work after the acks finish before the next case
        print(f"Slack ack latency, {args.requests} requests per case, {args.concurrency} concurrent senders, "
              f"{os.cpu_count()} CPUs, database {db_url.split(':', 1)[0]}")
        print(f"{'case':18} {'app':6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  p99 vs bare")
        for case in ("command", "view_submission"):
            bare = results[(case, "bare")][1]
            for kind in ("bare", "ours"):
                p50, p99, mx = results[(case, kind)]
                ratio = f"{p99 / bare:.2f}x" if kind == "ours" else ""
                print(f"{case:18} {kind:6} {p50:8.1f} {p99:8.1f} {mx:8.1f}  {ratio}")
        saved, seconds = saved_after
        print(f"report submissions acknowledged by our app: {60 + args.requests}; concerns saved after the acks: "
              f"{saved} (all saved {seconds:.1f} s after the last ack)")
    finally:
        for p in procs:
            if p.stdin:
                p.stdin.close()
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        store.dispose()


if __name__ == "__main__":
    main()
