"""Synchronous proactive sends for code that is not async (the outbox worker, CLI commands).

`TeamsOutbound(settings, store)` owns a Teams SDK app (Teams on only) and an event loop in a
daemon thread; `send`, `update` and `create_conversation` block until Teams accepted the message
(after the connector middleware's bounded 429/503 retries) and raise the bot.teams.client errors.
`delivery_error(exc)` maps them onto bot.delivery's (transient: try later; unreachable: another route).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from bot.settings import Settings
from bot.teams.client import (RecipientUnreachable, StaleReference, TeamsSendError, create_personal_conversation,
                              send_to_person, update_activity)
from bot.teams.config import teams_config

CALL_TIMEOUT_SECONDS = 300.0  # above the middleware's worst case (4 tries, 30 s waits, 15 s requests)


class TeamsOutbound:
    def __init__(self, settings: Settings, store):
        from bot.teams.app import _build, start_teams_app

        cfg = teams_config(settings)
        if not cfg.on:
            raise ValueError("Teams is not configured (TEAMS_APP_ID, TEAMS_APP_PASSWORD, TEAMS_TENANT_ID)")
        self.store = store
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="teams-outbound", daemon=True)
        self._thread.start()
        self.app = _build(cfg)
        try:
            self._run(start_teams_app(self.app))
        except BaseException:
            self._stop_loop()
            raise

    def _run(self, coro) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(CALL_TIMEOUT_SECONDS)

    def send(self, ref, activity) -> str:
        """New 1:1 message through a stored reference; returns the activity id (keep it to update)."""
        return self._run(send_to_person(self.app, ref, activity, store=self.store))

    def update(self, ref, activity_id: str, activity) -> str:
        return self._run(update_activity(self.app, ref, activity_id, activity, store=self.store))

    def create_conversation(self, *, service_url: str, tenant_id: str, user_id: str) -> str:
        return self._run(create_personal_conversation(self.app, service_url=service_url, tenant_id=tenant_id,
                                                      user_id=user_id))

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def close(self) -> None:
        from bot.teams.app import stop_teams_app

        try:
            self._run(stop_teams_app(self.app))
        finally:
            self._stop_loop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def delivery_error(exc: BaseException) -> Exception:
    """The bot.delivery error for a Teams send failure (messages carry no content)."""
    from bot.delivery import RecipientUnreachable as Unreachable
    from bot.delivery import TransientDeliveryError

    if isinstance(exc, (RecipientUnreachable, StaleReference)):
        return Unreachable(f"Teams: {exc}")
    if isinstance(exc, TeamsSendError):
        return TransientDeliveryError(f"Teams: {exc}")
    return exc if isinstance(exc, Exception) else TransientDeliveryError(f"Teams: {type(exc).__name__}")
