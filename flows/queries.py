"""Lists people see: their own reports, the DSL's queue, their notices."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import select

from storage import chain
from storage.db import Store
from storage.models import DSL_TEAM, ChronologyEntry, Concern, ConcernStatus, Nudge, OutboxMessage, Person, utcnow
from storage.people import person_by_aad, person_by_email, person_by_slack, roles_of

from . import notices
from .access import may_handle

STATUS_WORDS = {"raised": "Sent — waiting for the safeguarding lead", "acknowledged": "Being handled",
                "decided": "Decision made", "closed": "Closed"}


@dataclass
class MyReport:
    concern_id: int
    reference: str
    created_at: datetime
    status: str
    status_words: str
    shared_outcome: str | None  # only what the DSL chose to share


def who(store: Store, *, email: str | None = None, slack_user_id: str | None = None,
        slack_team_id: str | None = None, aad_object_id: str | None = None) -> Person | None:
    with store.session() as s:
        if slack_user_id:
            p = person_by_slack(s, slack_user_id, slack_team_id)
            if p:
                return p
        if aad_object_id:
            p = person_by_aad(s, aad_object_id)
            if p:
                return p
        return person_by_email(s, email) if email else None


def roles(store: Store, person_id: int) -> set[str]:
    with store.session() as s:
        p = s.get(Person, person_id)
        return roles_of(s, person_id, p.school_id if p else None)


def is_dsl_team(store: Store, person_id: int) -> bool:
    return bool(roles(store, person_id) & {str(r) for r in DSL_TEAM})


def my_reports(store: Store, person_id: int, limit: int = 20) -> list[MyReport]:
    with store.session() as s:
        out = []
        for c in s.exec(select(Concern).where(Concern.referrer_id == person_id)
                        .order_by(Concern.created_at.desc()).limit(limit)):
            shared = None
            for e in s.exec(select(ChronologyEntry).where(ChronologyEntry.concern_id == c.id,
                                                          ChronologyEntry.kind == "outcome")
                            .order_by(ChronologyEntry.seq.desc())):
                if e.facts.get("shared_with_referrer"):
                    shared = chain.read_body(store.cipher, e).get("shared_text")
                    break
            out.append(MyReport(c.id, c.reference, c.created_at, c.status, STATUS_WORDS[c.status], shared))
        return out


@dataclass
class QueueItem:
    concern_id: int
    reference: str
    created_at: datetime
    urgent: bool
    status: str
    handler_id: int | None
    overdue: bool
    handler_name: str | None = None  # so the rest of the team sees who owns it


@dataclass
class Queue:
    awaiting_ack: list[QueueItem]
    open: list[QueueItem]
    overdue: list[QueueItem]


def dsl_queue(store: Store, person_id: int, *, now: datetime | None = None) -> Queue:
    """Concerns this person may handle that are not closed. Overdue: a reminder is past due."""
    now = now or utcnow()
    with store.session() as s:
        p = s.get(Person, person_id)
        rows = [c for c in s.exec(select(Concern).where(Concern.school_id == p.school_id,
                                                        Concern.status != ConcernStatus.closed)
                                  .order_by(Concern.created_at))
                if may_handle(s, person_id, c)]
        ids = [c.id for c in rows]
        late = set()
        if ids:
            late = set(s.exec(select(Nudge.concern_id).where(Nudge.concern_id.in_(ids), Nudge.state == "pending",
                                                             Nudge.due_at <= now)))
            late |= {c.id for c in rows if c.review_date and c.review_date < now.date()}
        names = {}
        for c in rows:
            if c.handler_id and c.handler_id not in names:
                h = s.get(Person, c.handler_id)
                names[c.handler_id] = (h.name or h.email) if h else None
        items = [QueueItem(c.id, c.reference, c.created_at, c.urgent, c.status, c.handler_id, c.id in late,
                           names.get(c.handler_id)) for c in rows]
        return Queue(awaiting_ack=[i for i in items if i.handler_id is None],
                     open=[i for i in items if i.handler_id is not None], overdue=[i for i in items if i.overdue])


def reference_to_id(store: Store, person_id: int, reference: str) -> int | None:
    with store.session() as s:
        p = s.get(Person, person_id)
        c = s.exec(select(Concern).where(Concern.school_id == p.school_id,
                                         Concern.reference == reference.strip().upper())).first()
        return c.id if c else None


def inbox(store: Store, person_id: int, *, unread_only: bool = True) -> list[notices.Notice]:
    """Notices for a person reading in the terminal. Reading them does not touch the outbox:
    the same message still goes out through Slack or Teams where the person has an identity."""
    from storage.models import Meta

    key = f"inbox_seen:{person_id}"
    with store.session() as s:
        seen_row = s.get(Meta, key)
        seen = int(seen_row.value) if (seen_row and unread_only) else 0
        msgs = list(s.exec(select(OutboxMessage).where(OutboxMessage.recipient_id == person_id,
                                                       OutboxMessage.id > seen).order_by(OutboxMessage.id)))
        if msgs:
            row = seen_row or Meta(key=key, value="0")
            row.value = str(max(int(row.value), msgs[-1].id))
            s.add(row)
        return [notices.compose(s, m) for m in msgs]
