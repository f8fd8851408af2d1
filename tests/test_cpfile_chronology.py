"""The child protection file: one child's chronology across concerns, access, auditing,
the transfer pack (export, send, confirm, import), and its round trip into a second database."""

import copy
import json
from datetime import timedelta

import pytest
from sqlmodel import select

from flows import transfer
from flows.chronology import ALLEGATIONS_NOTE, child_file, find_child
from flows.errors import Conflict, NotAllowed
from storage.chain import verify
from storage.models import AuditEvent, Child, Concern, Nudge, OutboxMessage, Person, Transfer

from .cpfile_support import T0, build_world, full_history, second_store
from .conftest import run_cli


@pytest.fixture
def world(store):
    w = build_world(store)
    full_history(store, w)
    return w


def test_file_is_in_time_order_across_concerns_with_siblings_linked(store, world):
    f = child_file(store, world.dsl, world.child, via="chat", now=T0 + timedelta(days=40))
    assert [c.reference for c in f.concerns] == ["SG-2026-0001", "SG-2026-0002"]
    times = [e.at for e in f.entries]
    assert times == sorted(times)
    kinds = [e.kind for e in f.entries]
    for k in ("raised", "acknowledged", "viewed", "discussion", "decision", "referral", "follow_up", "outcome", "closed",
              "file_opened"):
        assert k in kinds, k
    assert {e.reference for e in f.entries if e.reference} == {"SG-2026-0001", "SG-2026-0002"}
    decision = next(e for e in f.entries if e.kind == "decision")
    assert "threshold" in decision.body["reasons"] and "Helen Brooks" in decision.body["participants"]
    assert decision.actor == "Dana Shah"
    # the sibling's concern is linked, not merged
    (sib,) = f.siblings
    assert sib.child_id == world.sibling and [r for _, r, _, _ in sib.concerns] == ["SG-2026-0003"]
    assert all(e.reference != "SG-2026-0003" for e in f.entries)
    text = "\n".join(f.lines())
    assert "Amira Zed" in text and "Zak Zed" in text and "Dad grabbed" not in text.split("Chronology:")[0]


def test_only_the_dsl_team_of_the_school_opens_it_and_every_opening_is_audited(store, world):
    for who in (world.teacher, world.head, world.tso):
        with pytest.raises(NotAllowed):
            child_file(store, who, world.child)
    child_file(store, world.deputy, world.child, via="slack")
    child_file(store, world.dsl, world.child, via="cli")
    with store.session() as s:
        opened = s.exec(select(AuditEvent).where(AuditEvent.action == "chronology.opened").order_by(AuditEvent.seq)).all()
        assert [(e.actor_id, e.child_id, e.details) for e in opened] == [
            (world.deputy, world.child, {"via": "slack"}), (world.dsl, world.child, {"via": "cli"})]
        assert not verify(s)
    # the file shows its own openings
    f = child_file(store, world.dsl, world.child)
    assert [e.facts["via"] for e in f.entries if e.kind == "file_opened"] == ["slack", "cli", "chat"]
    # another school's DSL cannot open it
    other = build_world(store, slug="o", trust_slug="t2")
    with pytest.raises(NotAllowed):
        child_file(store, other.dsl, world.child)


