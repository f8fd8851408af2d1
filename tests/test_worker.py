"""The worker: delivery through the first transport that reaches the person, exponential
backoff, dead letters alerted through another route, crash safety, several replicas on
PostgreSQL (SKIP LOCKED), and the `worker` / `nudges list` / `serve` commands."""

import json
import logging
import signal
import socket
import subprocess
import sys
import time
import types
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from bot.delivery import ConsoleTransport, RecipientUnreachable, TransientDeliveryError, transports
from bot.settings import load_settings
from bot.worker import Worker, WorkerConfig, claim_messages, sweep_nudges
from flows import notices, nudge_rules, report, triage
from storage.models import AuditEvent, Nudge, OutboxMessage

from .conftest import on_postgres, run_cli
from .flow_support import NOW, build_world, report_values
from .worker_support import Scripted, load_inactive_concerns, read_deliveries

ROOT = Path(__file__).resolve().parent.parent
CFG = WorkerConfig(jitter=0, backoff_base=30, max_attempts=4)


@pytest.fixture
def world(store):
    return build_world(store)


def one_message(store, recipient_id, key="m1", kind="test_notice"):
    with store.session() as s:
        msg = notices.enqueue(s, kind=kind, recipient_id=recipient_id, dedupe_key=key, at=NOW,
                              payload={"title": "Safeguarding reminder", "text": "Safeguarding reminder"})
        return msg.id


def message(store, msg_id) -> OutboxMessage:
    with store.session() as s:
        return s.get(OutboxMessage, msg_id)


def test_each_message_goes_once_and_is_marked_sent_after_the_platform_accepts(store, world):
    report.submit(store, world.teacher, report_values(world), now=NOW)
    slack = Scripted("slack")
    counts = Worker(store, [slack, ConsoleTransport()], CFG).run_once(NOW)
    assert counts.sent == 3 and len(slack.delivered) == 3  # two alerts and the receipt
    again = Worker(store, [slack, ConsoleTransport()], CFG).run_once(NOW + timedelta(minutes=1))
    assert again.sent == 0 and len(slack.delivered) == 3
    with store.session() as s:
        msgs = s.exec(select(OutboxMessage)).all()
    assert {(m.state, m.transport, m.attempts) for m in msgs} == {("sent", "slack", 1)}
    assert all(m.platform_ref["channel"].startswith("D") and m.claimed_by is None for m in msgs)


def test_first_transport_that_reaches_the_person_is_used(store, world):
    mid = one_message(store, world.teacher)
    slack = Scripted("slack", reaches=lambda p: p.id != world.teacher)
    teams = Scripted("teams")
    Worker(store, [slack, teams, ConsoleTransport()], CFG).run_once(NOW)
    assert slack.calls == 0 and len(teams.delivered) == 1 and message(store, mid).transport == "teams"


def test_transient_errors_back_off_exponentially_then_succeed(store, world):
    mid = one_message(store, world.dsl)
    slack = Scripted("slack", [TransientDeliveryError("HTTP 503"), TransientDeliveryError("timeout")])
    w = Worker(store, [slack], CFG)
    assert w.run_once(NOW).retried == 1
    m = message(store, mid)
    assert (m.state, m.attempts, m.last_error) == ("pending", 1, "TransientDeliveryError")
    assert m.next_attempt_at == NOW + timedelta(seconds=30)
    assert w.run_once(NOW + timedelta(seconds=29)).retried == 0 and slack.calls == 1  # not yet due
    w.run_once(NOW + timedelta(seconds=30))
    assert message(store, mid).next_attempt_at == NOW + timedelta(seconds=30 + 60)  # doubled
    assert w.run_once(NOW + timedelta(seconds=90)).sent == 1
    m = message(store, mid)
    assert (m.state, m.attempts, m.last_error) == ("sent", 3, None) and len(slack.delivered) == 1


