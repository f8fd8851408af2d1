"""Teams, end to end over real HTTP (channel tokens signed as the Bot Connector signs them, the
real outbox worker, the FakeConnector): a report whose adult is typed reaches the headteacher
alone, whose alert and record offer "Identify the adult"; the DSL it may mean is sent nothing."""

from __future__ import annotations

import json

from sqlmodel import select

from storage.models import Concern, OutboxMessage
from tests.teams_journey_support import actions_of, inputs_of, texts, user_ids
from tests.teams_support import assert_valid_card, message_activity
from tests.test_teams_journey import _report_inputs, _response_card, clean_env, connector, env, ms  # noqa: F401

TYPED = "Mrs D. Shah"


def _report_typed_adult(env) -> Concern:
    t = env.teams
    c, step1 = env.reply_to("teacher", "report a concern")
    card_id = c["answer"]["id"]
    step2 = _response_card(t.press("teacher", step1, "Find the child", card_id,
                                   {"immediate_danger": "no", "child_query": "amir"}))
    assert "subject.typed" in inputs_of(step2)
    full = {**_report_inputs(env.world), "about_adult": "staff", "subject.typed": TYPED,
            "categories": "concern_about_adult"}
    out = _response_card(t.press("teacher", step2, "Send to the DSL", card_id, full))
    while out["body"][0]["text"] == "Report a concern":  # wording suggestions are shown once
        out = _response_card(t.press("teacher", out, "Send to the DSL", card_id, full))
    assert "headteacher" in texts(out) and "nobody in the safeguarding team can see it" in texts(out)
    with env.store.session() as s:
        return s.exec(select(Concern)).one()


def _search(env, who: str, query: str, dataset: str) -> list:
    act = message_activity(env.connector.service_url, **user_ids(who), type="invoke", name="application/search",
                           value={"queryText": query, "dataset": dataset, "queryOptions": {"skip": 0, "top": 15}})
    act.pop("text")
    return [(x["title"], x["value"]) for x in env.teams.post(act).json()["value"]["results"]]


def test_typed_adult_goes_to_the_head_who_identifies_them_in_teams(env):
    t, w = env.teams, env.world
    concern = _report_typed_adult(env)
    assert concern.subject_status == "unresolved" and concern.routed_to == [w.head]
    env.deliver()
    assert env.to("dsl") == [] and env.to("deputy") == []  # no card, no conversation even
    with env.store.session() as s:
        alert = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "concern_alert")).one()
    call, card = env.to("head")[0]
    assert_valid_card(card)
    assert [a["title"] for a in card["actions"]][0] == "Identify the adult"
    assert "Shah" not in json.dumps(card) and "Shah" not in call["body"]["summary"]
    alert_id = alert.platform_ref["activity_id"]

    # The record offers it too.
    rec = _response_card(t.press("head", card, "Open record", alert_id))
    assert_valid_card(rec)
    assert [a["title"] for a in actions_of(rec)][0] == "Identify the adult"

    form = _response_card(t.press("head", card, "Identify the adult", alert_id))
    assert_valid_card(form)
    assert TYPED in texts(form) and {"outcome", "subject", "reason"} <= set(inputs_of(form))
    assert inputs_of(form)["subject"]["choices.data"]["dataset"] == "staff_only"
    assert "subject.typed" not in inputs_of(form)  # here the adult is chosen from the list, or "not on it"
    assert _search(env, "head", "shah", "staff_only") == [("Dana Shah (DSL)", f"person:{w.dsl}")]

    bad = _response_card(t.press("head", form, "Record", alert_id, {"outcome": "on_list", "reason": "her"}))
    assert_valid_card(bad)
    assert "at least 10 characters" in texts(bad) and "Fill in “Which member of staff?”." in texts(bad)
    with env.store.session() as s:
        assert s.get(Concern, concern.id).subject_status == "unresolved"
    done = _response_card(t.press("head", bad, "Record", alert_id, {
        "outcome": "on_list", "subject": f"person:{w.dsl}",
        "reason": "The referrer confirmed she meant Dana Shah, the DSL."}))
    assert "recorded as about Dana Shah" in texts(done)
    again = _response_card(t.press("head", bad, "Record", alert_id, {  # a retried invoke
        "outcome": "on_list", "subject": f"person:{w.dsl}",
        "reason": "The referrer confirmed she meant Dana Shah, the DSL."}))
    assert "Already done" in texts(again)
    with env.store.session() as s:
        c = s.get(Concern, concern.id)
        assert (c.subject_status, c.subject_person_id) == ("identified", w.dsl)
    env.deliver()
    assert env.to("dsl") == []  # still never told
