"""Outbox delivery through Slack: a private DM per person (conversations.open +
chat.postMessage). The notification `text` is Notice.text only (no child name, no detail);
the body is Block Kit from the Notice. An acknowledgement updates (chat.update) the
recipient's own alert, so that every copy shows who acknowledged and when.

Called by the worker in a thread (synchronous). slack_sdk's retry handlers retry 429 (after
Retry-After) and 5xx a few times; when they give up, TransientDeliveryError lets the worker
try again later. Nothing here logs concern content."""

from __future__ import annotations

import logging
import urllib.error
from socket import timeout as SocketTimeout

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import (ConnectionErrorRetryHandler, RateLimitErrorRetryHandler,
                                                   ServerErrorRetryHandler)
from sqlmodel import select

from bot.delivery import RecipientUnreachable, TransientDeliveryError
from flows.notices import Notice
from storage.db import Store
from storage.models import OutboxMessage, Person, School

from . import render

log = logging.getLogger(__name__)

UNREACHABLE = {"user_not_found", "users_not_found", "cannot_dm_bot", "user_disabled", "account_inactive",
               "channel_not_found", "is_archived", "not_in_channel", "cannot_dm", "messages_tab_disabled",
               "user_is_restricted", "user_is_bot", "restricted_action", "team_access_not_granted"}
UPDATE_GONE = {"message_not_found", "cant_update_message", "channel_not_found", "edit_window_closed"}


class SlackTransport:
    name = "slack"

    def __init__(self, client: WebClient):
        self.client = client

    # -- Transport protocol

    def reaches(self, store: Store, person: Person) -> bool:
        if person.slack_user_id:
            return True
        if person.school_id is None or not person.email:
            return False
        with store.session() as s:
            school = s.get(School, person.school_id)
            return bool(school and school.slack_team_id)

    def deliver(self, store: Store, msg: OutboxMessage, notice: Notice, person: Person) -> dict:
        try:
            return self._deliver(store, msg, notice, person)
        except SlackApiError as exc:
            raise self._classify(exc) from None
        except (SlackClientError, urllib.error.URLError, SocketTimeout, ConnectionError, OSError) as exc:
            raise TransientDeliveryError(f"slack unreachable: {type(exc).__name__}") from None

    # -- internals

    def _user_id(self, store: Store, person: Person) -> str:
        if person.slack_user_id:
            return person.slack_user_id
        resp = self._call("users_lookupByEmail", email=person.email)
        uid = resp["user"]["id"]
        with store.session() as s:  # remember it: next time no look-up
            p = s.get(Person, person.id)
            p.slack_user_id = uid
            s.add(p)
        person.slack_user_id = uid
        return uid

    def _call(self, method: str, **kw):
        return getattr(self.client, method)(**kw)

    def _deliver(self, store: Store, msg: OutboxMessage, notice: Notice, person: Person) -> dict:
        uid = self._user_id(store, person)
        blocks = render.notice_blocks(notice)
        if notice.kind == "alert_acknowledged" and notice.concern_id:
            ref = self._alert_ref(store, notice.concern_id, person.id)
            if ref:
                try:
                    self._call("chat_update", channel=ref["channel"], ts=ref["ts"], text=notice.text, blocks=blocks)
                    return {"channel": ref["channel"], "ts": ref["ts"], "updated": True}
                except SlackApiError as exc:
                    if exc.response.get("error") not in UPDATE_GONE:
                        raise
                    # the alert is gone (deleted by the user): say it in a new message instead
        channel = self._call("conversations_open", users=uid)["channel"]["id"]
        resp = self._call("chat_postMessage", channel=channel, text=notice.text, blocks=blocks, unfurl_links=False,
                          unfurl_media=False)
        return {"channel": resp.get("channel", channel), "ts": resp["ts"]}

    @staticmethod
    def _alert_ref(store: Store, concern_id: int, recipient_id: int) -> dict | None:
        with store.session() as s:
            alert = s.exec(select(OutboxMessage).where(
                OutboxMessage.dedupe_key == f"alert:{concern_id}:{recipient_id}")).first()
            ref = dict(alert.platform_ref or {}) if alert else {}
        return ref if ref.get("channel") and ref.get("ts") else None

    @staticmethod
    def _classify(exc: SlackApiError):
        status = getattr(exc.response, "status_code", None) or 200
        error = exc.response.get("error") if hasattr(exc.response, "get") else None
        if status == 429 or error == "ratelimited":
            retry_after = None
            try:
                retry_after = float(exc.response.headers.get("retry-after") or exc.response.headers.get("Retry-After"))
            except (TypeError, ValueError, AttributeError):
                pass
            return TransientDeliveryError("slack rate limited", retry_after=retry_after)
        if status >= 500:
            return TransientDeliveryError(f"slack server error {status}")
        if error in UNREACHABLE:
            return RecipientUnreachable(f"slack cannot reach this person: {error}")
        return TransientDeliveryError(f"slack refused: {error or status}")


def web_client(settings) -> WebClient:
    return WebClient(token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url, timeout=15,
                     retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=1),
                                     RateLimitErrorRetryHandler(max_retry_count=1),
                                     ServerErrorRetryHandler(max_retry_count=2)])


def build_transport(settings, store: Store | None = None) -> SlackTransport | None:
    """The Slack transport, or None when SLACK_BOT_TOKEN is not set."""
    if not settings.slack_bot_token:
        return None
    return SlackTransport(web_client(settings))
