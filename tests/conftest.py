"""Shared fixtures. Every database test runs on SQLite, or on PostgreSQL when
TEST_DATABASE_URL is set (each test then gets a schema of its own, so that concurrent
runs against one server never see each other's rows)."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from storage.crypto import generate_key
from storage.db import Store, normalise_url

TEST_KEY = generate_key()


def _pg_base() -> str | None:
    url = os.environ.get("TEST_DATABASE_URL")
    return normalise_url(url) if url else None


def on_postgres() -> bool:
    return _pg_base() is not None


@pytest.fixture
def db_url(tmp_path):
    base = _pg_base()
    if base is None:
        yield f"sqlite:///{tmp_path / 'test.sqlite3'}"
        return
    schema = "t_" + uuid.uuid4().hex[:16]
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}options=-csearch_path%3D{schema}"
    with admin.connect() as c:
        c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def data_key() -> str:
    return TEST_KEY


@pytest.fixture
def store(db_url, data_key):
    s = Store(db_url, data_key, upgrade=True)
    yield s
    s.dispose()


@pytest.fixture
def cli_env(db_url, data_key, tmp_path):
    """Environment for running the real `safeguarding-bot` command against the test database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TEAMS_"))}
    env.update(DATABASE_URL=db_url, SAFEGUARDING_DATA_KEY=data_key)
    return env


def raw_dump(db_url: str) -> str:
    """Everything the database holds, read with the database's own client, not our code."""
    if db_url.startswith("sqlite"):
        path = db_url.split("///", 1)[1]
        return subprocess.run(["sqlite3", path, ".dump"], capture_output=True, text=True, check=True).stdout
    base, _, opts = db_url.partition("?options=-csearch_path%3D")
    schema = opts
    libpq = base.replace("postgresql+psycopg://", "postgresql://")
    return subprocess.run(["pg_dump", "--data-only", "--schema", schema, libpq],
                          capture_output=True, text=True, check=True).stdout


def run_cli(args: list[str], env: dict, cwd: Path | None = None, input: str | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["safeguarding-bot", *args], env=env, cwd=cwd, input=input,
                          capture_output=True, text=True, timeout=timeout)