def test_retry_after_from_the_platform_is_honoured(store, world):
    mid = one_message(store, world.dsl)
    Worker(store, [Scripted("slack", [TransientDeliveryError("429", retry_after=600)])], CFG).run_once(NOW)
    assert message(store, mid).next_attempt_at == NOW + timedelta(seconds=600)


def test_backoff_is_capped_and_jittered():
    cfg = WorkerConfig(backoff_base=30, backoff_max=300, jitter=5)
    assert 30 <= cfg.backoff(1) <= 35 and 60 <= cfg.backoff(2) <= 65
    assert 300 <= cfg.backoff(10) <= 305


def test_dead_letter_is_audited_and_alerted_through_another_route(store, world):
    mid = one_message(store, world.teacher, kind="receipt_test")
    failing = Scripted("slack", [TransientDeliveryError("503")] * 10)
    console = Scripted("console")
    w = Worker(store, [failing, console], CFG)
    t = NOW
    for _ in range(CFG.max_attempts):
        w.run_once(t)
        t += timedelta(hours=2)
    m = message(store, mid)
    assert (m.state, m.attempts, m.last_error) == ("dead", 4, "TransientDeliveryError")
    assert failing.calls >= 4 and not [d for d in console.delivered if d[0] == mid]
    with store.session() as s:
        ev = s.exec(select(AuditEvent).where(AuditEvent.action == "outbox.dead")).one()
        alerts = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "delivery_failed")).all()
    assert ev.details["message_id"] == mid and ev.details["transports"] == ["slack"]
    assert sorted(a.recipient_id for a in alerts) == sorted([world.dsl, world.deputy, world.tso])
    assert all(a.payload["exclude_transports"] == ["slack"] and a.urgent for a in alerts)
    # The alerts go out through the console, never through the route that failed.
    assert {a.state for a in alerts} == {"sent"} and {a.transport for a in alerts} == {"console"}
    assert {d[2] for d in console.delivered} == {world.dsl, world.deputy, world.tso}
    assert all("could not be delivered" in d[3] for d in console.delivered)


def test_unreachable_tries_the_next_transport(store, world):
    mid = one_message(store, world.dsl)
    slack = Scripted("slack", unreachable=lambda p: True)
    teams = Scripted("teams")
    assert Worker(store, [slack, teams], CFG).run_once(NOW).sent == 1
    assert message(store, mid).transport == "teams" and slack.calls == 1


def test_unreachable_everywhere_is_dead_at_once_and_alerted(store, world):
    mid = one_message(store, world.teacher)
    slack = Scripted("slack", unreachable=lambda p: p.id == world.teacher)
    console = Scripted("console", reaches=lambda p: p.id != world.teacher)
    counts = Worker(store, [slack, console], CFG).run_once(NOW)
    m = message(store, mid)
    assert (m.state, m.last_error) == ("dead", "RecipientUnreachable") and counts.dead == 1
    assert counts.alerts == 3 and {d[2] for d in console.delivered} == {world.dsl, world.deputy, world.tso}
    assert slack.delivered == []  # the alerts avoided the route that could not reach the teacher


def test_a_person_their_platform_cannot_reach_is_not_left_to_the_terminal_inbox(store, world):
    """The DSL blocked the bot: the real console transport (which reaches anyone) must not
    swallow the alert; it is dead-lettered and the rest of the team is told."""
    mid = one_message(store, world.dsl)
    teams = Scripted("teams", unreachable=lambda p: p.id == world.dsl)
    counts = Worker(store, [teams, ConsoleTransport()], CFG).run_once(NOW)
    m = message(store, mid)
    assert (m.state, m.last_error) == ("dead", "RecipientUnreachable") and counts.dead == 1
    with store.session() as s:
        alerts = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "delivery_failed")).all()
    assert world.deputy in {a.recipient_id for a in alerts} and world.tso in {a.recipient_id for a in alerts}
    # Someone with no chat identity at all still reads it in the terminal.
    other = one_message(store, world.teacher, key="m2")
    assert Worker(store, [Scripted("teams", reaches=lambda p: False), ConsoleTransport()], CFG).run_once(NOW).sent >= 1
    assert message(store, other).transport == "console"


