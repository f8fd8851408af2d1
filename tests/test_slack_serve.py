"""`safeguarding-bot serve` itself (a real process, its background worker included) with Slack
on: a signed /concern opens the form, a submission is saved, and the worker in the same
process delivers the DSL alerts through Slack."""

from __future__ import annotations

import socket
import subprocess
import time

import httpx

from tests.flow_support import build_world
from tests.slack_support import SECRET, TOKEN, FakeSlack, Slack, fill
from tests.test_slack_journey import slack_raw


def test_serve_hosts_slack_with_its_worker(store, cli_env):
    world = build_world(store)
    fake = FakeSlack()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**cli_env, "SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": fake.url}
    proc = subprocess.Popen(["safeguarding-bot", "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        end = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < end, "serve did not start"
            time.sleep(0.2)
        slack = Slack(base)
        assert slack.command("UTEACHERS").status_code == 200
        fake.wait(lambda f: [c for c in f.calls if c.method in ("views.open", "views.update") and c.status == 200
                             and any(b["type"] == "input" for b in c.args["view"]["blocks"])], timeout=10)
        vid, view = fake.last_view()
        r = slack.submit("UTEACHERS", vid, view, fill(view, slack_raw(world)))
        assert r.status_code == 200 and r.json()["response_action"] == "update"
        # the worker inside `serve` delivers the alerts (it polls every few seconds)
        fake.wait(lambda f: {c.args["channel"] for c in f.of("chat.postMessage")} >= {"DUDSLS", "DUDEPUTYS"},
                  timeout=30)
        # forged: refused by the real process too
        body = "command=%2Fconcern"
        bad = {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": str(int(time.time())),
               "X-Slack-Signature": "v0=" + "0" * 64}
        assert httpx.post(base + "/slack/events", content=body, headers=bad).status_code == 401
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        fake.close()
    for word in ("Amira", "bruise", "spilt the milk"):
        assert word not in out  # nothing of the concern in the server's own output
