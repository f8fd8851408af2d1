"""Which school and person a Teams user is: the user's AAD (Entra ID) object id in the
directory, in a school of the activity's tenant (a school with `teams_tenant_id` set accepts only
that tenant); failing that, their email from Teams (the conversation member's email or UPN)
matched to the directory, after which the object id is remembered. Unknown people are told whom
to ask; nothing they typed is lost."""

from __future__ import annotations

import time

from sqlmodel import select

from storage.db import Store
from storage.models import DSL_TEAM, Person, School
from storage.people import people_with_roles, person_by_aad

TTL = 60.0


class TeamsDirectory:
    def __init__(self, store: Store):
        self.store = store
        self._cache: dict[tuple[str, str], tuple[float, int]] = {}
        self._misses: dict[tuple[str, str], float] = {}

    def forget(self) -> None:
        self._cache.clear()
        self._misses.clear()

    def person_id(self, aad_object_id: str | None, tenant_id: str | None) -> int | None:
        if not aad_object_id:
            return None
        key = (tenant_id or "", aad_object_id)
        hit = self._cache.get(key)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        with self.store.session() as s:
            p = person_by_aad(s, aad_object_id)
            if p is None:
                return None
            school = s.get(School, p.school_id) if p.school_id else None
            if school is not None and school.teams_tenant_id and tenant_id and school.teams_tenant_id != tenant_id:
                return None  # the same object id in another tenant is somebody else
            pid = p.id
        self._cache[key] = (time.monotonic() + TTL, pid)
        return pid

    def cached(self, aad_object_id: str | None, tenant_id: str | None) -> bool:
        hit = self._cache.get((tenant_id or "", aad_object_id or ""))
        return bool(hit and hit[0] > time.monotonic())

    def missed_recently(self, aad_object_id: str, tenant_id: str | None) -> bool:
        until = self._misses.get((tenant_id or "", aad_object_id), 0.0)
        return until > time.monotonic()

    def remember_miss(self, aad_object_id: str, tenant_id: str | None) -> None:
        self._misses[(tenant_id or "", aad_object_id)] = time.monotonic() + TTL

    def link_email(self, email: str, aad_object_id: str, tenant_id: str | None) -> int | None:
        """A directory person with this email (the user's Teams member email or UPN), in a school of
        this tenant and not yet linked to another Teams user: remember their AAD object id."""
        with self.store.session() as s:
            p = s.exec(select(Person).where(Person.email == email.strip().lower(), Person.active)).first()
            if p is None:
                return None
            school = s.get(School, p.school_id) if p.school_id else None
            if school is not None and school.teams_tenant_id and tenant_id and school.teams_tenant_id != tenant_id:
                return None
            if p.teams_aad_object_id and p.teams_aad_object_id != aad_object_id:
                return None  # linked to someone else's account: an admin must sort it out
            p.teams_aad_object_id = aad_object_id
            s.add(p)
            pid = p.id
        self._cache[(tenant_id or "", aad_object_id)] = (time.monotonic() + TTL, pid)
        return pid

    def _school_for(self, s, pid: int | None, tenant_id: str | None) -> School | None:
        if pid is not None:
            p = s.get(Person, pid)
            if p is not None and p.school_id:
                return s.get(School, p.school_id)
        if tenant_id:
            schools = list(s.exec(select(School).where(School.teams_tenant_id == tenant_id)).all())
            if len(schools) == 1:
                return schools[0]
        return None

    def _dsl_names(self, s, school: School | None) -> list[str]:
        if school is None:
            return []
        return [p.name or p.email for p in people_with_roles(s, school.id, DSL_TEAM)]

    def whom_to_ask(self, tenant_id: str | None) -> str:
        with self.store.session() as s:
            names = self._dsl_names(s, self._school_for(s, None, tenant_id))
        who = (" or ".join(names[:3]) + " (safeguarding team)") if names else "your designated safeguarding lead (DSL)"
        return ("You are not in the safeguarding directory yet, so a concern cannot be routed from your Teams account. "
                f"Please ask {who} or whoever runs safeguarding-bot at your school to add you with your Microsoft 365 "
                "account. Nothing you wrote is lost: nothing was sent, and your answers are still on this card. "
                "If a child is in immediate danger, call 999 now and find the safeguarding lead in person.")

    def greeting(self, pid: int | None, tenant_id: str | None) -> list[str]:
        with self.store.session() as s:
            school = self._school_for(s, pid, tenant_id)
            names = self._dsl_names(s, school)
            where = school.name if school else "your school"
        alerts = (f"When you report a concern I alert {', '.join(names)} (the safeguarding team at {where}) in a "
                  "private chat, never in a channel." if names else
                  f"When you report a concern I alert the safeguarding team at {where} in a private chat, never in "
                  "a channel.")
        lines = ["Hello. I help staff tell the designated safeguarding lead (DSL) about a worry about a child, "
                 "privately, in about two minutes.", alerts,
                 "Type “report a concern” to start, “my reports” to see what happened to yours, or “help”.",
                 "If a child is in immediate danger, call 999 first and find the safeguarding lead in person."]
        if pid is None:
            lines.append(self.whom_to_ask(tenant_id))
        return lines
