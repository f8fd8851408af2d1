"""The nudge rules, with the clock run forward the way `worker --once --now` runs it: each
rule fires at the policy's time (working time for normal concerns, minutes at any hour for
urgent ones), reaches the right people, and is cancelled by the event it was waiting for."""

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update
from sqlmodel import select

from bot.worker import Counts, Worker, WorkerConfig
from flows import followup, notices, nudge_rules, report, schedule, triage
from flows.policy import policy_for, statutory_deadline
from storage.models import AuditEvent, Concern, Nudge, OutboxMessage, School, Trust

from .flow_support import NOW, build_world, report_values


def utc(*a) -> datetime:
    return datetime(*a, tzinfo=timezone.utc)  # November/December: London is on GMT (= UTC)


@pytest.fixture
def world(store):
    return build_world(store)


def sweep(store, now):
    """What `safeguarding-bot worker --once --now NOW` does with nudges."""
    counts = Counts()
    Worker(store, transports=[], config=WorkerConfig(jitter=0)).fire_nudges(now, counts)
    return counts


def from_nudges(store, kind=None):
    """Outbox messages created by nudges: (kind, recipient) in order."""
    with store.session() as s:
        q = select(OutboxMessage).where(OutboxMessage.dedupe_key.like("nudge:%")).order_by(OutboxMessage.id)
        return [(m.kind, m.recipient_id) for m in s.exec(q) if kind is None or m.kind == kind]


def pending(store, concern_id=None):
    with store.session() as s:
        q = select(Nudge).where(Nudge.state == "pending").order_by(Nudge.due_at, Nudge.id)
        if concern_id:
            q = q.where(Nudge.concern_id == concern_id)
        return list(s.exec(q))


def raise_concern(store, world, now, **over):
    return report.submit(store, world.teacher, report_values(world, **over), now=now).concern_id


def test_normal_ack_ladder_waits_for_working_time_across_a_weekend(store, world):
    cid = raise_concern(store, world, utc(2026, 11, 27, 17, 0))  # Friday 17:00
    sweep(store, utc(2026, 11, 28, 12, 0))                        # Saturday: nothing is due
    sweep(store, utc(2026, 11, 30, 8, 59))
    assert from_nudges(store) == []
    # 2 working hours: Friday 17:00-18:00, then Monday 08:00-09:00.
    sweep(store, utc(2026, 11, 30, 9, 0))
    assert sorted(from_nudges(store, "ack_reminder")) == sorted([("ack_reminder", world.dsl), ("ack_reminder", world.deputy)])
    # One working day: Friday 17:00 + 10 working hours = Monday 17:00, to the deputies.
    sweep(store, utc(2026, 11, 30, 16, 59))
    assert from_nudges(store, "ack_escalation") == []
    sweep(store, utc(2026, 11, 30, 17, 0))
    assert from_nudges(store, "ack_escalation") == [("ack_escalation", world.deputy)]
    # Two working days: Tuesday 17:00, to the headteacher. Then the ladder ends.
    sweep(store, utc(2026, 12, 1, 17, 0))
    assert from_nudges(store, "ack_escalation") == [("ack_escalation", world.deputy), ("ack_escalation", world.head)]
    assert [n.kind for n in pending(store, cid)] == ["referrer_follow_up", "inactivity"]
    with store.session() as s:
        ev = s.exec(select(AuditEvent).where(AuditEvent.action == "nudge.escalated")).all()
        assert [e.details["step"] for e in ev] == [2, 3] and ev[1].details["recipients"] == [world.head]


def test_normal_reminder_is_delayed_over_christmas_bank_holidays(store, world):
    raise_concern(store, world, utc(2026, 12, 24, 16, 0), occurred_at="2026-12-24T09:00")  # Thursday 16:00
    # 2 working hours end at 18:00 exactly: delivered at the start of the next working period.
    # Fri 25 (Christmas), the weekend and Mon 28 (Boxing Day substitute) are not working days.
    sweep(store, utc(2026, 12, 24, 18, 0))
    sweep(store, utc(2026, 12, 28, 12, 0))
    assert from_nudges(store) == []
    sweep(store, utc(2026, 12, 29, 8, 0))
    assert sorted(r for _, r in from_nudges(store, "ack_reminder")) == sorted([world.dsl, world.deputy])


