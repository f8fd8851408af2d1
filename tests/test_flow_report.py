"""Reporting a concern: validation, routing, receipt, idempotency, and nothing saved half-way."""

from datetime import timedelta

import pytest
from sqlmodel import select

from flows import report
from flows.errors import FormErrors, NotInDirectory
from storage.chain import read_body
from storage.models import AuditEvent, ChronologyEntry, Concern, OutboxMessage

from .flow_support import NOW, build_world, report_values


@pytest.fixture
def world(store):
    return build_world(store)


def _outbox(store):
    with store.session() as s:
        return [(m.kind, m.recipient_id, m.urgent) for m in s.exec(select(OutboxMessage).order_by(OutboxMessage.id))]


def test_submit_saves_concern_chronology_alerts_and_receipt_together(store, world):
    r = report.submit(store, world.teacher, report_values(world), now=NOW)
    assert r.reference == "SG-2026-0001" and not r.urgent
    with store.session() as s:
        c = s.get(Concern, r.concern_id)
        assert c.child_id == world.child and c.account.startswith("At 10:15")
        assert c.child_words == "Dad grabbed me because I spilt the milk"  # verbatim, its own field
        assert c.child_views == "She does not want to go home tonight"
        (entry,) = s.exec(select(ChronologyEntry).where(ChronologyEntry.concern_id == c.id)).all()
        assert entry.kind == "raised" and read_body(store.cipher, entry)["child_words"] == c.child_words
        ev = s.exec(select(AuditEvent).where(AuditEvent.action == "concern.raised")).one()
        assert "account" not in ev.details and ev.details["reference"] == r.reference
    assert sorted(_outbox(store)) == sorted([("concern_alert", world.dsl, False), ("concern_alert", world.deputy, False),
                                             ("receipt", world.teacher, False)])


def test_references_are_unique_and_sequential_per_school_and_year(store, world):
    refs = [report.submit(store, world.teacher, report_values(world), now=NOW).reference for _ in range(3)]
    assert refs == ["SG-2026-0001", "SG-2026-0002", "SG-2026-0003"]
    nxt = report.submit(store, world.teacher, report_values(world, occurred_at="2026-12-30T09:00"),
                        now=NOW.replace(year=2027, month=1, day=4))
    assert nxt.reference == "SG-2027-0001"


def test_receipt_carries_no_concern_content(store, world):
    r = report.submit(store, world.teacher, report_values(world), now=NOW)
    text = " ".join(r.lines)
    assert r.reference in text
    for secret in ("Amira", "bruise", "Dad grabbed", "physical"):
        assert secret not in text


def test_validation_errors_are_per_field_and_say_how_to_fix(store, world):
    bad = report_values(world, location="", categories=["made_up"], account="hit",
                        occurred_at=(NOW + timedelta(days=2)).isoformat(), about_adult="maybe")
    with pytest.raises(FormErrors) as exc:
        report.submit(store, world.teacher, bad, now=NOW)
    e = exc.value.errors
    assert set(e) == {"location", "categories", "account", "occurred_at", "about_adult"}
    assert "Fill in" in e["location"] and "at least 20" in e["account"] and "future" in e["occurred_at"]
    with store.session() as s:
        assert s.exec(select(Concern)).all() == [] and s.exec(select(OutboxMessage)).all() == []


def test_adult_name_required_only_when_about_an_adult(store, world):
    with pytest.raises(FormErrors) as exc:
        report.submit(store, world.teacher, report_values(world, about_adult="staff"), now=NOW)
    assert set(exc.value.errors) == {"subject"}


def test_child_not_on_roll_is_kept_as_typed_and_flagged(store, world):
    r = report.submit(store, world.teacher, report_values(world, child="Jayden Smith, Year 2"), now=NOW)
    with store.session() as s:
        c = s.get(Concern, r.concern_id)
        assert c.child_id is None and c.needs_child_match and c.child_name_given == "Jayden Smith, Year 2"


def test_child_from_another_school_is_refused(store, world):
    other = build_world(store, slug="o", trust_slug="o")
    with pytest.raises(FormErrors) as exc:
        report.submit(store, world.teacher, report_values(world, child=f"child:{other.child}"), now=NOW)
    assert "child" in exc.value.errors


def test_immediate_danger_goes_to_whole_dsl_team_and_head_as_urgent(store, world):
    r = report.submit(store, world.teacher, report_values(world, immediate_danger="yes"), now=NOW)
    assert r.urgent and r.lines[0].startswith("If the child is in immediate danger: call 999")
    alerts = [(k, rid, u) for k, rid, u in _outbox(store) if k == "concern_alert"]
    assert sorted(alerts) == sorted([("concern_alert", p, True) for p in (world.dsl, world.deputy, world.head)])