class Crash(BaseException):
    """Stands in for the process dying (not an Exception: nothing catches it)."""


def test_a_worker_dying_after_claiming_loses_nothing(store, world):
    report.submit(store, world.teacher, report_values(world), now=NOW)
    assert len(claim_messages(store, NOW, 10, "dead-worker", CFG.lease)) == 3  # ...and then it died
    other = Scripted("slack")
    assert Worker(store, [other], CFG).run_once(NOW).sent == 0  # still leased to the dead worker
    assert Worker(store, [other], CFG).run_once(NOW + CFG.lease).sent == 3
    assert Counter(d[0] for d in other.delivered).most_common(1)[0][1] == 1


def test_a_worker_dying_while_sending_loses_nothing(store, world):
    report.submit(store, world.teacher, report_values(world), now=NOW)
    dying = Scripted("slack", [Crash()])
    with pytest.raises(Crash):
        Worker(store, [dying], CFG).run_once(NOW)
    with store.session() as s:
        assert {m.state for m in s.exec(select(OutboxMessage))} == {"pending"}
    survivor = Scripted("slack")
    assert Worker(store, [survivor], CFG).run_once(NOW + CFG.lease).sent == 3
    assert len(survivor.delivered) == 3


def test_a_message_that_kills_its_worker_every_time_ends_dead_and_alerted(store, world):
    msg_id = one_message(store, world.dsl)
    at = NOW
    for _ in range(CFG.max_attempts):  # every worker that takes it dies before settling it
        with pytest.raises(Crash):
            Worker(store, [Scripted("slack", [Crash()])], CFG).run_once(at)
        at += CFG.lease
    survivor = Scripted("slack")
    Worker(store, [survivor, ConsoleTransport()], CFG).run_once(at)
    m = message(store, msg_id)
    assert m.state == "dead" and m.last_error == "WorkerCrashed"
    assert msg_id not in [d[0] for d in survivor.delivered]
    with store.session() as s:
        alerts = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "delivery_failed")).all()
    assert {a.recipient_id for a in alerts} >= {world.deputy, world.tso}


def test_a_crash_while_firing_nudges_rolls_back_the_whole_batch(store, world, monkeypatch):
    report.submit(store, world.teacher, report_values(world), now=NOW)
    real_flush = nudge_rules.FireContext.flush

    def flush_then_die(self):
        real_flush(self)  # outbox rows and next steps written...
        raise Crash()     # ...and the process dies before the commit

    monkeypatch.setattr(nudge_rules.FireContext, "flush", flush_then_die)
    with pytest.raises(Crash):
        sweep_nudges(store, NOW + timedelta(hours=2))
    with store.session() as s:
        assert s.exec(select(Nudge).where(Nudge.kind == "ack", Nudge.state == "pending")).one().step == 1
        assert not s.exec(select(OutboxMessage).where(OutboxMessage.kind == "ack_reminder")).all()
    monkeypatch.setattr(nudge_rules.FireContext, "flush", real_flush)
    assert sweep_nudges(store, NOW + timedelta(hours=2))[1].messages == 2


def test_two_sequential_sweeps_never_double_send(store, world):
    load_inactive_concerns(store, world, 120, NOW)
    rec = Scripted("slack")
    w = Worker(store, [rec], WorkerConfig(nudge_batch=50, outbox_batch=25, jitter=0))
    first = w.run_once(NOW)
    second = w.run_once(NOW)
    assert first.nudges_fired == 120 and first.sent == 120 and second.nudges_fired == second.sent == 0
    assert len(rec.delivered) == 120 and len({d[0] for d in rec.delivered}) == 120


