"""The whole journey in Slack, end to end over real HTTP: report -> alert -> acknowledge ->
record -> decision (a referral) -> outcome shared -> check-in -> "I'm still worried" -> close;
and no channel message, notification text or log line carries concern content."""

from __future__ import annotations

import json
import logging
import time

import pytest
from sqlmodel import select

from flows import notices
from storage.models import AuditEvent, Concern, OutboxMessage
from tests.flow_support import report_values
from tests.slack_support import close_env, fill, make_env

SENSITIVE = ("Amira", "Zed", "bruise", "forearm", "spilt the milk", "go home tonight", "hungry", "Year 5 classroom",
             "physical", "Physical", "Dad grabbed")


@pytest.fixture
def env(store):
    e = make_env(store)
    yield e
    close_env(e)


def slack_raw(world, **over) -> dict:
    over.setdefault("occurred_at", int(time.time()) - 3600)  # Slack's datetimepicker sends unix time
    raw = report_values(world, **over)
    return raw


def open_report(env, user: str):
    r = env.slack.command(user)
    assert r.status_code == 200 and r.text == ""  # nothing said in the channel
    env.fake.wait(lambda f: any(c.method in ("views.open", "views.update") and c.status == 200
                                and c.args["view"]["callback_id"] == "report_concern_modal"
                                and any(b["type"] == "input" for b in c.args["view"]["blocks"]) for c in f.calls))
    return env.fake.last_view()


def send_report(env, user: str, raw: dict, labels=None):
    vid, view = open_report(env, user)
    r = env.slack.submit(user, vid, view, fill(view, raw, labels))
    assert r.status_code == 200
    return vid, view, r


def sent_to(env, user: str, kind_title: str | None = None):
    calls = [c for c in env.fake.of("chat.postMessage") if c.args["channel"] == "D" + user]
    if kind_title:
        calls = [c for c in calls if c.args["blocks"][0]["text"]["text"].endswith(kind_title)]
    return calls


