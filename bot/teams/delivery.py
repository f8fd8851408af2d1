"""Outbox delivery through Teams (the Transport protocol of bot/delivery.py).

- `reaches`: the person has a stored conversation reference that is not stale, or an AAD object id
  in a school with a Teams tenant (the 1:1 chat is then created with the tenant: the app must be
  installed for them, e.g. by an app setup policy).
- `deliver`: the Notice as an Adaptive Card (summary and fallback = the notification-safe text).
  An `alert_acknowledged` notice replaces (PUT) that recipient's own earlier alert card, so every
  DSL's copy shows who acknowledged and when. Returns {"conversation_id", "activity_id", ...},
  stored as OutboxMessage.platform_ref.
- 403/404 (the person blocked or removed the bot): the reference is marked stale (audited) and
  RecipientUnreachable lets the worker reach them another way. 429/503 are retried by the client
  middleware; what is left becomes TransientDeliveryError (the outbox tries again later).

Teams on: a `TeamsOutbound` (own SDK app and event loop) built on first use. `serve
--teams-playground`: the server's own app (no credentials, loopback only), attached at start-up.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from sqlmodel import select

from bot.delivery import RecipientUnreachable
from flows.notices import Notice
from storage.db import Store
from storage.models import ConversationRef, OutboxMessage, Person, School

log = logging.getLogger(__name__)

GLOBAL_SERVICE_URL = "https://smba.trafficmanager.net/teams/"


def alert_ref(store: Store, concern_id: int, recipient_id: int) -> dict | None:
    """Where the recipient's own concern_alert landed in Teams, if it did."""
    with store.session() as s:
        alert = s.exec(select(OutboxMessage).where(
            OutboxMessage.dedupe_key == f"alert:{concern_id}:{recipient_id}")).first()
        ref = dict(alert.platform_ref or {}) if alert and alert.transport in (None, "teams") else {}
    return ref if ref.get("conversation_id") and ref.get("activity_id") else None


class TeamsTransport:
    name = "teams"

    def __init__(self, settings, store: Store, outbound=None):
        self.settings, self.store = settings, store
        self._outbound = outbound
        self._lock = threading.Lock()

    # --- the sender (overridden for the playground)

    def outbound(self):
        with self._lock:
            if self._outbound is None:
                from .outbound import TeamsOutbound

                self._outbound = TeamsOutbound(self.settings, self.store)
            return self._outbound

    def _send(self, ref, act: dict) -> str:
        return self.outbound().send(ref, act)

    def _update(self, ref, activity_id: str, act: dict) -> str:
        return self.outbound().update(ref, activity_id, act)

    def _create(self, *, service_url: str, tenant_id: str, user_id: str) -> str:
        return self.outbound().create_conversation(service_url=service_url, tenant_id=tenant_id, user_id=user_id)

    def close(self) -> None:
        if self._outbound is not None:
            self._outbound.close()
            self._outbound = None

    # --- Transport protocol

    def reaches(self, store: Store, person: Person) -> bool:
        from .refs import get_ref

        ref = get_ref(store, person.id)
        if ref is not None:
            return not ref.stale
        return self._tenant_of(store, person) is not None and bool(person.teams_aad_object_id)

    def deliver(self, store: Store, msg: OutboxMessage, notice: Notice, person: Person) -> dict:
        from .outbound import delivery_error

        try:
            return self._deliver(store, msg, notice, person)
        except RecipientUnreachable:
            raise
        except Exception as exc:
            err = delivery_error(exc)
            if err is exc:
                raise
            raise err from None

    # --- internals

    @staticmethod
    def _tenant_of(store: Store, person: Person) -> str | None:
        if not person.school_id:
            return None
        with store.session() as s:
            school = s.get(School, person.school_id)
            return school.teams_tenant_id if school else None

    def _ref(self, store: Store, person: Person):
        from .refs import Ref, get_ref, save_ref

        ref = get_ref(store, person.id)
        if ref is not None:
            if ref.stale:
                raise RecipientUnreachable("Teams: the person's reference is stale (bot blocked or removed)")
            return ref
        tenant = self._tenant_of(store, person)
        if not tenant or not person.teams_aad_object_id:
            raise RecipientUnreachable("Teams: no conversation reference and no AAD object id")
        service_url = self._service_url_for(store, tenant)
        conv = self._create(service_url=service_url, tenant_id=tenant, user_id=person.teams_aad_object_id)
        saved = save_ref(store, person.id, {"conversation": {"id": conv, "tenantId": tenant}, "serviceUrl": service_url,
                                            "channelData": {"tenant": {"id": tenant}},
                                            "from": {"id": person.teams_aad_object_id,
                                                     "aadObjectId": person.teams_aad_object_id}})
        assert isinstance(saved, Ref)
        return saved

    @staticmethod
    def _service_url_for(store: Store, tenant: str) -> str:
        """The serviceUrl this tenant's users last wrote from (regional), else Microsoft's global one."""
        with store.session() as s:
            row = s.exec(select(ConversationRef).where(ConversationRef.tenant_id == tenant)
                         .order_by(ConversationRef.updated_at.desc())).first()
            return row.service_url if row else GLOBAL_SERVICE_URL

    def _deliver(self, store: Store, msg: OutboxMessage, notice: Notice, person: Person) -> dict:
        from . import cards  # the Teams SDK's card models: loaded only when Teams delivers

        ref = self._ref(store, person)
        act = cards.notice_activity(notice)
        if notice.kind == "alert_acknowledged" and notice.concern_id:
            earlier = alert_ref(store, notice.concern_id, person.id)
            if earlier and earlier["conversation_id"] == ref.conversation_id:
                self._update(ref, earlier["activity_id"], act)
                return {"conversation_id": ref.conversation_id, "activity_id": earlier["activity_id"],
                        "service_url": ref.service_url, "updated": True}
        activity_id = self._send(ref, act)
        return {"conversation_id": ref.conversation_id, "activity_id": activity_id, "service_url": ref.service_url}


