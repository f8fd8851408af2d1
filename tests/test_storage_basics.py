"""Foundation: migrations, encryption at rest, key handling and the audit hash chain."""

import os
import stat

import pytest
from sqlalchemy import text
from sqlmodel import select

from storage import chain
from storage.crypto import DataKeyError, generate_key
from storage.db import Store, resolve_key
from storage.models import AuditEvent, ChronologyEntry, Concern, Person, School, Trust

from .conftest import raw_dump, run_cli

SECRET_ACCOUNT = "Amira said her stepfather hit her with a belt on Tuesday night"
SECRET_WORDS = "he said he would do it again if I told"


def _concern(store):
    with store.session() as s:
        t = Trust(slug="t", name="Trust")
        s.add(t); s.flush()
        sc = School(trust_id=t.id, slug="s", name="School")
        s.add(sc); s.flush()
        p = Person(trust_id=t.id, school_id=sc.id, email="a@x.org", name="Ann Teacher")
        s.add(p); s.flush()
        c = Concern(school_id=sc.id, reference="SG-2026-0001", referrer_id=p.id, taxonomy_version="2026.1",
                    categories=["physical_abuse"], account=SECRET_ACCOUNT, child_words=SECRET_WORDS,
                    child_name_given="Amira Zed")
        s.add(c); s.flush()
        chain.append_entry(s, store.cipher, concern_id=c.id, kind="raised", actor_id=p.id,
                           body={"account": SECRET_ACCOUNT})
        chain.audit(s, "concern.raised", actor_id=p.id, concern_id=c.id, school_id=sc.id)
        return c.id


def test_sensitive_text_is_not_stored_in_plaintext(store, db_url):
    cid = _concern(store)
    dump = raw_dump(db_url)
    assert "SG-2026-0001" in dump  # the dump is real and includes the concern row
    for secret in (SECRET_ACCOUNT, SECRET_WORDS, "Amira", "Ann Teacher", "stepfather"):
        assert secret not in dump
    with store.session() as s:
        c = s.get(Concern, cid)
        assert c.account == SECRET_ACCOUNT and c.child_words == SECRET_WORDS


def test_wrong_key_is_a_clear_error_not_garbage(store, db_url):
    _concern(store)
    store.dispose()
    with pytest.raises(DataKeyError, match="not the key this database was written with"):
        Store(db_url, generate_key())


def test_malformed_key_is_rejected(db_url):
    with pytest.raises(DataKeyError, match="32 bytes"):
        Store(db_url, "dG9vIHNob3J0")


def test_key_file_created_0600_beside_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    key = resolve_key(url, None)
    keyfile = tmp_path / "x.sqlite3.key"
    assert keyfile.read_text().strip() == key
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    Store(url, key)
    assert resolve_key(url, None) == key  # reused, not regenerated


def test_key_file_lost_for_existing_database_is_an_error(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    Store(url, resolve_key(url, None)).dispose()
    (tmp_path / "x.sqlite3.key").unlink()
    with pytest.raises(DataKeyError, match="no data key"):
        resolve_key(url, None)


def test_sqlite_runs_in_wal_with_foreign_keys(tmp_path, data_key):
    s = Store(f"sqlite:///{tmp_path / 'w.sqlite3'}", data_key)
    with s.engine.connect() as c:
        assert c.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert c.execute(text("PRAGMA foreign_keys")).scalar() == 1


def _tamper(store, sql):
    with store.engine.begin() as c:
        c.execute(text(sql))


def _build_chain(store, n=5):
    cid = _concern(store)
    with store.session() as s:
        for i in range(n):
            chain.append_entry(s, store.cipher, concern_id=cid, kind="note", actor_id=None, body={"n": i})
            chain.audit(s, "record.viewed", concern_id=cid, details={"i": i})
    with store.session() as s:
        assert chain.verify(s) == []
    return cid


def _problems(store):
    with store.session() as s:
        return chain.verify(s)


@pytest.mark.parametrize("table", ["auditevent", "chronologyentry"])
def test_chain_detects_alteration(store, table):
    _build_chain(store)
    col = "details" if table == "auditevent" else "facts"
    _tamper(store, f"UPDATE {table} SET {col} = '{{\"x\": 1}}' WHERE seq = 3")
    (p,) = _problems(store)
    assert p.seq == 3 and "altered" in p.what


@pytest.mark.parametrize("table", ["auditevent", "chronologyentry"])
def test_chain_detects_deletion_in_middle_and_at_end(store, table):
    _build_chain(store)
    _tamper(store, f"DELETE FROM {table} WHERE seq = 2")
    (p,) = _problems(store)
    assert p.seq == 2 and "deleted" in p.what


@pytest.mark.parametrize("table", ["auditevent", "chronologyentry"])
def test_chain_detects_deletion_of_newest(store, table):
    _build_chain(store)
    _tamper(store, f"DELETE FROM {table} WHERE seq = (SELECT max(seq) FROM {table})")
    (p,) = _problems(store)
    assert p.seq is None and "newest" in p.what


@pytest.mark.parametrize("table", ["auditevent", "chronologyentry"])
def test_chain_detects_reordering(store, table):
    _build_chain(store)
    _tamper(store, f"UPDATE {table} SET seq = -1 WHERE seq = 2")
    _tamper(store, f"UPDATE {table} SET seq = 2 WHERE seq = 3")
    _tamper(store, f"UPDATE {table} SET seq = 3 WHERE seq = -1")
    (p,) = _problems(store)
    assert p.seq == 2


def test_audit_verify_command_exit_codes(store, cli_env, tmp_path):
    _build_chain(store)
    ok = run_cli(["audit", "verify"], cli_env, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    _tamper(store, "UPDATE auditevent SET action = 'nothing.to.see' WHERE seq = 4")
    bad = run_cli(["audit", "verify"], cli_env, cwd=tmp_path)
    assert bad.returncode == 1
    assert "audit: row seq 4" in bad.stderr and "altered" in bad.stderr


def test_migrations_match_models_no_drift(store):
    from alembic import command

    from storage.db import alembic_config

    command.check(alembic_config(store.engine))  # raises if autogenerate would emit anything


def test_db_upgrade_and_help_commands(cli_env, tmp_path):
    up = run_cli(["db", "upgrade"], cli_env, cwd=tmp_path)
    assert up.returncode == 0, up.stderr
    assert "revision" in up.stdout
    helped = run_cli(["--help"], cli_env, cwd=tmp_path)
    assert helped.returncode == 0 and "audit" in helped.stdout and "db" in helped.stdout


def test_wrong_setting_is_one_clear_line(cli_env, tmp_path):
    env = dict(cli_env, DATABASE_URL="mysql://nope")
    r = run_cli(["audit", "verify"], env, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0
    assert "DATABASE_URL" in r.stderr and "Traceback" not in r.stderr


def test_database_down_is_a_clear_message(cli_env, tmp_path):
    env = dict(cli_env, DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    r = run_cli(["audit", "verify"], env, cwd=tmp_path)
    assert r.returncode == 2
    assert "cannot open the database" in r.stderr and "Traceback" not in r.stderr
