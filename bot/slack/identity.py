"""Which directory person a Slack user is: their Slack user id, else their Slack email
(users.info) matched to the directory. Unknown people are told whom to ask."""

from __future__ import annotations

import asyncio
import logging
import time

from slack_sdk.errors import SlackApiError
from sqlmodel import select

from flows import queries
from storage.db import Store
from storage.models import DSL_TEAM, Person, School
from storage.people import people_with_roles

log = logging.getLogger(__name__)
TTL = 60.0


class Directory:
    def __init__(self, store: Store):
        self.store = store
        self._cache: dict[tuple[str, str], tuple[float, int]] = {}

    def forget(self) -> None:
        self._cache.clear()

    def cached(self, team_id: str | None, user_id: str) -> int | None:
        hit = self._cache.get((team_id or "", user_id))
        return hit[1] if hit and hit[0] > time.monotonic() else None

    async def person_id(self, client, team_id: str | None, user_id: str) -> int | None:
        key = (team_id or "", user_id)
        hit = self._cache.get(key)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        person = await asyncio.to_thread(queries.who, self.store, slack_user_id=user_id, slack_team_id=team_id)
        if person is None:
            person = await self._by_email(client, team_id, user_id)
        if person is None:
            return None
        self._cache[key] = (time.monotonic() + TTL, person.id)
        return person.id

    async def _by_email(self, client, team_id, user_id) -> Person | None:
        try:
            resp = await client.users_info(user=user_id)
        except SlackApiError as exc:
            log.warning("users.info failed for a Slack user: %s", exc.response.get("error"))
            return None
        email = ((resp.get("user") or {}).get("profile") or {}).get("email")
        if not email:
            return None
        return await asyncio.to_thread(self._link, email, user_id, team_id)

    def _link(self, email: str, user_id: str, team_id: str | None) -> Person | None:
        """A directory person with this email, in a school of this Slack workspace: remember the id."""
        with self.store.session() as s:
            p = s.exec(select(Person).where(Person.email == email.strip().lower(), Person.active)).first()
            if p is None:
                return None
            school = s.get(School, p.school_id) if p.school_id else None
            if team_id and school is not None and school.slack_team_id not in (None, team_id):
                return None
            if p.slack_user_id != user_id:
                p.slack_user_id = user_id
                s.add(p)
            return p

    def whom_to_ask(self, team_id: str | None) -> str:
        with self.store.session() as s:
            school = s.exec(select(School).where(School.slack_team_id == team_id)).first() if team_id else None
            names = [p.name or p.email for p in people_with_roles(s, school.id, DSL_TEAM)] if school else []
        who = (" or ".join(names[:3]) + " (safeguarding team)") if names else "your designated safeguarding lead (DSL)"
        return ("You are not in the safeguarding directory yet, so a concern cannot be routed from your account. "
                f"Please ask {who} or whoever runs safeguarding-bot at your school to add you, with the email "
                "address of your Slack account. Nothing you write is lost: nothing was saved yet. "
                "If a child is in immediate danger, call 999 now and find the safeguarding lead in person.")


def lookup_email_sync(client, email: str) -> str | None:
    """The Slack user id for a directory email (users.lookupByEmail), or None."""
    try:
        resp = client.users_lookupByEmail(email=email)
    except SlackApiError as exc:
        if exc.response.get("error") in ("users_not_found", "user_not_found"):
            return None
        raise
    return (resp.get("user") or {}).get("id")
