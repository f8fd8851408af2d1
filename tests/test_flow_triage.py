"""DSL triage and the referrer's follow-up, through the flow API."""

from datetime import date, timedelta

import pytest
from sqlmodel import select

from flows import followup, queries, report, triage
from flows.errors import Conflict, FormErrors, NotAllowed
from storage.chain import read_body, verify
from storage.models import AuditEvent, ChronologyEntry, Concern, OutboxMessage

from .flow_support import NOW, build_world, report_values

LATER = NOW + timedelta(hours=1)
EARLY = "2026-10-01T09:00"


@pytest.fixture
def world(store):
    return build_world(store)


@pytest.fixture
def concern(store, world):
    return report.submit(store, world.teacher, report_values(world), now=NOW).concern_id


def _kinds(store, concern_id):
    with store.session() as s:
        return [e.kind for e in s.exec(select(ChronologyEntry).where(ChronologyEntry.concern_id == concern_id)
                                       .order_by(ChronologyEntry.seq))]


def _outbox(store, kind):
    with store.session() as s:
        return [m for m in s.exec(select(OutboxMessage).where(OutboxMessage.kind == kind).order_by(OutboxMessage.id))]


DECISION = {"decision": "social_care_referral", "reasons": "Bruising with a consistent disclosure of being grabbed by dad.",
            "participants": "Dana Shah (DSL), Helen Brooks (Head)", "agency": "Northshire MASH",
            "referred_at": "2026-11-24T11:30", "method": "phone", "agency_reference": "MASH-991",
            "parents_informed": "no", "parents_not_informed_reason": "Telling dad could put Amira at greater risk tonight.",
            "review_date": "2026-12-08"}


def test_acknowledge_takes_ownership_and_team_sees_who(store, world, concern):
    r = triage.acknowledge(store, world.dsl, concern, now=LATER)
    assert r["acknowledged_by"] == "Dana Shah" and not r["already"]
    again = triage.acknowledge(store, world.deputy, concern, now=LATER)
    assert again["already"] and again["acknowledged_by"] == "Dana Shah"
    acks = _outbox(store, "alert_acknowledged")
    assert sorted(m.recipient_id for m in acks) == sorted([world.dsl, world.deputy])
    assert _kinds(store, concern) == ["raised", "acknowledged"]


def test_staff_cannot_triage_or_open(store, world, concern):
    for fn in (lambda: triage.acknowledge(store, world.ta, concern),
               lambda: triage.open_record(store, world.ta, concern),
               lambda: triage.record_decision(store, world.teacher, concern, DECISION)):
        with pytest.raises(NotAllowed):
            fn()


def test_opening_the_record_is_audited_and_shows_wider_history(store, world, concern):
    older = report.submit(store, world.ta, report_values(world, categories=["physical_abuse", "neglect"], occurred_at=EARLY),
                          now=NOW - timedelta(days=10)).concern_id
    sib = report.submit(store, world.ta, report_values(world, child=f"child:{world.sibling}", categories=["neglect"],
                                                        occurred_at=EARLY),
                        now=NOW - timedelta(days=3)).concern_id
    view = triage.open_record(store, world.dsl, concern, now=LATER)
    assert view.child_name == "Amira Zed" and view.details["child_words"] == "Dad grabbed me because I spilt the milk"
    assert [p.concern_id for p in view.history.earlier] == [older]
    assert [p.concern_id for p in view.history.open_cases] == [older]
    assert [(p.concern_id, p.child_name) for p in view.history.siblings] == [(sib, "Zak Zed")]
    assert any("Physical abuse" in f and "2 times" in f for f in view.history.flags)
    with store.session() as s:
        ev = s.exec(select(AuditEvent).where(AuditEvent.action == "record.opened")).one()
        assert ev.actor_id == world.dsl and ev.concern_id == concern
    assert _kinds(store, concern)[-1] == "viewed"


