"""Who may open a concern: the school's DSL team and the routed recipients, never the adult
it is about (nor the headteacher when the headteacher is the subject)."""

from __future__ import annotations

from sqlmodel import Session

from storage.models import DSL_TEAM, Concern, Person, Role
from storage.people import roles_of

from .errors import NotAllowed, NotFound, NotInDirectory


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
    return bool(roles_of(s, person_id, school_id) & {str(r) for r in DSL_TEAM})


def may_handle(s: Session, person_id: int, concern: Concern) -> bool:
    if person_id == concern.subject_person_id:
        return False
    roles = roles_of(s, person_id, concern.school_id)
    if concern.subject_role == "headteacher" and Role.headteacher.value in roles:
        return False
    if concern.about_adult:
        # Allegations about adults are for the routed recipients (the head, or the chair),
        # and the DSL team, who must know of them to safeguard the children involved.
        return person_id in concern.routed_to or bool(roles & {str(r) for r in DSL_TEAM})
    return person_id in concern.routed_to or bool(roles & {str(r) for r in DSL_TEAM})


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