def test_urgent_concern_at_night_escalates_within_minutes(store, world):
    cid = raise_concern(store, world, utc(2026, 11, 28, 2, 0), immediate_danger="yes")  # Saturday 02:00
    routed = {world.dsl, world.deputy, world.head}
    sweep(store, utc(2026, 11, 28, 2, 9, 59))
    assert from_nudges(store) == []
    sweep(store, utc(2026, 11, 28, 2, 10))
    assert {r for _, r in from_nudges(store, "ack_reminder")} == routed
    sweep(store, utc(2026, 11, 28, 2, 20))
    assert from_nudges(store, "ack_escalation") == [("ack_escalation", world.deputy)]
    sweep(store, utc(2026, 11, 28, 2, 30))
    assert from_nudges(store, "ack_escalation")[-1] == ("ack_escalation", world.head)
    with store.session() as s:
        msgs = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "ack_escalation")).all()
        assert all(m.urgent for m in msgs)
        notice = notices.compose(s, msgs[-1])
    assert notice.text == f"Escalation: URGENT safeguarding concern {notice.reference} has not been acknowledged"
    assert notices.ACKNOWLEDGE in [a.id for a in notice.actions]
    for secret in ("Amira", "bruise", "Dad", "physical"):  # the lock screen shows the reference only
        assert secret not in notice.text and secret not in " ".join(notice.lines)
    assert not [n for n in pending(store, cid) if n.kind == "ack"]


def test_urgent_minutes_come_from_the_schools_policy(store, world):
    with store.session() as s:
        school = s.get(School, world.school)
        school.policy = {"nudges": {"urgent_ack_realert_minutes": 3}}
        s.add(school)
    raise_concern(store, world, utc(2026, 11, 28, 2, 0), immediate_danger="yes")
    sweep(store, utc(2026, 11, 28, 2, 3))
    assert len(from_nudges(store, "ack_reminder")) == 3


def test_acknowledging_cancels_the_ladder(store, world):
    cid = raise_concern(store, world, utc(2026, 11, 28, 2, 0), immediate_danger="yes")
    sweep(store, utc(2026, 11, 28, 2, 10))
    triage.acknowledge(store, world.dsl, cid, now=utc(2026, 11, 28, 2, 15))
    sweep(store, utc(2026, 11, 28, 3, 0))
    assert from_nudges(store, "ack_escalation") == []
    with store.session() as s:
        states = {(n.step, n.state) for n in s.exec(select(Nudge).where(Nudge.kind == "ack"))}
    assert states == {(1, "done"), (2, "cancelled")}


def test_firing_rechecks_the_concern_under_lock(store, world):
    """An acknowledgement that reached the row without the event (or raced the sweep) still stops it."""
    cid = raise_concern(store, world, NOW)
    with store.session() as s:
        s.execute(update(Concern).where(Concern.id == cid).values(handler_id=world.dsl, acknowledged_at=NOW,
                                                                  status="acknowledged"))
    counts = sweep(store, NOW + timedelta(hours=3))
    assert from_nudges(store, "ack_reminder") == [] and counts.nudges_cancelled == 1
    assert not [n for n in pending(store, cid) if n.kind == "ack"]


def test_a_rule_never_creates_the_same_nudge_twice(store, world):
    cid = raise_concern(store, world, NOW)
    with store.session() as s:
        concern = s.get(Concern, cid)
        schedule.on_event(s, concern, "raised", NOW)  # e.g. a retried request
        schedule.on_event(s, concern, "raised", NOW)
    kinds = sorted(n.kind for n in pending(store, cid))
    assert kinds == ["ack", "inactivity", "referrer_follow_up"]


