"""Who may open a concern, and who may be told about it: the one place that decides.

Every path that shows or mentions a concern asks here: the record, the queue, the wider
history, the child's file, exports and transfer packs, subject access exports, App Home
figures, alerts, reminders, failed-delivery notices and escalations.

The rule, for a person P and a concern C:

1. Never, whatever else holds: the adult C is about (``subject_person_id``); any headteacher
   when C is about the headteacher; and, while C's subject is **unresolved** (the referrer
   typed a name instead of picking someone from the staff list), anyone in the school's DSL
   team: a typed name ("Mrs N. Surname", a typo, an email) may mean any of them, so none of
   them sees it until the routed recipient (the headteacher, or the chair of governors, or
   the trust safeguarding officer: flows/routing.py) decides who the adult is
   (flows/triage.py ``identify_subject``).
2. Otherwise P may **handle** C (open it, act on it, see it in a queue, a history, a file, an
   export) when C was routed to P, or P is in the school's DSL team, except while the subject
   is unresolved, when only the routed recipients may.
3. P may be **told** about C (an alert, a reminder, a failed-delivery notice, an escalation)
   when P may handle it, or P raised it; or when an escalation brings C to P
   (``escalated=True``: a deputy, the head, the chair, the trust safeguarding officer), as long
   as rule 1 does not exclude P.

The rule reads only the columns in ``RULE_COLUMNS``, so a caller holding a partial row (the
nudge sweep selects a few columns) passes one that has them.
"""

from __future__ import annotations

from typing import Any, Iterable

from sqlmodel import Session, select

from storage.models import DSL_TEAM, Concern, Person, Role
from storage.people import roles_of

from .errors import NotAllowed, NotFound, NotInDirectory

PICKED, UNRESOLVED, IDENTIFIED, NOT_LISTED = "picked", "unresolved", "identified", "not_listed"
RULE_COLUMNS = ("id", "school_id", "referrer_id", "routed_to", "about_adult", "subject_role",
                "subject_person_id", "subject_status")
_DSL = frozenset(str(r) for r in DSL_TEAM)


def actor(s: Session, person_id: int) -> Person:
    person = s.get(Person, person_id)
    if person is None or not person.active:
        raise NotInDirectory("You are not in the school directory.")
    return person


def concern_for(s: Session, concern_id: int) -> Concern:
    concern = s.get(Concern, concern_id)
    if concern is None:
        raise NotFound("No concern with that reference.")
    return concern


def is_dsl_team(s: Session, person_id: int, school_id: int) -> bool:
    return bool(roles_of(s, person_id, school_id) & _DSL)


def subject_unresolved(concern: Any) -> bool:
    """A concern about an adult the referrer named by typing, not yet identified by its recipient."""
    return concern.subject_status == UNRESOLVED


def _excluded(person_id: int, concern: Any, roles: set[str]) -> bool:
    """Rule 1: people who may never see or hear of this concern, whatever their role."""
    if person_id == concern.subject_person_id:
        return True
    if concern.subject_role == "headteacher" and Role.headteacher.value in roles:
        return True
    return subject_unresolved(concern) and bool(roles & _DSL)


def may_handle(s: Session, person_id: int, concern: Any) -> bool:
    roles = roles_of(s, person_id, concern.school_id)
    if _excluded(person_id, concern, roles):
        return False
    routed = person_id in (concern.routed_to or ())
    if subject_unresolved(concern):
        return routed
    return routed or bool(roles & _DSL)


def may_be_told(s: Session, person_id: int, concern: Any, *, escalated: bool = False) -> bool:
    """Whether a message about ``concern`` may go to this person. ``escalated``: an escalation
    (not the routing) brings the concern to them; rule 1 still applies."""
    if person_id == concern.referrer_id and person_id != concern.subject_person_id:
        return True  # they wrote it: their receipt, questions, check-ins, follow-ups
    roles = roles_of(s, person_id, concern.school_id)
    if _excluded(person_id, concern, roles):
        return False
    if escalated:
        return True
    return may_handle(s, person_id, concern)


def told(s: Session, concern: Any, people: Iterable[int | None], *, escalated: bool = False) -> list[int]:
    """``people`` (in order, once each) without those who may not be told about ``concern``."""
    return [p for p in dict.fromkeys(people) if p and may_be_told(s, p, concern, escalated=escalated)]


def withheld_ids(s: Session, person_id: int, school_id: int) -> list[int]:
    """Ids of the school's concerns this person may not handle although they are in its DSL
    team: what figures shown to them leave out. Only concerns about adults can be withheld
    from the DSL team, so this reads those alone (a few per school)."""
    rows = s.exec(select(Concern).where(Concern.school_id == school_id, Concern.about_adult))
    return [c.id for c in rows if not may_handle(s, person_id, c)]


def require_handler(s: Session, person_id: int, concern_id: int) -> tuple[Person, Concern]:
    person = actor(s, person_id)
    concern = concern_for(s, concern_id)
    if not may_handle(s, person.id, concern):
        raise NotAllowed("Only the safeguarding team (or the person this concern was routed to) can do that.")
    return person, concern


def require_referrer(s: Session, person_id: int, concern_id: int) -> tuple[Person, Concern]:
    person = actor(s, person_id)
    concern = concern_for(s, concern_id)
    if concern.referrer_id != person.id:
        raise NotAllowed("Only the person who raised this concern can do that.")
    return person, concern