def test_whole_journey(env, store, caplog):
    from bot.context import configure_logging

    configure_logging("DEBUG")  # even at DEBUG, no concern content may reach a log line
    caplog.set_level(logging.DEBUG)
    w, fake, slack = env.world, env.fake, env.slack
    teacher, dsl, deputy = env.user("teacher"), env.user("dsl"), env.user("deputy")

    # 1. Report: /concern opens a loading modal at once, then the form (views.update).
    vid, view = open_report(env, teacher)
    methods = [c.method for c in fake.calls]
    assert methods.index("views.open") < methods.index("views.update")
    assert [b["block_id"] for b in view["blocks"] if b["type"] == "input"][:3] == ["immediate_danger", "child",
                                                                                   "occurred_at"]
    assert "subject" not in [b.get("block_id") for b in view["blocks"]]  # shown only when the concern is about an adult

    # The child picker is answered from the roster.
    r = slack.suggest(teacher, vid, view, "f.child", "amir")
    options = r.json()["options"]
    assert options[0] == {"text": {"type": "plain_text", "text": "Amira Zed (Year 5)"}, "value": f"child:{w.child}"}
    assert options[-1]["text"]["text"].startswith("Not on the roll")

    raw = slack_raw(w)
    r = slack.submit(teacher, vid, view, fill(view, raw, {"child": "Amira Zed (Year 5)"}))
    assert r.json()["response_action"] == "update"
    receipt_view = fake.wait(lambda f: [c for c in f.of("views.update") if c.args["view_id"] == vid
                                        and c.args["view"]["callback_id"] == "report_receipt_modal"])
    with store.session() as s:
        concern = s.exec(select(Concern)).one()
        assert concern.submission_key == f"slack:{vid}" and concern.child_id == w.child
    assert concern.reference in json.dumps(receipt_view[-1].args["view"])

    # 2. Alerts: one private DM per routed recipient (DSL and deputy) and the referrer's receipt.
    assert env.deliver()["sent"] == 3
    alert_dsl = sent_to(env, dsl)[0]
    alert_deputy = sent_to(env, deputy)[0]
    assert alert_dsl.args["text"] == f"New safeguarding concern {concern.reference} needs you"
    labels = [e["text"]["text"] for b in alert_dsl.args["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert labels == ["Acknowledge", "Open record", "Record decision", "Ask the referrer"]
    receipt = sent_to(env, teacher)[0]
    assert concern.reference in receipt.args["text"]

    # 3. Acknowledge: every copy of the alert is updated to say who and when.
    with store.session() as s:
        refs = {m.recipient_id: m.platform_ref for m in s.exec(select(OutboxMessage).where(
            OutboxMessage.kind == "concern_alert"))}
    r = slack.click_in_message(dsl, "D" + dsl, refs[w.dsl]["ts"], alert_dsl.args["blocks"], notices.ACKNOWLEDGE)
    assert r.status_code == 200
    _wait_db(store, lambda s: s.get(Concern, concern.id).handler_id == w.dsl)
    mine = fake.wait(lambda f: f.of("chat.update"))  # the clicker's copy at once, before the outbox runs
    assert mine[0].args["ts"] == refs[w.dsl]["ts"] and "acknowledged by Dana Shah" in mine[0].args["text"]
    env.deliver()
    updates = fake.of("chat.update")[1:]
    assert {(u.args["channel"], u.args["ts"]) for u in updates} == {
        (refs[w.dsl]["channel"], refs[w.dsl]["ts"]), (refs[w.deputy]["channel"], refs[w.deputy]["ts"])}
    for u in updates:
        assert "acknowledged by Dana Shah" in u.args["text"]
        assert "Acknowledged by Dana Shah at" in json.dumps(u.args["blocks"])
    # a second acknowledgement (the deputy, late) creates nothing and says who got there first
    slack.click_in_message(deputy, "D" + deputy, refs[w.deputy]["ts"], alert_deputy.args["blocks"], notices.ACKNOWLEDGE)
    fake.wait(lambda f: any("already acknowledged" in (c.args.get("text") or "") for c in f.of("chat.postMessage")))
    assert env.deliver()["sent"] == 0

    # 4. Open the record (audited), with the wider history.
    slack.click_in_message(dsl, "D" + dsl, refs[w.dsl]["ts"], alert_dsl.args["blocks"], notices.OPEN_RECORD)
    rec = fake.wait(lambda f: [c for c in f.of("views.update") if c.args["view"]["callback_id"] == "concern_record_modal"])
    rec_id, rec_view = rec[-1].args["view_id"], rec[-1].args["view"]
    text = json.dumps(rec_view)
    assert "Amira Zed" in text and "Wider history" in text and "Chronology" in text
    with store.session() as s:
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "record.opened")).first() is not None

    # 5. Decision from the record: pushed modal; the referral fields appear when a referral is chosen.
    slack.click_in_view(dsl, rec_id, rec_view, notices.RECORD_DECISION)
    dec = fake.wait(lambda f: [c for c in f.of("views.update") if c.args["view"]["callback_id"] == "record_decision_modal"])
    dec_id, dec_view = dec[-1].args["view_id"], dec[-1].args["view"]
    assert fake.of("views.push")
    assert "agency" not in [b.get("block_id") for b in dec_view["blocks"]]
    state = fill(dec_view, {"decision": "social_care_referral"})
    slack.select_in_view(dsl, dec_id, dec_view, state, "f.decision")
    dec = fake.wait(lambda f: [c for c in f.of("views.update") if c.args["view_id"] == dec_id
                               and "agency" in [b.get("block_id") for b in c.args["view"]["blocks"]]])
    dec_view = dec[-1].args["view"]
    # mandatory reasons: shown inline against the field
    r = slack.submit(dsl, dec_id, {**dec_view, "_previous": rec_id},
                     fill(dec_view, {"decision": "social_care_referral", "participants": "Dana Shah (DSL)"}))
    body = r.json()
    assert body["response_action"] == "errors" and "reasons" in body["errors"] and "agency" in body["errors"]
    # parents_informed = no makes its reason appear
    decision = {"decision": "social_care_referral", "participants": "Dana Shah (DSL), Helen Brooks (Head)",
                "reasons": "Disclosure of physical harm by a parent and a visible injury: threshold for referral met.",
                "agency": "Northshire MASH", "referred_at": int(time.time()) - 600, "method": "phone",
                "parents_informed": "no"}
    slack.select_in_view(dsl, dec_id, dec_view, fill(dec_view, decision), "f.parents_informed")
    dec = fake.wait(lambda f: [c for c in f.of("views.update") if c.args["view_id"] == dec_id
                               and "parents_not_informed_reason" in json.dumps(c.args["view"])])
    dec_view = dec[-1].args["view"]
    decision["parents_not_informed_reason"] = "Social care advised that telling the father could place her at risk."
    r = slack.submit(dsl, dec_id, {**dec_view, "_previous": rec_id}, fill(dec_view, decision))
    assert r.json() == {"response_action": "clear"}
    with store.session() as s:
        c = s.get(Concern, concern.id)
        assert c.status == "decided" and c.decision_kind == "social_care_referral"
    # the same submission again (a double click) records nothing twice
    slack.submit(dsl, dec_id, {**dec_view, "_previous": rec_id}, fill(dec_view, decision))
    with store.session() as s:
        assert len([a for a in s.exec(select(AuditEvent).where(AuditEvent.action == "concern.decision"))]) == 1

    # 6. Share an outcome with the referrer.
    slack.click_in_view(dsl, rec_id, rec_view, notices.SHARE_OUTCOME)
    sh = fake.wait(lambda f: [c for c in f.of("views.update") if c.args["view"]["callback_id"] == "share_outcome_modal"])
    sh_id, sh_view = sh[-1].args["view_id"], sh[-1].args["view"]
    r = slack.submit(dsl, sh_id, {**sh_view, "_previous": rec_id},
                     fill(sh_view, {"text": "Thank you: the right people are involved and the child is being supported."}))
    assert r.json() == {"response_action": "clear"}
    env.deliver()
    outcome = sent_to(env, teacher, "Update from the safeguarding lead")[0]
    assert outcome.args["text"] == f"An update on your concern {concern.reference}"
    assert "the right people are involved" in json.dumps(outcome.args["blocks"])

    # 7. A check-in (queued by the nudges as the policy says) with one-click answers.
    with store.session() as s:
        notices.enqueue(s, kind="checkin", recipient_id=w.teacher, dedupe_key=f"checkin:{concern.id}:1",
                        payload={"concern_id": concern.id})
    env.deliver()
    checkin = sent_to(env, teacher, "Checking in")[0]
    with store.session() as s:
        ck = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "checkin")).one().platform_ref
    slack.click_in_message(teacher, ck["channel"], ck["ts"], checkin.args["blocks"], "checkin:no_change")
    slack.click_in_message(teacher, ck["channel"], ck["ts"], checkin.args["blocks"], "checkin:no_change")  # double
    fake.wait(lambda f: [c for c in f.of("chat.update") if c.args["ts"] == ck["ts"]])
    with store.session() as s:
        reassess = list(s.exec(select(OutboxMessage).where(OutboxMessage.kind == "reassess")))
    assert reassess and len({m.recipient_id for m in reassess}) == len(reassess)  # once each, not twice

    # 8. "I'm still worried" escalates.
    slack.click_in_message(teacher, ck["channel"], ck["ts"], checkin.args["blocks"], notices.STILL_WORRIED)
    _wait_db(store, lambda s: list(s.exec(select(OutboxMessage).where(OutboxMessage.kind == "escalation"))))
    env.deliver()
    assert sent_to(env, dsl, "The referrer is still worried")

    # 9. Close, from the record.
    slack.click_in_view(dsl, rec_id, rec_view, notices.CLOSE)
    cl = fake.wait(lambda f: [c for c in f.of("views.update") if c.args["view"]["callback_id"] == "close_concern_modal"])
    cl_id, cl_view = cl[-1].args["view_id"], cl[-1].args["view"]
    r = slack.submit(dsl, cl_id, {**cl_view, "_previous": rec_id}, fill(cl_view, {"summary": "short"}))
    assert r.json()["response_action"] == "errors" and "summary" in r.json()["errors"]
    r = slack.submit(dsl, cl_id, {**cl_view, "_previous": rec_id}, fill(cl_view, {
        "summary": "Referred to MASH; section 47 enquiry; child supported in school; family engaging."}))
    assert r.json() == {"response_action": "clear"}
    with store.session() as s:
        assert s.get(Concern, concern.id).status == "closed"

    # Privacy: every message went to a 1:1 DM; no notification text carries content; no log line either.
    posts = fake.of("chat.postMessage") + fake.of("chat.update")
    assert posts and all(c.args["channel"].startswith("D") for c in posts)
    for c in posts:
        for word in SENSITIVE:
            assert word not in c.args["text"], (word, c.args["text"])
    for rec_ in caplog.records:
        line = rec_.getMessage()
        for word in SENSITIVE:
            assert word not in line, (word, line[:200])


def _wait_db(store, pred, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with store.session() as s:
            if pred(s):
                return
        time.sleep(0.02)
    raise AssertionError("timed out waiting for the database")
