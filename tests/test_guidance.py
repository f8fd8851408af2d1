"""One test per requirement of DESIGN.md's "What the guidance asks for", named after it."""

from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import select

from flows import followup, policy, report, taxonomy, triage
from flows.errors import FormErrors
from storage.models import ChronologyEntry, Concern, OutboxMessage, Trust

from .conftest import raw_dump
from .flow_support import NOW, build_world, report_values
from .test_flow_triage import DECISION

LATER = NOW + timedelta(hours=2)


@pytest.fixture
def world(store):
    return build_world(store)


@pytest.fixture
def cid(store, world):
    return report.submit(store, world.teacher, report_values(world), now=NOW).concern_id


def test_000_001_every_concern_discussion_and_decision_is_recorded_with_reasons(store, world, cid):
    triage.add_entry(store, world.dsl, cid, "discussion", "Discussed with the head.", participants="Dana, Helen",
                     now=LATER)
    triage.record_decision(store, world.dsl, cid, DECISION, now=LATER)
    view = triage.open_record(store, world.dsl, cid, now=LATER)
    kinds = {e.kind: e for e in view.entries}
    assert kinds["raised"].body["account"].startswith("At 10:15")
    assert kinds["discussion"].body["participants"] == "Dana, Helen"
    assert kinds["decision"].body["reasons"] and kinds["decision"].body["participants"]


def test_000_001_records_hold_summary_follow_up_and_outcome(store, world, cid):
    triage.record_decision(store, world.dsl, cid, DECISION, now=LATER)
    triage.add_entry(store, world.dsl, cid, "action", "Phoned MASH at 11:30.", now=LATER)
    with pytest.raises(FormErrors):
        triage.close(store, world.dsl, cid, "done", now=LATER)  # no outcome summary, no close
    triage.close(store, world.dsl, cid, "Child protection plan; school in core group.", now=LATER)
    view = triage.open_record(store, world.dsl, cid, now=LATER)
    assert [e.kind for e in view.entries if e.kind in ("action", "decision", "outcome", "closed")] == \
        ["decision", "action", "outcome", "closed"]


def test_000_confidential_and_stored_securely(store, db_url, world, cid):
    dump = raw_dump(db_url)
    assert "Dad grabbed me" not in dump and "Amira" not in dump
    with pytest.raises(Exception):
        triage.open_record(store, world.ta, cid)  # staff cannot open it


def test_000_a_separate_child_protection_file_per_child(store, world, cid):
    other = report.submit(store, world.teacher, report_values(world, child=f"child:{world.other_child}"), now=NOW)
    with store.session() as s:
        by_child = {c.id: c.child_id for c in s.exec(select(Concern))}
        entries = {e.child_id for e in s.exec(select(ChronologyEntry))}
    assert by_child == {cid: world.child, other.concern_id: world.other_child}
    assert entries == {world.child, world.other_child}  # every entry is filed under its child


@pytest.mark.parametrize("decision", ["no_further_action", "monitor", "signpost_internal", "signpost_external",
                                      "early_help_assessment", "early_help_referral", "social_care_referral",
                                      "police", "lado", "other"])
def test_001_dsl_options_each_need_reasons(store, world, cid, decision):
    with pytest.raises(FormErrors) as exc:
        triage.record_decision(store, world.dsl, cid, {"decision": decision}, now=LATER)
    assert "reasons" in exc.value.errors


def test_000_68_referrer_follows_up_when_information_is_not_forthcoming(store, world, cid):
    triage.acknowledge(store, world.dsl, cid, now=LATER)
    followup.request_update(store, world.teacher, cid, now=LATER)
    with store.session() as s:
        assert [m.recipient_id for m in s.exec(select(OutboxMessage).where(OutboxMessage.kind == "update_requested"))] \
            == [world.dsl]


def test_000_70_escalation_when_the_childs_situation_does_not_improve(store, world, cid):
    triage.record_decision(store, world.dsl, cid, DECISION, now=LATER)
    out = followup.checkin(store, world.teacher, cid, "no_change", now=LATER)
    assert out["reassess"] and out["escalation_offered"]
    esc = followup.still_worried(store, world.teacher, cid, now=LATER)
    assert world.dsl in esc["recipients"]


def test_001_poor_practice_failing_to_listen_to_the_views_of_the_child(store, world):
    form = report.report_form()
    names = [f.name for f in form.fields]
    assert "child_words" in names and "child_views" in names  # their own fields, not buried in the account
    assert "exact words" in form.field("child_words").label