def test_referrer_is_nudged_after_three_working_days_with_one_click_to_ask(store, world):
    cid = raise_concern(store, world, NOW)  # Tuesday 11:00
    triage.acknowledge(store, world.dsl, cid, now=NOW + timedelta(minutes=30))
    sweep(store, utc(2026, 11, 27, 10, 59))
    assert from_nudges(store, "referrer_follow_up") == []
    sweep(store, utc(2026, 11, 27, 11, 0))  # Friday 11:00
    assert from_nudges(store, "referrer_follow_up") == [("referrer_follow_up", world.teacher)]
    with store.session() as s:
        msg = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "referrer_follow_up")).one()
        notice = notices.compose(s, msg)
    ask = notice.actions[0]
    assert ask.id == notices.REQUEST_UPDATE and ask.value == {"concern_id": cid}
    followup.request_update(store, world.teacher, cid, now=utc(2026, 11, 27, 11, 5))  # the one click
    with store.session() as s:
        asked = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "update_requested")).all()
    assert [m.recipient_id for m in asked] == [world.dsl]


def test_sharing_an_outcome_cancels_the_referrer_nudge(store, world):
    cid = raise_concern(store, world, NOW)
    triage.acknowledge(store, world.dsl, cid, now=NOW)
    triage.share_outcome(store, world.dsl, cid, "Thank you, this is being dealt with.", now=NOW + timedelta(days=1))
    sweep(store, utc(2026, 12, 1, 12, 0))
    assert from_nudges(store, "referrer_follow_up") == []


DECISION = {"decision": "social_care_referral", "reasons": "Bruising with a consistent disclosure of being grabbed.",
            "participants": "Dana Shah (DSL)", "agency": "Northshire MASH", "referred_at": "2026-11-24T11:30",
            "method": "phone", "parents_informed": "yes", "review_date": "2026-12-08"}


def test_review_date_asks_referrer_and_handler_and_worse_prompts_reassessment(store, world):
    cid = raise_concern(store, world, NOW)
    triage.record_decision(store, world.dsl, cid, {**DECISION, "decision": "monitor"}, now=NOW + timedelta(hours=1))
    sweep(store, utc(2026, 12, 8, 7, 59))
    assert from_nudges(store, "checkin") == []
    sweep(store, utc(2026, 12, 8, 8, 0))  # Tuesday 8 December, start of the working day
    assert sorted(r for _, r in from_nudges(store, "checkin")) == sorted([world.teacher, world.dsl])
    followup.checkin(store, world.teacher, cid, "worse", now=utc(2026, 12, 8, 9, 0))
    with store.session() as s:
        reassess = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "reassess")).all()
    assert reassess and all(m.urgent for m in reassess)


def test_a_new_decision_moves_the_review_checkin(store, world):
    cid = raise_concern(store, world, NOW)
    triage.record_decision(store, world.dsl, cid, {**DECISION, "decision": "monitor"}, now=NOW + timedelta(hours=1))
    triage.record_decision(store, world.dsl, cid, {**DECISION, "decision": "monitor", "review_date": "2026-12-15"},
                           now=NOW + timedelta(hours=2))
    reviews = [n for n in pending(store, cid) if n.kind == "review_checkin"]
    assert [n.due_at for n in reviews] == [utc(2026, 12, 15, 8, 0)]
    sweep(store, utc(2026, 12, 8, 12, 0))
    assert from_nudges(store, "checkin") == []


def _sc_nudges(store, cid):
    return {n.payload["step"]: n.due_at for n in pending(store, cid) if n.kind == "social_care"}