def test_logs_carry_ids_and_kinds_never_content(store, world, caplog):
    caplog.set_level(logging.DEBUG)
    cid = report.submit(store, world.teacher, report_values(world), now=NOW).concern_id
    triage.ask_referrer(store, world.dsl, cid, "Did Amira say anything about the bruise?", now=NOW)
    w = Worker(store, [Scripted("slack", [TransientDeliveryError("503 for Amira")])], CFG)
    w.run_once(NOW + timedelta(hours=3))
    w.run_once(NOW + timedelta(hours=4))
    assert "sent via slack" in caplog.text and "TransientDeliveryError" in caplog.text
    for secret in ("Amira", "bruise", "Dad grabbed", "Did Amira"):
        assert secret not in caplog.text


def test_registry_picks_up_platform_transports_lazily_console_last(store, monkeypatch, caplog):
    class Fake:
        name = "slack"

    slack_mod = types.ModuleType("bot.slack.delivery")
    slack_mod.build_transport = lambda settings, store: Fake()
    teams_mod = types.ModuleType("bot.teams.delivery")
    teams_mod.build_transport = lambda settings, store: None  # not configured
    monkeypatch.setitem(sys.modules, "bot.slack.delivery", slack_mod)
    monkeypatch.setitem(sys.modules, "bot.teams.delivery", teams_mod)
    names = [t.name for t in transports(load_settings(), store)]
    assert names == ["slack", "console"]

    def broken(settings, store):
        raise RuntimeError("bad token")

    slack_mod.build_transport = broken
    assert [t.name for t in transports(load_settings(), store)] == ["console"]
    assert "could not start (RuntimeError)" in caplog.text


# --- the commands ----------------------------------------------------------------------------

