"""Column types shared by the tables: UTC timestamps and encrypted text."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import DateTime, Text
from sqlalchemy.types import TypeDecorator

from .crypto import DataKeyError


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes on the way out, whatever the database keeps.

    SQLite has no time zones, PostgreSQL does; storing naive UTC on both keeps values
    (and therefore the audit hashes computed over them) identical across the two.
    """

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):  # defensive: raw SQLite text
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=timezone.utc)


def cipher_for(dialect):
    # Each engine gets its own dialect object; the Store hangs its cipher there so that two
    # databases with different keys can be open in one process (export, then import).
    cipher = getattr(dialect, "sg_cipher", None)
    if cipher is None:
        raise DataKeyError("no data key is configured for this database connection")
    return cipher


class EncryptedText(TypeDecorator):
    """Text encrypted with AES-GCM before it reaches the database."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return cipher_for(dialect).encrypt(str(value))

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return cipher_for(dialect).decrypt(value)
