"""Benchmark: Teams requests at 20 concurrent senders, ours against a bare Teams SDK app, in one run.

    python bench/teams_latency.py [--requests 600] [--concurrency 20] [--warmup 60]
                                  [--database-url sqlite:///... | postgresql://postgres@127.0.0.1:5432/test]

Both servers run on the same stack, each in its own process: uvicorn + Starlette + our
`StarletteAdapter`, the Teams SDK 2.1.1 `App` with credentials (so the SDK validates every
channel token itself). Ours is `safeguarding-bot serve --no-worker` (our token checks on top:
endorsements, channel, tenant; the directory look-up, the conversation reference, the flows).
The bare app answers a message with "ok" and an Action.Execute with a one-line card.

This process hosts Microsoft's key and token endpoints (tests.teams_support.MicrosoftFake: a
test HTTPS proxy with a test CA, reached through HTTPS_PROXY / SSL_CERT_FILE as a school network
would) and a Bot Connector (FakeConnector) that the replies go to, and sends activities shaped
as Teams sends them with channel tokens signed by the test key:

- message: "help" typed in the 1:1 chat; ours answers with the help card (a reply through the
  connector), the bare app with "ok";
- invoke: an Action.Execute ("my_reports"): ours looks up the person and their reports and
  answers with a card in the HTTP response, the bare app with a fixed card.

Every sender runs a closed loop; p50/p99 over `--requests` measured requests per case after
`--warmup`. Goal: p99 under 150 ms on 2 cores and no more than 1.5x the bare app.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def bare_server(port: int) -> None:
    """The bare Teams SDK app on our stack (run in its own process)."""
    import uvicorn
    from microsoft_teams.api import AdaptiveCardActionCardResponse, ApiClientSettings
    from microsoft_teams.api.auth.cloud_environment import PUBLIC
    from microsoft_teams.apps import App
    from microsoft_teams.cards import AdaptiveCard, TextBlock
    from starlette.applications import Starlette
    from starlette.routing import Route

    from bot.teams.adapter import MESSAGING_PATH, StarletteAdapter
    from bot.teams.app import cap_sdk_loggers
    from tests.teams_support import APP_ID, APP_PASSWORD, TENANT_ID

    adapter = StarletteAdapter(None, unauthenticated=True)  # our checks off: the SDK's own remain
    app = App(client_id=APP_ID, client_secret=APP_PASSWORD, tenant_id=TENANT_ID, http_server_adapter=adapter,
              dangerously_allow_unauthenticated_requests=False, cloud=PUBLIC,
              service_url="https://smba.trafficmanager.net/teams",
              api_client_settings=ApiClientSettings(oauth_url=PUBLIC.token_service_url), fetch_user_token=False,
              state=False)

    @app.on_message
    async def on_message(ctx):
        await ctx.send("ok")

    @app.on_card_action
    async def on_card_action(ctx):
        return AdaptiveCardActionCardResponse(value=AdaptiveCard(version="1.5", body=[TextBlock(text="ok")]))

    @contextlib.asynccontextmanager
    async def lifespan(_):
        await app.initialize()
        cap_sdk_loggers()
        yield

    web = Starlette(routes=[Route(MESSAGING_PATH, adapter.endpoint, methods=["POST"])], lifespan=lifespan)
    uvicorn.run(web, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def connector_server() -> None:
    """The fake Bot Connector in its own process (so that it does not share the load generator's
    interpreter); prints its serviceUrl, and on stdin EOF the number of replies it received."""
    from tests.teams_support import FakeConnector

    with FakeConnector() as conn:
        print(conn.service_url, flush=True)
        sys.stdin.read()
        print(len(conn.sends()), flush=True)


def wait_healthy(url: str, proc: subprocess.Popen, path: str = "/healthz", timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    with httpx.Client(trust_env=False) as c:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {proc.stderr.read() if proc.stderr else ''}")
            try:
                r = c.request("GET" if path == "/healthz" else "POST", url + path, content=b"x")
                if r.status_code in (200, 400):
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise RuntimeError("server did not start")


async def load(url: str, make_activity, tokens: list[str], requests: int, warmup: int, concurrency: int,
               expect) -> list[float]:
    import httpx

    latencies: list[float] = []
    counter = {"n": 0}
    total = requests + warmup
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(trust_env=False, timeout=30, limits=limits) as client:
        async def sender(i: int):
            headers = {"Authorization": f"Bearer {tokens[i]}"}
            while True:
                n = counter["n"]
                if n >= total:
                    return
                counter["n"] = n + 1
                body = make_activity(i)
                started = time.perf_counter()
                r = await client.post(url + "/api/messages", json=body, headers=headers)
                elapsed = time.perf_counter() - started
                expect(r)
                if n >= warmup:
                    latencies.append(elapsed * 1000)

        await asyncio.gather(*(sender(i) for i in range(concurrency)))
    return latencies


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=600)
    ap.add_argument("--warmup", type=int, default=60)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--bare-server", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--connector", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare_server:
        return bare_server(args.bare_server)
    if args.connector:
        return connector_server()


    from storage.crypto import generate_key
    from storage.db import Store
    from storage.models import Person, School
    from tests.flow_support import build_world
    from tests.teams_support import APP_ID, APP_PASSWORD, TENANT_ID, MicrosoftFake, free_port, message_activity

    tmp = Path(tempfile.mkdtemp(prefix="teams-bench-"))
    url = args.database_url or f"sqlite:///{tmp / 'bench.sqlite3'}"
    if url.startswith("postgresql") and "search_path" not in url:
        import uuid

        from sqlalchemy import create_engine, text

        from storage.db import normalise_url

        schema = "bench_" + uuid.uuid4().hex[:8]
        base = normalise_url(url)
        with create_engine(base, isolation_level="AUTOCOMMIT").connect() as c:
            c.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    drop_schema = None
    if url.startswith("postgresql") and "bench_" in url:
        drop_schema = (base, schema)
    key = generate_key()
    store = Store(url, key, upgrade=True)
    w = build_world(store)
    people = []
    with store.session() as s:
        school = s.get(School, w.school)
        school.teams_tenant_id = TENANT_ID
        s.add(school)
        for i, (k, pid) in enumerate(sorted(w.people.items())):
            p = s.get(Person, pid)
            p.teams_aad_object_id = f"a0a0a0a0-0000-4000-8000-{i:012d}"
            s.add(p)
            people.append(p.teams_aad_object_id)
    store.dispose()

    results = {}
    conn_proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--connector"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)})
    service_url = conn_proc.stdout.readline().strip()

    class conn:  # noqa: N801 (the connector's address)
        pass

    conn.service_url = service_url
    with MicrosoftFake(tmp) as ms:
        ms.kid = ms.keys.add()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TEAMS_", "SLACK_", "CLIENT_", "TENANT_"))}
        env.update(ms.env())
        env.update(DATABASE_URL=url, SAFEGUARDING_DATA_KEY=key, TEAMS_APP_ID=APP_ID, TEAMS_APP_PASSWORD=APP_PASSWORD,
                   TEAMS_TENANT_ID=TENANT_ID, LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT))
        ours_port, bare_port = free_port(), free_port()
        ours_log = open(Path(tmp) / "ours.log", "w")  # a file, never a pipe nobody reads
        ours = subprocess.Popen(["safeguarding-bot", "serve", "--no-worker", "--port", str(ours_port)], env=env,
                                cwd=tmp, stdout=subprocess.DEVNULL, stderr=ours_log, text=True)
        bare = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--bare-server", str(bare_port)],
                                env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait_healthy(f"http://127.0.0.1:{ours_port}", ours)
            wait_healthy(f"http://127.0.0.1:{bare_port}", bare, path="/api/messages")
            tokens = [ms.keys.mint(ms.kid, service_url=conn.service_url) for _ in range(args.concurrency)]

            def who(i: int) -> dict:
                aad = people[i % len(people)]
                # A person's Teams user id and 1:1 conversation are stable: one per person, as in Teams.
                return dict(user_id=f"29:1user-{aad}", aad_object_id=aad, conversation_id=f"a:1personal-{aad}")

            def message(i: int) -> dict:
                return message_activity(conn.service_url, "help", **who(i))

            def invoke(i: int) -> dict:
                act = message_activity(conn.service_url, **who(i), type="invoke", name="adaptiveCard/action",
                                       replyToId="1700000000abc",
                                       value={"action": {"type": "Action.Execute", "verb": "my_reports",
                                                         "data": {"action": "my_reports"}}, "trigger": "manual"})
                act.pop("text")
                return act

            def ok(r):
                if r.status_code != 200:
                    ours_log.flush()
                    tail = (Path(tmp) / "ours.log").read_text()[-4000:]
                    raise RuntimeError(f"{r.status_code} {r.text[:200]}\n--- our server's log (tail):\n{tail}")

            def card(r):
                ok(r)
                if r.json().get("type") != "application/vnd.microsoft.card.adaptive":
                    raise RuntimeError(f"not a card: {r.text[:200]}")

            for case, make, expect in (("message", message, ok), ("Action.Execute invoke", invoke, card)):
                for name, port in (("bare", bare_port), ("ours", ours_port)):
                    lat = asyncio.run(load(f"http://127.0.0.1:{port}", make, tokens, args.requests, args.warmup,
                                           args.concurrency, expect))
                    results[(case, name)] = (statistics.median(lat), pct(lat, 0.99), len(lat))
        finally:
            for p in (ours, bare):
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        conn_proc.stdin.close()
        replies = int(conn_proc.stdout.readline().strip() or 0)
        conn_proc.wait(10)

    if drop_schema:
        from sqlalchemy import create_engine, text

        with create_engine(drop_schema[0], isolation_level="AUTOCOMMIT").connect() as c:
            c.execute(text(f'DROP SCHEMA "{drop_schema[1]}" CASCADE'))
    db = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    print(f"Teams at {args.concurrency} concurrent senders, {args.requests} measured per case "
          f"(+{args.warmup} warm-up), {db}; {replies} replies reached the connector")
    print("| case | bare app p50 / p99 | ours p50 / p99 | p99 vs bare |")
    print("| --- | --- | --- | --- |")
    for case in ("message", "Action.Execute invoke"):
        b, o = results[(case, "bare")], results[(case, "ours")]
        print(f"| {case}, {db} | {b[0]:.1f} / {b[1]:.1f} ms | {o[0]:.1f} / {o[1]:.1f} ms | {o[1] / b[1]:.1f}x |")


if __name__ == "__main__":
    main()
