"""Quality assurance (sample, score, report), retention (dry run, deletion that keeps the
audit chain verifiable, trust overrides) and subject access exports."""

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import select

from flows import qa, retention, sar, triage
from flows.chronology import child_file
from flows.errors import FormErrors, NotAllowed
from storage.chain import read_body, verify
from storage.models import AuditEvent, Child, ChronologyEntry, Concern, QaReview, Trust

from .conftest import raw_dump, run_cli
from .cpfile_support import T0, build_world, full_history, report_values
from flows import report


@pytest.fixture
def world(store):
    w = build_world(store)
    full_history(store, w)
    return w


def _closed_plain(store, w, n=2):
    """Closed concerns with a vague record: no child's voice, no shared outcome."""
    ids = []
    for i in range(n):
        r = report.submit(store, w.teacher, report_values(w, child=f"child:{w.other_child}", child_words="", child_views="",
                                                         occurred_at="2026-09-15T09:00",
                                                         account="Ben seemed a bit off today and there was an incident at lunch."),
                          now=T0 + timedelta(days=3 + i))
        triage.acknowledge(store, w.dsl, r.concern_id, now=T0 + timedelta(days=3 + i, hours=1))
        triage.record_decision(store, w.dsl, r.concern_id,
                               {"decision": "no_further_action", "participants": "Dana Shah (DSL)",
                                "reasons": "Spoke to Ben; he was tired after a late night."},
                               now=T0 + timedelta(days=3 + i, hours=2))
        triage.close(store, w.dsl, r.concern_id, "No further action; Ben is settled again in class today.",
                     now=T0 + timedelta(days=3 + i, hours=3))
        ids.append(r.concern_id)
    return ids


def test_qa_sample_is_random_repeatable_and_never_repeats(store, world):
    _closed_plain(store, world, 3)
    first = qa.sample(store, world.dsl, school="s", n=2, seed=7, now=T0 + timedelta(days=40))
    assert len(first) == 2
    with store.session() as s:
        picked = {s.get(QaReview, i).concern_id for i in first}
        assert all(s.get(Concern, c).status == "closed" for c in picked)
    rest = qa.sample(store, world.dsl, school="s", n=10, seed=7)
    with store.session() as s:
        others = {s.get(QaReview, i).concern_id for i in rest}
    assert len(rest) == 2 and not picked & others  # 4 closed in all, none sampled twice
    assert qa.sample(store, world.dsl, n=3) == []
    with pytest.raises(NotAllowed):
        qa.sample(store, world.teacher, n=1)
    assert qa.sample(store, world.tso, school="s", n=1) == []  # the trust safeguarding officer may sample


def test_qa_auto_score_reflects_the_record_and_reviewer_overrides(store, world):
    plain = _closed_plain(store, world, 1)[0]
    with store.session() as s:
        good = s.exec(select(Concern).where(Concern.reference == "SG-2026-0001")).one().id
        ids = {}
        for cid in (good, plain):
            r = QaReview(concern_id=cid, sampled_at=T0)
            s.add(r); s.flush()
            ids[cid] = r.id
    g = qa.score(store, world.dsl, ids[good])
    scores = {k: v["score"] for k, v in g.scores.items()}
    assert scores == {"clear_summary": 1, "child_voice": 1, "decision_reasons": 1, "outcome_shared": 1,
                      "timescales_met": 0, "clear_language": 1}
    assert "sc_acknowledgement" in g.scores["timescales_met"]["why"]  # never recorded before closing
    assert g.total == 5
    p = qa.score(store, world.tso, ids[plain], overrides={"clear_summary": 0}, notes="Summary too thin.")
    scores = {k: v["score"] for k, v in p.scores.items()}
    assert scores["child_voice"] == 0 and scores["outcome_shared"] == 0 and scores["clear_language"] == 0
    assert "vague" in p.scores["clear_language"]["why"] and "off" not in p.scores["clear_language"]["why"]
    assert p.scores["clear_summary"] == {"score": 0, "auto": False, "why": "set by the reviewer", "auto_score": 1,
                                         "auto_why": p.scores["clear_summary"]["auto_why"]}
    assert p.reviewer_id == world.tso
    with pytest.raises(FormErrors):
        qa.score(store, world.dsl, ids[plain], overrides={"made_up": 1})
    with pytest.raises(NotAllowed):
        qa.score(store, world.teacher, ids[plain])
    rep = qa.qa_report(store)
    row = rep["schools"]["s"]
    assert row["sampled"] == 2 and row["scored"] == 2 and row["mean_total"] == (5 + p.total) / 2
    assert row["pass_rate"]["decision_reasons"] == 1.0 and row["pass_rate"]["child_voice"] == 0.5
    assert list(rep["months"]) == [datetime.now(timezone.utc).strftime("%Y-%m")]
    with store.session() as s:
        assert s.get(QaReview, ids[plain]).notes == "Summary too thin."
        ev = s.exec(select(AuditEvent).where(AuditEvent.action == "qa.scored")).all()
        assert len(ev) == 2 and "Summary" not in json.dumps([e.details for e in ev])