def test_001_poor_practice_failing_to_act_on_early_signs_wider_history_flagged(store, world):
    for days in (25, 12, 0):
        last = report.submit(store, world.teacher, report_values(world, occurred_at="2026-10-01T09:00"),
                             now=NOW - timedelta(days=days)).concern_id
    flags = triage.open_record(store, world.dsl, last, now=LATER).history.flags
    assert any("3 concerns" in f for f in flags)


def test_001_poor_practice_sharing_too_slowly_alerts_are_queued_with_the_concern(store, world):
    r = report.submit(store, world.teacher, report_values(world), now=NOW)
    with store.session() as s:
        alerts = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "concern_alert")).all()
    assert {m.recipient_id for m in alerts} == {world.dsl, world.deputy}
    assert all(m.next_attempt_at <= NOW for m in alerts) and r.reference


def test_001_poor_practice_not_sharing_with_the_right_people_staff_allegation_routing(store, world):
    r = report.submit(store, world.teacher, report_values(world, about_adult="staff", subject=f"person:{world.ta}"), now=NOW)
    assert r.recipients == [world.head]


def test_001_poor_practice_lack_of_challenge_professional_challenge_recorded(store, world, cid):
    followup.record_challenge(store, world.dsl, cid, stage=1, on=NOW.date(), with_whom="Social worker",
                              note="Asked for the decision to be reconsidered.", now=LATER)
    view = triage.open_record(store, world.dsl, cid, now=LATER)
    assert any(e.facts.get("type") == "professional_challenge" for e in view.entries)


def test_003_euphemistic_language_is_pointed_out(store, world):
    hints = report.wording_hints(store, world.teacher, report_values(world, account="Inappropriate touching at break."))
    assert "account" in hints and hints["account"][0].phrase.lower() == "inappropriate touching"


def test_003_confusion_between_contacts_and_referrals_a_referral_has_its_own_record(store, world, cid):
    triage.record_decision(store, world.dsl, cid, DECISION, now=LATER)
    view = triage.open_record(store, world.dsl, cid, now=LATER)
    (ref,) = [e for e in view.entries if e.kind == "referral"]
    assert ref.body["agency"] and ref.body["method"] and ref.body["referred_at"] and ref.body["agency_reference"]


def test_001_consistent_categories_owned_by_the_trust_and_kept_per_record(store, world, cid):
    tax = taxonomy.current()
    assert {"physical_abuse", "neglect", "child_on_child", "cce", "concern_about_adult", "other"} <= set(tax.codes())
    with store.session() as s:
        assert s.get(Concern, cid).taxonomy_version == tax.version
    with pytest.raises(FormErrors):
        report.submit(store, world.teacher, report_values(world, categories=["school_made_this_up"]), now=NOW)


def test_002_childs_views_siblings_and_how_long_worried(store, world, cid):
    view = triage.open_record(store, world.dsl, cid, now=LATER)
    assert view.details["child_views"] and view.details["worry_history"] and view.details["others_involved"]
    sib = report.submit(store, world.teacher, report_values(world, child=f"child:{world.sibling}"), now=NOW).concern_id
    view = triage.open_record(store, world.dsl, cid, now=LATER)
    assert [p.concern_id for p in view.history.siblings] == [sib]


def test_002_informing_parents_is_a_recorded_judgement(store, world, cid):
    raw = dict(DECISION, parents_not_informed_reason="")
    with pytest.raises(FormErrors) as exc:
        triage.record_decision(store, world.dsl, cid, raw, now=LATER)
    assert set(exc.value.errors) == {"parents_not_informed_reason"}


def test_004_social_care_timescales_are_policy_data_configurable_per_trust(store, world):
    start = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)  # a Monday
    default = policy.build_policy()
    wales = policy.build_policy(nation="wales", overrides=[{"statutory": {"sc_acknowledgement": 5}}])
    assert policy.statutory_deadline(default, "sc_acknowledgement", start).date().isoformat() == "2026-12-02"
    assert policy.statutory_deadline(wales, "sc_acknowledgement", start).date().isoformat() == "2026-11-30"
    with store.session() as s:
        t = s.get(Trust, world.trust)
        t.policy = {"statutory": {"icpc": 12}}
        s.add(t)
        assert policy.policy_for(s.get(__import__("storage.models", fromlist=["School"]).School, world.school),
                                 t).statutory.icpc == 12
