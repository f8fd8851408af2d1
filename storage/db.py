"""Engines, sessions and the Store: one database plus the key that opens its sensitive text."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Iterator

from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, create_engine, select

from .crypto import KEY_CHECK_PLAINTEXT, KEY_ENV, DataCipher, DataKeyError, DecryptionError, key_from_file
from .models import Meta

MIGRATIONS = Path(__file__).parent / "migrations"


class DatabaseUnavailable(Exception):
    """The database cannot be reached or opened. Message is safe to show to a person."""


def normalise_url(url: str) -> str:
    # People paste postgres:// and postgresql:// URLs; we speak psycopg 3.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def is_sqlite(url: str) -> bool:
    return make_url(normalise_url(url)).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path | None:
    u = make_url(normalise_url(url))
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if is_sqlite(url):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            # Take over transaction control from pysqlite so BEGIN IMMEDIATE is possible.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            # Writers take the lock up front: a deferred transaction that later upgrades to a
            # write fails with SQLITE_BUSY instead of waiting when another writer is active.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def resolve_key(url: str, env_key: str | None) -> str:
    """The data key: from SAFEGUARDING_DATA_KEY, else the 0600 key file beside the SQLite file."""
    if env_key:
        return env_key
    path = sqlite_path(url)
    if path is None:
        raise DataKeyError(f"{KEY_ENV} must be set for this database (only an SQLite file can keep its key beside it)")
    key_path = path.with_name(path.name + ".key")
    return key_from_file(key_path, create=not path.exists() or path.stat().st_size == 0)


class Store:
    def __init__(self, url: str, key: str, *, upgrade: bool = True):
        self.url = normalise_url(url)
        self.cipher = DataCipher(key)
        self.engine = make_engine(self.url)
        self.engine.dialect.sg_cipher = self.cipher  # see types.cipher_for
        self._local = threading.local()
        try:
            if upgrade:
                upgrade_schema(self.engine)
            self._check_key()
        except OperationalError as exc:
            raise DatabaseUnavailable(f"cannot open the database ({describe(self.url)}): {exc.orig}") from None

    @classmethod
    def open(cls, url: str, env_key: str | None = None, *, upgrade: bool | None = None) -> "Store":
        """Open with the key from the environment or the key file. SQLite upgrades itself."""
        if upgrade is None:
            upgrade = is_sqlite(url)
        return cls(url, resolve_key(url, env_key), upgrade=upgrade)

    def _check_key(self) -> None:
        with self.session() as s:
            row = s.get(Meta, "key_check")
            if row is None:
                s.add(Meta(key="key_check", value=self.cipher.encrypt(KEY_CHECK_PLAINTEXT)))
                return
            try:
                ok = self.cipher.decrypt(row.value) == KEY_CHECK_PLAINTEXT
            except DecryptionError:
                ok = False
            if not ok:
                raise DataKeyError(f"{KEY_ENV} (or the key file) is not the key this database was written with")

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the outermost block ends, rolled back on any error.

        A block opened inside another on the same thread joins it, so that a caller can make
        several flows, or a once-only key and the change it guards, one transaction
        (storage.idempotency.once). The join is per thread and per store: flows run in worker
        threads, and two stores (export, then import) never share a transaction."""
        outer = getattr(self._local, "session", None)
        if outer is not None:
            yield outer
            return
        with Session(self.engine, expire_on_commit=False) as s:
            self._local.session = s
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise
            finally:
                self._local.session = None

    def in_transaction(self) -> bool:
        """True inside a `session()` block on this thread (a nested block would join it)."""
        return getattr(self._local, "session", None) is not None

    def dispose(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))


def describe(url: str) -> str:
    """The URL without its password, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def alembic_config(engine: Engine | None = None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


def upgrade_schema(engine: Engine, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        try:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except Exception:
            return None


def meta_get(session: Session, key: str) -> str | None:
    row = session.exec(select(Meta).where(Meta.key == key)).first()
    return row.value if row else None
