"""The worker: fires due nudges and delivers the outbox. Nothing is forgotten, nothing is sent twice.

One pass (`Worker.run_once(now)`, also `safeguarding-bot worker --once --now ...`):

1. **Nudges.** Claim due rows (``state='pending' AND due_at <= now``, by due time, a batch at
   a time, ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so replicas share the work), lock their
   concerns (skipping any a flow is changing right now: they come back next pass), and let
   flows.nudge_rules fire them: stale ones are cancelled, live ones become outbox messages
   and schedule their next step — all in the claim's one transaction.
2. **Outbox.** Claim pending messages whose ``next_attempt_at`` has come (SKIP LOCKED again).
   A claim is a lease: it moves ``next_attempt_at`` forward by ``lease`` and records
   ``claimed_by``, so a worker that dies mid-batch gives its claims back when the lease runs
   out. Each message goes through the first transport that reaches the recipient
   (`bot.delivery.transports`); it is marked sent only after ``deliver`` returned. A
   TransientDeliveryError (or any unexpected error) is retried with exponential backoff
   (tenacity's wait strategies; ``retry_after`` honoured); RecipientUnreachable moves on to
   the next transport. When attempts run out, or no transport reaches the person, the
   message is marked dead, the audit trail records it, and the school's DSL team and the
   trust safeguarding officer are alerted through a different transport.

Crash safety: the nudge → outbox step is one transaction; delivery state changes only after
the platform answered. The one window left is a crash after the platform accepted a message
and before "sent" is committed: that message is delivered again after the lease (at least
once, never lost).

Logs carry ids, kinds, transport names and error classes only — never notice text.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Sequence

from sqlalchemy import ARRAY, Integer, any_, case, literal, select, update
from tenacity import RetryCallState, wait_exponential, wait_random

from bot.delivery import ConsoleTransport, RecipientUnreachable, TransientDeliveryError, Transport
from flows import nudge_rules, notices
from flows.access import told as may_be_told_all
from storage import chain
from storage.db import Store
from storage.models import (DSL_TEAM, Concern, Nudge, OutboxMessage, Person, Role, School, utcnow)
from storage.people import people_with_roles, trust_people_with_role

log = logging.getLogger(__name__)

DEAD_ALERT = "delivery_failed"


@dataclass
class WorkerConfig:
    nudge_batch: int = 1000
    outbox_batch: int = 50
    lease: timedelta = timedelta(minutes=5)
    max_attempts: int = 6               # then dead + alert through another route
    backoff_base: float = 30.0          # seconds: 30, 60, 120, 240, ... (tenacity wait_exponential)
    backoff_max: float = 3600.0
    jitter: float = 5.0                 # + up to this many seconds, so replicas do not retry in step
    poll_interval: float = 5.0          # seconds between passes in `worker` (continuous)

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        wait = wait_exponential(multiplier=self.backoff_base, min=self.backoff_base, max=self.backoff_max)
        if self.jitter:
            wait = wait + wait_random(0, self.jitter)
        state = RetryCallState(None, None, (), {})
        state.attempt_number = attempt
        return max(float(wait(state)), float(retry_after or 0))


@dataclass
class Counts:
    nudges_fired: int = 0
    nudges_cancelled: int = 0
    messages_queued: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0
    alerts: int = 0
    by_kind: dict = field(default_factory=dict)

    def line(self) -> str:
        return (f"nudges fired {self.nudges_fired}, cancelled {self.nudges_cancelled}; "
                f"messages queued {self.messages_queued}, sent {self.sent}, retrying {self.retried}, "
                f"dead {self.dead} (alerts queued {self.alerts})")

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("nudges_fired", "nudges_cancelled", "messages_queued", "sent",
                                              "retried", "dead", "alerts")}


# --- nudges --------------------------------------------------------------------------------

def claim_due_nudges(s, now: datetime, limit: int) -> list:
    """The claim query: an index range scan on ix_nudge_state_due, rows locked (SKIP LOCKED)."""
    nt = Nudge.__table__
    q = (select(*[nt.c[c] for c in nudge_rules.NUDGE_COLUMNS])
         .where(nt.c.state == "pending", nt.c.due_at <= now)
         .order_by(nt.c.due_at).limit(limit)
         .with_for_update(skip_locked=True))
    return list(s.execute(q))


def lock_concerns(s, ids: set[int]) -> dict:
    if not ids:
        return {}
    ct = Concern.__table__
    if s.get_bind().dialect.name == "postgresql":  # one array parameter rather than one per id
        wanted = ct.c.id == any_(literal(sorted(ids), ARRAY(Integer)))
    else:
        wanted = ct.c.id.in_(sorted(ids))
    q = (select(*[ct.c[c] for c in nudge_rules.CONCERN_COLUMNS]).where(wanted)
         .order_by(ct.c.id).with_for_update(skip_locked=True))
    return {r.id: r for r in s.execute(q)}


def sweep_nudges(store: Store, now: datetime, batch: int = 1000) -> tuple[int, nudge_rules.Fired]:
    """One batch: (due rows claimed, what firing did), in one transaction."""
    with store.session() as s:
        rows = claim_due_nudges(s, now, batch)
        concerns = lock_concerns(s, {r.concern_id for r in rows if r.concern_id})
        # A concern locked by a flow right now (skipped above) keeps its nudges for the next pass.
        work = [(r, concerns.get(r.concern_id)) for r in rows if r.concern_id is None or r.concern_id in concerns]
        fired = nudge_rules.fire_batch(s, work, now) if work else nudge_rules.Fired()
    for r, _ in work:
        log.debug("nudge %s kind=%s processed", r.id, r.kind)
    return len(rows), fired


# --- outbox --------------------------------------------------------------------------------

def claim_messages(store: Store, now: datetime, limit: int, worker_id: str, lease: timedelta) -> list[int]:
    ot = OutboxMessage.__table__
    with store.session() as s:
        ids = list(s.execute(select(ot.c.id).where(ot.c.state == "pending", ot.c.next_attempt_at <= now)
                             .order_by(ot.c.next_attempt_at, ot.c.id).limit(limit)
                             .with_for_update(skip_locked=True)).scalars())
        if ids:
            # A claim still standing is one whose worker died mid-delivery (settling or
            # releasing clears it): count that as an attempt, so a message that kills its
            # worker every time still ends dead and alerted instead of looping forever.
            crashed = case((ot.c.claimed_by.is_not(None), 1), else_=0)
            s.execute(update(ot).where(ot.c.id.in_(ids))
                      .values(claimed_by=worker_id, claimed_at=now, next_attempt_at=now + lease,
                              attempts=ot.c.attempts + crashed))
    return ids


def release_claims(store: Store, ids: Sequence[int], worker_id: str, now: datetime) -> None:
    if not ids:
        return
    ot = OutboxMessage.__table__
    with store.session() as s:
        s.execute(update(ot).where(ot.c.id.in_(list(ids)), ot.c.state == "pending", ot.c.claimed_by == worker_id)
                  .values(claimed_by=None, claimed_at=None, next_attempt_at=now))


class Worker:
    def __init__(self, store: Store, transports: Sequence[Transport] | None = None,
                 config: WorkerConfig | None = None, worker_id: str | None = None, settings=None):
        self.store = store
        if transports is None:
            from bot.delivery import transports as registry
            from bot.settings import load_settings

            transports = registry(settings or load_settings(), store)
        self.transports = list(transports)
        self.config = config or WorkerConfig()
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"

    # one pass ---------------------------------------------------------------------------
    def run_once(self, now: datetime | None = None, stop: threading.Event | None = None) -> Counts:
        now = now or utcnow()
        counts = Counts()
        self.fire_nudges(now, counts, stop)
        self.deliver(now, counts, stop)
        return counts

    def fire_nudges(self, now: datetime, counts: Counts, stop: threading.Event | None = None) -> None:
        while not (stop and stop.is_set()):
            claimed, fired = sweep_nudges(self.store, now, self.config.nudge_batch)
            counts.nudges_fired += fired.fired
            counts.nudges_cancelled += fired.cancelled
            counts.messages_queued += fired.messages
            for k, v in fired.by_kind.items():
                counts.by_kind[k] = counts.by_kind.get(k, 0) + v
            # A full batch means more may be due; a short one means this instant is done (a
            # nudge that some rule scheduled for "now" waits for the next pass, so no loop).
            if claimed < self.config.nudge_batch or not (fired.fired or fired.cancelled):
                break

    def deliver(self, now: datetime, counts: Counts, stop: threading.Event | None = None) -> None:
        cfg = self.config
        while not (stop and stop.is_set()):
            ids = claim_messages(self.store, now, cfg.outbox_batch, self.worker_id, cfg.lease)
            if not ids:
                return
            # Stop well inside the lease, so that no other worker can take a message over
            # while this one is still sending it.
            give_back_at = time.monotonic() + cfg.lease.total_seconds() / 2
            for i, msg_id in enumerate(ids):
                if (stop and stop.is_set()) or time.monotonic() > give_back_at:
                    release_claims(self.store, ids[i:], self.worker_id, now)
                    return
                self.deliver_one(msg_id, now, counts)

    def deliver_one(self, msg_id: int, now: datetime, counts: Counts) -> str:
        with self.store.session() as s:
            msg = s.get(OutboxMessage, msg_id)
            if msg is None or msg.state != "pending" or msg.claimed_by != self.worker_id:
                return "skipped"  # sent, or taken over by another worker after our lease ran out
            person = s.get(Person, msg.recipient_id)
            crashed_out = msg.attempts >= self.config.max_attempts
            try:
                notice = notices.compose(s, msg)
            except Exception as exc:  # a bug or missing row: retried, then dead-lettered
                # No traceback: exception messages can quote the payload they choked on.
                log.error("outbox %s kind=%s: compose failed (%s)", msg.id, msg.kind, type(exc).__name__)
                notice = exc
        if crashed_out:
            return self._dead(msg, person, now, counts, "WorkerCrashed", [])
        if isinstance(notice, Exception):
            return self._failed(msg, person, now, counts, type(notice).__name__, None, [])
        excluded = set(msg.payload.get("exclude_transports") or ())
        unreachable: list[str] = []
        for t in self.transports:
            if t.name in excluded:
                continue
            if t.name == ConsoleTransport.name and unreachable:
                # Someone whose chat platform says it cannot reach them (blocked the bot,
                # removed the app) would only find this in a terminal inbox they may never
                # open: dead-letter it instead, so the DSL team is told another way.
                continue
            try:
                if not t.reaches(self.store, person):
                    continue
                ref = t.deliver(self.store, msg, notice, person)
            except RecipientUnreachable:
                log.info("outbox %s kind=%s: %s cannot reach person %s", msg.id, msg.kind, t.name, person.id)
                unreachable.append(t.name)
                continue
            except TransientDeliveryError as exc:
                return self._failed(msg, person, now, counts, type(exc).__name__, exc.retry_after,
                                    unreachable + [t.name])
            except Exception as exc:
                log.warning("outbox %s kind=%s: %s raised %s", msg.id, msg.kind, t.name, type(exc).__name__)
                return self._failed(msg, person, now, counts, type(exc).__name__, None, unreachable + [t.name])
            self._sent(msg, t.name, ref, now)
            counts.sent += 1
            log.info("outbox %s kind=%s sent via %s", msg.id, msg.kind, t.name)
            return "sent"
        return self._dead(msg, person, now, counts, "RecipientUnreachable", unreachable)

    def _sent(self, msg: OutboxMessage, transport: str, ref, now: datetime) -> None:
        ot = OutboxMessage.__table__
        with self.store.session() as s:
            done = s.execute(update(ot).where(ot.c.id == msg.id, ot.c.state == "pending").values(
                state="sent", sent_at=now, transport=transport, platform_ref=dict(ref or {}),
                attempts=ot.c.attempts + 1, last_error=None, claimed_by=None)).rowcount
        if not done:
            log.warning("outbox %s kind=%s was already settled by another worker", msg.id, msg.kind)

    def _failed(self, msg: OutboxMessage, person: Person, now: datetime, counts: Counts, error: str,
                retry_after: float | None, tried: list[str]) -> str:
        attempt = msg.attempts + 1
        if attempt >= self.config.max_attempts:
            return self._dead(msg, person, now, counts, error, tried)
        delay = self.config.backoff(attempt, retry_after)
        ot = OutboxMessage.__table__
        with self.store.session() as s:
            s.execute(update(ot).where(ot.c.id == msg.id, ot.c.state == "pending").values(
                attempts=attempt, last_error=error, claimed_by=None,
                next_attempt_at=now + timedelta(seconds=delay)))
        counts.retried += 1
        log.warning("outbox %s kind=%s attempt %d failed (%s); next try in %.0fs", msg.id, msg.kind, attempt, error,
                    delay)
        return "retry"

    def _dead(self, msg: OutboxMessage, person: Person, now: datetime, counts: Counts, error: str,
              tried: list[str]) -> str:
        ot = OutboxMessage.__table__
        with self.store.session() as s:
            changed = s.execute(update(ot).where(ot.c.id == msg.id, ot.c.state == "pending").values(
                state="dead", attempts=msg.attempts + 1, last_error=error, claimed_by=None)).rowcount
            if not changed:
                return "skipped"
            concern = s.get(Concern, msg.payload["concern_id"]) if msg.payload.get("concern_id") else None
            school_id = concern.school_id if concern else person.school_id
            chain.audit(s, "outbox.dead", school_id=school_id, concern_id=concern.id if concern else None, at=now,
                        details={"message_id": msg.id, "kind": msg.kind, "recipient_id": msg.recipient_id,
                                 "error": error, "attempts": msg.attempts + 1, "transports": tried})
            alerted = 0
            if msg.kind != DEAD_ALERT:  # an undeliverable alert is not alerted again: no loops
                alerted = _alert_dead(s, msg, person, concern, school_id, error, tried, now)
        counts.dead += 1
        counts.alerts += alerted
        log.error("outbox %s kind=%s dead after %d attempt(s) (%s); %d alert(s) queued", msg.id, msg.kind,
                  msg.attempts + 1, error, alerted)
        return "dead"


def _alert_dead(s, msg: OutboxMessage, person: Person, concern, school_id: int | None, error: str,
                tried: list[str], now: datetime) -> int:
    """Tell the DSL team and the trust safeguarding officer, avoiding the route that failed."""
    recipients: list[int] = []
    if school_id:
        recipients += [p.id for p in people_with_roles(s, school_id, DSL_TEAM)]
    trust_id = s.get(School, school_id).trust_id if school_id else person.trust_id
    recipients += [p.id for p in trust_people_with_role(s, trust_id, Role.trust_safeguarding_officer)]
    recipients = [r for r in dict.fromkeys(recipients) if r != msg.recipient_id]
    if concern is not None:  # never the adult it is about (flows/access.py); the failure escalates it
        recipients = may_be_told_all(s, concern, recipients, escalated=True)
    ref = concern.reference if concern else None
    about = f" about {ref}" if ref else ""
    payload = {"concern_id": concern.id if concern else None, "reference": ref, "failed_message_id": msg.id,
               "exclude_transports": sorted(set(tried)),
               "title": "A safeguarding message could not be delivered",
               "text": f"A safeguarding message{about} could not be delivered",
               "lines": [f"A '{msg.kind}' message{about} to {person.email} could not be delivered "
                         f"after {msg.attempts + 1} attempt(s) ({error}; tried: {', '.join(tried) or 'no transport'}).",
                         "Contact them another way now, and check that their Slack or Teams account is linked."]}
    n = 0
    for rid in recipients:
        if notices.enqueue(s, kind=DEAD_ALERT, recipient_id=rid, dedupe_key=f"dead:{msg.id}:{rid}",
                           payload=payload, urgent=True, at=now):
            n += 1
    if not n:
        log.error("outbox %s: nobody to alert about the failed delivery", msg.id)
    return n


# --- running ---------------------------------------------------------------------------------

def run_forever(worker: Worker, stop: threading.Event) -> None:
    """Passes every poll_interval until ``stop`` is set. A failing pass (database down) is
    logged by error class and retried; the process keeps going."""
    log.info("worker %s started", worker.worker_id)
    failures = 0
    while not stop.is_set():
        try:
            counts = worker.run_once(utcnow(), stop)
            failures = 0
            if counts.nudges_fired or counts.sent or counts.dead:
                log.info("worker pass: %s", counts.line())
        except Exception as exc:
            failures += 1
            log.error("worker pass failed (%s); retrying", type(exc).__name__)
        stop.wait(worker.config.poll_interval if not failures else min(60.0, worker.config.poll_interval * 2 ** failures))
    log.info("worker %s stopped", worker.worker_id)


class BackgroundWorker:
    """A worker thread inside `serve` (unless --no-worker)."""

    def __init__(self, worker: Worker):
        self.worker, self.stop_event = worker, threading.Event()
        self.thread = threading.Thread(target=run_forever, args=(worker, self.stop_event), name="outbox-worker",
                                       daemon=True)

    def start(self) -> "BackgroundWorker":
        self.thread.start()
        return self

    def stop(self, timeout: float = 30) -> None:
        self.stop_event.set()
        self.thread.join(timeout)


def start_background_worker(store: Store, settings) -> BackgroundWorker:
    return BackgroundWorker(Worker(store, settings=settings)).start()


# --- the commands (bot/cli.py) -------------------------------------------------------------

def parse_now(value: str) -> datetime:
    """An ISO 8601 instant with its UTC offset ('Z' or +00:00); naive times are refused because
    they are ambiguous across BST and GMT."""
    at = datetime.fromisoformat(value.strip())
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("no UTC offset")
    return at


def run_command(store: Store, settings, *, once: bool, now: str | None, poll: float, fail) -> None:
    import signal

    import typer

    from bot.context import configure_logging

    configure_logging(settings.log_level)
    if now is not None and not once:
        fail("--now needs --once: a running worker follows the clock")
    at = None
    if now is not None:
        try:
            at = parse_now(now)
        except ValueError:
            fail(f"--now {now!r} is not an ISO 8601 instant with a UTC offset, e.g. 2026-11-24T13:00:00Z")
    worker = Worker(store, settings=settings, config=WorkerConfig(poll_interval=poll))
    if once:
        counts = worker.run_once(at)
        typer.echo(counts.line())
        return
    stop = threading.Event()

    def _stop(signum, _frame):
        log.info("worker %s: signal %s, stopping after the current message", worker.worker_id, signum)
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    run_forever(worker, stop)


def list_command(store: Store, *, as_json: bool, limit: int) -> None:
    import json

    import typer

    with store.session() as s:
        rows = nudge_rules.pending(s, limit=limit)
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    if not rows:
        typer.echo("no pending nudges")
        return
    for r in rows:
        due = datetime.fromisoformat(r["due_at"]).strftime("%Y-%m-%d %H:%M UTC")
        what = f"{r['kind']}" + (f" ({r['what']})" if r["what"] else "") + (" URGENT" if r["urgent"] else "")
        typer.echo(f"{due}  {r['reference'] or '-':<14} {what:<40} {', '.join(r['recipients']) or '-'}")