def test_qa_commands(store, world, cli_env, tmp_path):
    r = run_cli(["qa", "sample", "--school", "s", "--n", "1", "--seed", "1", "--as", "dsl@s.test"], cli_env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "review 1: SG-2026-0001" in r.stdout
    r = run_cli(["qa", "score", "1", "--as", "dsl@s.test", "--set", "timescales_met=1"], cli_env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "review 1: 6/6" in r.stdout and "reviewer (auto said 0)" in r.stdout
    r = run_cli(["qa", "report", "--format", "json"], cli_env, cwd=tmp_path)
    assert json.loads(r.stdout)["schools"]["s"]["mean_total"] == 6
    r = run_cli(["qa", "score", "1", "--as", "dsl@s.test", "--set", "clarity=2"], cli_env, cwd=tmp_path)
    assert r.returncode == 2


AFTER_25TH = datetime(2041, 3, 5, 9, 0, tzinfo=timezone.utc)  # Amira (born 2016-03-04) is 25


def test_retention_dry_run_changes_nothing(store, world):
    before = None
    with store.session() as s:
        before = [(e.id, e.body) for e in s.exec(select(ChronologyEntry))]
    res = retention.run(store, now=AFTER_25TH, dry_run=True)
    assert sorted(d.reference for d in res.due) == ["SG-2026-0001", "SG-2026-0002"]
    assert all(d.child_id == world.child for d in res.due)
    assert retention.run(store, now=AFTER_25TH - timedelta(days=2), dry_run=True).due == []
    with store.session() as s:
        assert [(e.id, e.body) for e in s.exec(select(ChronologyEntry))] == before


def test_retention_deletes_content_and_the_audit_chain_stays_verifiable(store, world, db_url, cli_env, tmp_path):
    # the brother's file must survive untouched
    res = retention.run(store, now=AFTER_25TH, dry_run=False)
    assert len(res.due) == 2 and res.children_removed == [world.child] and res.chronology_redacted > 10
    with store.session() as s:
        assert not verify(s)
        for c in s.exec(select(Concern).where(Concern.id.in_([d.concern_id for d in res.due]))):
            assert c.account is None and c.child_words is None and c.child_id is None and c.redacted_at
            assert c.categories  # anonymous facts stay for trends
        gone = s.exec(select(ChronologyEntry).where(ChronologyEntry.redacted_at.is_not(None))).all()
        assert len(gone) == res.chronology_redacted and all(e.body == "" and read_body(store.cipher, e) == {} for e in gone)
        child = s.get(Child, world.child)
        assert child.name == retention.TOMBSTONE_NAME and child.date_of_birth is None and child.mis_id.startswith("deleted-")
        ev = s.exec(select(AuditEvent).where(AuditEvent.action == "retention.redacted")).one()
        assert "Amira" not in json.dumps(ev.details)
        zak = s.exec(select(Concern).where(Concern.child_id == world.sibling)).one()
        assert zak.account and zak.redacted_at is None
    dump = raw_dump(db_url)
    assert "Amira Zed" not in dump and "A100" not in dump
    r = run_cli(["audit", "verify"], cli_env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    # a redaction that no retention run recorded is still caught
    with store.session() as s:
        e = s.exec(select(ChronologyEntry).where(ChronologyEntry.redacted_at.is_(None))).first()
        e.body, e.redacted_at = "", AFTER_25TH
        s.add(e)
    r = run_cli(["audit", "verify"], cli_env, cwd=tmp_path)
    assert r.returncode == 1 and "without a recorded retention run" in r.stderr
    # a second run finds nothing more to do
    assert retention.run(store, now=AFTER_25TH, dry_run=True).due == []


def test_retention_trust_override_and_staff_allegations_left_for_review(store, world):
    with store.session() as s:
        t = s.get(Trust, world.trust)
        t.policy = {"retention": {"child_file_until_age": 20}}
        s.add(t)
    r = report.submit(store, world.teacher, report_values(world, about_adult="staff", subject=f"person:{world.teacher}",
                                                                  occurred_at="2026-09-13T10:00"), now=T0)
    res = retention.run(store, now=datetime(2036, 3, 5, tzinfo=timezone.utc), dry_run=True)
    assert sorted(d.reference for d in res.due) == ["SG-2026-0001", "SG-2026-0002"]
    assert [d.concern_id for d in res.review] == [r.concern_id] and "retirement" in res.review[0].rule
    with store.session() as s:
        t = s.get(Trust, world.trust)
        t.policy = {"retention": {"child_file_until": 20}}
        s.add(t)
    with pytest.raises(ValueError, match="child_file_until"):
        retention.run(store, now=AFTER_25TH, dry_run=True)


def test_retention_command(store, world, cli_env, tmp_path):
    r = run_cli(["retention", "run", "--dry-run", "--now", "2041-03-05"], cli_env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "would delete 2 concern record(s)" in r.stdout and "Amira" not in r.stdout
    r = run_cli(["retention", "run", "--now", "2041-03-05", "--as", "dsl@s.test"], cli_env, cwd=tmp_path)
    assert r.returncode == 0 and "deleted 2 concern record(s)" in r.stdout
    assert run_cli(["audit", "verify"], cli_env, cwd=tmp_path).returncode == 0


def test_subject_access_exports(store, world, cli_env, tmp_path):
    child_file(store, world.dsl, world.child)
    doc = sar.child_export(store, world.dsl, world.child)
    assert doc["child"]["name"] == "Amira Zed" and len(doc["concerns"]) == 2
    assert any(a["action"] == "chronology.opened" and a["by"] == "dsl@s.test" for a in doc["audit"])
    assert "review and redact" in doc["notice"]
    staff = sar.person_export(store, world.dsl, "teacher@s.test")
    assert staff["person"]["name"] == "Tom Reed"
    assert [c["reference"] for c in staff["concerns_raised"]] == ["SG-2026-0001", "SG-2026-0003"]
    assert staff["concerns_raised"][0]["what_they_wrote"]["account"].startswith("At 10:15")
    assert any(e["kind"] == "follow_up" for e in staff["chronology_entries_made"])
    with pytest.raises(NotAllowed):
        sar.person_export(store, world.teacher, "ta@s.test")
    with pytest.raises(NotAllowed):
        sar.child_export(store, world.teacher, world.child)
    with store.session() as s:
        evs = s.exec(select(AuditEvent).where(AuditEvent.action == "sar.exported")).all()
        assert [e.details["subject"] for e in evs] == ["child", "person"]
    out = tmp_path / "sar.json"
    r = run_cli(["sar", "--child", "A100", "--out", str(out), "--as", "dsl@s.test"], cli_env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["child"]["mis_id"] == "A100" and oct(out.stat().st_mode)[-3:] == "600"
    r = run_cli(["sar", "--email", "teacher@s.test", "--child", "A100", "--out", str(out), "--as", "dsl@s.test"],
                cli_env, cwd=tmp_path)
    assert r.returncode == 2 and "exactly one" in r.stderr
    r = run_cli(["sar", "--email", "teacher@s.test", "--out", str(out), "--as", "dsl@s.test"], cli_env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["person"]["email"] == "teacher@s.test"
    r = run_cli(["sar", "--email", "teacher@s.test", "--out", str(out), "--as", "ta@s.test"], cli_env, cwd=tmp_path)
    assert r.returncode == 2 and "refused" in r.stderr
