"""What the DSL (or the routed recipient) does with a concern: acknowledge, open the record
(flows/record.py), ask the referrer, note, decide with reasons, refer, share an outcome, close.
Saying who a typed adult's name means is flows/subject.py."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from storage import chain
from storage.db import Store
from storage.models import DSL_TEAM, Child, ChronologyEntry, Concern, ConcernStatus, EntryKind, School, utcnow
from storage.people import people_with_roles

from . import notices, schedule
from .access import require_handler, require_referrer, told
from .errors import Conflict, FormErrors
from .forms import Choice, Field, Form, Kind, clean
from .record import EntryView, RecordView, _person_name, open_record  # noqa: F401 (the transports' names)

DECISIONS = (
    Choice(value="no_further_action", label="No further action"),
    Choice(value="monitor", label="Monitor in school"),
    Choice(value="signpost_internal", label="Signpost to support in school"),
    Choice(value="signpost_external", label="Signpost to an outside service"),
    Choice(value="early_help_assessment", label="Early help assessment"),
    Choice(value="early_help_referral", label="Early help referral"),
    Choice(value="social_care_referral", label="Referral to children's social care"),
    Choice(value="police", label="Referral to the police"),
    Choice(value="lado", label="Referral to the LADO (allegation about an adult)"),
    Choice(value="other", label="Other"),
)
REFERRALS = ("early_help_referral", "social_care_referral", "police", "lado")
SIGNPOSTS = ("signpost_internal", "signpost_external")
METHODS = (Choice(value="phone", label="Phone"), Choice(value="online", label="Online portal / form"),
           Choice(value="email", label="Secure email"), Choice(value="in_person", label="In person"),
           Choice(value="letter", label="Letter"))
SOCIAL_CARE_STEPS = ("sc_acknowledgement", "sc_decision", "strategy_discussion", "section47", "icpc")
STEP_LABELS = {"sc_acknowledgement": "Social care acknowledged the referral",
               "sc_decision": "Social care made its initial decision",
               "strategy_discussion": "Strategy discussion held",
               "section47": "Section 47 enquiries concluded",
               "icpc": "Initial child protection conference held"}


def decision_form() -> Form:
    return Form(id="record_decision", title="Record decision", submit_label="Record decision",
                intro="Every decision is recorded with its reasons and who took part (KCSIE).",
                fields=(
        Field(name="decision", label="Decision", kind=Kind.choice, required=True, choices=DECISIONS),
        Field(name="reasons", label="Reasons for this decision", kind=Kind.longtext, required=True, min_length=20,
              help="Why this is the right response, with the child's views and history in mind."),
        Field(name="participants", label="Who took part in the decision", kind=Kind.text, required=True,
              max_length=300, help="Names and roles, e.g. Dana Shah (DSL), Helen Brooks (Head)."),
        Field(name="signpost_to", label="Signposted to", kind=Kind.text, required=True, max_length=300,
              show_if=("decision", SIGNPOSTS), help="The service or person, e.g. school counsellor, Kooth."),
        Field(name="other_detail", label="What was decided", kind=Kind.text, required=True, max_length=300,
              show_if=("decision", ("other",))),
        Field(name="agency", label="Agency referred to", kind=Kind.text, required=True, max_length=200,
              show_if=("decision", REFERRALS), help="e.g. Northshire MASH, Metropolitan Police, Northshire LADO."),
        Field(name="referred_at", label="Date and time of referral", kind=Kind.datetime, required=True,
              not_in_future=True, show_if=("decision", REFERRALS)),
        Field(name="method", label="How the referral was made", kind=Kind.choice, required=True, choices=METHODS,
              show_if=("decision", REFERRALS)),
        Field(name="agency_reference", label="Agency's reference number", kind=Kind.text, max_length=100,
              show_if=("decision", REFERRALS), help="Leave empty if not given yet: you can add it in a note."),
        Field(name="parents_informed", label="Were parents or carers told of the referral?", kind=Kind.boolean,
              required=True, show_if=("decision", REFERRALS)),
        Field(name="parents_not_informed_reason", label="Why parents or carers were not told", kind=Kind.longtext,
              required=True, show_if=("parents_informed", ("no",)),
              help="e.g. telling them would place the child at greater risk; advice from social care."),
        Field(name="review_date", label="Review date", kind=Kind.date,
              help="When to check whether the child's situation has improved. Defaults to the school's policy."),
    ))


def _touch(concern: Concern, now: datetime) -> None:
    concern.last_activity_at = now


def _entry(s: Session, store: Store, concern: Concern, kind: str, actor_id: int, now: datetime,
           body: dict | None = None, facts: dict | None = None) -> ChronologyEntry:
    return chain.append_entry(s, store.cipher, concern_id=concern.id, child_id=concern.child_id, kind=kind,
                              actor_id=actor_id, at=now, body=body, facts=facts)


def acknowledge(store: Store, actor_id: int, concern_id: int, *, now: datetime | None = None) -> RecordView | dict:
    """Take ownership. Returns who owns it; a second acknowledgement by someone else is not an error
    (they are told who got there first)."""
    now = now or utcnow()
    with store.session() as s:
        person, concern = require_handler(s, actor_id, concern_id)
        s.refresh(concern, with_for_update=True)
        if concern.handler_id is not None:
            return {"acknowledged_by": _person_name(s, concern.handler_id), "at": concern.acknowledged_at,
                    "already": True, "reference": concern.reference}
        concern.handler_id = person.id
        concern.acknowledged_at = now
        if concern.status == ConcernStatus.raised:
            concern.status = ConcernStatus.acknowledged
        _touch(concern, now)
        s.add(concern)
        _entry(s, store, concern, EntryKind.acknowledged, person.id, now)
        chain.audit(s, "concern.acknowledged", actor_id=person.id, school_id=concern.school_id,
                    concern_id=concern.id, at=now)
        for rid in told(s, concern, concern.routed_to):
            notices.enqueue(s, at=now, kind="alert_acknowledged", recipient_id=rid, dedupe_key=f"acked:{concern.id}:{rid}",
                            payload={"concern_id": concern.id, "by_id": person.id, "at": now.isoformat()})
        schedule.on_event(s, concern, "acknowledged", now)
        return {"acknowledged_by": person.name or person.email, "at": now, "already": False,
                "reference": concern.reference}


def match_child(store: Store, actor_id: int, concern_id: int, child_id: int, *, now: datetime | None = None) -> None:
    """Link a concern raised with a typed name to the pupil on the roll."""
    now = now or utcnow()
    with store.session() as s:
        person, concern = require_handler(s, actor_id, concern_id)
        child = s.get(Child, child_id)
        if child is None or child.school_id != concern.school_id:
            raise FormErrors({"child": "That pupil is not on this school's roll."})
        concern.child_id, concern.needs_child_match = child.id, False
        _touch(concern, now)
        s.add(concern)
        _entry(s, store, concern, EntryKind.note, person.id, now, body={"text": "Matched to the pupil on the roll."},
               facts={"type": "child_matched"})
        chain.audit(s, "concern.child_matched", actor_id=person.id, concern_id=concern.id, child_id=child.id, at=now)


def add_entry(store: Store, actor_id: int, concern_id: int, kind: str, text: str, *,
              participants: str | None = None, now: datetime | None = None) -> None:
    """A note, a discussion (with who took part) or an action."""
    now = now or utcnow()
    if kind not in (EntryKind.note, EntryKind.discussion, EntryKind.action):
        raise FormErrors({"kind": "Choose note, discussion or action."})
    if not text or len(text.strip()) < 3:
        raise FormErrors({"text": "Write what was noted, discussed or done."})
    if kind == EntryKind.discussion and not (participants or "").strip():
        raise FormErrors({"participants": "Say who took part in the discussion."})
    with store.session() as s:
        person, concern = require_handler(s, actor_id, concern_id)
        body = {"text": text.strip()}
        if participants:
            body["participants"] = participants.strip()
        _entry(s, store, concern, kind, person.id, now, body=body)
        chain.audit(s, f"concern.{kind}", actor_id=person.id, school_id=concern.school_id, concern_id=concern.id, at=now)
        _touch(concern, now)
        s.add(concern)
        schedule.on_event(s, concern, "activity", now)


def ask_referrer(store: Store, actor_id: int, concern_id: int, question: str, *, now: datetime | None = None) -> None:
    now = now or utcnow()
    if not question or len(question.strip()) < 5:
        raise FormErrors({"question": "Write the question for the referrer."})
    with store.session() as s:
        person, concern = require_handler(s, actor_id, concern_id)
        entry = _entry(s, store, concern, EntryKind.follow_up, person.id, now, body={"question": question.strip()},
                       facts={"type": "question_to_referrer"})
        chain.audit(s, "concern.question_asked", actor_id=person.id, concern_id=concern.id, at=now)
        # The question travels only in the 1:1 message to the referrer, never in notification text.
        notices.enqueue(s, at=now, kind="info_request", recipient_id=concern.referrer_id,
                        dedupe_key=f"question:{concern.id}:{entry.seq}",
                        payload={"concern_id": concern.id, "by_id": person.id, "question_seq": entry.seq,
                                 "question_text": question.strip()})
        _touch(concern, now)
        s.add(concern)
        schedule.on_event(s, concern, "activity", now)


def open_questions(store: Store, referrer_id: int, concern_id: int) -> list[dict]:
    """Questions the DSL asked the referrer that have no answer yet."""
    with store.session() as s:
        require_referrer(s, referrer_id, concern_id)
        asked, answered = {}, set()
        for e in s.exec(select(ChronologyEntry).where(ChronologyEntry.concern_id == concern_id,
                                                      ChronologyEntry.kind == EntryKind.follow_up)
                        .order_by(ChronologyEntry.seq)):
            if e.facts.get("type") == "question_to_referrer":
                asked[e.seq] = chain.read_body(store.cipher, e)["question"]
            elif e.facts.get("type") == "referrer_answer":
                answered.add(e.facts.get("question_seq"))
        return [{"seq": k, "question": v} for k, v in asked.items() if k not in answered]


def answer_referrer_question(store: Store, referrer_id: int, concern_id: int, answer: str, *,
                             question_seq: int | None = None, now: datetime | None = None) -> None:
    now = now or utcnow()
    if not answer or len(answer.strip()) < 2:
        raise FormErrors({"answer": "Write your answer."})
    pending = open_questions(store, referrer_id, concern_id)
    if question_seq is None and pending:
        question_seq = pending[-1]["seq"]
    with store.session() as s:
        person, concern = require_referrer(s, referrer_id, concern_id)
        entry = _entry(s, store, concern, EntryKind.follow_up, person.id, now, body={"answer": answer.strip()},
                       facts={"type": "referrer_answer", "question_seq": question_seq})
        chain.audit(s, "concern.question_answered", actor_id=person.id, concern_id=concern.id, at=now)
        for rid in told(s, concern, handler_or_routed(s, concern)):
            notices.enqueue(s, at=now, kind="info_answered", recipient_id=rid, dedupe_key=f"answer:{concern.id}:{entry.seq}:{rid}",
                            payload={"concern_id": concern.id})
        _touch(concern, now)
        s.add(concern)
        schedule.on_event(s, concern, "activity", now)


def handler_or_routed(s: Session, concern: Concern) -> list[int]:
    """The owner once someone has acknowledged, else everyone it was routed to."""
    if concern.handler_id:
        return [concern.handler_id]
    return list(concern.routed_to)


def record_decision(store: Store, actor_id: int, concern_id: int, raw: dict, *,
                    now: datetime | None = None) -> dict:
    """A decision with its mandatory reasons and who took part; a referral with its details."""
    now = now or utcnow()
    with store.session() as s:
        person, concern = require_handler(s, actor_id, concern_id)
        school = s.get(School, concern.school_id)
        values = clean(decision_form(), raw, tz=ZoneInfo(school.timezone), now=now)
        decision = values["decision"]
        if concern.status == ConcernStatus.closed:
            raise Conflict("This concern is closed. Raise a new concern or reopen it with a note first.")
        if values.get("review_date") is None:
            from .policy import add_working_days, policy_for

            pol = policy_for(school, _trust(s, school))
            values["review_date"] = add_working_days(pol, now, pol.nudges.review_default_working_days).date()
        body = {k: (v.isoformat() if isinstance(v, (datetime, date)) else v) for k, v in values.items()}
        if concern.handler_id is None:  # deciding implies taking ownership
            concern.handler_id, concern.acknowledged_at = person.id, now
        concern.decision_kind, concern.decided_at = decision, now
        concern.review_date = values["review_date"]
        concern.status = ConcernStatus.decided
        _touch(concern, now)
        s.add(concern)
        _entry(s, store, concern, EntryKind.decision, person.id, now, body=body,
               facts={"decision": decision, "review_date": values["review_date"].isoformat()})
        chain.audit(s, "concern.decision", actor_id=person.id, school_id=concern.school_id, concern_id=concern.id,
                    at=now, details={"decision": decision})
        if decision in REFERRALS:
            _entry(s, store, concern, EntryKind.referral, person.id, now,
                   body={k: body.get(k) for k in ("agency", "referred_at", "method", "agency_reference",
                                                  "parents_informed", "parents_not_informed_reason")},
                   facts={"decision": decision, "referred_at": body["referred_at"],
                          "parents_informed": values["parents_informed"]})
            chain.audit(s, "concern.referral", actor_id=person.id, concern_id=concern.id, at=now,
                        details={"decision": decision})
        schedule.on_event(s, concern, "decided", now, decision=decision,
                          referred_at=values.get("referred_at"))
        return {"reference": concern.reference, "decision": decision, "review_date": values["review_date"]}


def _trust(s: Session, school: School):
    from storage.models import Trust

    return s.get(Trust, school.trust_id)


def record_social_care_step(store: Store, actor_id: int, concern_id: int, step: str, at: datetime, note: str = "",
                            *, now: datetime | None = None) -> None:
    """A step of children's social care's statutory process after a referral (seed 004)."""
    now = now or utcnow()
    if step not in SOCIAL_CARE_STEPS:
        raise FormErrors({"step": "Choose one of: " + ", ".join(SOCIAL_CARE_STEPS)})
    with store.session() as s:
        person, concern = require_handler(s, actor_id, concern_id)
        _entry(s, store, concern, EntryKind.referral, person.id, now, body={"note": note, "step_label": STEP_LABELS[step]},
               facts={"step": step, "at": at.isoformat()})
        chain.audit(s, "concern.social_care_step", actor_id=person.id, concern_id=concern.id, at=now,
                    details={"step": step})
        _touch(concern, now)
        s.add(concern)
        schedule.on_event(s, concern, "social_care_step", now, step=step, at=at)


def share_outcome(store: Store, actor_id: int, concern_id: int, text: str, *, now: datetime | None = None) -> None:
    """Tell the referrer an outcome, in words the DSL chooses (only those words reach them)."""
    now = now or utcnow()
    if not text or len(text.strip()) < 5:
        raise FormErrors({"text": "Write what the referrer should be told."})
    with store.session() as s:
        person, concern = require_handler(s, actor_id, concern_id)
        entry = _entry(s, store, concern, EntryKind.outcome, person.id, now, body={"shared_text": text.strip()},
                       facts={"shared_with_referrer": True})
        concern.outcome_shared_at = now
        _touch(concern, now)
        s.add(concern)
        chain.audit(s, "concern.outcome_shared", actor_id=person.id, concern_id=concern.id, at=now)
        notices.enqueue(s, at=now, kind="outcome_shared", recipient_id=concern.referrer_id,
                        dedupe_key=f"outcome:{concern.id}:{entry.seq}",
                        payload={"concern_id": concern.id, "by_id": person.id, "outcome_text": text.strip()})
        schedule.on_event(s, concern, "outcome_shared", now)


def record_outcome(store: Store, actor_id: int, concern_id: int, text: str, *, now: datetime | None = None) -> None:
    """An outcome for the record (not shared with the referrer)."""
    now = now or utcnow()
    if not text or len(text.strip()) < 5:
        raise FormErrors({"text": "Describe the outcome."})
    with store.session() as s:
        person, concern = require_handler(s, actor_id, concern_id)
        _entry(s, store, concern, EntryKind.outcome, person.id, now, body={"text": text.strip()},
               facts={"shared_with_referrer": False})
        chain.audit(s, "concern.outcome", actor_id=person.id, concern_id=concern.id, at=now)
        _touch(concern, now)
        s.add(concern)
        schedule.on_event(s, concern, "outcome", now)


def close(store: Store, actor_id: int, concern_id: int, summary: str, *, now: datetime | None = None) -> None:
    """Close with an outcome summary. Not without a decision (with reasons) and an outcome."""
    now = now or utcnow()
    errors = {}
    if not summary or len(summary.strip()) < 20:
        errors["summary"] = "Write an outcome summary of at least 20 characters: how it was followed up and resolved."
    with store.session() as s:
        person, concern = require_handler(s, actor_id, concern_id)
        if concern.status == ConcernStatus.closed:
            raise Conflict(f"{concern.reference} is already closed.")
        if concern.decided_at is None:
            errors["decision"] = "Record a decision with its reasons before closing."
        if errors:
            raise FormErrors(errors)
        _entry(s, store, concern, EntryKind.outcome, person.id, now, body={"text": summary.strip()},
               facts={"shared_with_referrer": False, "closing_summary": True})
        _entry(s, store, concern, EntryKind.closed, person.id, now, facts={"decision": concern.decision_kind})
        concern.status, concern.closed_at = ConcernStatus.closed, now
        _touch(concern, now)
        s.add(concern)
        chain.audit(s, "concern.closed", actor_id=person.id, school_id=concern.school_id, concern_id=concern.id, at=now)
        schedule.on_event(s, concern, "closed", now)


def dsl_team_ids(s: Session, school_id: int) -> list[int]:
    return [p.id for p in people_with_roles(s, school_id, DSL_TEAM)]
