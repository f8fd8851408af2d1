"""Test transports and bulk loaders for the worker tests (and the multi-process entry point)."""

from __future__ import annotations

import os
import signal
from datetime import datetime, timedelta

from sqlalchemy import insert

from storage.models import Concern, Nudge, OutboxMessage


class Scripted:
    """A transport whose next outcomes are scripted: exceptions are raised in turn, then it
    accepts. It checks that the message is still pending in the database when it is handed
    over (i.e. nothing is marked sent before the platform accepted it)."""

    def __init__(self, name: str, script=(), reaches=lambda person: True, unreachable=lambda person: False):
        self.name = name
        self.script = list(script)
        self._reaches, self._unreachable = reaches, unreachable
        self.delivered: list[tuple] = []
        self.calls = 0

    def reaches(self, store, person) -> bool:
        return self._reaches(person)

    def deliver(self, store, msg, notice, person) -> dict:
        from bot.delivery import RecipientUnreachable

        self.calls += 1
        with store.session() as s:
            assert s.get(OutboxMessage, msg.id).state == "pending"
        if self._unreachable(person):
            raise RecipientUnreachable("user not found")
        if self.script:
            outcome = self.script.pop(0)
            if isinstance(outcome, BaseException):
                raise outcome
        self.delivered.append((msg.id, msg.kind, person.id, notice.text))
        return {"channel": f"D{person.id}", "ts": str(len(self.delivered))}


class Recording:
    """Appends one line per delivery to a file shared by several processes (O_APPEND writes of
    a short line are atomic). ``kill_after``: SIGKILL this process while it is handing over
    that many-th message, before the "platform" has accepted it."""

    name = "recording"

    def __init__(self, path: str, kill_after: int | None = None):
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.kill_after = kill_after
        self.count = 0

    def reaches(self, store, person) -> bool:
        return True

    def deliver(self, store, msg, notice, person) -> dict:
        self.count += 1
        if self.kill_after is not None and self.count >= self.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        os.write(self.fd, f"{msg.id} {msg.dedupe_key} {os.getpid()}\n".encode())
        return {"pid": os.getpid()}


def read_deliveries(path) -> list[tuple[int, str, int]]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [(int(a), b, int(c)) for a, b, c in (line.split() for line in f if line.strip())]


def load_inactive_concerns(store, world, n: int, now: datetime) -> list[int]:
    """``n`` acknowledged concerns, silent for a month, each with an inactivity nudge due ``now``."""
    month_ago = now - timedelta(days=30)
    rows = [{"school_id": world.school, "reference": f"BULK-{i:05d}", "referrer_id": world.teacher,
             "status": "acknowledged", "urgent": False, "immediate_danger": False, "about_adult": False,
             "needs_child_match": False, "taxonomy_version": "test", "categories": [], "routed_to": [world.dsl],
             "handler_id": world.dsl, "acknowledged_at": month_ago, "created_at": month_ago,
             "last_activity_at": month_ago} for i in range(n)]
    with store.session() as s:
        s.execute(insert(Concern.__table__), rows)
        ids = [cid for (cid,) in s.execute(Concern.__table__.select().with_only_columns(Concern.__table__.c.id)
                                           .where(Concern.__table__.c.reference.like("BULK-%"))
                                           .order_by(Concern.__table__.c.id))]
        s.execute(insert(Nudge.__table__), [
            {"kind": "inactivity", "concern_id": cid, "recipient_id": None, "due_at": now - timedelta(minutes=i % 60),
             "urgent": False, "state": "pending", "step": 0, "payload": {}, "dedupe_key": f"bulk-inactivity:{cid}",
             "created_at": month_ago, "fired_at": None} for i, cid in enumerate(ids)])
    return ids
