"""Opening the configured store for a command, with errors a person can act on."""

from __future__ import annotations

import logging

from bot.settings import Settings, load_settings
from storage.db import Store


def open_store(settings: Settings | None = None, *, upgrade: bool | None = None) -> Store:
    settings = settings or load_settings()
    return Store.open(settings.database_url, settings.data_key(), upgrade=upgrade)


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Platform SDKs log whole payloads (concern text) at DEBUG: keep them quiet whatever our level.
    for noisy in ("microsoft_teams", "slack_bolt", "slack_sdk", "httpx", "httpcore", "urllib3", "msal", "aiohttp"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