def test_social_care_statutory_clock_chases_overdue_steps_only(store, world):
    cid = raise_concern(store, world, NOW)
    triage.record_decision(store, world.dsl, cid, DECISION, now=NOW + timedelta(hours=1))  # referred Tue 24 11:30
    # Decision within 1 working day: due by Wed 25 18:00, chased Thu 26 08:00.
    # Acknowledgement within 7 working days: due by Thu 3 Dec 18:00, chased Fri 4 Dec 08:00.
    assert _sc_nudges(store, cid) == {"sc_decision": utc(2026, 11, 26, 8, 0),
                                      "sc_acknowledgement": utc(2026, 12, 4, 8, 0)}
    sweep(store, utc(2026, 11, 26, 7, 59))
    assert from_nudges(store, "social_care_chase") == []
    sweep(store, utc(2026, 11, 26, 8, 0))
    assert from_nudges(store, "social_care_chase") == [("social_care_chase", world.dsl)]
    # The decision is recorded: strategy discussion within 1 working day of it (Fri 27 18:00 -> Mon 30 08:00).
    triage.record_social_care_step(store, world.dsl, cid, "sc_decision", utc(2026, 11, 26, 9, 0),
                                   now=utc(2026, 11, 26, 9, 30))
    assert _sc_nudges(store, cid) == {"sc_acknowledgement": utc(2026, 12, 4, 8, 0),
                                      "strategy_discussion": utc(2026, 11, 30, 8, 0)}
    # Strategy discussion held on time: Section 47 (10 wd) and ICPC (15 wd) clocks start from it.
    held = utc(2026, 11, 27, 14, 0)
    triage.record_social_care_step(store, world.dsl, cid, "strategy_discussion", held, now=held)
    with store.session() as s:
        pol = policy_for(s.get(School, world.school), s.get(Trust, world.trust))
    due = _sc_nudges(store, cid)
    assert set(due) == {"sc_acknowledgement", "section47", "icpc"}
    assert statutory_deadline(pol, "section47", held) == utc(2026, 12, 11, 18, 0)  # Fri 11 Dec
    assert due["section47"] == utc(2026, 12, 14, 8, 0) and due["icpc"] == utc(2026, 12, 21, 8, 0)
    # Acknowledgement recorded: its chase never fires.
    triage.record_social_care_step(store, world.dsl, cid, "sc_acknowledgement", utc(2026, 12, 2, 10, 0),
                                   now=utc(2026, 12, 2, 10, 0))
    sweep(store, utc(2026, 12, 4, 9, 0))
    assert len(from_nudges(store, "social_care_chase")) == 1
    with store.session() as s:
        msg = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "social_care_chase")).one()
        notice = notices.compose(s, msg)
    assert "Social care's initial decision was due by Wed 25 Nov 2026 18:00" in " ".join(notice.lines)
    assert "Amira" not in notice.text


def test_a_second_strategy_discussion_restarts_the_icpc_clock(store, world):
    cid = raise_concern(store, world, NOW)
    triage.record_decision(store, world.dsl, cid, DECISION, now=NOW + timedelta(hours=1))
    triage.record_social_care_step(store, world.dsl, cid, "strategy_discussion", utc(2026, 11, 25, 10, 0),
                                   now=utc(2026, 11, 25, 10, 0))
    first = _sc_nudges(store, cid)["icpc"]
    triage.record_social_care_step(store, world.dsl, cid, "strategy_discussion", utc(2026, 12, 1, 10, 0),
                                   now=utc(2026, 12, 1, 10, 0))
    icpcs = [n for n in pending(store, cid) if n.kind == "social_care" and n.payload["step"] == "icpc"]
    assert len(icpcs) == 1 and icpcs[0].due_at > first


def test_inactivity_nudges_the_handler_and_activity_resets_it(store, world):
    cid = raise_concern(store, world, NOW)
    triage.acknowledge(store, world.dsl, cid, now=utc(2026, 11, 24, 12, 0))  # Tuesday 12:00
    # 10 working days of working time: Tuesday 8 December 12:00.
    assert [n.due_at for n in pending(store, cid) if n.kind == "inactivity"] == [utc(2026, 12, 8, 12, 0)]
    triage.add_entry(store, world.dsl, cid, "note", "Spoke to the class teacher.", now=utc(2026, 11, 26, 12, 0))
    sweep(store, utc(2026, 12, 8, 12, 0))
    assert from_nudges(store, "inactivity_reminder") == []
    sweep(store, utc(2026, 12, 10, 12, 0))  # 10 working days after Thursday 26 November 12:00
    assert from_nudges(store, "inactivity_reminder") == [("inactivity_reminder", world.dsl)]
    # Re-armed: another 10 working days of silence, another nudge.
    assert [n.due_at for n in pending(store, cid) if n.kind == "inactivity"] == [utc(2026, 12, 24, 12, 0)]


