"""Identify the adult a concern is about, when the referrer typed a name instead of picking
someone from the staff list.

Such a concern is *unresolved* (flows/access.py): it went to the headteacher (or the chair of
governors, or the trust safeguarding officer: flows/routing.py ``route_unresolved``) and nobody
in the DSL team may see it, since the typed name may mean one of them. Its recipient decides:

- "it is this person on the staff list": the concern is about them from now on. The normal
  rules apply with them excluded everywhere: they never open it or hear of it, their pending
  messages and reminders about it are cancelled, and when they are the headteacher it goes to
  the chair of governors. The DSL team may then handle it.
- "they are not on the staff list" (a visitor, a contractor), with the reason: the DSL team may
  then handle it.

Either way the decision, its reason and the name as typed go into the chronology, and an
audit event (``concern.subject_identified``) records who decided, what and who was added.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, select

from storage import chain
from storage.db import Store
from storage.models import Concern, EntryKind, Nudge, OutboxMessage, Person, Role, School, utcnow
from storage.people import roles_of

from . import notices, schedule
from .access import IDENTIFIED, NOT_LISTED, may_handle, require_handler, subject_unresolved
from .errors import Conflict, FormErrors
from .forms import Choice, Field, Form, Kind, clean
from .report import STAFF_PREFIX
from .routing import route

ON_LIST, OFF_LIST = "on_list", "not_listed"
MIN_REASON = 10


def identify_form() -> Form:
    return Form(
        id="identify_subject", title="Identify the adult", submit_label="Record",
        intro="The referrer typed the name of the adult this concern is about instead of choosing them from "
              "the staff list. Say who it is: until you do, nobody in the safeguarding team can see it, since "
              "the name may mean one of them. Your decision and your reason are recorded.",
        fields=(
            Field(name="outcome", label="Is the adult on the school's staff list?", kind=Kind.choice, required=True,
                  choices=(Choice(value=ON_LIST, label="Yes — choose them from the staff list"),
                           Choice(value=OFF_LIST, label="No — they are not on it (a visitor, a contractor)"))),
            Field(name="subject", label="Which member of staff?", kind=Kind.person, required=True, max_length=200,
                  show_if=("outcome", (ON_LIST,)),
                  help="Search the staff list by name. They will never see this concern or hear of it."),
            Field(name="reason", label="Why (kept in the record)", kind=Kind.longtext, required=True,
                  min_length=MIN_REASON, max_length=2000,
                  help="e.g. “Mrs N. Surname” is the Year 4 teacher: confirmed with the referrer."),
        ))


def validate_form(store: Store, actor_id: int, concern_id: int, raw: dict) -> tuple[int | None, str]:
    """Check the form's answers without saving: (the person chosen or None, the reason), or
    FormErrors per field. The person must be on the concern's school's staff list."""
    values = clean(identify_form(), raw)
    person_id = None
    if values["outcome"] == ON_LIST:
        picked = values["subject"] or ""
        try:
            person_id = int(picked[len(STAFF_PREFIX):]) if picked.startswith(STAFF_PREFIX) else None
        except ValueError:
            person_id = None
        if person_id is None:
            raise FormErrors({"subject": "Choose the person from the staff list (search by name), or answer "
                                         "that they are not on it."})
        with store.session() as s:
            _, concern = require_handler(s, actor_id, concern_id)
            _staff_member(s, s.get(School, concern.school_id), person_id)
    return person_id, values["reason"]


def identify_from_form(store: Store, actor_id: int, concern_id: int, raw: dict, *,
                       now: datetime | None = None) -> dict:
    """The form's answers (any transport) -> ``identify_subject``; FormErrors per field."""
    person_id, reason = validate_form(store, actor_id, concern_id, raw)
    return identify_subject(store, actor_id, concern_id, person_id, reason, now=now)


def pending(store: Store, actor_id: int, concern_id: int) -> dict:
    """What the "Identify the adult" form shows: the reference and the name as the referrer
    typed it. Refused unless the actor may decide now (its routed recipient, still unresolved)."""
    with store.session() as s:
        _, concern = require_handler(s, actor_id, concern_id)
        if not subject_unresolved(concern):
            raise Conflict(f"Who {concern.reference} is about has already been recorded.")
        return {"concern_id": concern.id, "reference": concern.reference, "typed": concern.subject_name or ""}


