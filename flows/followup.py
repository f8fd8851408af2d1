"""The referrer's side after reporting, and escalation when a child's situation does not
improve (seed 000 §68–70; seed 001: "failing to re-assess concerns when situations do not
improve", "a lack of challenge to those who appear to not be taking action")."""

from __future__ import annotations

from datetime import date, datetime

from sqlmodel import Session

from storage import chain
from storage.db import Store
from storage.models import Concern, ConcernStatus, EntryKind, Role, utcnow
from storage.people import people_with_roles

from . import notices, schedule
from .access import actor, concern_for, is_dsl_team, may_handle, require_handler, told
from .errors import FormErrors, NotAllowed
from .triage import dsl_team_ids, handler_or_routed

ANSWERS = tuple(notices.CHECKIN_ANSWERS)
CHALLENGE_STAGES = {1: "Stage 1: discussed with the social worker",
                    2: "Stage 2: raised with the team manager",
                    3: "Stage 3: raised with the service manager",
                    4: "Stage 4: raised with the head of service / safeguarding partnership"}


def _referrer_or_team(s: Session, person_id: int, concern: Concern) -> None:
    if concern.referrer_id != person_id and not may_handle(s, person_id, concern):
        raise NotAllowed("Only the person who raised this concern or the safeguarding team can do that.")


def checkin(store: Store, person_id: int, concern_id: int, answer: str, note: str = "", *,
            now: datetime | None = None) -> dict:
    """"Has anything changed for the child?" — "no change" or "worse" prompts re-assessment."""
    now = now or utcnow()
    if answer not in ANSWERS:
        raise FormErrors({"answer": "Choose improved, no change, worse or don't know."})
    with store.session() as s:
        person = actor(s, person_id)
        concern = concern_for(s, concern_id)
        _referrer_or_team(s, person.id, concern)
        entry = chain.append_entry(s, store.cipher, concern_id=concern.id, child_id=concern.child_id,
                                   kind=EntryKind.follow_up, actor_id=person.id, at=now, body={"note": note.strip()},
                                   facts={"type": "checkin", "answer": answer,
                                          "by": "referrer" if person.id == concern.referrer_id else "dsl"})
        chain.audit(s, "concern.checkin", actor_id=person.id, concern_id=concern.id, at=now, details={"answer": answer})
        reassess = answer in ("no_change", "worse")
        if reassess:
            for rid in told(s, concern, _everyone_involved(s, concern)):
                if rid != person.id:
                    notices.enqueue(s, at=now, kind="reassess", recipient_id=rid, urgent=answer == "worse",
                                    dedupe_key=f"reassess:{concern.id}:{entry.seq}:{rid}",
                                    payload={"concern_id": concern.id,
                                             "why": f"Check-in answer: {notices.CHECKIN_ANSWERS[answer]}."})
        concern.last_activity_at = now
        s.add(concern)
        schedule.on_event(s, concern, "checkin", now, answer=answer)
        return {"reference": concern.reference, "reassess": reassess,
                "escalation_offered": reassess and concern.referrer_id == person.id}


def _everyone_involved(s: Session, concern: Concern) -> list[int]:
    ids = list(concern.routed_to)
    if concern.handler_id and concern.handler_id not in ids:
        ids.append(concern.handler_id)
    return ids


