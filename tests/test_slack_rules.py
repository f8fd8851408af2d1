"""Slack's rules, end to end over real HTTP: signatures, every entry point, validation errors,
immediate danger, the clear-language check, staff-allegation routing, retries and double
clicks, the Web API down then up, unknown users."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
from sqlmodel import select

from flows import notices
from flows.report import DANGER_ADVICE
from storage.models import Concern, OutboxMessage, Person, utcnow
from tests.slack_support import SECRET, close_env, fill, make_env, signed_headers
from tests.test_slack_journey import open_report, sent_to, slack_raw


@pytest.fixture
def env(store):
    e = make_env(store, emails={"UNEWBIE": "ta@s.test", "UNOBODY": "nobody@elsewhere.test"})
    yield e
    close_env(e)


def concerns(store) -> list[Concern]:
    with store.session() as s:
        return list(s.exec(select(Concern)))


def outbox(store, kind: str | None = None) -> list[OutboxMessage]:
    with store.session() as s:
        q = select(OutboxMessage)
        if kind:
            q = q.where(OutboxMessage.kind == kind)
        return list(s.exec(q))


# ------------------------------------------------------------------ signatures

def test_forged_signature_and_stale_timestamp_are_refused(env):
    teacher = env.user("teacher")
    body = "command=%2Fconcern&user_id=" + teacher + "&team_id=TS&trigger_id=1.2.3"
    forged = signed_headers(body, "application/x-www-form-urlencoded", secret="not-the-secret")
    r = env.slack.http.post(env.slack.url, content=body, headers=forged)
    assert r.status_code == 401
    stale = signed_headers(body, "application/x-www-form-urlencoded", ts=int(time.time()) - 6 * 60)
    r = env.slack.http.post(env.slack.url, content=body, headers=stale)
    assert r.status_code == 401
    unsigned = {"Content-Type": "application/x-www-form-urlencoded"}
    assert env.slack.http.post(env.slack.url, content=body, headers=unsigned).status_code == 401
    # a body changed after signing
    ok = signed_headers(body, "application/x-www-form-urlencoded")
    assert env.slack.http.post(env.slack.url, content=body + "&text=x", headers=ok).status_code == 401
    time.sleep(0.3)
    assert not env.fake.of("views.open") and not concerns(env.store)
    # and a correctly signed one within 5 minutes is served
    assert env.slack.command(teacher).status_code == 200
    env.fake.wait(lambda f: f.of("views.open"))


def test_healthz_and_url_verification(env):
    import httpx

    assert httpx.get(env.server.url + "/healthz").json() == {"status": "ok"}
    body = json.dumps({"token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
                       "type": "url_verification"})
    r = env.slack.http.post(env.slack.url, content=body, headers=signed_headers(body, "application/json"))
    assert r.status_code == 200 and "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" in r.text


# ------------------------------------------------------------------ entry points

def test_global_shortcut_opens_the_report(env):
    r = env.slack.shortcut(env.user("ta"), "report_concern_shortcut")
    assert r.status_code == 200
    env.fake.wait(lambda f: [c for c in f.of("views.update") if c.args["view"]["callback_id"] == "report_concern_modal"])
    assert env.fake.of("views.open")[0].args["view"]["callback_id"] == "report_concern_modal"


def test_message_shortcut_keeps_only_the_permalink(env):
    w = env.world
    ta = env.user("ta")
    secret_text = "Amira told me at lunch that her dad hits her with a belt"
    r = env.slack.message_action(ta, "report_concern_from_message", "C0STAFF", "1764000123.000200", secret_text)
    assert r.status_code == 200
    env.fake.wait(lambda f: [c for c in f.of("views.update") if c.args["view"]["callback_id"] == "report_concern_modal"
                             and any(b["type"] == "input" for b in c.args["view"]["blocks"])])
    vid, view = env.fake.last_view()
    link = "https://test.slack.com/archives/C0STAFF/p1764000123000200"
    assert link in json.dumps(view)
    r = env.slack.submit(ta, vid, view, fill(view, slack_raw(w)))
    env.fake.wait(lambda f: [c for c in f.of("views.update") if c.args["view"]["callback_id"] == "report_receipt_modal"])
    (c,) = concerns(env.store)
    assert c.source_link == link
    # the message itself was not copied anywhere: not into the record, not into any Slack call
    assert "belt" not in json.dumps([x.args for x in env.fake.calls])
    assert "belt" not in json.dumps({k: str(v) for k, v in c.model_dump().items()})


def test_app_home_for_staff_and_for_the_dsl_team(env):
    w = env.world
    teacher, dsl = env.user("teacher"), env.user("dsl")
    from flows import report

    receipt = report.submit(env.store, w.teacher, slack_raw(w))
    env.slack.post_event({"type": "app_home_opened", "user": teacher, "channel": "D" + teacher, "tab": "home",
                          "event_ts": f"{time.time():.6f}"}, "Ev01")
    home = env.fake.wait(lambda f: f.of("views.publish"))[-1].args
    assert home["user_id"] == teacher
    text = json.dumps(home["view"], ensure_ascii=False)
    assert "Report a concern" in text and receipt.reference in text and "Sent — waiting" in text
    assert "Awaiting acknowledgement" not in text
    env.slack.post_event({"type": "app_home_opened", "user": dsl, "channel": "D" + dsl, "tab": "home",
                          "event_ts": f"{time.time():.6f}"}, "Ev02")
    home = env.fake.wait(lambda f: [c for c in f.of("views.publish") if c.args["user_id"] == dsl])[-1].args
    text = json.dumps(home["view"], ensure_ascii=False)
    assert "Awaiting acknowledgement* (1)" in text and receipt.reference in text and "Open record" in text
    # the Home tab's report button opens the modal
    env.slack.home_click(teacher, home["view"], notices.REPORT_CONCERN, "{}")
    env.fake.wait(lambda f: [c for c in f.of("views.open") if c.args["view"]["callback_id"] == "report_concern_modal"])


def test_dm_help_and_concern(env):
    ta = env.user("ta")
    env.slack.post_event({"type": "message", "channel": "D" + ta, "user": ta, "text": "help", "ts": "1.1",
                          "channel_type": "im", "event_ts": "1.1"}, "Ev10")
    msg = env.fake.wait(lambda f: f.of("chat.postMessage"))[-1].args
    assert msg["channel"] == "D" + ta and "/concern" in json.dumps(msg["blocks"])
    env.slack.post_event({"type": "message", "channel": "D" + ta, "user": ta, "text": "I want to report a concern",
                          "ts": "1.2", "channel_type": "im", "event_ts": "1.2"}, "Ev11")
    env.fake.wait(lambda f: len(f.of("chat.postMessage")) == 2)
    msg = env.fake.of("chat.postMessage")[-1].args
    env.slack.click_in_message(ta, "D" + ta, "1.3", msg["blocks"], notices.REPORT_CONCERN)
    env.fake.wait(lambda f: f.of("views.open"))
    # the bot's own messages and edits are not answered
    env.slack.post_event({"type": "message", "channel": "D" + ta, "user": "UBOT", "bot_id": "BBOT", "text": "help",
                          "ts": "1.4", "channel_type": "im"}, "Ev12")
    time.sleep(0.3)
    assert len(env.fake.of("chat.postMessage")) == 2


def test_unknown_user_is_told_whom_to_ask(env):
    r = env.slack.command("UNOBODY")
    assert r.status_code == 200
    upd = env.fake.wait(lambda f: f.of("views.update"))[-1].args["view"]
    text = json.dumps(upd)
    assert "not in the safeguarding directory" in text and "Dana Shah" in text and "999" in text
    assert env.fake.of("users.info")  # looked up by email first
    assert not concerns(env.store)


def test_user_found_by_email_is_linked(env):
    # the TA has no Slack id in the directory that matches: users.info gives her email
    with env.store.session() as s:
        ta = s.get(Person, env.world.ta)
        ta.slack_user_id = None
        s.add(ta)
    vid, view = open_report(env, "UNEWBIE")
    with env.store.session() as s:
        assert s.get(Person, env.world.ta).slack_user_id == "UNEWBIE"


def test_delivery_looks_up_slack_id_by_email(env):
    with env.store.session() as s:
        ta = s.get(Person, env.world.ta)
        ta.slack_user_id = None
        s.add(ta)
    with env.store.session() as s:
        notices.enqueue(s, kind="nudge", recipient_id=env.world.ta, dedupe_key="n1",
                        payload={"title": "Safeguarding training due", "text": "Safeguarding training due"})
    assert env.deliver()["sent"] == 1
    assert env.fake.of("users.lookupByEmail")[0].args["email"] == "ta@s.test"
    assert env.fake.of("chat.postMessage")[-1].args["channel"] == "DUNEWBIE"


# ------------------------------------------------------------------ the report modal

def test_validation_errors_are_shown_inline(env):
    teacher = env.user("teacher")
    vid, view = open_report(env, teacher)
    raw = slack_raw(env.world, account="too short", child=None, occurred_at=int(time.time()) + 86400)
    r = env.slack.submit(teacher, vid, view, fill(view, raw))
    body = r.json()
    assert body["response_action"] == "errors"
    assert set(body["errors"]) == {"account", "child", "occurred_at"}
    assert "at least 20 characters" in body["errors"]["account"]
    assert all(k in [b.get("block_id") for b in view["blocks"]] for k in body["errors"])
    assert not concerns(env.store)


def test_modal_opens_first_then_is_filled_and_is_opened_whole_once_known(env):
    teacher = env.user("teacher")
    env.slack.command(teacher)
    env.fake.wait(lambda f: f.of("views.update"))
    methods = [c.method for c in env.fake.calls if c.method != "auth.test"]
    assert methods[0] == "views.open"  # before any look-up
    assert not any(b["type"] == "input" for b in env.fake.of("views.open")[0].args["view"]["blocks"])
    # the person is known now: the next /concern opens the whole form in one call
    env.slack.command(teacher)
    env.fake.wait(lambda f: len(f.of("views.open")) == 2)
    assert any(b["type"] == "input" for b in env.fake.of("views.open")[1].args["view"]["blocks"])
    assert len(env.fake.of("views.update")) == 1


def test_roster_check_after_the_ack_shows_errors_in_the_modal(env):
    """What needs the database (the pupil on this school's roll) is checked after the ack; a
    problem comes back as the form again, marked, with everything typed kept."""
    teacher = env.user("teacher")
    vid, view = open_report(env, teacher)
    raw = slack_raw(env.world, child="child:999999")
    r = env.slack.submit(teacher, vid, view, fill(view, raw, {"child": "Someone"}))
    assert r.json()["response_action"] == "update"
    upd = env.fake.wait(lambda f: [c for c in f.of("views.update") if c.args["view_id"] == vid
                                   and "Not sent yet" in json.dumps(c.args["view"])])
    back = upd[-1].args["view"]
    assert "not on this school" in json.dumps(back)
    loc = next(b for b in back["blocks"] if b.get("block_id") == "location")
    assert loc["element"]["initial_value"] == "Year 5 classroom"  # nothing typed is lost
    assert not concerns(env.store)
    r = env.slack.submit(teacher, vid, back, fill(back, slack_raw(env.world)))
    env.fake.wait(lambda f: [c for c in f.of("views.update") if c.args["view"]["callback_id"] == "report_receipt_modal"])
    assert len(concerns(env.store)) == 1


def test_immediate_danger(env):
    w = env.world
    teacher = env.user("teacher")
    vid, view = open_report(env, teacher)
    raw = slack_raw(w, immediate_danger="yes")
    env.slack.select_in_view(teacher, vid, view, fill(view, raw), "f.immediate_danger")
    upd = env.fake.wait(lambda f: [c for c in f.of("views.update") if c.args["view_id"] == vid
                                   and DANGER_ADVICE[:40] in json.dumps(c.args["view"])])
    view = upd[-1].args["view"]
    env.slack.submit(teacher, vid, view, fill(view, raw))
    rec = env.fake.wait(lambda f: [c for c in f.of("views.update") if c.args["view"]["callback_id"] == "report_receipt_modal"])
    assert "999" in json.dumps(rec[-1].args["view"])
    (c,) = concerns(env.store)
    assert c.urgent
    env.deliver()
    head = env.user("head")
    alert = sent_to(env, head)[0]
    assert alert.args["text"] == f"URGENT safeguarding concern {c.reference} needs you"


def test_clear_language_check_then_send_as_it_is(env):
    w = env.world
    teacher = env.user("teacher")
    vid, view = open_report(env, teacher)
    raw = slack_raw(w, account="There was inappropriate touching at the party on Saturday in the hall.")
    r = env.slack.submit(teacher, vid, view, fill(view, raw))
    assert r.json()["response_action"] == "update"
    upd = env.fake.wait(lambda f: [c for c in f.of("views.update") if c.args["view_id"] == vid
                                   and "Check your wording" in json.dumps(c.args["view"])])
    view = upd[-1].args["view"]
    shown = json.dumps(view)
    assert "inappropriate touching" in shown and "Send as it is" in shown
    account = next(b for b in view["blocks"] if b.get("block_id") == "account")
    assert account["element"]["initial_value"] == raw["account"]  # kept, to edit or send as it is
    assert not concerns(env.store)
    r = env.slack.submit(teacher, vid, view, fill(view, raw))
    assert r.json()["response_action"] == "update"
    env.fake.wait(lambda f: [c for c in f.of("views.update") if c.args["view"]["callback_id"] == "report_receipt_modal"])
    (c,) = concerns(env.store)
    assert c.submission_key == f"slack:{vid}"


def test_staff_allegation_goes_to_the_headteacher(env):
    w = env.world
    teacher = env.user("teacher")
    vid, view = open_report(env, teacher)
    raw = slack_raw(w, about_adult="staff", subject=f"person:{w.ta}")
    env.slack.select_in_view(teacher, vid, view, fill(view, raw), "f.about_adult")
    upd = env.fake.wait(lambda f: [c for c in f.of("views.update") if c.args["view_id"] == vid
                                   and '"block_id": "subject"' in json.dumps(c.args["view"])])
    view = upd[-1].args["view"]
    # The adult is picked from the school's staff list (or typed, when not on it).
    r = env.slack.suggest(teacher, vid, view, "f.subject", "amy")
    assert r.json()["options"] == [
        {"text": {"type": "plain_text", "text": "Amy Clarke (staff)"}, "value": f"person:{w.ta}"},
        {"text": {"type": "plain_text", "text": "Not on the staff list: “amy”"}, "value": "amy"}]
    env.slack.submit(teacher, vid, view, fill(view, raw, {"subject": "Amy Clarke (staff)"}))
    env.fake.wait(lambda f: [c for c in f.of("views.update") if c.args["view"]["callback_id"] == "report_receipt_modal"])
    (c,) = concerns(env.store)
    assert c.about_adult and c.routed_to == [w.head]
    env.deliver()
    assert sent_to(env, env.user("head")) and not sent_to(env, env.user("dsl")) and not sent_to(env, env.user("ta"))


# ------------------------------------------------------------------ retries, double clicks, failures

def test_event_retries_are_handled_once(env):
    ta = env.user("ta")
    ev = {"type": "message", "channel": "D" + ta, "user": ta, "text": "help", "ts": "2.1", "channel_type": "im"}
    env.slack.post_event(ev, "EvR1")
    env.slack.post_event(ev, "EvR1", retry=1)
    env.slack.post_event(ev, "EvR1", retry=2)
    time.sleep(0.5)
    assert len(env.fake.of("chat.postMessage")) == 1


def test_double_submit_creates_one_concern_and_one_alert_each(env):
    w = env.world
    teacher = env.user("teacher")
    vid, view = open_report(env, teacher)
    state = fill(view, slack_raw(w))
    codes = []
    threads = [threading.Thread(target=lambda: codes.append(env.slack.submit(teacher, vid, view, state).status_code))
               for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert codes == [200] * 4
    time.sleep(1.0)
    assert len(concerns(env.store)) == 1
    alerts = outbox(env.store, "concern_alert")
    assert sorted(m.recipient_id for m in alerts) == sorted([w.dsl, w.deputy])
    env.deliver()
    assert len(sent_to(env, env.user("dsl"))) == 1


def test_double_click_on_a_one_click_answer(env):
    w = env.world
    from flows import report

    receipt = report.submit(env.store, w.teacher, slack_raw(w))
    with env.store.session() as s:
        notices.enqueue(s, kind="checkin", recipient_id=w.teacher, dedupe_key="ck", payload={"concern_id": receipt.concern_id})
    env.deliver()
    teacher = env.user("teacher")
    msg = sent_to(env, teacher, "Checking in")[0]
    ref = [m for m in outbox(env.store, "checkin")][0].platform_ref
    for _ in range(3):
        env.slack.click_in_message(teacher, ref["channel"], ref["ts"], msg.args["blocks"], "checkin:worse")
    env.fake.wait(lambda f: [c for c in f.of("chat.update") if c.args["ts"] == ref["ts"]])
    time.sleep(0.3)
    from storage.models import AuditEvent

    with env.store.session() as s:
        assert len(list(s.exec(select(AuditEvent).where(AuditEvent.action == "concern.checkin")))) == 1


def test_web_api_down_then_up_loses_nothing(env):
    w = env.world
    teacher = env.user("teacher")
    vid, view = open_report(env, teacher)
    env.fake.fail(30, 500)  # Slack is down: the receipt view and every DM fail
    env.slack.submit(teacher, vid, view, fill(view, slack_raw(w)))
    time.sleep(1.5)
    (c,) = concerns(env.store)  # saved all the same
    res = env.deliver()
    assert res["sent"] == 0 and res["retried"] >= 1
    assert all(m.state == "pending" for m in outbox(env.store))
    env.fake._failures.clear()
    # a rate limit on the way back up: slack_sdk's RateLimitErrorRetryHandler waits Retry-After and retries
    env.fake.fail(1, 429, retry_after=1, method="chat.postMessage")
    later = utcnow() + timedelta(hours=2)
    res = env.deliver(later)
    assert res["sent"] == 3
    assert all(m.state == "sent" for m in outbox(env.store))
    assert len(env.fake.of("chat.postMessage", ok_only=False)) == 4  # one 429, then three sent
    assert sent_to(env, env.user("dsl"))[0].args["text"] == f"New safeguarding concern {c.reference} needs you"


def test_server_errors_retried_by_the_sdk_then_given_up_as_transient(env):
    from bot.delivery import TransientDeliveryError
    from flows.notices import compose

    w = env.world
    from flows import report

    report.submit(env.store, w.teacher, slack_raw(w))
    with env.store.session() as s:
        msg = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "receipt")).one()
        person = s.get(Person, w.teacher)
        notice = compose(s, msg)
    env.fake.fail(2, 503, method="chat.postMessage")
    assert env.transport.deliver(env.store, msg, notice, person)["ts"]  # two 503s retried inside slack_sdk
    env.fake.fail(10, 500, method="chat.postMessage")
    with pytest.raises(TransientDeliveryError):
        env.transport.deliver(env.store, msg, notice, person)
    env.fake._failures.clear()


def test_slack_off_answers_401(store):
    from bot.server import create_app
    from bot.settings import load_settings
    from tests.slack_support import Server

    import httpx

    server = Server(create_app(load_settings(DATABASE_URL="sqlite:///unused.db"), store))
    try:
        assert httpx.post(server.url + "/slack/events", content="x").status_code == 401
    finally:
        server.stop()


def test_half_configured_slack_is_refused():
    from bot.settings import SettingsError, load_settings
    from bot.slack import slack_config

    with pytest.raises(SettingsError, match="SLACK_SIGNING_SECRET"):
        slack_config(load_settings(SLACK_BOT_TOKEN="xoxb-1"))
    with pytest.raises(SettingsError, match="SLACK_APP_TOKEN"):
        slack_config(load_settings(SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET=SECRET), socket_mode=True)
    assert slack_config(load_settings()) is False


# ------------------------------------------------------------------ asking the referrer, notes

def test_dsl_asks_the_referrer_who_answers_in_a_modal(env):
    w = env.world
    from flows import report

    receipt = report.submit(env.store, w.teacher, slack_raw(w))
    env.deliver()
    dsl, teacher = env.user("dsl"), env.user("dsl").replace("DSL", "TEACHER")
    alert = sent_to(env, dsl)[0]
    ref = [m for m in outbox(env.store, "concern_alert") if m.recipient_id == w.dsl][0].platform_ref
    env.slack.click_in_message(dsl, ref["channel"], ref["ts"], alert.args["blocks"], notices.ASK_REFERRER)
    ask = env.fake.wait(lambda f: [c for c in f.of("views.update") if c.args["view"]["callback_id"] == "ask_referrer_modal"])
    ask_id, ask_view = ask[-1].args["view_id"], ask[-1].args["view"]
    r = env.slack.submit(dsl, ask_id, ask_view, fill(ask_view, {"question": "Did she say when this happened?"}))
    assert r.json()["response_action"] == "update"
    env.deliver()
    q = sent_to(env, teacher, "Question about your concern")[0]
    assert q.args["text"] == f"The safeguarding lead has a question about {receipt.reference}"
    assert "Did she say" not in q.args["text"] and "Did she say" in json.dumps(q.args["blocks"])
    qref = outbox(env.store, "info_request")[0].platform_ref
    env.slack.click_in_message(teacher, qref["channel"], qref["ts"], q.args["blocks"], notices.ANSWER_QUESTION)
    ans = env.fake.wait(lambda f: [c for c in f.of("views.update") if c.args["view"]["callback_id"] == "answer_question_modal"])
    ans_id, ans_view = ans[-1].args["view_id"], ans[-1].args["view"]
    assert "Did she say when this happened?" in json.dumps(ans_view)
    r = env.slack.submit(teacher, ans_id, ans_view, fill(ans_view, {"answer": "Yes: on Sunday evening."}))
    assert r.json()["response_action"] == "update"
    env.deliver()
    told = sent_to(env, dsl, "Referrer answered")[0]
    assert "Sunday" not in json.dumps(told.args)  # the answer is read in the (audited) record, not the DM
    # a non-member of the DSL team cannot ask: the TA gets a plain refusal, no modal to fill in
    ta = env.user("ta")
    env.slack.click_in_message(ta, "D" + ta, "9.9", alert.args["blocks"], notices.ASK_REFERRER)
    env.fake.wait(lambda f: [c for c in f.of("views.update") if c.args["view"]["callback_id"] == "info_modal"
                             and "safeguarding team" in json.dumps(c.args["view"])])


def test_note_from_the_record(env):
    w = env.world
    from flows import report

    report.submit(env.store, w.teacher, slack_raw(w))
    env.deliver()
    dsl = env.user("dsl")
    alert = sent_to(env, dsl)[0]
    env.slack.click_in_message(dsl, "D" + dsl, "1.1", alert.args["blocks"], notices.OPEN_RECORD)
    rec = env.fake.wait(lambda f: [c for c in f.of("views.update") if c.args["view"]["callback_id"] == "concern_record_modal"])
    rec_id, rec_view = rec[-1].args["view_id"], rec[-1].args["view"]
    env.slack.click_in_view(dsl, rec_id, rec_view, "add_note")
    note = env.fake.wait(lambda f: [c for c in f.of("views.update") if c.args["view"]["callback_id"] == "add_note_modal"])
    nid, nview = note[-1].args["view_id"], note[-1].args["view"]
    r = env.slack.submit(dsl, nid, {**nview, "_previous": rec_id}, fill(nview, {"text": "Spoke to Mum at pick-up."}))
    assert r.json() == {"response_action": "clear"}
    from storage.models import AuditEvent

    with env.store.session() as s:
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "concern.note")).first()


def test_child_picker_answers_quickly_from_a_large_roll(env):
    """Slack waits 3 s for options: a 1,500-pupil roll is searched well inside that."""
    from storage.models import Child

    with env.store.session() as s:
        for i in range(1500):
            s.add(Child(school_id=env.world.school, mis_id=f"B{i:05d}", name=f"Pupil{i:04d} Surname{i % 97}",
                        year_group=str(1 + i % 6)))
    teacher = env.user("teacher")
    vid, view = open_report(env, teacher)
    t0 = time.perf_counter()
    r = env.slack.suggest(teacher, vid, view, "f.child", "pupil0042")
    elapsed = time.perf_counter() - t0
    options = r.json()["options"]
    assert options[0]["text"]["text"].startswith("Pupil0042 Surname")
    assert len(options) <= 21 and elapsed < 1.5, elapsed
    # a search with many matches is cut to the first 20, plus "not on the roll"
    many = env.slack.suggest(teacher, vid, view, "f.child", "surname1").json()["options"]
    assert len(many) == 21 and many[-1]["value"] == "surname1"


def test_a_refused_click_can_be_pressed_again(env):
    """A one-click answer the flow refuses is not remembered as done."""
    w = env.world
    from flows import report

    receipt = report.submit(env.store, w.teacher, slack_raw(w))
    with env.store.session() as s:
        notices.enqueue(s, kind="checkin", recipient_id=w.teacher, dedupe_key="ck2", payload={"concern_id": receipt.concern_id})
    env.deliver()
    msg = sent_to(env, env.user("teacher"), "Checking in")[0]
    ta = env.user("ta")  # not the referrer, not the DSL team: refused
    env.slack.click_in_message(ta, "D" + ta, "3.3", msg.args["blocks"], notices.STILL_WORRIED)
    env.fake.wait(lambda f: [c for c in f.of("chat.postMessage") if c.args["channel"] == "D" + ta
                             and "Not done" in c.args["text"]])
    from storage.models import IdempotencyKey

    with env.store.session() as s:
        assert not [k for k in s.exec(select(IdempotencyKey)) if k.key.startswith("slack-click:")]


def test_follow_up_ask_for_an_update_in_one_click(env):
    w = env.world
    from flows import report

    receipt = report.submit(env.store, w.teacher, slack_raw(w))
    with env.store.session() as s:
        notices.enqueue(s, kind="referrer_follow_up", recipient_id=w.teacher, dedupe_key="fu1",
                        payload={"concern_id": receipt.concern_id})
    env.deliver()
    teacher = env.user("teacher")
    msg = sent_to(env, teacher, "Checking in")[-1]
    labels = [e["text"]["text"] for b in msg.args["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert labels[0] == "Ask for an update" and labels[-1] == "I'm still worried"
    ref = outbox(env.store, "referrer_follow_up")[0].platform_ref
    env.slack.click_in_message(teacher, ref["channel"], ref["ts"], msg.args["blocks"], notices.REQUEST_UPDATE)
    upd = env.fake.wait(lambda f: [c for c in f.of("chat.update") if c.args["ts"] == ref["ts"]])
    assert "Update requested" in upd[-1].args["text"]
    env.deliver()
    asked = sent_to(env, env.user("dsl"), "The referrer asks for an update")
    assert asked and asked[0].args["text"] == f"{receipt.reference}: the referrer asks for an update"


def test_dsl_matches_a_typed_name_to_the_pupil(env):
    w = env.world
    from flows import report

    receipt = report.submit(env.store, w.teacher, slack_raw(w, child="Ben Oakes, Year 5"))
    env.deliver()
    dsl = env.user("dsl")
    alert = sent_to(env, dsl)[0]
    assert "not found in the roster" in json.dumps(alert.args["blocks"])
    env.slack.click_in_message(dsl, "D" + dsl, "1.1", alert.args["blocks"], notices.OPEN_RECORD)
    rec = env.fake.wait(lambda f: [c for c in f.of("views.update") if c.args["view"]["callback_id"] == "concern_record_modal"])
    rec_id, rec_view = rec[-1].args["view_id"], rec[-1].args["view"]
    env.slack.click_in_view(dsl, rec_id, rec_view, "match_child")
    m = env.fake.wait(lambda f: [c for c in f.of("views.update") if c.args["view"]["callback_id"] == "match_child_modal"])
    mid, mview = m[-1].args["view_id"], m[-1].args["view"]
    assert "Ben Oakes, Year 5" in json.dumps(mview)
    opts = env.slack.suggest(dsl, mid, mview, "f.child", "ben o").json()["options"]
    assert opts[0]["value"] == f"child:{w.other_child}"
    r = env.slack.submit(dsl, mid, {**mview, "_previous": rec_id}, fill(mview, {"child": "ben o"}))
    assert r.json()["response_action"] == "errors" and "child" in r.json()["errors"]  # a typed name is not a match
    r = env.slack.submit(dsl, mid, {**mview, "_previous": rec_id}, fill(mview, {"child": opts[0]["value"]}))
    assert r.json() == {"response_action": "clear"}
    with env.store.session() as s:
        c = s.get(Concern, receipt.concern_id)
        assert c.child_id == w.other_child and not c.needs_child_match
