"""How an outbox message reaches a person: one Transport per platform.

The worker (bot/worker.py) picks the first transport that `reaches` the recipient, composes
the transport-neutral Notice (flows.notices.compose) and calls `deliver`. A message is marked
sent only after `deliver` returns, i.e. after the platform accepted it.

- `deliver` returns a dict saved as OutboxMessage.platform_ref (e.g. Slack channel + ts,
  Teams conversation id + activity id) so that later messages can update it in place.
- TransientDeliveryError: try again later with backoff (429, 5xx, timeouts, network).
- RecipientUnreachable: this transport cannot reach the person (blocked the bot, removed the
  app, unknown user); the worker tries the next transport, then another route.
"""

from __future__ import annotations

from typing import Protocol

from storage.db import Store
from storage.models import OutboxMessage, Person

from flows.notices import Notice


class DeliveryError(Exception):
    """Message is safe to log: no concern content."""


class TransientDeliveryError(DeliveryError):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class RecipientUnreachable(DeliveryError):
    pass


class Transport(Protocol):
    name: str

    def reaches(self, store: Store, person: Person) -> bool: ...

    def deliver(self, store: Store, msg: OutboxMessage, notice: Notice, person: Person) -> dict: ...


class ConsoleTransport:
    """People with no Slack or Teams identity read their notices in `safeguarding-bot chat`
    (flows.queries.inbox); for them, queuing is delivery."""

    name = "console"

    def reaches(self, store: Store, person: Person) -> bool:
        return True

    def deliver(self, store: Store, msg: OutboxMessage, notice: Notice, person: Person) -> dict:
        return {"inbox": True}


PLATFORM_TRANSPORTS = ("bot.slack.delivery", "bot.teams.delivery")


def transports(settings, store: Store) -> list[Transport]:
    """The transports the worker tries, in order: each platform module that exists and whose
    ``build_transport(settings, store)`` returns one (None: that platform is not configured),
    then the console, which reaches everyone (their `safeguarding-bot chat` inbox)."""
    import importlib
    import logging

    log = logging.getLogger(__name__)
    found: list[Transport] = []
    for name in PLATFORM_TRANSPORTS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):  # the module (or its package) is not written yet
                continue
            raise
        build = getattr(module, "build_transport", None)
        if build is None:
            continue
        try:
            transport = build(settings, store)
        except Exception as exc:  # a misconfigured platform must not stop the other routes
            log.error("transport %s could not start (%s): its recipients fall through to the next route",
                      name, type(exc).__name__)
            continue
        if transport is not None:
            found.append(transport)
    found.append(ConsoleTransport())
    return found
