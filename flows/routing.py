"""Who is alerted about a concern (configurable per school through School.policy["routing"])."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from storage.models import DSL_TEAM, Person, Role, School
from storage.people import people_with_roles, trust_people_with_role

# Role lists per kind of concern; a school overrides any of them in policy.routing.
DEFAULT_ROUTES = {
    "child": [Role.dsl, Role.deputy_dsl],
    "urgent_extra": [Role.headteacher],                   # immediate danger: the head too
    "adult": [Role.headteacher],                           # staff, volunteer or other adult in school
    "headteacher": [Role.chair_of_governors],             # the headteacher is the subject
    "fallback": [Role.dsl, Role.deputy_dsl, Role.headteacher, Role.chair_of_governors],
}

ADULT_SUBJECTS = ("staff", "volunteer", "other_adult")


@dataclass
class Routing:
    recipients: list[Person]
    route: str  # which rule applied, for the record


def _routes(school: School) -> dict:
    override = (school.policy or {}).get("routing", {})
    return {k: override.get(k, v) for k, v in DEFAULT_ROUTES.items()}


def route(s: Session, school: School, *, referrer_id: int, subject_role: str | None,
          subject_person_id: int | None, urgent: bool, subject_unresolved: bool = False) -> Routing:
    if subject_unresolved:
        return route_unresolved(s, school, referrer_id=referrer_id, about_head=subject_role == "headteacher")
    routes = _routes(school)
    if subject_role == "headteacher":
        name, roles = "headteacher", routes["headteacher"]
    elif subject_role in ADULT_SUBJECTS:
        name, roles = "adult", routes["adult"]
    else:
        name, roles = "child", list(routes["child"]) + (list(routes["urgent_extra"]) if urgent else [])
    excluded = {referrer_id, subject_person_id}
    people = [p for p in people_with_roles(s, school.id, roles) if p.id not in excluded]
    if not people:
        # Nobody left (e.g. the head reported a concern about a colleague): go wider rather
        # than let a concern reach no one, but never to the referrer or the subject.
        name = name + "+fallback"
        people = [p for p in people_with_roles(s, school.id, routes["fallback"]) if p.id not in excluded]
        if subject_role == "headteacher":
            people = [p for p in people if Role.headteacher not in _role_names(s, p, school)]
    if not people:
        people = [p for p in trust_people_with_role(s, school.trust_id, Role.trust_safeguarding_officer)
                  if p.id not in excluded]
        name = "trust_safeguarding_officer"
    return Routing(recipients=people, route=name)


def route_unresolved(s: Session, school: School, *, referrer_id: int, about_head: bool) -> Routing:
    """A concern about an adult named by typing: the headteacher decides who it is about; the
    chair of governors when it is about the headteacher, or the head raised it or holds no
    active place; the trust safeguarding officer as the last resort. Never anyone in the DSL
    team (the name may mean any of them, a head who is also a DSL included), nor the
    referrer, and not configurable: a school's routing policy cannot widen it."""
    dsl = {p.id for p in people_with_roles(s, school.id, DSL_TEAM)}

    def eligible(people: list[Person]) -> list[Person]:
        return [p for p in people if p.id != referrer_id and p.id not in dsl]

    heads = [] if about_head else eligible(people_with_roles(s, school.id, [Role.headteacher]))
    if heads:
        return Routing(recipients=heads, route="adult_unresolved")
    chairs = eligible(people_with_roles(s, school.id, [Role.chair_of_governors]))
    if chairs:
        return Routing(recipients=chairs, route="adult_unresolved+chair")
    officers = [p for p in trust_people_with_role(s, school.trust_id, Role.trust_safeguarding_officer)
                if p.id != referrer_id and p.id not in dsl]
    return Routing(recipients=officers, route="trust_safeguarding_officer")


def _role_names(s: Session, person: Person, school: School) -> set[str]:
    from storage.people import roles_of

    return roles_of(s, person.id, school.id)