def test_three_concerns_in_thirty_days_raise_a_pattern_flag(store, world):
    ids = [report.submit(store, world.teacher, report_values(world, categories=[c], occurred_at=EARLY),
                         now=NOW - timedelta(days=d)).concern_id
           for c, d in (("neglect", 20), ("bullying", 10), ("mental_health", 0))]
    view = triage.open_record(store, world.dsl, ids[-1], now=LATER)
    assert any("3 concerns" in f and "30 days" in f for f in view.history.flags)


def test_ask_referrer_question_and_answer_go_into_chronology(store, world, concern):
    triage.ask_referrer(store, world.dsl, concern, "Which arm was bruised, and did you see the bruise yourself?", now=LATER)
    (req,) = _outbox(store, "info_request")
    assert req.recipient_id == world.teacher
    pending = triage.open_questions(store, world.teacher, concern)
    assert len(pending) == 1 and "Which arm" in pending[0]["question"]
    triage.answer_referrer_question(store, world.teacher, concern, "Left forearm; I saw it myself at 10:15.", now=LATER)
    assert triage.open_questions(store, world.teacher, concern) == []
    view = triage.open_record(store, world.dsl, concern, now=LATER)
    bodies = [e.body for e in view.entries if e.kind == "follow_up"]
    assert bodies[0]["question"].startswith("Which arm") and bodies[1]["answer"].startswith("Left forearm")
    with pytest.raises(NotAllowed):
        triage.answer_referrer_question(store, world.ta, concern, "not mine")


def test_notes_discussions_and_actions(store, world, concern):
    triage.add_entry(store, world.dsl, concern, "note", "Checked attendance: late 6 of the last 8 Mondays.", now=LATER)
    triage.add_entry(store, world.dsl, concern, "discussion", "Agreed to refer today.",
                     participants="Dana Shah, Helen Brooks", now=LATER)
    triage.add_entry(store, world.dsl, concern, "action", "Phoned MASH.", now=LATER)
    with pytest.raises(FormErrors) as exc:
        triage.add_entry(store, world.dsl, concern, "discussion", "Talked", now=LATER)
    assert "participants" in exc.value.errors
    assert _kinds(store, concern)[-3:] == ["note", "discussion", "action"]


def test_decision_needs_reasons_and_who_took_part(store, world, concern):
    with pytest.raises(FormErrors) as exc:
        triage.record_decision(store, world.dsl, concern, {"decision": "no_further_action"}, now=LATER)
    assert set(exc.value.errors) == {"reasons", "participants"}


@pytest.mark.parametrize("decision,extra,missing", [
    ("signpost_external", {}, {"signpost_to"}),
    ("other", {}, {"other_detail"}),
    ("police", {}, {"agency", "referred_at", "method", "parents_informed"}),
    ("lado", {"agency": "LADO", "referred_at": "2026-11-24T12:00", "method": "email", "parents_informed": "no"},
     {"parents_not_informed_reason"}),
])
def test_decision_specific_fields_are_required(store, world, concern, decision, extra, missing):
    raw = {"decision": decision, "reasons": "A reason that is long enough to count.", "participants": "Dana", **extra}
    with pytest.raises(FormErrors) as exc:
        triage.record_decision(store, world.dsl, concern, raw, now=LATER)
    assert set(exc.value.errors) == missing


def test_referral_decision_is_recorded_with_details(store, world, concern):
    out = triage.record_decision(store, world.dsl, concern, DECISION, now=LATER)
    assert out["decision"] == "social_care_referral" and out["review_date"] == date(2026, 12, 8)
    view = triage.open_record(store, world.dsl, concern, now=LATER)
    dec = next(e for e in view.entries if e.kind == "decision")
    ref = next(e for e in view.entries if e.kind == "referral")
    assert dec.body["reasons"].startswith("Bruising") and dec.body["participants"].startswith("Dana")
    assert ref.body["agency"] == "Northshire MASH" and ref.body["agency_reference"] == "MASH-991"
    assert ref.body["parents_informed"] is False and "greater risk" in ref.body["parents_not_informed_reason"]
    assert view.status == "decided" and view.handler == "Dana Shah"