def test_inactivity_rechecks_last_activity_when_firing(store, world):
    cid = raise_concern(store, world, NOW)
    triage.acknowledge(store, world.dsl, cid, now=NOW)
    later = utc(2026, 12, 1, 12, 0)
    with store.session() as s:  # touched without an event (e.g. a pupil matched to the roll)
        s.execute(update(Concern).where(Concern.id == cid).values(last_activity_at=later))
    sweep(store, utc(2026, 12, 8, 12, 0))
    assert from_nudges(store, "inactivity_reminder") == []
    assert [n.due_at for n in pending(store, cid) if n.kind == "inactivity"] == [utc(2026, 12, 15, 12, 0)]


def test_closing_cancels_every_nudge(store, world):
    cid = raise_concern(store, world, NOW)
    triage.record_decision(store, world.dsl, cid, DECISION, now=NOW + timedelta(hours=1))
    assert pending(store, cid)
    triage.close(store, world.dsl, cid, "Referred to social care; plan in place, closed here.",
                 now=NOW + timedelta(hours=2))
    assert pending(store, cid) == []
    sweep(store, utc(2027, 3, 1, 12, 0))
    assert from_nudges(store) == []


def test_nudges_list_shows_due_times_and_recipients_without_content(store, world):
    cid = raise_concern(store, world, NOW)
    with store.session() as s:
        rows = nudge_rules.pending(s)
    by_kind = {r["kind"]: r for r in rows}
    assert set(by_kind) == {"ack", "referrer_follow_up", "inactivity"}
    assert by_kind["ack"]["due_at"] == utc(2026, 11, 24, 13, 0).isoformat()
    assert sorted(by_kind["ack"]["recipients"]) == ["deputy@s.test", "dsl@s.test"]
    assert by_kind["referrer_follow_up"]["recipients"] == ["teacher@s.test"]
    assert all(r["reference"] == "SG-2026-0001" for r in rows)
    assert "Amira" not in repr(rows)
    assert cid


def test_working_day_arithmetic_matches_its_definition(store, world):
    """after_working_days is computed in closed form for speed; it must equal
    next_working_time(add_working_hours(start, days x working-day hours)) everywhere,
    across weekends, bank holidays, closures, BST changes and out-of-hours starts."""
    from hypothesis import given, settings, strategies as st

    from flows.policy import add_working_hours, build_policy, next_working_time

    policies = [build_policy(), build_policy(nation="scotland", closures=["2026-10-26", "2026-10-27"]),
                build_policy(overrides=[{"working_hours": {"start": "07:30", "end": "16:15",
                                                           "days": ["mon", "tue", "wed", "thu"]}}])]

    @settings(max_examples=300, deadline=None)
    @given(st.integers(0, 2), st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31),
                                           timezones=st.just(timezone.utc)), st.integers(1, 25))
    def check(i, start, days):
        p = policies[i]
        hours = nudge_rules.working_day_hours(p)
        expected = next_working_time(p, add_working_hours(p, start, days * hours))
        assert nudge_rules.after_working_days(p, start, days) == expected

    check()


def test_a_nudge_kind_without_a_rule_is_delivered_as_written_or_cancelled(store, world):
    """Other modules' nudges (e.g. the transfer reminder) carry their own safe wording."""
    with store.session() as s:
        s.add(Nudge(kind="transfer_confirm", recipient_id=world.dsl, due_at=NOW, dedupe_key="x:1",
                    payload={"title": "A transfer is not confirmed", "text": "Transfer 7 is not confirmed"}))
        s.add(Nudge(kind="mystery", due_at=NOW, dedupe_key="x:2", payload={}))
    counts = sweep(store, NOW)
    assert (counts.nudges_fired, counts.nudges_cancelled) == (1, 1)
    with store.session() as s:
        msg = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "transfer_confirm")).one()
        assert msg.recipient_id == world.dsl and notices.compose(s, msg).text == "Transfer 7 is not confirmed"
        assert {n.dedupe_key: n.state for n in s.exec(select(Nudge))} == {"x:1": "done", "x:2": "cancelled"}
