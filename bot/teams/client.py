"""Outbound to the Bot Connector: the HTTP client the SDK uses, its retry middleware, the bot's
own token source, and the proactive send/update helpers.

- 429 and 503 are retried honouring `Retry-After`, at most `ATTEMPTS` tries and `MAX_WAIT_SECONDS`
  per wait (the SDK retries nothing).
- 403 / 404 on a conversation call (the user blocked or removed the bot) become
  `RecipientUnreachable`.
- The clients keep their environment trust: httpx and requests (msal) honour HTTPS_PROXY,
  NO_PROXY, SSL_CERT_FILE and REQUESTS_CA_BUNDLE, which school networks need.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import threading
import time
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

import httpx
from microsoft_teams.common import Client, ClientOptions

from bot.teams.config import is_loopback

log = logging.getLogger(__name__)

ATTEMPTS = 4
MAX_WAIT_SECONDS = 30.0
REQUEST_TIMEOUT_SECONDS = 15.0
LOGIN_ENDPOINT = "https://login.microsoftonline.com"  # Microsoft's; no setting redirects it
BOT_SCOPE = "https://api.botframework.com/.default"


class TeamsSendError(Exception):
    """A send to Teams failed; the outbox may try again later."""


class TokenUnavailable(TeamsSendError):
    """The bot could not get its own token from Microsoft Entra ID (nothing was sent)."""


class RecipientUnreachable(httpx.HTTPStatusError):
    """403/404 from the connector: the person blocked or removed the bot, or the conversation is gone.
    The stored reference should be marked stale and the message delivered another way."""


class OutboundRefused(TeamsSendError):
    """Playground mode only talks to loopback addresses."""


def retry_after_seconds(response: httpx.Response, attempt: int) -> float:
    """Seconds to wait before the next try: `Retry-After` (seconds or HTTP date) or exponential backoff."""
    value = response.headers.get("retry-after")
    wait: float | None = None
    if value:
        value = value.strip()
        try:
            wait = float(value)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
                wait = when.timestamp() - time.time()
            except (TypeError, ValueError):
                wait = None
    if wait is None:
        wait = min(2 ** (attempt - 1), 8) + random.uniform(0, 0.25)
    return max(0.0, min(wait, MAX_WAIT_SECONDS))


class ConnectorMiddleware:
    """`Client.use(...)` middleware around every connector call the SDK makes."""

    def __init__(self, *, attempts: int = ATTEMPTS, loopback_only: bool = False,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep):
        self.attempts = attempts
        self.loopback_only = loopback_only
        self._sleep = sleep

    async def send(self, context, next):  # noqa: A002 (the SDK's name)
        if self.loopback_only:
            host = urlsplit(str(context.url)).hostname or ""
            if not is_loopback(host):
                raise OutboundRefused("playground mode sends only to loopback addresses")
        attempt = 1
        while True:
            try:
                return await next()
            except httpx.HTTPStatusError as exc:
                status = exc.response.status_code
                if status in (429, 503) and attempt < self.attempts:
                    wait = retry_after_seconds(exc.response, attempt)
                    log.warning("Teams connector answered %s; retry %d/%d in %.1fs", status, attempt,
                                self.attempts - 1, wait)
                    attempt += 1
                    await self._sleep(wait)
                    continue
                if status in (403, 404) and "/v3/conversations" in str(exc.request.url):
                    raise RecipientUnreachable(f"Teams connector answered {status}", request=exc.request,
                                               response=exc.response) from None
                raise


def make_client(*, loopback_only: bool = False) -> Client:
    """The SDK HTTP client for `App(client=...)`: default httpx environment trust, our middleware."""
    client = Client(ClientOptions(timeout=REQUEST_TIMEOUT_SECONDS))
    client.use(ConnectorMiddleware(loopback_only=loopback_only))
    return client


class MsalTokenSource:
    """The bot's outbound token (client credentials for our single tenant), as the SDK's
    `token=` provider. msal builds and discovers its authority and fetches tokens in a worker
    thread (the SDK would do the discovery on the event loop) and caches tokens until expiry.
    A failure raises `TokenUnavailable`; the next call tries again."""

    def __init__(self, app_id: str, password: str, tenant_id: str):
        self._app_id = app_id
        self._password = password
        self._tenant_id = tenant_id
        self._cca = None
        self._lock = threading.Lock()

    def _acquire(self, scope: str) -> str:
        import msal

        with self._lock:
            try:
                if self._cca is None:
                    self._cca = msal.ConfidentialClientApplication(
                        self._app_id, client_credential=self._password,
                        authority=f"{LOGIN_ENDPOINT}/{self._tenant_id}", timeout=REQUEST_TIMEOUT_SECONDS)
                result = self._cca.acquire_token_for_client([scope])
            except Exception as exc:  # network errors, an unreachable authority
                raise TokenUnavailable(f"cannot get the bot's token: {type(exc).__name__}") from None
        token = result.get("access_token") if isinstance(result, dict) else None
        if not token:
            err = result.get("error") if isinstance(result, dict) else None
            raise TokenUnavailable(f"cannot get the bot's token: {err or 'no access token'}")
        return token

    async def __call__(self, scope: str | None = None, tenant_id: str | None = None) -> str:
        return await asyncio.to_thread(self._acquire, scope or BOT_SCOPE)


# --- proactive sends through a stored reference -------------------------------------------

class StaleReference(TeamsSendError):
    """The stored reference is marked stale: reach the person another way."""


def as_activity(activity: Any):
    """str, an AdaptiveCard, a dict of activity JSON, or an SDK activity -> an SDK message activity."""
    from microsoft_teams.api import MessageActivityInput
    from microsoft_teams.cards import AdaptiveCard

    if isinstance(activity, str):
        return MessageActivityInput(text=activity)
    if isinstance(activity, AdaptiveCard):
        return MessageActivityInput().add_card(activity)
    if isinstance(activity, dict):
        return MessageActivityInput.model_validate({"type": "message", **activity})
    return activity.model_copy(deep=True)


async def _guarded(app, ref, store, call) -> str:
    if getattr(ref, "stale", False):
        raise StaleReference("the person's Teams reference is stale")
    try:
        return await call()
    except RecipientUnreachable:
        if store is not None and getattr(ref, "person_id", None) is not None:
            from bot.teams.refs import mark_stale

            await asyncio.to_thread(mark_stale, store, ref.person_id, "recipient_unreachable")
        raise
    except httpx.HTTPStatusError as exc:
        raise TeamsSendError(f"Teams connector answered {exc.response.status_code}") from None
    except httpx.TransportError as exc:
        raise TeamsSendError(f"Teams connector unreachable: {type(exc).__name__}") from None


def _scoped_api(app, ref):
    return app.api.clone(service_url=ref.service_url)


def _stamp(app, ref, act):
    from microsoft_teams.api import Account, ConversationAccount

    act.conversation = ConversationAccount(id=ref.conversation_id)
    if app.id:
        act.from_ = Account(id=app.id)
    return act


async def send_to_person(app, ref, activity, *, store=None) -> str:
    """Send a 1:1 message through a stored reference (conversation id + serviceUrl); return the new
    activity id (keep it to update the message in place later). With `store`, a 403/404 marks the
    reference stale (audited) before `RecipientUnreachable` propagates."""
    act = _stamp(app, ref, as_activity(activity))

    async def call() -> str:
        sent = await _scoped_api(app, ref).conversations.create_activity(ref.conversation_id, act)
        return sent.id

    return await _guarded(app, ref, store, call)


async def update_activity(app, ref, activity_id: str, activity, *, store=None) -> str:
    """Replace a message the bot sent earlier (PUT .../activities/{activity_id}), e.g. a card."""
    act = _stamp(app, ref, as_activity(activity))
    act.id = activity_id

    async def call() -> str:
        sent = await _scoped_api(app, ref).conversations.update_activity(ref.conversation_id, activity_id, act)
        return sent.id

    return await _guarded(app, ref, store, call)


async def create_personal_conversation(app, *, service_url: str, tenant_id: str, user_id: str) -> str:
    """Open (or find) the 1:1 chat with a user who never wrote to the bot (the app must be installed
    for them, e.g. by an app setup policy). Returns the conversation id to store."""
    from microsoft_teams.api import Account
    from microsoft_teams.api.clients.conversation.params import CreateConversationParams

    extra = {"isGroup": False, **({"bot": {"id": app.id}} if app.id else {})}
    params = CreateConversationParams(members=[Account(id=user_id)], tenant_id=tenant_id,
                                      channel_data={"tenant": {"id": tenant_id}}, **extra)
    try:
        res = await app.api.clone(service_url=service_url).conversations.create(params)
    except RecipientUnreachable:
        raise
    except httpx.HTTPStatusError as exc:
        raise TeamsSendError(f"Teams connector answered {exc.response.status_code}") from None
    except httpx.TransportError as exc:
        raise TeamsSendError(f"Teams connector unreachable: {type(exc).__name__}") from None
    return res.id