def test_default_review_date_comes_from_policy(store, world, concern):
    out = triage.record_decision(store, world.dsl, concern, {**DECISION, "review_date": ""}, now=LATER)
    assert out["review_date"] > LATER.date() + timedelta(days=20)  # 20 working days, weekends skipped


def test_outcome_shared_with_referrer_in_dsl_words_only(store, world, concern):
    triage.record_decision(store, world.dsl, concern, DECISION, now=LATER)
    triage.share_outcome(store, world.dsl, concern, "Thank you. Other agencies are now involved and supporting the family.",
                         now=LATER)
    (msg,) = _outbox(store, "outcome_shared")
    assert msg.recipient_id == world.teacher
    (mine,) = queries.my_reports(store, world.teacher)
    assert mine.shared_outcome.startswith("Thank you. Other agencies") and mine.status == "decided"


def test_cannot_close_without_decision_and_outcome_summary(store, world, concern):
    with pytest.raises(FormErrors) as exc:
        triage.close(store, world.dsl, concern, "", now=LATER)
    assert set(exc.value.errors) == {"summary", "decision"}
    triage.record_decision(store, world.dsl, concern, DECISION, now=LATER)
    triage.close(store, world.dsl, concern, "Child protection plan in place; school attends core group.", now=LATER)
    with store.session() as s:
        assert s.get(Concern, concern).status == "closed"
    with pytest.raises(Conflict):
        triage.close(store, world.dsl, concern, "Closing again, which must not be allowed.", now=LATER)
    assert _kinds(store, concern)[-2:] == ["outcome", "closed"]


def test_checkin_no_change_prompts_reassessment(store, world, concern):
    triage.acknowledge(store, world.dsl, concern, now=LATER)
    out = followup.checkin(store, world.teacher, concern, "worse", "Arrived with a new bruise today", now=LATER)
    assert out["reassess"] and out["escalation_offered"]
    msgs = _outbox(store, "reassess")
    assert sorted(m.recipient_id for m in msgs) == sorted([world.dsl, world.deputy]) and all(m.urgent for m in msgs)
    better = followup.checkin(store, world.teacher, concern, "improved", now=LATER)
    assert not better["reassess"]
    with pytest.raises(FormErrors):
        followup.checkin(store, world.teacher, concern, "fine")


def test_still_worried_goes_to_head_when_dsl_has_not_responded(store, world, concern):
    out = followup.still_worried(store, world.teacher, concern, "Nobody has spoken to me", now=LATER)
    assert out["to_head"] and world.head in out["recipients"] and world.dsl in out["recipients"]
    assert world.teacher not in out["recipients"]
    triage.acknowledge(store, world.dsl, concern, now=LATER)
    out2 = followup.still_worried(store, world.teacher, concern, now=LATER)
    assert not out2["to_head"] and world.head not in out2["recipients"]
    assert _kinds(store, concern).count("escalation") == 2


def test_still_worried_goes_to_head_when_dsl_is_the_subject(store, world):
    cid = report.submit(store, world.teacher, report_values(world, about_adult="staff", subject=f"person:{world.dsl}"),
                        now=NOW).concern_id
    triage.acknowledge(store, world.head, cid, now=LATER)
    out = followup.still_worried(store, world.teacher, cid, now=LATER)
    assert out["to_head"] and world.dsl not in out["recipients"]
    with pytest.raises(NotAllowed):
        triage.open_record(store, world.dsl, cid)  # the subject never opens their own case