class ServerAppTransport(TeamsTransport):
    """Delivery through the Teams app of the running server (used by `serve --teams-playground`,
    whose app has no credentials and talks only to loopback)."""

    def __init__(self, settings, store: Store):
        super().__init__(settings, store)

    def reaches(self, store: Store, person: Person) -> bool:
        return _SERVER.get("app") is not None and super().reaches(store, person)

    def _run(self, coro) -> Any:
        loop = _SERVER.get("loop")
        if loop is None:
            coro.close()
            raise RecipientUnreachable("Teams: the server's app is not running")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(120)

    def _send(self, ref, act: dict) -> str:
        from .client import send_to_person

        return self._run(send_to_person(_SERVER["app"], ref, act, store=self.store))

    def _update(self, ref, activity_id: str, act: dict) -> str:
        from .client import update_activity

        return self._run(update_activity(_SERVER["app"], ref, activity_id, act, store=self.store))

    def _create(self, *, service_url: str, tenant_id: str, user_id: str) -> str:
        from .client import create_personal_conversation

        return self._run(create_personal_conversation(_SERVER["app"], service_url=service_url, tenant_id=tenant_id,
                                                      user_id=user_id))

    def close(self) -> None:
        return None


_SERVER: dict[str, Any] = {}
_PLAYGROUND = {"on": False}


def enable_playground_delivery() -> None:
    """`serve --teams-playground`: the worker delivers through the server's own app."""
    _PLAYGROUND["on"] = True


def attach_server_app(app, loop) -> None:
    _SERVER.update(app=app, loop=loop)


def detach_server_app(app) -> None:
    if _SERVER.get("app") is app:
        _SERVER.clear()


def build_transport(settings, store: Store | None = None):
    """The Teams transport, or None when Teams is not configured (and not in playground mode)."""
    from .config import teams_config

    if _PLAYGROUND["on"]:
        return ServerAppTransport(settings, store)
    if not teams_config(settings).on:
        return None
    return TeamsTransport(settings, store)
