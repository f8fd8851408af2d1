"""Stored Teams conversation references: where to reach a person proactively, days later."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import select

from storage.chain import audit
from storage.db import Store
from storage.models import ConversationRef, utcnow


@dataclass(frozen=True)
class Ref:
    """A plain copy of a stored reference (safe to use outside the session)."""

    person_id: int
    conversation_id: str
    service_url: str
    tenant_id: str
    teams_user_id: str
    aad_object_id: str | None
    stale: bool


def _as_dict(activity: Any) -> dict:
    if isinstance(activity, dict):
        return activity
    return activity.model_dump(by_alias=True, exclude_none=True, mode="json")


def _get(d: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


def ref_fields(activity: Any) -> dict:
    """The reference fields of an inbound activity (SDK model or Teams JSON)."""
    a = _as_dict(activity)
    tenant = _get(a, "channelData", "tenant", "id") or _get(a, "conversation", "tenantId")
    fields = dict(conversation_id=_get(a, "conversation", "id"), service_url=a.get("serviceUrl"),
                  tenant_id=tenant, teams_user_id=_get(a, "from", "id"),
                  aad_object_id=_get(a, "from", "aadObjectId"))
    missing = [k for k, v in fields.items() if k != "aad_object_id" and not v]
    if missing:
        raise ValueError(f"activity lacks {', '.join(missing)}")
    return fields


def _copy(row: ConversationRef) -> Ref:
    return Ref(person_id=row.person_id, conversation_id=row.conversation_id, service_url=row.service_url,
               tenant_id=row.tenant_id, teams_user_id=row.teams_user_id, aad_object_id=row.aad_object_id,
               stale=row.stale)


def save_ref(store: Store, person_id: int, activity: Any) -> Ref:
    """Insert or refresh the person's reference from a 1:1 activity; clears `stale`."""
    fields = ref_fields(activity)
    with store.session() as s:
        row = s.get(ConversationRef, person_id)
        if row is None:
            row = ConversationRef(person_id=person_id, **fields)
        else:
            for k, v in fields.items():
                setattr(row, k, v)
        row.stale = False
        row.updated_at = utcnow()
        s.add(row)
        s.flush()
        return _copy(row)


def get_ref(store: Store, person_id: int) -> Ref | None:
    with store.session() as s:
        row = s.get(ConversationRef, person_id)
        return _copy(row) if row else None


def mark_stale(store: Store, person_id: int, reason: str) -> bool:
    """Mark the reference stale (the person blocked or removed the bot) and record it in the audit
    trail. Returns False if there was no reference. `reason` is a short code, never content."""
    with store.session() as s:
        row = s.get(ConversationRef, person_id)
        if row is None:
            return False
        was_stale = row.stale
        row.stale = True
        row.updated_at = utcnow()
        s.add(row)
        audit(s, "teams.ref_stale", actor_id=None,
              details={"person_id": person_id, "reason": reason, "already_stale": was_stale})
        return True


def stale_person_ids(store: Store) -> list[int]:
    with store.session() as s:
        return list(s.exec(select(ConversationRef.person_id).where(ConversationRef.stale == True)))  # noqa: E712
