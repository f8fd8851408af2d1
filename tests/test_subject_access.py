"""The adult a concern is about never reads it, on any path (flows/access.py is the one rule).

A name typed instead of picked from the staff list may mean anyone in the DSL team, spelled
however the referrer chose: such a concern goes to the headteacher only, and nobody in the DSL
team may open it, be alerted, reminded or told of a failed delivery, or find it in a queue, a
history, a child's file, an export, a transfer pack, a subject access export, a QA sample or a
figure, until the headteacher says who it is (flows/subject.py)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlmodel import select

from bot.delivery import TransientDeliveryError
from bot.worker import Counts, Worker, WorkerConfig
from flows import access, analytics, followup, nudge_rules, qa, queries, report, sar, subject, transfer, triage
from flows.chronology import child_file
from flows.errors import Conflict, FormErrors, NotAllowed
from storage.chain import read_body, verify
from storage.models import (AuditEvent, ChronologyEntry, Concern, Nudge, OutboxMessage, Person, RoleAssignment,
                            School)

from .flow_support import NOW, build_world, report_values
from .worker_support import Scripted

# How a referrer may write "Dana Shah" (dsl@s.test), the DSL, when they type instead of picking.
VARIANTS = {"exact name": "Dana Shah", "title and initial": "Mrs D. Shah", "initial and surname": "D Shah",
            "one-letter typo": "Dana Shar", "email": "dsl@s.test", "upper case": "DANA SHAH",
            "extra spaces": "  Dana    Shah  "}
ACCOUNT = "At 09:40 the adult shouted at Amira and pulled her by the arm out of the lunch queue."
DECISION = {"decision": "lado", "reasons": "An allegation of physical harm by a member of staff: LADO consulted.",
            "participants": "Helen Brooks (Head)", "agency": "Northshire LADO", "referred_at": "2026-11-24T11:30",
            "method": "phone", "parents_informed": "yes"}
LATER = NOW + timedelta(hours=1)


@pytest.fixture
def world(store):
    return build_world(store)


def allegation(store, world, typed_or_person, *, by=None, about="staff", now=NOW, **over) -> int:
    over.setdefault("account", ACCOUNT)
    over.setdefault("categories", ["concern_about_adult"])
    values = report_values(world, about_adult=about, subject=typed_or_person, **over)
    return report.submit(store, by or world.teacher, values, now=now).concern_id


def get(store, cid) -> Concern:
    with store.session() as s:
        return s.get(Concern, cid)


def outbox(store, kind=None) -> list[OutboxMessage]:
    with store.session() as s:
        q = select(OutboxMessage).order_by(OutboxMessage.id)
        return [m for m in s.exec(q) if kind is None or m.kind == kind]


def sweep_all(store, start, days=12):
    """Fire every nudge due over the next `days` days, as the worker would, a few times a day."""
    w = Worker(store, transports=[], config=WorkerConfig(jitter=0))
    for h in range(0, days * 24, 3):
        w.fire_nudges(start + timedelta(hours=h), Counts())


def told_about(store, cid) -> set[int]:
    """Everyone any message about this concern was queued for."""
    return {m.recipient_id for m in outbox(store) if (m.payload or {}).get("concern_id") == cid}


# --- the seven spellings ------------------------------------------------------------------------

@pytest.mark.parametrize("typed", VARIANTS.values(), ids=VARIANTS.keys())
def test_a_typed_name_never_reaches_the_dsl_it_may_mean(store, world, typed):
    before = analytics.headline(store, world.school, now=LATER, viewer_id=world.dsl)
    cid = allegation(store, world, typed)
    c = get(store, cid)
    assert (c.subject_person_id, c.subject_status, c.routed_to) == (None, "unresolved", [world.head])
    for dsl in (world.dsl, world.deputy):  # the whole DSL team: any of them may be the one meant
        with pytest.raises(NotAllowed):
            triage.open_record(store, dsl, cid, now=LATER)
        assert cid not in [i.concern_id for i in queries.dsl_queue(store, dsl, now=LATER).awaiting_ack]
        with store.session() as s:
            assert not access.may_be_told(s, dsl, get(store, cid))
            assert not access.may_be_told(s, dsl, get(store, cid), escalated=True)
    assert analytics.headline(store, world.school, now=LATER, viewer_id=world.dsl) == before  # App Home figures
    # Alerted: the headteacher only (and the referrer's receipt); then every reminder and
    # escalation rung for days: still nobody in the DSL team.
    assert {(m.kind, m.recipient_id) for m in outbox(store)} == {("concern_alert", world.head),
                                                                ("receipt", world.teacher)}
    sweep_all(store, NOW)
    assert world.dsl not in told_about(store, cid) and world.deputy not in told_about(store, cid)
    assert told_about(store, cid) >= {world.head}
    with store.session() as s:
        listed = {r["reference"]: r for r in nudge_rules.pending(s)}
    assert "dsl@s.test" not in json.dumps(listed) and "deputy@s.test" not in json.dumps(listed)
    # The headteacher may open it, sees it in their queue, and is offered "Identify the adult".
    assert triage.open_record(store, world.head, cid, now=LATER).subject_unresolved
    assert cid in [i.concern_id for i in queries.dsl_queue(store, world.head, now=LATER).awaiting_ack]
    assert subject.may_identify(store, world.head, cid) and not subject.may_identify(store, world.dsl, cid)


def test_a_picked_adult_is_routed_as_before(store, world):
    cid = allegation(store, world, report.staff_value(world.ta))
    c = get(store, cid)
    assert (c.subject_person_id, c.subject_status, c.routed_to) == (world.ta, "picked", [world.head])
    triage.open_record(store, world.dsl, cid, now=LATER)  # the DSL team may handle it
    with pytest.raises(NotAllowed):
        triage.open_record(store, world.ta, cid, now=LATER)
    assert not subject.may_identify(store, world.head, cid)


def test_the_receipt_says_where_a_typed_name_went(store, world):
    values = report_values(world, about_adult="staff", subject="Mrs D. Shah")
    r = report.submit(store, world.teacher, values, submission_key="k1", now=NOW)
    assert "headteacher" in r.lines[1] and "nobody in the safeguarding team can see it" in r.lines[1]
    assert "sent to the safeguarding team" not in " ".join(r.lines)
    again = report.submit(store, world.teacher, values, submission_key="k1", now=NOW)
    assert again.duplicate and again.lines == r.lines


# --- routing of a typed name --------------------------------------------------------------------

def _roles(store, person_id, *roles):
    with store.session() as s:
        for r in roles:
            s.add(RoleAssignment(person_id=person_id, school_id=get_school(s), role=r))


def get_school(s) -> int:
    return s.exec(select(School.id)).first()


def test_typed_name_routing_head_then_chair_then_trust_officer_never_a_dsl(store, world):
    assert get(store, allegation(store, world, "Mr T. Reed")).routed_to == [world.head]
    # about the headteacher, or raised by the headteacher: the chair of governors
    assert get(store, allegation(store, world, "Mrs Brooks", about="headteacher")).routed_to == [world.chair]
    assert get(store, allegation(store, world, "Mr T. Reed", by=world.head)).routed_to == [world.chair]
    # a school's routing policy cannot send it to the DSL team
    with store.session() as s:
        school = s.get(School, world.school)
        school.policy = {"routing": {"adult": ["dsl", "deputy_dsl"], "fallback": ["dsl"]}}
        s.add(school)
    assert get(store, allegation(store, world, "Mr T. Reed")).routed_to == [world.head]
    # a headteacher who is also a DSL may be the one meant: the chair decides
    _roles(store, world.head, "dsl")
    cid = allegation(store, world, "Mr T. Reed")
    assert get(store, cid).routed_to == [world.chair]
    with pytest.raises(NotAllowed):
        triage.open_record(store, world.head, cid, now=LATER)
    # the head and chair cannot be reached (left): the trust safeguarding officer
    with store.session() as s:
        for pid in (world.head, world.chair):
            p = s.get(Person, pid)
            p.active = False
            s.add(p)
    assert get(store, allegation(store, world, "Mr T. Reed")).routed_to == [world.tso]


# --- the headteacher decides --------------------------------------------------------------------

def test_identified_as_a_dsl_they_stay_excluded_everywhere_and_the_team_may_handle_it(store, world):
    cid = allegation(store, world, "Mrs D. Shah")
    with pytest.raises(NotAllowed):  # only its routed recipient decides
        subject.identify_subject(store, world.deputy, cid, world.dsl, "It is the DSL, as the referrer confirmed.")
    with pytest.raises(FormErrors) as exc:
        subject.identify_subject(store, world.head, cid, world.dsl, "yes")
    assert set(exc.value.errors) == {"reason"}
    out = subject.identify_subject(store, world.head, cid, world.dsl,
                                   "The referrer confirmed they meant Dana Shah, the DSL.", now=LATER)
    assert out == {"reference": "SG-2026-0001", "identified": "Dana Shah", "still_yours": True, "added": []}
    c = get(store, cid)
    assert (c.subject_person_id, c.subject_status, c.subject_name) == (world.dsl, "identified", "Dana Shah")
    with pytest.raises(NotAllowed):
        triage.open_record(store, world.dsl, cid, now=LATER)
    assert cid not in [i.concern_id for i in queries.dsl_queue(store, world.dsl, now=LATER).awaiting_ack]
    assert triage.open_record(store, world.deputy, cid, now=LATER).reference == "SG-2026-0001"
    with pytest.raises(Conflict):  # decided once
        subject.identify_subject(store, world.head, cid, world.ta, "Changed my mind about who it is.")
    with store.session() as s:
        note = s.exec(select(ChronologyEntry).where(ChronologyEntry.concern_id == cid,
                                                    ChronologyEntry.kind == "note")).one()
        body = read_body(store.cipher, note)
        assert note.facts == {"type": "subject_identified", "outcome": "on_staff_list"}
        assert body["typed"] == "Mrs D. Shah" and "confirmed" in body["reason"] and note.actor_id == world.head
        ev = s.exec(select(AuditEvent).where(AuditEvent.action == "concern.subject_identified")).one()
        assert ev.actor_id == world.head and ev.details["person_id"] == world.dsl
        assert "confirmed" not in json.dumps(ev.details)  # the reason is content: encrypted, in the record
        assert verify(s) == []


def test_not_on_the_staff_list_opens_it_to_the_dsl_team_with_the_reason(store, world):
    cid = allegation(store, world, "the visiting football coach")
    out = subject.identify_from_form(store, world.head, cid, {"outcome": "not_listed", "reason":
                                                              "A coach from the football club, not our staff."},
                                     now=LATER)
    assert out["identified"] is None and get(store, cid).subject_status == "not_listed"
    for dsl in (world.dsl, world.deputy):
        assert triage.open_record(store, dsl, cid, now=LATER).reference == "SG-2026-0001"


def test_the_form_refuses_a_typed_name_or_someone_from_another_school(store, world):
    other = build_world(store, slug="o", trust_slug="t2")
    cid = allegation(store, world, "Mrs D. Shah")
    with pytest.raises(FormErrors) as exc:
        subject.identify_from_form(store, world.head, cid, {"outcome": "on_list", "subject": "Dana Shah",
                                                            "reason": "The referrer meant the DSL."})
    assert set(exc.value.errors) == {"subject"}
    with pytest.raises(FormErrors) as exc:
        subject.identify_from_form(store, world.head, cid, {"outcome": "on_list",
                                                            "subject": report.staff_value(other.dsl),
                                                            "reason": "The referrer meant the DSL."})
    assert "not on this school's staff list" in exc.value.errors["subject"]
    assert get(store, cid).subject_status == "unresolved"  # nothing was recorded


def test_the_head_identified_as_the_adult_hands_it_to_the_chair(store, world):
    cid = allegation(store, world, "Mrs H Brooks")
    with store.session() as s:  # a reminder still waiting for the head about it
        s.add(Nudge(kind="custom", concern_id=cid, recipient_id=world.head, due_at=LATER + timedelta(days=1),
                    payload={"title": "t"}))
        report_notice = OutboxMessage(kind="escalation", recipient_id=world.head, dedupe_key="pending-for-head",
                                      payload={"concern_id": cid}, next_attempt_at=LATER)
        s.add(report_notice)
    out = subject.identify_subject(store, world.head, cid, world.head, "It is me: I declare it and step aside.",
                                   now=LATER)
    assert out["still_yours"] is False and out["added"] == [world.chair]
    c = get(store, cid)
    assert (c.subject_role, c.subject_person_id, c.routed_to) == ("headteacher", world.head, [world.chair])
    with pytest.raises(NotAllowed):
        triage.open_record(store, world.head, cid, now=LATER)
    assert [m.recipient_id for m in outbox(store, "concern_alert") if m.payload["concern_id"] == cid] == \
        [world.head, world.chair]
    with store.session() as s:
        assert s.exec(select(OutboxMessage.state).where(OutboxMessage.dedupe_key == "pending-for-head")).one() \
            == "cancelled"
        assert s.exec(select(Nudge.state).where(Nudge.kind == "custom")).one() == "cancelled"
    triage.open_record(store, world.chair, cid, now=LATER)


def test_the_alert_offers_identify_the_adult_only_while_unresolved(store, world):
    from flows import notices

    cid = allegation(store, world, "Mrs D. Shah")
    with store.session() as s:
        alert = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "concern_alert")).one()
        n = notices.compose(s, alert)
    assert [a.id for a in n.actions][0] == notices.IDENTIFY_SUBJECT and "Identify the adult" in " ".join(n.lines)
    assert "Shah" not in n.text + " ".join(n.lines)  # the alert never carries the name
    subject.identify_subject(store, world.head, cid, None, "A parent volunteer, not on the staff list.")
    with store.session() as s:
        assert notices.IDENTIFY_SUBJECT not in [a.id for a in notices.compose(s, alert).actions]


# --- wider history, child's file, exports, transfer ---------------------------------------------

def _other_concern(store, world, now=LATER):
    return report.submit(store, world.ta, report_values(world, account="At lunch Amira said she was hungry and "
                                                                     "had not eaten since yesterday."),
                         now=now).concern_id


def test_the_wider_history_of_another_concern_shows_nothing_of_an_allegation_about_the_viewer(store, world):
    cid = allegation(store, world, report.staff_value(world.dsl), categories=["physical_abuse"])  # about the DSL
    triage.record_decision(store, world.head, cid, DECISION, now=NOW + timedelta(minutes=30))
    other = _other_concern(store, world)
    mine = triage.open_record(store, world.dsl, other, now=LATER)
    shown = json.dumps([vars(p) for p in mine.history.earlier + mine.history.open_cases], default=str)
    assert mine.history.earlier == [] and "SG-2026-0001" not in shown and "lado" not in shown
    assert mine.history.flags == []  # the repeated category is counted without it
    deputy = triage.open_record(store, world.deputy, other, now=LATER)
    assert [p.reference for p in deputy.history.earlier] == ["SG-2026-0001"]
    assert deputy.history.earlier[0].decision == "lado"
    assert deputy.history.flags == ["“Physical abuse” has been raised 2 times for this child."]


def test_while_unresolved_no_dsl_finds_it_in_a_history_a_file_or_a_figure(store, world):
    cid = allegation(store, world, "Mrs D. Shah")
    other = _other_concern(store, world)
    for dsl in (world.dsl, world.deputy):
        rec = triage.open_record(store, dsl, other, now=LATER)
        assert rec.history.earlier == [] and rec.history.open_cases == []
        cf = child_file(store, dsl, world.child, now=LATER)
        assert "SG-2026-0001" not in "\n".join(cf.lines()) and [c.concern_id for c in cf.concerns] == [other]
        h = analytics.headline(store, world.school, now=LATER, viewer_id=dsl)
        assert (h["open"], h["awaiting_acknowledgement"], h["concerns_this_month"]) == (1, 1, 1)
    assert analytics.headline(store, world.school, now=LATER)["open"] == 2  # without a viewer: every concern
    assert cid


def test_an_export_or_transfer_by_the_adult_concerned_leaves_it_out_and_tells_its_holder(store, world):
    cid = allegation(store, world, report.staff_value(world.dsl))
    other = _other_concern(store, world)
    pack = transfer.export_pack(store, world.dsl, world.child, now=LATER)
    assert [c["reference"] for c in pack["concerns"]] == ["SG-2026-0002"] and ACCOUNT not in json.dumps(pack)
    sent = transfer.send(store, world.dsl, world.child, "Hill School", now=LATER)
    assert "SG-2026-0001" not in json.dumps(sent.pack)
    with store.session() as s:  # the transfer is written where the sender may write: not in the allegation
        rows = s.exec(select(ChronologyEntry).where(ChronologyEntry.kind == "transfer")).all()
        assert {e.concern_id for e in rows} == {other}
    left = outbox(store, "left_without")
    assert {(m.recipient_id, m.payload["concern_id"]) for m in left} == {(world.head, cid)}
    assert any("Hill School" in line for m in left for line in m.payload["lines"])
    transfer.confirm(store, world.deputy, sent.transfer_id, "Ann Lee, DSL at Hill School", now=LATER)
    with store.session() as s:
        confirmed = [e for e in s.exec(select(ChronologyEntry).where(ChronologyEntry.kind == "transfer"))
                     if e.facts.get("type") == "transfer_confirmed"]
        assert [e.concern_id for e in confirmed] == [other]


def test_a_transfer_with_nothing_the_sender_may_see_is_refused_as_an_empty_file_and_the_holder_told(store, world):
    cid = allegation(store, world, "Mrs D. Shah")
    with pytest.raises(Conflict) as exc:
        transfer.send(store, world.dsl, world.child, "Hill School", now=LATER)
    assert "no concerns on file" in str(exc.value)  # as for a child with no file at all
    assert [(m.recipient_id, m.payload["concern_id"]) for m in outbox(store, "left_without")] == [(world.head, cid)]


# --- subject access -----------------------------------------------------------------------------

def _decided_allegation_about_the_dsl(store, world):
    cid = allegation(store, world, report.staff_value(world.dsl))
    triage.acknowledge(store, world.head, cid, now=NOW + timedelta(minutes=5))
    triage.add_entry(store, world.head, cid, "note", "Spoke to the LADO about the allegation.",
                     now=NOW + timedelta(minutes=10))
    return cid


def test_sar_about_the_adult_concerned_marks_the_allegation_for_the_dpo(store, world):
    cid = _decided_allegation_about_the_dsl(store, world)
    doc = sar.person_export(store, world.deputy, "dsl@s.test", now=LATER)
    assert doc["concerns_about_them"] == []
    (item,) = doc["for_dpo_review"]
    assert item["reference"] == "SG-2026-0001" and item["relation"] == "about them" and item["disclose"] is False
    assert set(item["exemptions_to_consider"]) == {"third_party", "crime", "serious_harm"}
    assert item["content"]["what_was_raised"][0]["account"] == ACCOUNT
    outside = {k: v for k, v in doc.items() if k != "for_dpo_review"}
    assert ACCOUNT not in json.dumps(outside) and "SG-2026-0001" not in json.dumps(outside)
    assert cid


def test_sar_run_by_the_adult_concerned_never_holds_the_allegation_and_its_holder_is_told(store, world):
    cid = _decided_allegation_about_the_dsl(store, world)
    for email in ("teacher@s.test", "head@s.test"):  # the referrer's export, the handler's export
        doc = sar.person_export(store, world.dsl, email, now=LATER)
        text = json.dumps(doc)
        assert "SG-2026-0001" not in text and ACCOUNT not in text and "LADO" not in text
        assert not [a for a in doc["audit"] if a["concern_id"] == cid]
    child_doc = sar.child_export(store, world.dsl, world.child, now=LATER)
    assert "SG-2026-0001" not in json.dumps(child_doc) and ACCOUNT not in json.dumps(child_doc)
    left = outbox(store, "left_without")
    assert {m.recipient_id for m in left} == {world.head} and len(left) == 3


def test_sar_about_the_referrer_and_about_the_handler(store, world):
    cid = _decided_allegation_about_the_dsl(store, world)
    referrer = sar.person_export(store, world.deputy, "teacher@s.test", now=LATER)
    assert [c["reference"] for c in referrer["concerns_raised"]] == []  # the referrer may not handle it
    (item,) = referrer["for_dpo_review"]
    assert item["relation"] == "raised by them" and item["content"]["what_they_wrote"][0]["what_they_wrote"][
        "account"] == ACCOUNT
    assert not [a for a in referrer["audit"] if a["concern_id"] == cid]
    assert [a["action"] for a in item["content"]["audit"]] == ["concern.raised"]
    head = sar.person_export(store, world.deputy, "head@s.test", now=LATER)  # they handle it: included
    assert {e["concern"] for e in head["chronology_entries_made"]} == {"SG-2026-0001"}
    assert head["for_dpo_review"] == []
    pupil = sar.child_export(store, world.deputy, world.child, now=LATER)
    assert pupil["concerns"] == [] and pupil["for_dpo_review"][0]["reference"] == "SG-2026-0001"
    assert "child_abuse_data" in pupil["for_dpo_review"][0]["exemptions_to_consider"]


# --- notices, escalations, samples ----------------------------------------------------------------

def test_a_failed_delivery_about_an_allegation_never_tells_the_adult_concerned(store, world):
    cid = allegation(store, world, report.staff_value(world.dsl))
    unresolved = allegation(store, world, "Mrs D. Shah")
    failing = Scripted("slack", unreachable=lambda p: p.id == world.head)
    console = Scripted("console", reaches=lambda p: p.id != world.head)
    Worker(store, [failing, console], WorkerConfig(jitter=0, max_attempts=2)).run_once(NOW)
    dead = [m for m in outbox(store, "delivery_failed")]
    about = {}
    for m in dead:
        about.setdefault(m.payload["concern_id"], set()).add(m.recipient_id)
    assert about[cid] == {world.deputy, world.tso}        # never the DSL it is about
    assert about[unresolved] == {world.tso}               # nobody in the DSL team while unresolved


def test_escalations_and_check_ins_skip_whoever_may_not_be_told(store, world):
    cid = allegation(store, world, "Mrs D. Shah")
    out = followup.still_worried(store, world.teacher, cid, "Nothing has happened", now=LATER)
    assert out["recipients"] == [world.head] and out["told"] == "the headteacher has been alerted"
    followup.checkin(store, world.teacher, cid, "worse", now=LATER)
    assert told_about(store, cid) == {world.head, world.teacher}
    picked = allegation(store, world, report.staff_value(world.dsl))
    out = followup.still_worried(store, world.teacher, picked, now=LATER)
    assert world.dsl not in out["recipients"] and {world.deputy, world.head} <= set(out["recipients"])
    assert out["told"] == "the safeguarding team and the headteacher have been alerted"


def test_qa_never_samples_an_allegation_for_the_adult_it_is_about(store, world):
    cid = allegation(store, world, report.staff_value(world.dsl))
    triage.record_decision(store, world.head, cid, DECISION, now=LATER)
    triage.close(store, world.head, cid, "Closed after the LADO's advice; no further action.", now=LATER)
    assert qa.sample(store, world.dsl, n=5, seed=1, now=LATER) == []
    assert len(qa.sample(store, world.deputy, n=5, seed=1, now=LATER)) == 1


def test_the_migration_makes_old_typed_name_allegations_unresolved(db_url, data_key):
    """A database from before subject_status: an allegation with no directory person becomes
    unresolved (it may mean a DSL), one with a person stays excluded as picked."""
    from sqlalchemy import create_engine, text

    from storage.db import Store, upgrade_schema

    engine = create_engine(db_url)
    upgrade_schema(engine, "0003")
    with engine.begin() as c:
        c.execute(text("INSERT INTO trust (slug, name, policy) VALUES ('t', 'T', '{}')"))
        c.execute(text("INSERT INTO school (trust_id, slug, name, nation, timezone, reference_prefix, policy, "
                       "closures) VALUES (1, 's', 'S', 'england', 'Europe/London', 'SG', '{}', '[]')"))
        c.execute(text("INSERT INTO person (trust_id, school_id, email, active, created_at) "
                       "VALUES (1, 1, 'a@s.test', true, '2026-11-01 00:00:00')"))
        for ref, pid in (("SG-1", None), ("SG-2", 1), ("SG-3", None)):
            c.execute(text("INSERT INTO concern (school_id, reference, referrer_id, status, urgent, immediate_danger, "
                           "about_adult, subject_person_id, taxonomy_version, categories, routed_to, created_at, "
                           "last_activity_at, needs_child_match) VALUES (1, :r, 1, 'raised', false, false, :adult, "
                           ":pid, '1', '[]', '[]', '2026-11-01 00:00:00', '2026-11-01 00:00:00', false)"),
                      {"r": ref, "pid": pid, "adult": ref != "SG-3"})
    engine.dispose()
    store = Store(db_url, data_key, upgrade=True)
    try:
        with store.session() as s:
            got = {c.reference: c.subject_status for c in s.exec(select(Concern))}
        assert got == {"SG-1": "unresolved", "SG-2": "picked", "SG-3": None}
    finally:
        store.dispose()
