"""Slack, end to end over real HTTP: a concern whose adult was typed, not picked, reaches the
headteacher alone; the DSL it may mean sees nothing of it (no DM, no App Home line or figure,
no record); the headteacher identifies the adult from the alert with "Identify the adult"."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from sqlmodel import select

from flows import notices
from storage.models import ChronologyEntry, Concern
from tests.slack_support import close_env, fill, find_button, make_env
from tests.test_slack_journey import open_report, sent_to, slack_raw

TYPED = "Mrs D. Shah"  # the DSL, Dana Shah, as a referrer might write her


@pytest.fixture
def env(store):
    e = make_env(store)
    yield e
    close_env(e)


def _report_typed_adult(env) -> Concern:
    w, teacher = env.world, env.user("teacher")
    vid, view = open_report(env, teacher)
    raw = slack_raw(w, about_adult="staff", subject=TYPED, categories=["concern_about_adult"])
    env.slack.select_in_view(teacher, vid, view, fill(view, raw), "f.about_adult")
    upd = env.fake.wait(lambda f: [c for c in f.of("views.update") if c.args["view_id"] == vid
                                   and '"block_id": "subject"' in json.dumps(c.args["view"])])
    view = upd[-1].args["view"]
    options = env.slack.suggest(teacher, vid, view, "f.subject", TYPED).json()["options"]
    assert options[-1] == {"text": {"type": "plain_text", "text": f"Not on the staff list: “{TYPED}”"}, "value": TYPED}
    env.slack.submit(teacher, vid, view, fill(view, raw, {"subject": options[-1]["text"]["text"]}))
    receipt = env.fake.wait(lambda f: [c for c in f.of("views.update") if c.args["view_id"] == vid
                                       and c.args["view"]["callback_id"] == "report_receipt_modal"])
    shown = json.dumps(receipt[-1].args["view"], ensure_ascii=False)
    assert "headteacher" in shown and "nobody in the safeguarding team can see it" in shown
    with env.store.session() as s:
        return s.exec(select(Concern)).one()


def _home(env, key: str, event_id: str) -> dict:
    user = env.user(key)
    before = len([c for c in env.fake.of("views.publish") if c.args["user_id"] == user])
    env.slack.post_event({"type": "app_home_opened", "user": user, "channel": "D" + user, "tab": "home",
                          "event_ts": f"{time.time():.6f}"}, event_id)
    calls = env.fake.wait(lambda f: [c for c in f.of("views.publish") if c.args["user_id"] == user][before:])
    return calls[-1].args["view"]


def _figures(home: dict) -> dict:
    block = next(b for b in home["blocks"] if b.get("block_id") == "figures")
    return {f["text"].split("\n")[0].strip("*"): f["text"].split("\n")[1] for f in block["fields"]}


def test_typed_adult_reaches_the_head_only_and_the_head_identifies_them(env):
    w, fake, slack = env.world, env.fake, env.slack
    dsl, deputy, head = env.user("dsl"), env.user("deputy"), env.user("head")
    concern = _report_typed_adult(env)
    assert concern.subject_status == "unresolved" and concern.routed_to == [w.head]

    # Alerts: the headteacher (with "Identify the adult" first) and the referrer's receipt; no DSL.
    assert env.deliver()["sent"] == 2
    assert sent_to(env, dsl) == [] and sent_to(env, deputy) == []
    alert = sent_to(env, head)[0]
    labels = [e["text"]["text"] for b in alert.args["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert labels[0] == "Identify the adult" and "Acknowledge" in labels
    assert "Shah" not in alert.args["text"] + json.dumps(alert.args["blocks"])

    # The DSL's App Home: neither a line nor a figure moved by it; a forged "Open record" is refused.
    home = _home(env, "dsl", "EvS1")
    assert concern.reference not in json.dumps(home)
    assert _figures(home)["Open concerns"] == "0" and _figures(home)["Awaiting acknowledgement"] == "0"
    slack.home_click(dsl, home, notices.OPEN_RECORD, json.dumps({"concern_id": concern.id}))
    refused = fake.wait(lambda f: [c for c in f.of("views.update") if c.args["view"]["callback_id"] == "info_modal"
                                   and "Cannot open" in json.dumps(c.args["view"])])
    assert TYPED not in json.dumps(refused[-1].args["view"]) and "Amira" not in json.dumps(refused[-1].args["view"])

    # The head's record offers it too.
    slack.click_in_message(head, "D" + head, "1.1", alert.args["blocks"], notices.OPEN_RECORD)
    rec = fake.wait(lambda f: [c for c in f.of("views.update") if c.args["view"]["callback_id"] == "concern_record_modal"])
    assert find_button(rec[-1].args["view"]["blocks"], notices.IDENTIFY_SUBJECT)

    # Identify the adult, from the alert: on the staff list, picked from it, with the reason.
    slack.click_in_message(head, "D" + head, "1.1", alert.args["blocks"], notices.IDENTIFY_SUBJECT)
    form = fake.wait(lambda f: [c for c in f.of("views.update") if c.args["view"]["callback_id"] ==
                                "identify_subject_modal" and any(b["type"] == "input" for b in c.args["view"]["blocks"])])
    vid, view = form[-1].args["view_id"], form[-1].args["view"]
    assert TYPED in json.dumps(view, ensure_ascii=False) and "subject" not in [b.get("block_id") for b in view["blocks"]]
    raw = {"outcome": "on_list", "subject": f"person:{w.dsl}",
           "reason": "The referrer confirmed she meant Dana Shah, the DSL."}
    slack.select_in_view(head, vid, view, fill(view, raw), "f.outcome")
    upd = fake.wait(lambda f: [c for c in f.of("views.update") if c.args["view_id"] == vid
                               and '"block_id": "subject"' in json.dumps(c.args["view"])])
    view = upd[-1].args["view"]
    options = slack.suggest(head, vid, view, "f.subject", "shah").json()["options"]
    assert options == [{"text": {"type": "plain_text", "text": "Dana Shah (DSL)"}, "value": f"person:{w.dsl}"}]
    # a reason too short: shown under the field, nothing recorded
    short = slack.submit(head, vid, view, fill(view, {**raw, "reason": "her"}, {"subject": "Dana Shah (DSL)"}))
    assert short.json()["response_action"] == "errors" and "reason" in short.json()["errors"]
    done = slack.submit(head, vid, view, fill(view, raw, {"subject": "Dana Shah (DSL)"}))
    assert done.json()["response_action"] == "update"
    assert "recorded as about Dana Shah" in json.dumps(done.json()["view"])
    again = slack.submit(head, vid, view, fill(view, raw, {"subject": "Dana Shah (DSL)"}))  # a double click
    assert again.status_code == 200 and again.json()["response_action"] == "update"
    with env.store.session() as s:
        c = s.get(Concern, concern.id)
        assert (c.subject_status, c.subject_person_id) == ("identified", w.dsl)
        assert len([e for e in s.exec(select(ChronologyEntry).where(ChronologyEntry.concern_id == c.id))
                    if e.facts.get("type") == "subject_identified"]) == 1

    # Now the deputy may see it; the DSL it is about still may not.
    assert concern.reference in json.dumps(_home(env, "deputy", "EvS2"))
    assert concern.reference not in json.dumps(_home(env, "dsl", "EvS3"))


@pytest.mark.parametrize("typed", ["Dana Shah", "Mrs N. Shah", "D Shah", "Dana Shar", "dsl@s.test", "DANA SHAH",
                                   "  Dana    Shah  "])
def test_no_spelling_puts_it_in_the_dsls_app_home_or_dms(env, typed):
    from flows import report

    w = env.world
    r = report.submit(env.store, w.teacher, slack_raw(w, about_adult="staff", subject=typed))
    env.deliver()
    assert sent_to(env, env.user("dsl")) == [] and sent_to(env, env.user("deputy")) == []
    for key in ("dsl", "deputy"):
        home = _home(env, key, "Ev" + uuid.uuid4().hex[:10])
        assert r.reference not in json.dumps(home) and _figures(home)["Open concerns"] == "0"
    assert r.reference in json.dumps(sent_to(env, env.user("head"))[0].args)