def test_chronology_command_by_mis_id_and_refusal(store, world, cli_env, tmp_path):
    r = run_cli(["chronology", "A100", "--as", "dsl@s.test"], cli_env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "SG-2026-0001" in r.stdout and "Decision" in r.stdout and "Zak Zed" in r.stdout
    r = run_cli(["chronology", str(world.child), "--as", "teacher@s.test"], cli_env, cwd=tmp_path)
    assert r.returncode != 0 and "safeguarding team" in r.stderr and "Amira" not in r.stdout + r.stderr
    assert find_child(store, world.dsl, "A100") == world.child


def _without_export_meta(pack: dict) -> dict:
    return {k: pack[k] for k in ("child", "concerns")}


def test_json_round_trip_into_a_second_database_loses_nothing(store, world, tmp_path):
    pack = transfer.export_pack(store, world.dsl, world.child, now=T0 + timedelta(days=40))
    transfer.check_pack(pack)
    assert len(pack["concerns"]) == 2 and sum(len(c["entries"]) for c in pack["concerns"]) >= 15
    with second_store(tmp_path) as other:
        w2 = build_world(other, slug="n", trust_slug="nt")
        with other.session() as s:  # the brother is already on the new school's roll; the child is not yet
            s.delete(s.get(Child, w2.child))
        got = transfer.import_pack(other, w2.dsl, json.loads(json.dumps(pack)), "n", now=T0 + timedelta(days=41))
        assert got.concerns == 2 and got.entries == sum(len(c["entries"]) for c in pack["concerns"])
        assert got.siblings_linked == [w2.sibling] and got.siblings_not_here == 0
        again = transfer.export_pack(other, w2.dsl, got.child_id, now=T0 + timedelta(days=42))
        assert _without_export_meta(again) == _without_export_meta(pack)
        assert again["siblings"] == pack["siblings"]  # linked to the brother on the new roll
        with other.session() as s:
            assert not verify(s)
            # staff of the sending school are kept (inactive) so the record still says who did what
            dana = s.exec(select(Person).where(Person.email == "dsl@s.test")).one()
            assert not dana.active and dana.name == "Dana Shah" and dana.school_id is None
            refs = sorted(c.reference for c in s.exec(select(Concern)))
            assert refs == ["s:SG-2026-0001", "s:SG-2026-0002"]
            ev = s.exec(select(AuditEvent).where(AuditEvent.action == "transfer.imported")).one()
            assert ev.details["pack_sha256"] == pack["content_sha256"] and "Amira" not in json.dumps(ev.details)
        # the new school's DSL sees the imported history in the child's file
        f = child_file(other, w2.dsl, got.child_id)
        assert [c.reference for c in f.concerns] == ["s:SG-2026-0001", "s:SG-2026-0002"]
        assert f.concerns[0].details["origin"]["school"] == {"slug": "s", "name": "Test Primary"}
        assert len(f.entries) == got.entries + 1  # and this opening
        # importing the same pack twice is refused, nothing added
        with pytest.raises(transfer.PackRefused, match="already here"):
            transfer.import_pack(other, w2.dsl, pack, "n")
        with other.session() as s:
            assert len(s.exec(select(Concern)).all()) == 2


@pytest.mark.parametrize("tamper, reason", [
    (lambda p: p["concerns"][0].__setitem__("account", "Nothing happened."), "content hash does not match"),
    (lambda p: p["concerns"][0]["entries"].pop(), "content hash does not match"),
    (lambda p: p.__setitem__("content_sha256", "0" * 64), "content hash does not match"),
    (lambda p: p["concerns"][0].pop("referrer"), "schema"),
    (lambda p: p["child"].__setitem__("date_of_birth", "4th March"), "schema"),
    (lambda p: p.__setitem__("format_version", 99), "schema"),
])
def test_tampered_or_bad_pack_is_refused_and_nothing_imported(store, world, tmp_path, tamper, reason):
    pack = transfer.export_pack(store, world.dsl, world.child)
    bad = copy.deepcopy(pack)
    tamper(bad)
    with second_store(tmp_path) as other:
        w2 = build_world(other, slug="n", trust_slug="nt")
        with other.session() as s:
            before = (len(s.exec(select(Child)).all()), len(s.exec(select(Person)).all()))
        with pytest.raises(transfer.PackRefused, match=reason):
            transfer.import_pack(other, w2.dsl, bad, "n")
        with other.session() as s:
            assert s.exec(select(Concern)).all() == []
            assert (len(s.exec(select(Child)).all()), len(s.exec(select(Person)).all())) == before


def test_a_failure_half_way_leaves_nothing(store, world, tmp_path, monkeypatch):
    pack = transfer.export_pack(store, world.dsl, world.child)
    with second_store(tmp_path) as other:
        w2 = build_world(other, slug="n", trust_slug="nt")
        real = transfer.chain.append_entry
        calls = {"n": 0}

        def boom(*a, **k):
            calls["n"] += 1
            if calls["n"] == 12:
                raise RuntimeError("disk full")
            return real(*a, **k)

        monkeypatch.setattr(transfer.chain, "append_entry", boom)
        with pytest.raises(RuntimeError):
            transfer.import_pack(other, w2.dsl, pack, "n")
        with other.session() as s:
            assert s.exec(select(Concern)).all() == [] and len(s.exec(select(Child)).all()) == 3
            assert not verify(s)


def test_transfer_send_records_who_and_nudges_until_confirmed(store, world):
    sent = transfer.send(store, world.dsl, world.child, "Oak Academy", now=T0 + timedelta(days=40))
    with store.session() as s:
        t = s.get(Transfer, sent.transfer_id)
        assert t.state == "sent" and t.exported_by == world.dsl and t.pack_hash == sent.pack["content_sha256"]
        (n,) = s.exec(select(Nudge).where(Nudge.kind == transfer.NUDGE_KIND)).all()
        assert n.recipient_id == world.dsl and n.state == "pending"
        # 5 school days after Tuesday 2026-10-24 (T0 + 40 days) is the following Friday... counted by policy
        from flows.policy import add_working_days, policy_for
        from storage.models import School
        assert n.due_at == add_working_days(policy_for(s.get(School, world.school)), T0 + timedelta(days=40), 5)
        assert "Amira" not in json.dumps(n.payload) and n.payload["title"]
        actions = [e.action for e in s.exec(select(AuditEvent).where(AuditEvent.action.like("transfer.%")))]
        assert actions == ["transfer.exported", "transfer.sent"]
    f = child_file(store, world.dsl, world.child)
    assert [e.facts["type"] for e in f.entries if e.kind == "transfer"] == ["transfer_exported", "transfer_sent"]
    assert all(e.actor == "Dana Shah" for e in f.entries if e.kind == "transfer")
    with pytest.raises(NotAllowed):
        transfer.confirm(store, world.teacher, sent.transfer_id, "Jo Bloggs, DSL")
    transfer.confirm(store, world.deputy, sent.transfer_id, "Jo Bloggs, DSL, Oak Academy", now=T0 + timedelta(days=43))
    with store.session() as s:
        t = s.get(Transfer, sent.transfer_id)
        assert t.state == "confirmed" and t.confirmed_by == "Jo Bloggs, DSL, Oak Academy"
        assert s.exec(select(Nudge).where(Nudge.kind == transfer.NUDGE_KIND)).one().state == "cancelled"
        assert not verify(s)
    f = child_file(store, world.dsl, world.child)
    confirmed = [e for e in f.entries if e.facts.get("type") == "transfer_confirmed"]
    assert confirmed[0].actor == "Dev Patel" and "Jo Bloggs" in confirmed[0].body["confirmed_by"]
    with pytest.raises(Conflict):
        transfer.confirm(store, world.dsl, sent.transfer_id, "again")


def test_transfer_and_import_commands(store, world, cli_env, tmp_path):
    out = tmp_path / "pack.json"
    r = run_cli(["transfer", "send", "A100", "--to", "Oak Academy", "--as", "dsl@s.test", "--out", str(out)],
                cli_env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Amira" not in r.stdout and "transfer 1" in r.stdout.lower()
    pack = json.loads(out.read_text())
    assert pack["to_school"] == "Oak Academy"
    # the receiving school (here on the same system) imports it: that confirms receipt
    build_world(store, slug="oak", trust_slug="t3")
    r = run_cli(["import", "child", str(out), "--school", "oak", "--as", "dsl@oak.test"], cli_env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "imported 2 concern" in r.stdout and "confirmed transfer 1" in r.stdout
    with store.session() as s:
        assert s.get(Transfer, 1).state == "confirmed"
    tampered = tmp_path / "bad.json"
    pack["concerns"][0]["decision_kind"] = "no_further_action"
    tampered.write_text(json.dumps(pack))
    r = run_cli(["import", "child", str(tampered), "--school", "oak", "--as", "dsl@oak.test"], cli_env, cwd=tmp_path)
    assert r.returncode == 2 and "refused" in r.stderr and "hash" in r.stderr
    r = run_cli(["transfer", "confirm", "1", "--by", "x", "--as", "dsl@s.test"], cli_env, cwd=tmp_path)
    assert r.returncode != 0 and "already confirmed" in r.stderr
    # a school not on this system: the sender records the confirmation that came back
    r = run_cli(["transfer", "send", "A102", "--to", "Elm Academy", "--as", "dsl@s.test"], cli_env, cwd=tmp_path)
    assert r.returncode == 2 and "no concerns" in r.stderr  # Ben has no file to send
    r = run_cli(["transfer", "send", "A101", "--to", "Elm Academy", "--as", "deputy@s.test"], cli_env, cwd=tmp_path)
    assert r.returncode == 0 and (tmp_path / "transfer-2.json").exists()
    r = run_cli(["transfer", "confirm", "2", "--by", "Jo Bloggs, DSL, Elm Academy", "--at", "2026-11-20T10:30",
                 "--as", "dsl@s.test"], cli_env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "confirmed by Jo Bloggs, DSL, Elm Academy at 20/11/2026 10:30" in r.stdout
    with store.session() as s:
        t2 = s.get(Transfer, 2)
        assert t2.state == "confirmed" and t2.confirmed_at.isoformat().startswith("2026-11-20T10:30")
    r = run_cli(["transfer", "list", "--as", "dsl@s.test"], cli_env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "transfer 2: pupil A101 to Elm Academy" in r.stdout and "confirmed 20/11/2026 by Jo Bloggs" in r.stdout
    assert "transfer 1: pupil A100 to Oak Academy" in r.stdout
    r = run_cli(["transfer", "list", "--pending", "--as", "dsl@s.test"], cli_env, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "no transfers"
    r = run_cli(["transfer", "list", "--as", "teacher@s.test"], cli_env, cwd=tmp_path)
    assert r.returncode == 2
    r = run_cli(["audit", "verify"], cli_env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_unconfirmed_transfer_nudges_the_sender_once_due_and_says_nothing_about_the_child(store, world):
    from bot.worker import sweep_nudges
    from storage.models import OutboxMessage

    sent = transfer.send(store, world.dsl, world.child, "Oak Academy", now=T0 + timedelta(days=40))
    sweep_nudges(store, sent.due - timedelta(minutes=1))
    with store.session() as s:
        assert s.exec(select(OutboxMessage).where(OutboxMessage.kind == transfer.NUDGE_KIND)).all() == []
    sweep_nudges(store, sent.due + timedelta(minutes=1))
    with store.session() as s:
        (msg,) = s.exec(select(OutboxMessage).where(OutboxMessage.kind == transfer.NUDGE_KIND)).all()
        assert msg.recipient_id == world.dsl and msg.payload["transfer_id"] == sent.transfer_id
        assert "not confirmed" in msg.payload["title"]
        text = json.dumps(msg.payload)
        for secret in ("Amira", "Zed", "A100", "Oak"):
            assert secret not in text
        n = s.exec(select(Nudge).where(Nudge.kind == transfer.NUDGE_KIND)).one()
        assert n.state == "done"


def test_a_dsl_never_sees_an_allegation_about_themselves_in_the_file(store, world):
    from flows import report
    from .cpfile_support import report_values

    report.submit(store, world.teacher, report_values(world, about_adult="staff", subject=f"person:{world.dsl}",
                                                      categories=["concern_about_adult"],
                                                      occurred_at="2026-10-20T10:00"), now=T0 + timedelta(days=37))
    with store.session() as s:
        allegation = s.exec(select(Concern).where(Concern.about_adult)).one()
        assert allegation.subject_person_id == world.dsl and allegation.child_id == world.child
    mine = child_file(store, world.dsl, world.child)
    assert [c.reference for c in mine.concerns] == ["SG-2026-0001", "SG-2026-0002"]
    assert all(e.concern_id != allegation.id for e in mine.entries)
    deputy = child_file(store, world.deputy, world.child)
    assert allegation.reference in [c.reference for c in deputy.concerns]
    # Nothing tells the adult concerned that something is missing: no count, and the same note
    # on every file, whoever opens it.
    assert not hasattr(mine, "withheld")
    assert [l for l in mine.lines() if "not shown" in l or "withheld" in l] == []
    assert ALLEGATIONS_NOTE in mine.lines() and ALLEGATIONS_NOTE in deputy.lines()
    # Their export leaves it out without a trace; the headteacher, who holds it, is told.
    pack = transfer.export_pack(store, world.dsl, world.child)
    assert [c["reference"] for c in pack["concerns"]] == ["SG-2026-0001", "SG-2026-0002"]
    assert allegation.reference not in json.dumps(pack)
    with store.session() as s:
        told = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "left_without")).all()
        assert [(m.recipient_id, m.payload["concern_id"]) for m in told] == [(world.head, allegation.id)]
    assert len(transfer.export_pack(store, world.deputy, world.child)["concerns"]) == 3


def test_entries_already_deleted_at_the_sending_school_arrive_deleted_and_the_chain_verifies(store, world, tmp_path):
    pack = transfer.export_pack(store, world.dsl, world.child)
    entry = pack["concerns"][0]["entries"][2]
    entry["body"], entry["redacted"] = {}, True
    pack["content_sha256"] = transfer.content_hash(pack)
    with second_store(tmp_path) as other:
        w2 = build_world(other, slug="n", trust_slug="nt")
        got = transfer.import_pack(other, w2.dsl, pack, "n")
        again = transfer.export_pack(other, w2.dsl, got.child_id)
        assert again["concerns"] == pack["concerns"]
        with other.session() as s:
            assert not verify(s)
            ev = s.exec(select(AuditEvent).where(AuditEvent.action == "retention.redacted")).one()
            assert len(ev.details["chronology_ids"]) == 1


def test_the_committed_schema_is_valid_and_requires_every_section(store, world):
    import jsonschema

    schema = transfer.schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert set(schema["required"]) == {"format", "format_version", "exported_at", "exported_by", "from_school",
                                       "to_school", "child", "siblings", "concerns", "content_sha256"}
    pack = transfer.export_pack(store, world.dsl, world.child)
    pack["concerns"][0]["unexpected"] = "x"  # nothing unknown slips through
    pack["content_sha256"] = transfer.content_hash(pack)
    with pytest.raises(transfer.PackRefused, match="concerns/0"):
        transfer.check_pack(pack)