def still_worried(store: Store, person_id: int, concern_id: int, note: str = "", *,
                  now: datetime | None = None) -> dict:
    """Escalate: everyone involved and the DSL team are alerted, and the headteacher too when
    the DSL has not responded or is the subject of the concern (the chair of governors when the
    headteacher is); each only if flows/access.py lets them be told (never the adult concerned,
    and not the DSL team while the adult is not yet identified)."""
    now = now or utcnow()
    with store.session() as s:
        person = actor(s, person_id)
        concern = concern_for(s, concern_id)
        _referrer_or_team(s, person.id, concern)
        candidates = _everyone_involved(s, concern) + dsl_team_ids(s, concern.school_id)
        unanswered = concern.handler_id is None
        subject_is_dsl = concern.subject_person_id is not None and is_dsl_team(s, concern.subject_person_id,
                                                                                 concern.school_id)
        to_head = unanswered or subject_is_dsl
        if to_head:
            candidates += [p.id for p in people_with_roles(s, concern.school_id, [Role.headteacher])]
        if concern.subject_role == "headteacher":
            candidates += [p.id for p in people_with_roles(s, concern.school_id, [Role.chair_of_governors])]
        recipients = set(told(s, concern, candidates, escalated=True)) - {person.id}
        to_head = bool(recipients & {p.id for p in people_with_roles(s, concern.school_id, [Role.headteacher])})
        to_team = bool(recipients & set(dsl_team_ids(s, concern.school_id)))
        entry = chain.append_entry(s, store.cipher, concern_id=concern.id, child_id=concern.child_id,
                                   kind=EntryKind.escalation, actor_id=person.id, at=now, body={"note": note.strip()},
                                   facts={"type": "still_worried", "to_head": to_head})
        chain.audit(s, "concern.escalated", actor_id=person.id, concern_id=concern.id, at=now,
                    details={"recipients": sorted(recipients), "to_head": to_head})
        why = "Nobody has acknowledged it yet." if unanswered else ""
        for rid in sorted(recipients):
            notices.enqueue(s, at=now, kind="escalation", recipient_id=rid, urgent=True,
                            dedupe_key=f"escalation:{concern.id}:{entry.seq}:{rid}",
                            payload={"concern_id": concern.id, "why": why})
        if concern.status == ConcernStatus.closed:
            # A closed concern that someone is still worried about is live again.
            concern.status = ConcernStatus.decided if concern.decided_at else ConcernStatus.raised
            concern.closed_at = None
        concern.last_activity_at = now
        s.add(concern)
        schedule.on_event(s, concern, "escalated", now)
        return {"reference": concern.reference, "to_head": to_head, "to_team": to_team,
                "recipients": sorted(recipients), "told": _who_words(to_team, to_head, bool(recipients))}


def _who_words(to_team: bool, to_head: bool, anyone: bool) -> str:
    """Whom an escalation reached, as a clause for the person who raised it (never more than it did)."""
    if to_team and to_head:
        return "the safeguarding team and the headteacher have been alerted"
    if to_team:
        return "the safeguarding team has been alerted"
    if to_head:
        return "the headteacher has been alerted"
    if anyone:
        return "the people handling this concern have been alerted"
    return "nobody could be alerted: find the safeguarding lead or the headteacher in person"


def request_update(store: Store, person_id: int, concern_id: int, *, now: datetime | None = None) -> None:
    """One click for the referrer to ask the DSL for an update (seed 000 §68)."""
    now = now or utcnow()
    with store.session() as s:
        person = actor(s, person_id)
        concern = concern_for(s, concern_id)
        if concern.referrer_id != person.id:
            raise NotAllowed("Only the person who raised this concern can ask for an update on it.")
        entry = chain.append_entry(s, store.cipher, concern_id=concern.id, child_id=concern.child_id,
                                   kind=EntryKind.follow_up, actor_id=person.id, at=now,
                                   facts={"type": "update_requested"})
        chain.audit(s, "concern.update_requested", actor_id=person.id, concern_id=concern.id, at=now)
        for rid in told(s, concern, handler_or_routed(s, concern)):
            notices.enqueue(s, at=now, kind="update_requested", recipient_id=rid,
                            dedupe_key=f"update:{concern.id}:{entry.seq}:{rid}", payload={"concern_id": concern.id})
        schedule.on_event(s, concern, "activity", now)


def record_challenge(store: Store, person_id: int, concern_id: int, *, stage: int, on: date, with_whom: str,
                     note: str, now: datetime | None = None) -> None:
    """The DSL's professional challenge of another agency's decision, stage by stage, with dates."""
    now = now or utcnow()
    errors = {}
    if stage not in CHALLENGE_STAGES:
        errors["stage"] = "Choose a stage from 1 to 4."
    if not with_whom.strip():
        errors["with_whom"] = "Say who the challenge was raised with (name and role)."
    if len(note.strip()) < 10:
        errors["note"] = "Say what was challenged and why."
    if errors:
        raise FormErrors(errors)
    with store.session() as s:
        person, concern = require_handler(s, person_id, concern_id)
        chain.append_entry(s, store.cipher, concern_id=concern.id, child_id=concern.child_id,
                           kind=EntryKind.escalation, actor_id=person.id, at=now,
                           body={"with_whom": with_whom.strip(), "note": note.strip(),
                                 "stage_label": CHALLENGE_STAGES[stage]},
                           facts={"type": "professional_challenge", "stage": stage, "on": on.isoformat()})
        chain.audit(s, "concern.professional_challenge", actor_id=person.id, concern_id=concern.id, at=now,
                    details={"stage": stage})
        concern.last_activity_at = now
        s.add(concern)
        schedule.on_event(s, concern, "activity", now)