def may_identify(store: Store, actor_id: int, concern_id: int) -> bool:
    """Whether this person is offered "Identify the adult" for this concern now."""
    with store.session() as s:
        concern = s.get(Concern, concern_id)
        return concern is not None and subject_unresolved(concern) and may_handle(s, actor_id, concern)


def identify_subject(store: Store, actor_id: int, concern_id: int, person_id: int | None, reason: str, *,
                     now: datetime | None = None) -> dict:
    """Record who an unresolved concern is about (``person_id``, someone on the school's staff
    list) or that they are not on the list (``None``), with the reason. Only its routed
    recipient may (flows/access.py); once only."""
    now = now or utcnow()
    reason = (reason or "").strip()
    if len(reason) < MIN_REASON:
        raise FormErrors({"reason": f"Say why, in at least {MIN_REASON} characters: it is kept in the record."})
    with store.session() as s:
        person, concern = require_handler(s, actor_id, concern_id)
        s.refresh(concern, with_for_update=True)
        if not subject_unresolved(concern):
            raise Conflict(f"Who {concern.reference} is about has already been recorded.")
        school = s.get(School, concern.school_id)
        adult = _staff_member(s, school, person_id) if person_id is not None else None
        typed = concern.subject_name
        if adult is not None:
            concern.subject_person_id, concern.subject_name = adult.id, adult.name or adult.email
            if Role.headteacher.value in roles_of(s, adult.id, school.id):
                concern.subject_role = "headteacher"  # it goes to the chair, as if picked
        concern.subject_status = IDENTIFIED if adult is not None else NOT_LISTED
        routing = route(s, school, referrer_id=concern.referrer_id, subject_role=concern.subject_role,
                        subject_person_id=concern.subject_person_id, urgent=concern.urgent)
        added = [p.id for p in routing.recipients if p.id not in concern.routed_to]
        concern.routed_to = [p for p in concern.routed_to if p != concern.subject_person_id] + added
        concern.last_activity_at = now
        s.add(concern)
        outcome = "on_staff_list" if adult is not None else "not_on_staff_list"
        chain.append_entry(s, store.cipher, concern_id=concern.id, child_id=concern.child_id, kind=EntryKind.note,
                           actor_id=person.id, at=now,
                           body={"text": (f"The adult is {concern.subject_name}, on the staff list."
                                          if adult is not None else "The adult is not on the staff list."),
                                 "reason": reason, "typed": typed},
                           facts={"type": "subject_identified", "outcome": outcome})
        chain.audit(s, "concern.subject_identified", actor_id=person.id, school_id=school.id, concern_id=concern.id,
                    at=now, details={"outcome": outcome, "person_id": concern.subject_person_id,
                                     "route": routing.route, "added": added})
        if adult is not None:
            _forget(s, concern, adult.id)
        for pid in added:
            notices.enqueue(s, at=now, kind="concern_alert", recipient_id=pid, urgent=concern.urgent,
                            dedupe_key=f"alert:{concern.id}:{pid}", payload={"concern_id": concern.id})
        schedule.on_event(s, concern, "activity", now)
        return {"reference": concern.reference, "identified": concern.subject_name if adult is not None else None,
                "still_yours": may_handle(s, person.id, concern), "added": added}


def outcome_line(out: dict) -> str:
    """What the decider is told, in every transport."""
    if out["identified"] is None:
        return (f"{out['reference']}: recorded as about someone not on the staff list. The safeguarding team can "
                "now see it.")
    line = f"{out['reference']}: recorded as about {out['identified']}, who will never see it."
    if not out["still_yours"]:
        line += " You can no longer open it: it has gone to the people who handle concerns about you."
    return line + " The safeguarding team can now see it."


def _staff_member(s: Session, school: School, person_id: int) -> Person:
    adult = s.get(Person, person_id)
    if adult is None or not adult.active or adult.school_id != school.id:
        raise FormErrors({"subject": "That person is not on this school's staff list: search again."})
    return adult


def _forget(s: Session, concern: Concern, person_id: int) -> None:
    """The adult now known to be the subject: nothing about this concern still waits to reach them."""
    s.execute(update(OutboxMessage).where(OutboxMessage.recipient_id == person_id, OutboxMessage.state == "pending",
                                          OutboxMessage.payload["concern_id"].as_integer() == concern.id)
              .values(state="cancelled", last_error="recipient is the subject of the concern"))
    for n in s.exec(select(Nudge).where(Nudge.concern_id == concern.id, Nudge.recipient_id == person_id,
                                        Nudge.state == "pending")):
        n.state = "cancelled"
        s.add(n)
