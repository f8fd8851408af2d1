"""The child protection file in Slack: the DSL opens a child's whole file from the record
(the opening is audited), and the DSL's App Home shows the school's headline figures."""

from __future__ import annotations

import json
import time

import pytest
from sqlmodel import select

from flows import notices, report, triage
from storage.models import AuditEvent
from tests.slack_support import close_env, make_env
from tests.test_slack_journey import sent_to, slack_raw


@pytest.fixture
def env(store):
    e = make_env(store)
    yield e
    close_env(e)


def _open_record(env, who):
    alert = sent_to(env, who)[0]
    env.slack.click_in_message(who, "D" + who, "1.1", alert.args["blocks"], notices.OPEN_RECORD)
    rec = env.fake.wait(lambda f: [c for c in f.of("views.update")
                                   if c.args["view"]["callback_id"] == "concern_record_modal"])
    return rec[-1].args["view_id"], rec[-1].args["view"]


def test_dsl_opens_the_childs_whole_file_from_the_record(env):
    w = env.world
    older = report.submit(env.store, w.ta, slack_raw(w, categories=["neglect"]))
    triage.record_decision(env.store, w.dsl, older.concern_id, {
        "decision": "monitor", "reasons": "Monitor attendance and presentation weekly.", "participants": "Dana Shah"})
    report.submit(env.store, w.teacher, slack_raw(w, child=f"child:{w.sibling}"))  # a sibling's concern
    newest = report.submit(env.store, w.teacher, slack_raw(w))
    env.deliver()
    dsl = env.user("dsl")
    rec_id, rec_view = _open_record(env, dsl)
    env.slack.click_in_view(dsl, rec_id, rec_view, "open_child_file")
    env.fake.wait(lambda f: [c for c in f.of("views.push") if c.args["view"]["callback_id"] == "child_file_modal"])
    done = env.fake.wait(lambda f: [c for c in f.of("views.update")
                                    if c.args["view"]["callback_id"] == "child_file_modal"])
    text = json.dumps(done[-1].args["view"], ensure_ascii=False)
    assert "Amira Zed" in text and older.reference in text and newest.reference in text
    assert "Zak Zed" in text  # the sibling's file is linked
    assert "Monitor attendance" in text  # the decision's reasons are in the file
    with env.store.session() as s:
        ev = s.exec(select(AuditEvent).where(AuditEvent.action == "chronology.opened")).all()
    assert [e.actor_id for e in ev] == [w.dsl] and ev[0].details.get("via") == "slack"


def test_the_head_handling_an_allegation_cannot_open_the_childs_file(env):
    w = env.world
    report.submit(env.store, w.teacher, slack_raw(w, about_adult="staff", subject=f"person:{w.ta}"))
    env.deliver()
    head = env.user("head")
    rec_id, rec_view = _open_record(env, head)
    env.slack.click_in_view(head, rec_id, rec_view, "open_child_file")
    refused = env.fake.wait(lambda f: [c for c in f.of("views.update") if c.args["view"]["callback_id"] == "info_modal"
                                       and "safeguarding team" in json.dumps(c.args["view"])])
    assert "Amira" not in json.dumps(refused[-1].args["view"])
    with env.store.session() as s:
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "chronology.opened")).first() is None


def test_dsl_app_home_shows_the_schools_headline_figures(env):
    w = env.world
    report.submit(env.store, w.teacher, slack_raw(w))
    report.submit(env.store, w.ta, slack_raw(w, categories=["neglect"]))
    dsl, teacher = env.user("dsl"), env.user("teacher")
    env.slack.post_event({"type": "app_home_opened", "user": dsl, "channel": "D" + dsl, "tab": "home",
                          "event_ts": f"{time.time():.6f}"}, "EvH1")
    home = env.fake.wait(lambda f: [c for c in f.of("views.publish") if c.args["user_id"] == dsl])[-1].args["view"]
    figures = next(b for b in home["blocks"] if b.get("block_id") == "figures")
    shown = {f["text"].split("\n")[0].strip("*"): f["text"].split("\n")[1] for f in figures["fields"]}
    assert shown["Open concerns"] == "2" and shown["Awaiting acknowledgement"] == "2"
    assert shown["Raised this month"] == "2"
    env.slack.post_event({"type": "app_home_opened", "user": teacher, "channel": "D" + teacher, "tab": "home",
                          "event_ts": f"{time.time():.6f}"}, "EvH2")
    staff_home = env.fake.wait(lambda f: [c for c in f.of("views.publish") if c.args["user_id"] == teacher])[-1]
    assert "figures" not in json.dumps(staff_home.args["view"])  # staff see their own reports only
