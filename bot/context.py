"""Opening the configured store for a command, with errors a person can act on."""

from __future__ import annotations

import logging

from bot.settings import Settings, load_settings
from storage.db import Store


def open_store(settings: Settings | None = None, *, upgrade: bool | None = None) -> Store:
    settings = settings or load_settings()
    return Store.open(settings.database_url, settings.data_key(), upgrade=upgrade)


class WithholdSdkErrorText(logging.Filter):
    """The Teams SDK logs `str(exception)` when it cannot handle an activity, and a pydantic
    validation error quotes its input: the activity, i.e. what someone typed about a child.
    Keep the fact and the exception's type; withhold the text and the traceback."""

    PREFIXES = ("microsoft_teams",)

    MARK = "(message withheld: it may quote activity content)"

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "withheld", False):  # another handler's filter already did it
            return True
        if record.name.startswith(self.PREFIXES) and record.levelno >= logging.WARNING and (
                record.exc_info or record.levelno >= logging.ERROR):
            kind = record.exc_info[1].__class__.__name__ if record.exc_info and record.exc_info[1] else "error"
            record.msg, record.args = f"{kind} {self.MARK}", ()
            record.exc_info, record.exc_text, record.stack_info = None, None, None
            record.withheld = True
        return True


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # handler filters see records from every logger
        if not any(isinstance(f, WithholdSdkErrorText) for f in handler.filters):
            handler.addFilter(WithholdSdkErrorText())
    # Platform SDKs log whole payloads (concern text) at DEBUG: keep them quiet whatever our level.
    for noisy in ("microsoft_teams", "slack_bolt", "slack_sdk", "httpx", "httpcore", "urllib3", "msal", "aiohttp"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
