"""The directory: one trust's schools, people and roles, loaded from a TOML file.

The file is the source of truth. Loading it again changes nothing; people who are no
longer in it are deactivated and lose their roles (never deleted: concerns reference
them); a school that is no longer in it is reported and kept.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Literal, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from sqlalchemy import func
from sqlmodel import Session, select

from .chain import audit
from .db import Store
from .models import Person, Role, RoleAssignment, School, Trust

TRUST_ROLES = {Role.trust_safeguarding_officer.value}
SCHOOL_ROLES = {r.value for r in Role} - TRUST_ROLES
SLUG = r"^[a-z0-9][a-z0-9-]{0,63}$"
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class DirectoryError(Exception):
    """The file was refused; nothing was written. One line per problem, each naming its place."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


# --- the file format ------------------------------------------------------------------

def _check_slug(v: str) -> str:
    if not re.match(SLUG, v):
        raise ValueError(f"{v!r} is not a slug (lower-case letters, digits and '-')")
    return v


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PersonEntry(_Strict):
    email: str
    name: str
    roles: list[str]
    slack_user_id: Optional[str] = None
    teams_aad_object_id: Optional[str] = None

    @field_validator("email")
    @classmethod
    def _email(cls, v: str) -> str:
        if not EMAIL.match(v):
            raise ValueError(f"not an email address: {v!r}")
        return v.lower()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v:
            raise ValueError("must not be empty")
        return v

    @field_validator("roles")
    @classmethod
    def _roles(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("give at least one role")
        for r in v:
            if r not in {x.value for x in Role}:
                raise ValueError(f"unknown role {r!r} (one of: {', '.join(x.value for x in Role)})")
        return sorted(set(v))


class SchoolEntry(_Strict):
    slug: str
    name: str
    nation: Literal["england", "wales", "scotland", "northern_ireland"] = "england"
    timezone: str = "Europe/London"
    reference_prefix: str = "SG"
    slack_team_id: Optional[str] = None
    teams_tenant_id: Optional[str] = None
    closures: list[date] = []
    policy: dict[str, Any] = {}
    people: list[PersonEntry] = []

    _slug = field_validator("slug")(_check_slug)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v

    @field_validator("reference_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not re.match(r"^[A-Z0-9]{1,10}$", v):
            raise ValueError(f"{v!r}: use 1 to 10 capital letters or digits")
        return v


class TrustEntry(_Strict):
    slug: str
    name: str
    policy: dict[str, Any] = {}
    people: list[PersonEntry] = []

    _slug = field_validator("slug")(_check_slug)


class DirectoryFile(_Strict):
    trust: TrustEntry
    schools: list[SchoolEntry]


def _place(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "file"


def _message(err: dict) -> str:
    kind = err["type"]
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "literal_error":
        return f"{err['input']!r} is not one of {err['ctx']['expected']}"
    return err["msg"].removeprefix("Value error, ")


def parse(source: Path | dict) -> DirectoryFile:
    """Read and check a directory file (or an already-parsed dict). Raises DirectoryError."""
    if isinstance(source, dict):
        data = source
    else:
        try:
            data = tomllib.loads(Path(source).read_text(encoding="utf-8-sig"))
        except OSError as exc:
            raise DirectoryError([f"{source}: cannot read: {exc.strerror}"]) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise DirectoryError([f"{source}: not valid TOML: {exc}"]) from None
    try:
        parsed = DirectoryFile.model_validate(data)
    except ValidationError as exc:
        problems = []
        problems = [f"{_place(err['loc'])}: {_message(err)}" for err in exc.errors()]
        raise DirectoryError(problems) from None
    _check_whole(parsed)
    return parsed


def _check_whole(d: DirectoryFile) -> None:
    """What one entry cannot see: duplicates, and roles held at the wrong level."""
    problems: list[str] = []
    seen_email: dict[str, str] = {}
    seen_slug: dict[str, str] = {}

    def person(p: PersonEntry, where: str, allowed: set[str], other: str) -> None:
        if p.email in seen_email:
            problems.append(f"{where}.email: duplicate email {p.email!r} (also at {seen_email[p.email]})")
        seen_email.setdefault(p.email, where)
        for r in p.roles:
            if r not in allowed:
                problems.append(f"{where}.roles: {r!r} is {other}")

    for i, p in enumerate(d.trust.people):
        person(p, f"trust.people[{i}]", TRUST_ROLES, "a school role: list this person under their school")
    for si, s in enumerate(d.schools):
        if s.slug in seen_slug:
            problems.append(f"schools[{si}].slug: duplicate school {s.slug!r} (also at {seen_slug[s.slug]})")
        seen_slug.setdefault(s.slug, f"schools[{si}]")
        for pi, p in enumerate(s.people):
            person(p, f"schools[{si}].people[{pi}]", SCHOOL_ROLES, "a trust role: list this person under [[trust.people]]")
    if problems:
        raise DirectoryError(problems)


# --- applying it ----------------------------------------------------------------------

@dataclass
class Change:
    kind: Literal["added", "changed", "removed", "missing"]
    what: Literal["trust", "school", "person"]
    key: str  # slug or email
    fields: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        if self.kind == "missing":
            return f"missing school {self.key}: not in the file, kept (remove it by hand if it has closed)"
        return f"{self.kind} {self.what} {self.key}" + (f": {', '.join(self.fields)}" if self.fields else "")


@dataclass
class DirectoryChanges:
    trust: str
    changes: list[Change] = field(default_factory=list)
    schools: int = 0
    people: int = 0

    def of(self, kind: str) -> list[Change]:
        return [c for c in self.changes if c.kind == kind]

    @property
    def added(self) -> list[Change]:
        return self.of("added")

    @property
    def changed(self) -> list[Change]:
        return self.of("changed")

    @property
    def removed(self) -> list[Change]:
        return self.of("removed")

    @property
    def missing(self) -> list[Change]:
        return self.of("missing")

    def counts(self) -> dict[str, int]:
        return {"added": len(self.added), "changed": len(self.changed), "removed": len(self.removed),
                "schools_missing": len(self.missing), "schools": self.schools, "people": self.people}

    def summary(self) -> str:
        c = self.counts()
        return (f"directory {self.trust}: {_n(c['schools'], 'school')}, {_n(c['people'], 'person', 'people')} in the file; "
                f"{c['added']} added, {c['changed']} changed, {c['removed']} removed"
                + (f", {_n(c['schools_missing'], 'school')} missing from the file" if c["schools_missing"] else ""))


def _n(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


def _plain(value: Any) -> Any:
    """TOML dates and times as ISO text, so that policy fits a JSON column."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (date, datetime, time)):
        return value.isoformat()
    return value


def _update(row: Any, wanted: dict[str, Any]) -> list[str]:
    """Set only what differs (names are encrypted with a fresh nonce: rewriting would churn)."""
    changed = []
    for name, value in wanted.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed.append(name)
    return changed


def load_directory(store: Store, source: Path | dict) -> DirectoryChanges:
    """Load one trust's directory file in one transaction. Raises DirectoryError, writing nothing."""
    parsed = parse(source)
    with store.session() as s:
        return apply_directory(s, parsed)


def apply_directory(s: Session, d: DirectoryFile) -> DirectoryChanges:
    result = DirectoryChanges(trust=d.trust.slug, schools=len(d.schools),
                              people=len(d.trust.people) + sum(len(x.people) for x in d.schools))
    note = result.changes.append

    trust = s.exec(select(Trust).where(Trust.slug == d.trust.slug)).first()
    if trust is None:
        trust = Trust(slug=d.trust.slug, name=d.trust.name, policy=_plain(d.trust.policy))
        s.add(trust)
        s.flush()
        note(Change("added", "trust", trust.slug))
    elif fields := _update(trust, {"name": d.trust.name, "policy": _plain(d.trust.policy)}):
        note(Change("changed", "trust", trust.slug, fields))
    _refuse_other_trusts(s, d, trust.id)

    schools = {x.slug: x for x in s.exec(select(School).where(School.trust_id == trust.id))}
    school_ids: dict[str, int] = {}
    for e in d.schools:
        wanted = {"name": e.name, "nation": e.nation, "timezone": e.timezone,
                  "reference_prefix": e.reference_prefix, "slack_team_id": e.slack_team_id,
                  "teams_tenant_id": e.teams_tenant_id, "policy": _plain(e.policy),
                  "closures": sorted({c.isoformat() for c in e.closures})}
        row = schools.get(e.slug)
        if row is None:
            row = School(trust_id=trust.id, slug=e.slug, **wanted)
            s.add(row)
            s.flush()
            note(Change("added", "school", e.slug))
        elif fields := _update(row, wanted):
            note(Change("changed", "school", e.slug, fields))
        school_ids[e.slug] = row.id
    for slug in sorted(set(schools) - set(school_ids)):
        note(Change("missing", "school", slug))

    # Keyed lower-case: rows written by other code may not have normalised their email.
    people = {p.email.lower(): p for p in s.exec(select(Person).where(Person.trust_id == trust.id))}
    listed = [(p, None) for p in d.trust.people] + [(p, school_ids[x.slug]) for x in d.schools for p in x.people]
    for entry, school_id in listed:
        _apply_person(s, trust.id, school_id, entry, people.get(entry.email), note)
    in_file = {p.email for p, _ in listed}
    for email in sorted(set(people) - in_file):
        if _deactivate(s, people[email]):
            note(Change("removed", "person", email))

    s.flush()
    audit(s, "directory.loaded", details={"trust_id": trust.id, **result.counts()})
    return result


def _refuse_other_trusts(s: Session, d: DirectoryFile, trust_id: int) -> None:
    # Slugs and emails are unique across the database; taking them from another trust
    # silently would let two directory files fight over the same school or person.
    problems = []
    for si, e in enumerate(d.schools):
        other = s.exec(select(School).where(School.slug == e.slug, School.trust_id != trust_id)).first()
        if other:
            problems.append(f"schools[{si}].slug: school {e.slug!r} belongs to another trust in the database")
    entries = [(f"trust.people[{i}]", p) for i, p in enumerate(d.trust.people)]
    entries += [(f"schools[{si}].people[{pi}]", p) for si, x in enumerate(d.schools) for pi, p in enumerate(x.people)]
    emails = [p.email for _, p in entries]
    clash = {e.lower() for e in s.exec(select(Person.email).where(func.lower(Person.email).in_(emails),
                                                                  Person.trust_id != trust_id))}
    problems += [f"{where}.email: {p.email!r} belongs to another trust in the database"
                 for where, p in entries if p.email in clash]
    if problems:
        raise DirectoryError(problems)


def _roles_of(s: Session, person_id: int) -> list[RoleAssignment]:
    return list(s.exec(select(RoleAssignment).where(RoleAssignment.person_id == person_id)))


def _apply_person(s: Session, trust_id: int, school_id: int | None, e: PersonEntry,
                  row: Person | None, note) -> None:
    wanted = {"email": e.email, "name": e.name, "school_id": school_id, "slack_user_id": e.slack_user_id,
              "teams_aad_object_id": e.teams_aad_object_id, "active": True}
    if row is None:
        row = Person(trust_id=trust_id, **wanted)
        s.add(row)
        s.flush()
        fields, added = [], True
    else:
        fields, added = [f.removesuffix("_id") if f == "school_id" else f for f in _update(row, wanted)], False

    have = {(r.role, r.school_id): r for r in _roles_of(s, row.id)}
    want = {(r, school_id) for r in e.roles}
    for key in sorted(set(have) - want, key=str):
        s.delete(have[key])
    for role, sid in sorted(want - set(have)):
        s.add(RoleAssignment(person_id=row.id, school_id=sid, role=role))
    # A move between schools re-creates the same roles; only report roles really gained or lost.
    gained_all, lost_all = {r for r, _ in want - set(have)}, {r for r, _ in set(have) - want}
    gained, lost = sorted(gained_all - lost_all), sorted(lost_all - gained_all)
    if (gained or lost) and not added:
        fields.append("roles (" + ", ".join([f"+{r}" for r in gained] + [f"-{r}" for r in lost]) + ")")
    if added:
        note(Change("added", "person", e.email))
    elif fields:
        note(Change("changed", "person", e.email, fields))


def _deactivate(s: Session, person: Person) -> bool:
    roles = _roles_of(s, person.id)
    if not person.active and not roles:
        return False
    person.active = False
    for r in roles:
        s.delete(r)
    return True


def describe_directory(s: Session) -> list[str]:
    """The directory as text for an administrator's terminal (names included)."""
    from .models import Child

    lines: list[str] = []
    for trust in s.exec(select(Trust).order_by(Trust.slug)):
        lines.append(f"trust {trust.slug}: {trust.name}")
        people = list(s.exec(select(Person).where(Person.trust_id == trust.id).order_by(Person.email)))
        roles: dict[int, list[str]] = {}
        for r in s.exec(select(RoleAssignment).where(RoleAssignment.person_id.in_([p.id for p in people]))):
            roles.setdefault(r.person_id, []).append(r.role)

        def person_lines(school_id: int | None, indent: str) -> None:
            for p in people:
                if p.school_id == school_id:
                    ids = [f"slack {p.slack_user_id}"] if p.slack_user_id else []
                    ids += [f"teams {p.teams_aad_object_id}"] if p.teams_aad_object_id else []
                    state = "" if p.active else " (inactive)"
                    lines.append(f"{indent}{p.email}  {p.name}  [{', '.join(sorted(roles.get(p.id, [])))}]"
                                 + (f"  {'; '.join(ids)}" if ids else "") + state)

        person_lines(None, "  ")
        for sc in s.exec(select(School).where(School.trust_id == trust.id).order_by(School.slug)):
            pupils = s.exec(select(func.count()).select_from(Child)
                            .where(Child.school_id == sc.id, Child.active.is_(True))).one()
            lines.append(f"  school {sc.slug}: {sc.name} ({sc.nation}, {sc.timezone}, prefix {sc.reference_prefix}, "
                         f"{pupils} pupils)")
            person_lines(sc.id, "    ")
    return lines
