"""The record of one concern as its handler sees it: every detail, the chronology, and the
child's wider history limited to what the viewer may handle. Opening it is recorded."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlmodel import Session, select

from storage import chain
from storage.db import Store
from storage.models import Child, ChronologyEntry, Concern, EntryKind, Person, School, utcnow

from . import taxonomy
from .access import require_handler, subject_unresolved
from .history import History, wider_history


@dataclass
class EntryView:
    seq: int
    kind: str
    at: datetime
    actor: str
    body: dict
    facts: dict


@dataclass
class RecordView:
    concern_id: int
    reference: str
    status: str
    urgent: bool
    school: str
    child_name: str
    child_matched: bool
    child_year: str | None
    referrer: str
    handler: str | None
    categories: list[str]
    details: dict[str, Any]
    entries: list[EntryView] = field(default_factory=list)
    history: History = field(default_factory=History)
    review_date: date | None = None
    # The adult was named by typing and nobody has said who it is yet: the viewer (its routed
    # recipient) is offered "Identify the adult" (flows/subject.py).
    subject_unresolved: bool = False


def _person_name(s: Session, person_id: int | None) -> str | None:
    if not person_id:
        return None
    p = s.get(Person, person_id)
    return (p.name or p.email) if p else None


def open_record(store: Store, actor_id: int, concern_id: int, *, via: str = "chat",
                now: datetime | None = None) -> RecordView:
    """The whole record with the child's wider history. The opening itself is recorded."""
    now = now or utcnow()
    with store.session() as s:
        person, concern = require_handler(s, actor_id, concern_id)
        chain.append_entry(s, store.cipher, concern_id=concern.id, child_id=concern.child_id, kind=EntryKind.viewed,
                           actor_id=person.id, at=now, facts={"via": via})
        chain.audit(s, "record.opened", actor_id=person.id, school_id=concern.school_id, concern_id=concern.id,
                    child_id=concern.child_id, at=now, details={"via": via})
        return _view(s, store, concern, person.id)


def _view(s: Session, store: Store, concern: Concern, viewer_id: int) -> RecordView:
    child = s.get(Child, concern.child_id) if concern.child_id else None
    entries = [EntryView(seq=e.seq, kind=e.kind, at=e.at, actor=_person_name(s, e.actor_id) or "system",
                         body=chain.read_body(store.cipher, e), facts=e.facts)
               for e in s.exec(select(ChronologyEntry).where(ChronologyEntry.concern_id == concern.id)
                               .order_by(ChronologyEntry.seq))]
    details = {
        "occurred_at": concern.occurred_at, "location": concern.location, "account": concern.account,
        "child_words": concern.child_words, "child_views": concern.child_views,
        "worry_history": concern.worry_history, "others_involved": concern.others_involved,
        "action_taken": concern.action_taken, "immediate_danger": concern.immediate_danger,
        "about_adult": concern.subject_role, "subject_name": concern.subject_name,
        "source_link": concern.source_link, "decision": concern.decision_kind,
    }
    return RecordView(
        concern_id=concern.id, reference=concern.reference, status=concern.status, urgent=concern.urgent,
        school=s.get(School, concern.school_id).name,
        child_name=child.name if child else f"{concern.child_name_given} (not matched to the roll)",
        child_matched=child is not None, child_year=child.year_group if child else None,
        referrer=_person_name(s, concern.referrer_id) or "?", handler=_person_name(s, concern.handler_id),
        categories=[taxonomy.label(c, concern.taxonomy_version) for c in concern.categories],
        details=details, entries=entries, history=wider_history(s, concern, viewer_id), review_date=concern.review_date,
        subject_unresolved=subject_unresolved(concern))