def test_danger_question_comes_first_in_the_form():
    assert report.report_form().fields[0].name == "immediate_danger"


def test_concern_about_staff_goes_to_head_not_dsl(store, world):
    r = report.submit(store, world.teacher, report_values(world, about_adult="staff", subject=f"person:{world.ta}"), now=NOW)
    assert r.recipients == [world.head]
    with store.session() as s:
        c = s.get(Concern, r.concern_id)
        assert c.subject_person_id == world.ta and c.about_adult


def test_concern_about_head_goes_to_chair(store, world):
    r = report.submit(store, world.teacher, report_values(world, about_adult="headteacher", subject=f"person:{world.head}"),
                      now=NOW)
    assert r.recipients == [world.chair]


def test_referrer_is_never_routed_their_own_concern(store, world):
    r = report.submit(store, world.dsl, report_values(world), now=NOW)
    assert world.dsl not in r.recipients and r.recipients == [world.deputy]
    r2 = report.submit(store, world.head, report_values(world, about_adult="staff", subject=f"person:{world.teacher}"), now=NOW)
    assert world.head not in r2.recipients and r2.recipients  # widened, never empty
    assert world.teacher not in r2.recipients


def test_routing_is_configurable_per_school(store, world):
    from storage.models import School

    with store.session() as s:
        sc = s.get(School, world.school)
        sc.policy = {"routing": {"child": ["dsl"]}}
        s.add(sc)
    r = report.submit(store, world.teacher, report_values(world), now=NOW)
    assert r.recipients == [world.dsl]


def test_same_submission_key_never_creates_a_second_concern(store, world):
    a = report.submit(store, world.teacher, report_values(world), submission_key="V123", now=NOW)
    b = report.submit(store, world.teacher, report_values(world), submission_key="V123", now=NOW)
    assert b.duplicate and a.concern_id == b.concern_id and a.reference == b.reference
    with store.session() as s:
        assert len(s.exec(select(Concern)).all()) == 1
        assert len([m for m in s.exec(select(OutboxMessage)) if m.kind == "concern_alert"]) == 2


def test_unknown_person_cannot_submit(store, world):
    with pytest.raises(NotInDirectory):
        report.submit(store, 9999, report_values(world), now=NOW)


def test_failure_mid_submission_saves_nothing(store, world, monkeypatch):
    from flows import notices

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(notices, "enqueue", boom)
    with pytest.raises(RuntimeError):
        report.submit(store, world.teacher, report_values(world), now=NOW)
    with store.session() as s:
        assert s.exec(select(Concern)).all() == [] and s.exec(select(ChronologyEntry)).all() == []
        assert s.exec(select(AuditEvent)).all() == []


def test_the_adult_is_picked_from_the_staff_list_never_matched_by_a_typed_name(store, world):
    assert report.search_staff(store, world.teacher, "dana") == [(f"person:{world.dsl}", "Dana Shah (DSL)")]
    assert report.search_staff(store, world.teacher, "s.test")[0][1] == "Dana Shah (DSL)"  # by email too
    assert report.search_staff(store, world.teacher, "zzz") == []
    picked = report.submit(store, world.teacher, report_values(world, about_adult="staff",
                                                               subject=f"person:{world.dsl}"), now=NOW)
    typed = report.submit(store, world.teacher, report_values(world, about_adult="staff", subject="Dana Shah"),
                          now=NOW)
    with store.session() as s:
        a, b = s.get(Concern, picked.concern_id), s.get(Concern, typed.concern_id)
        assert (a.subject_person_id, a.subject_name) == (world.dsl, "Dana Shah")
        assert (b.subject_person_id, b.subject_name) == (None, "Dana Shah")  # exactly her name: still not matched


def test_a_picked_headteacher_is_routed_as_the_headteacher_whatever_was_ticked(store, world):
    r = report.submit(store, world.teacher, report_values(world, about_adult="staff",
                                                          subject=f"person:{world.head}"), now=NOW)
    with store.session() as s:
        c = s.get(Concern, r.concern_id)
        assert c.subject_role == "headteacher" and c.routed_to == [world.chair]


def test_someone_not_on_this_schools_staff_list_cannot_be_picked(store, world):
    other = build_world(store, slug="o", trust_slug="ot")
    with pytest.raises(FormErrors) as exc:
        report.submit(store, world.teacher, report_values(world, about_adult="staff",
                                                          subject=f"person:{other.dsl}"), now=NOW)
    assert "not on this school's staff list" in exc.value.errors["subject"]
