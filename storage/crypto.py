"""Encryption at rest for sensitive text (AES-256-GCM).

Stored form: ``sg1:<base64(nonce || ciphertext+tag)>`` (no associated data) or
``sg2:<base64(nonce || ciphertext+tag)>``, whose tag also covers associated data naming where
the value belongs (its table, column and row): the same ciphertext moved anywhere else no
longer decrypts. The prefix tells an encrypted value from anything else.
"""

from __future__ import annotations

import base64
import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "sg1:"
PREFIX_BOUND = "sg2:"
KEY_ENV = "SAFEGUARDING_DATA_KEY"
# A known plaintext stored in the database so that a wrong key is caught at start-up,
# before anything is read as garbage or written under a second key.
KEY_CHECK_PLAINTEXT = "safeguarding-bot key check v1"


class DataKeyError(Exception):
    """The data key is missing, malformed or not the one this database was written with."""


class DecryptionError(DataKeyError):
    pass


def generate_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def parse_key(text: str) -> bytes:
    text = text.strip()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:  # binascii.Error is a ValueError
        raise DataKeyError(f"{KEY_ENV} is not valid base64: expected 32 random bytes, base64-encoded") from exc
    if len(raw) != 32:
        raise DataKeyError(f"{KEY_ENV} must be 32 bytes base64-encoded (got {len(raw)} bytes); "
                           "create one with `safeguarding-bot db new-key`")
    return raw


def key_from_file(path: Path, *, create: bool) -> str:
    """Read the key file beside the SQLite database, creating it (mode 0600) on first run."""
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise DataKeyError(f"key file {path} is readable by others (mode {mode:o}); run: chmod 600 {path}")
        return path.read_text().strip()
    if not create:
        raise DataKeyError(f"no data key: set {KEY_ENV} or restore the key file {path}")
    key = generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key


class DataCipher:
    def __init__(self, key: str | bytes):
        raw = key if isinstance(key, bytes) else parse_key(key)
        self._aead = AESGCM(raw)

    def encrypt(self, plaintext: str, aad: str | None = None) -> str:
        """``aad`` names where the value is stored (e.g. ``"outboxmessage.payload:<key>"``);
        the same ``aad`` is needed to decrypt it."""
        nonce = secrets.token_bytes(12)
        data = plaintext.encode("utf-8")
        if aad is None:
            return PREFIX + base64.b64encode(nonce + self._aead.encrypt(nonce, data, None)).decode("ascii")
        blob = nonce + self._aead.encrypt(nonce, data, aad.encode("utf-8"))
        return PREFIX_BOUND + base64.b64encode(blob).decode("ascii")

    def decrypt(self, stored: str, aad: str | None = None) -> str:
        if stored.startswith(PREFIX_BOUND):
            if aad is None:
                raise DecryptionError("a bound value was read without saying where it belongs")
            body, ad = stored[len(PREFIX_BOUND):], aad.encode("utf-8")
        elif stored.startswith(PREFIX):
            body, ad = stored[len(PREFIX):], None
        else:
            # Never hand back stored text as if it were decrypted: that would be either
            # plaintext that should not be there or something we cannot vouch for.
            raise DecryptionError("a sensitive field is not in encrypted form; refusing to read it")
        blob = base64.b64decode(body)
        try:
            return self._aead.decrypt(blob[:12], blob[12:], ad).decode("utf-8")
        except InvalidTag as exc:
            if ad is not None:
                raise DecryptionError("cannot decrypt stored data: wrong key, or the value was moved from "
                                      "the row and column it was written for") from exc
            raise DecryptionError(
                f"cannot decrypt stored data: {KEY_ENV} (or the key file) is not the key this database was written with"
            ) from exc
