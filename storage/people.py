"""Directory look-ups: who someone is, what roles they hold, which pupils match a search."""

from __future__ import annotations

from typing import Iterable

from sqlmodel import Session, select

from .models import Child, Person, RoleAssignment, School


def person_by_email(s: Session, email: str) -> Person | None:
    return s.exec(select(Person).where(Person.email == email.strip().lower(), Person.active)).first()


def person_by_slack(s: Session, user_id: str, team_id: str | None = None) -> Person | None:
    q = select(Person).where(Person.slack_user_id == user_id, Person.active)
    if team_id:
        q = q.join(School, School.id == Person.school_id, isouter=True).where(
            (School.slack_team_id == team_id) | (School.slack_team_id.is_(None)))
    return s.exec(q).first()


def person_by_aad(s: Session, aad_object_id: str) -> Person | None:
    return s.exec(select(Person).where(Person.teams_aad_object_id == aad_object_id, Person.active)).first()


def roles_of(s: Session, person_id: int, school_id: int | None = None) -> set[str]:
    q = select(RoleAssignment.role).where(RoleAssignment.person_id == person_id)
    if school_id is not None:
        q = q.where((RoleAssignment.school_id == school_id) | (RoleAssignment.school_id.is_(None)))
    return set(s.exec(q))


def people_with_roles(s: Session, school_id: int, roles: Iterable[str]) -> list[Person]:
    roles = [str(r) for r in roles]
    q = (select(Person).join(RoleAssignment, RoleAssignment.person_id == Person.id)
         .where(RoleAssignment.role.in_(roles), RoleAssignment.school_id == school_id, Person.active)
         .order_by(Person.id))
    return _unique(s.exec(q))


def _unique(people) -> list[Person]:
    seen, out = set(), []
    for p in people:
        if p.id not in seen:
            seen.add(p.id)
            out.append(p)
    return out


def trust_people_with_role(s: Session, trust_id: int, role: str) -> list[Person]:
    q = (select(Person).join(RoleAssignment, RoleAssignment.person_id == Person.id)
         .where(RoleAssignment.role == role, Person.trust_id == trust_id, Person.active).order_by(Person.id))
    return _unique(s.exec(q))


def search_children(s: Session, school_id: int, query: str, limit: int = 20) -> list[Child]:
    """Pupils whose name contains every word typed (names are encrypted, so match in memory;
    a school roll is a few thousand rows at most)."""
    words = [w for w in query.lower().split() if w]
    found = []
    for child in s.exec(select(Child).where(Child.school_id == school_id, Child.active).order_by(Child.id)):
        name = (child.name or "").lower()
        if all(w in name for w in words) or (query.strip() and child.mis_id == query.strip()):
            found.append(child)
            if len(found) >= limit:
                break
    return found


def search_staff(s: Session, school_id: int, query: str, limit: int = 20) -> list[tuple[Person, str]]:
    """Active adults of a school whose name or email contains every word typed, with a label
    naming their roles (names are encrypted, so match in memory; a staff list is a few hundred)."""
    words = [w for w in query.lower().split() if w]
    if not words:
        return []
    roles: dict[int, list[str]] = {}
    for pid, role in s.exec(select(RoleAssignment.person_id, RoleAssignment.role)
                            .where(RoleAssignment.school_id == school_id)):
        roles.setdefault(pid, []).append(role)
    found = []
    for person in s.exec(select(Person).where(Person.school_id == school_id, Person.active).order_by(Person.id)):
        hay = f"{person.name or ''} {person.email}".lower()
        if all(w in hay for w in words):
            what = ", ".join(ROLE_WORDS.get(r, r) for r in sorted(roles.get(person.id, [])))
            found.append((person, f"{person.name or person.email}" + (f" ({what})" if what else "")))
            if len(found) >= limit:
                break
    return found


ROLE_WORDS = {"staff": "staff", "dsl": "DSL", "deputy_dsl": "deputy DSL", "headteacher": "headteacher",
              "chair_of_governors": "chair of governors"}


def siblings_of(s: Session, child: Child) -> list[Child]:
    if not child.family_group:
        return []
    return list(s.exec(select(Child).where(Child.family_group == child.family_group, Child.id != child.id,
                                           Child.school_id == child.school_id)))