def test_request_update_and_professional_challenge(store, world, concern):
    triage.acknowledge(store, world.dsl, concern, now=LATER)
    followup.request_update(store, world.teacher, concern, now=LATER)
    assert [m.recipient_id for m in _outbox(store, "update_requested")] == [world.dsl]
    followup.record_challenge(store, world.dsl, concern, stage=2, on=date(2026, 12, 1), with_whom="Team manager, MASH",
                              note="Challenged the decision to take no further action despite a second bruise.", now=LATER)
    view = triage.open_record(store, world.dsl, concern, now=LATER)
    ch = [e for e in view.entries if e.kind == "escalation"][-1]
    assert ch.facts == {"type": "professional_challenge", "stage": 2, "on": "2026-12-01"}
    with pytest.raises(NotAllowed):
        followup.record_challenge(store, world.teacher, concern, stage=1, on=date(2026, 12, 1), with_whom="x",
                                  note="not allowed for staff")


def test_social_care_steps_are_recorded(store, world, concern):
    triage.record_decision(store, world.dsl, concern, DECISION, now=LATER)
    triage.record_social_care_step(store, world.dsl, concern, "sc_acknowledgement", LATER, "Letter received", now=LATER)
    view = triage.open_record(store, world.dsl, concern, now=LATER)
    assert [e.facts.get("step") for e in view.entries if e.kind == "referral"][-1] == "sc_acknowledgement"
    with pytest.raises(FormErrors):
        triage.record_social_care_step(store, world.dsl, concern, "made_up", LATER)


def test_child_typed_by_name_can_be_matched_later(store, world):
    cid = report.submit(store, world.teacher, report_values(world, child="Ben Oak year 5"), now=NOW).concern_id
    triage.match_child(store, world.dsl, cid, world.other_child, now=LATER)
    view = triage.open_record(store, world.dsl, cid, now=LATER)
    assert view.child_matched and view.child_name == "Ben Oak"


def test_dsl_queue_and_my_reports(store, world, concern):
    q = queries.dsl_queue(store, world.deputy, now=LATER)
    assert [i.concern_id for i in q.awaiting_ack] == [concern] and q.open == []
    triage.acknowledge(store, world.deputy, concern, now=LATER)
    q = queries.dsl_queue(store, world.deputy, now=LATER)
    assert q.awaiting_ack == [] and [i.concern_id for i in q.open] == [concern]
    assert queries.dsl_queue(store, world.teacher, now=LATER).open == []
    (mine,) = queries.my_reports(store, world.teacher)
    assert mine.reference == "SG-2026-0001" and mine.shared_outcome is None


def test_every_step_keeps_the_chain_intact(store, world, concern):
    triage.acknowledge(store, world.dsl, concern, now=LATER)
    triage.record_decision(store, world.dsl, concern, DECISION, now=LATER)
    triage.share_outcome(store, world.dsl, concern, "Other agencies are involved.", now=LATER)
    followup.checkin(store, world.teacher, concern, "no_change", now=LATER)
    followup.still_worried(store, world.teacher, concern, now=LATER)
    triage.close(store, world.dsl, concern, "Plan in place and reviewed with social care.", now=LATER)
    with store.session() as s:
        assert verify(s) == []
        for e in s.exec(select(ChronologyEntry)):
            read_body(store.cipher, e)  # every body decrypts


def test_review_checkin_wording_fits_the_referrer_and_the_handler(store, world, concern):
    from flows import notices
    from storage.models import OutboxMessage

    with store.session() as s:
        to_referrer = notices.compose(s, OutboxMessage(kind="checkin", recipient_id=world.teacher, dedupe_key="-",
                                                       payload={"concern_id": concern}))
        to_dsl = notices.compose(s, OutboxMessage(kind="checkin", recipient_id=world.dsl, dedupe_key="-",
                                                  payload={"concern_id": concern}))
    assert "since you raised it" in " ".join(to_referrer.lines)
    assert "review date has come" in " ".join(to_dsl.lines) and "since you raised it" not in " ".join(to_dsl.lines)
    assert {a.id for a in to_dsl.actions} >= {"checkin", "still_worried"}
    assert "Amira" not in to_dsl.text and "Amira" not in to_referrer.text