def test_worker_once_command_runs_the_clock_forward(store, world, cli_env, tmp_path):
    report.submit(store, world.teacher, report_values(world), now=NOW)
    r = run_cli(["worker", "--once", "--now", "2026-11-24T12:59:00Z"], cli_env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "nudges fired 0" in r.stdout and "sent 3" in r.stdout
    r = run_cli(["worker", "--once", "--now", "2026-11-24T13:00:00+00:00"], cli_env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "nudges fired 1" in r.stdout and "sent 2" in r.stdout  # the 2-working-hour re-alert
    bad = run_cli(["worker", "--once", "--now", "tuesday"], cli_env, cwd=tmp_path)
    assert bad.returncode == 2 and "ISO 8601" in bad.stderr


def test_nudges_list_command(store, world, cli_env, tmp_path):
    report.submit(store, world.teacher, report_values(world), now=NOW)
    r = run_cli(["nudges", "list", "--json"], cli_env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [x["kind"] for x in rows] == ["ack", "referrer_follow_up", "inactivity"]
    assert rows[0]["due_at"] == "2026-11-24T13:00:00+00:00" and rows[0]["reference"] == "SG-2026-0001"
    text = run_cli(["nudges", "list"], cli_env, cwd=tmp_path).stdout
    assert "2026-11-24 13:00" in text and "SG-2026-0001" in text and "teacher@s.test" in text
    assert "Amira" not in text + r.stdout


def _wait(pred, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.2)
    return False


def _all_sent(store):
    with store.session() as s:
        states = {m.state for m in s.exec(select(OutboxMessage))}
    return states == {"sent"}


def test_worker_runs_until_sigterm_and_stops_cleanly(store, world, cli_env, tmp_path):
    report.submit(store, world.teacher, report_values(world), now=NOW)
    p = subprocess.Popen(["safeguarding-bot", "worker", "--poll", "0.2"], env=cli_env, cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait(lambda: _all_sent(store)), "the worker did not deliver"
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert "stopped" in err and "Amira" not in out + err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("no_worker", [False, True])
def test_serve_runs_a_worker_in_process_unless_told_not_to(store, world, cli_env, tmp_path, no_worker):
    import httpx

    report.submit(store, world.teacher, report_values(world), now=NOW)
    port = _free_port()
    args = ["serve", "--port", str(port)] + (["--no-worker"] if no_worker else [])
    p = subprocess.Popen(["safeguarding-bot", *args], env=cli_env, cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def healthy():
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        assert _wait(healthy), "serve did not start"
        delivered = _wait(lambda: _all_sent(store), timeout=4 if no_worker else 30)
        assert delivered is not no_worker
    finally:
        p.send_signal(signal.SIGINT)
        try:
            p.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            raise


# --- several replicas (PostgreSQL) -------------------------------------------------------------

NEEDS_PG = pytest.mark.skipif(not on_postgres(), reason="FOR UPDATE SKIP LOCKED, which lets workers share rows, "
                              "is a PostgreSQL feature; SQLite has one writer at a time (see the sequential test)")


def _spawn(cli_env, now, record, *extra):
    return subprocess.Popen([sys.executable, "-m", "tests.worker_entry", now.isoformat(), str(record), *extra],
                            env=cli_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@NEEDS_PG
def test_a_concern_being_changed_is_skipped_not_waited_for(store, world):
    """A flow holding the concern's row lock (say, an acknowledgement in progress) does not
    block the sweep: that concern's nudge waits for the next pass."""
    from sqlalchemy import text

    cid = report.submit(store, world.teacher, report_values(world), now=NOW).concern_id
    with store.engine.connect() as other:
        other.begin()
        other.execute(text("SELECT id FROM concern WHERE id = :id FOR UPDATE"), {"id": cid})
        started = time.monotonic()
        claimed, fired = sweep_nudges(store, NOW + timedelta(hours=3))
        assert time.monotonic() - started < 5 and claimed == 1 and fired.fired == 0
        other.rollback()
    with store.session() as s:
        assert s.exec(select(Nudge).where(Nudge.kind == "ack")).one().state == "pending"
    assert sweep_nudges(store, NOW + timedelta(hours=3))[1].fired == 1


@NEEDS_PG
@pytest.mark.slow
def test_four_workers_deliver_1000_due_nudges_exactly_once(store, world, cli_env, tmp_path):
    load_inactive_concerns(store, world, 1000, NOW)
    record = tmp_path / "delivered.log"
    procs = [_spawn(cli_env, NOW, record) for _ in range(4)]
    results = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in results]
    counts = [json.loads(out) for out, _ in results]
    delivered = read_deliveries(record)
    per_message = Counter(mid for mid, _, _ in delivered)
    assert len(per_message) == 1000 and set(per_message.values()) == {1}
    assert sum(c["nudges_fired"] for c in counts) == 1000 and sum(c["sent"] for c in counts) == 1000
    assert len({pid for _, _, pid in delivered}) > 1, "the work was not shared"
    with store.session() as s:
        assert s.exec(select(Nudge).where(Nudge.kind == "inactivity", Nudge.state == "done")).all().__len__() == 1000
        msgs = s.exec(select(OutboxMessage)).all()
    assert len(msgs) == 1000 and {m.state for m in msgs} == {"sent"}


@NEEDS_PG
@pytest.mark.slow
def test_a_worker_killed_mid_batch_loses_nothing(store, world, cli_env, tmp_path):
    load_inactive_concerns(store, world, 1000, NOW)
    record = tmp_path / "delivered.log"
    killed = _spawn(cli_env, NOW, record, "--kill-after", "300")
    killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL
    before = read_deliveries(record)
    assert len(before) == 299
    with store.session() as s:
        leased = s.exec(select(OutboxMessage).where(OutboxMessage.state == "pending",
                                                    OutboxMessage.claimed_by.is_not(None))).all()
    assert leased, "the dead worker should have held claims"
    # A second worker straight away does everything not held by the dead one...
    p = _spawn(cli_env, NOW, record)
    p.communicate(timeout=300)
    assert p.returncode == 0
    # ...and the dead worker's claims come back when its lease runs out.
    p = _spawn(cli_env, NOW + WorkerConfig().lease, record)
    p.communicate(timeout=300)
    assert p.returncode == 0
    per_message = Counter(mid for mid, _, _ in read_deliveries(record))
    assert len(per_message) == 1000 and set(per_message.values()) == {1}
    with store.session() as s:
        assert {m.state for m in s.exec(select(OutboxMessage))} == {"sent"}
