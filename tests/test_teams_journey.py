"""The whole journey in Teams, end to end over real HTTP on loopback: activities shaped as Teams
sends them, with channel tokens signed by the test key (tests/teams_support.py), to our server;
replies, proactive cards and in-place updates go to the FakeConnector through the real outbox
worker. report -> alert -> acknowledge -> record -> decision -> outcome -> check-in -> close;
every card the product sends is checked by Microsoft's renderer; no notification text, card
fallback or log line carries concern content, and no concern content stays in the referrer's chat."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from sqlmodel import select

from bot.delivery import ConsoleTransport
from storage.models import AuditEvent, Concern, ConversationRef, OutboxMessage, Person, utcnow
from tests.teams_journey_support import (AAD, RecordingConnector, Teams, actions_of, card_of, inputs_of,
                                         teams_settings, teams_world, texts)
from tests.teams_support import TENANT_ID, MicrosoftFake, ServerThread, assert_valid_card, wait_for

SENSITIVE = ("Amira", "Zed", "bruise", "forearm", "spilt the milk", "go home tonight", "hungry", "Year 5 classroom",
             "Dad grabbed", "Physical abuse")
TEAMS_ENV = ("TEAMS_APP_ID", "TEAMS_APP_PASSWORD", "TEAMS_TENANT_ID", "CLIENT_ID", "CLIENT_SECRET", "TENANT_ID",
             "MANAGED_IDENTITY_CLIENT_ID", "DANGEROUSLY_ALLOW_UNAUTHENTICATED_REQUESTS", "SERVICE_URL", "CLOUD")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in TEAMS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def ms(tmp_path, monkeypatch):
    with MicrosoftFake(tmp_path) as fake:
        fake.use_env(monkeypatch)
        fake.kid = fake.keys.add()
        yield fake


@pytest.fixture
def connector():
    with RecordingConnector() as c:
        yield c


class Env:
    def __init__(self, store, ms, connector, srv, world, transport):
        self.store, self.ms, self.connector, self.srv, self.world = store, ms, connector, srv, world
        self.transport = transport
        self.teams = Teams(srv.url, ms, connector, conversation_of=self.conversation_of)

    def deliver(self, now=None, nudges: bool = False) -> dict:
        """One pass of the real worker (bot/worker.py) with the Teams transport, then the console."""
        from bot.worker import Counts, Worker

        w = Worker(self.store, transports=[self.transport, ConsoleTransport()], worker_id="teams-test")
        counts = Counts()
        if nudges:
            w.fire_nudges(now or utcnow(), counts)
        w.deliver(now or utcnow(), counts)
        return {"sent": counts.sent, "retried": counts.retried, "dead": counts.dead}

    def cards_sent(self) -> list[tuple[dict, dict]]:
        """(connector call, card) for every card the bot posted or PUT."""
        out = []
        for c in self.connector.calls:
            body = c["body"] if isinstance(c["body"], dict) else {}
            if c["method"] in ("POST", "PUT") and body.get("attachments"):
                out.append((c, card_of(body)))
        return out

    def to(self, key: str) -> list[tuple[dict, dict]]:
        conv = self.conversation_of(key)
        return [(c, card) for c, card in self.cards_sent() if f"/conversations/{conv or f'a:1personal-{key}'}/activities" in c["path"]]

    def conversation_of(self, key: str) -> str | None:
        if key not in self.world.people:
            return None
        with self.store.session() as s:
            ref = s.get(ConversationRef, self.world.people[key])
            return ref.conversation_id if ref else None

    def reply_to(self, key: str, text: str) -> tuple[dict, dict]:
        """Type `text` in the person's chat; the card the bot answered with (and its call)."""
        before = len(self.to(key))
        self.teams.say(key, text)
        assert wait_for(lambda: len(self.to(key)) > before), "no reply"
        return self.to(key)[-1]


@pytest.fixture
def env(store, ms, connector):
    from bot.server import create_app
    from bot.teams.delivery import TeamsTransport

    world = teams_world(store)
    settings = teams_settings(store)
    app = create_app(settings, store)
    transport = TeamsTransport(settings, store)
    with ServerThread(app) as srv:
        e = Env(store, ms, connector, srv, world, transport)
        yield e
    transport.close()


def _report_inputs(world) -> dict:
    return {"immediate_danger": "no", "child": f"child:{world.child}", "occurred_at.date": "2026-11-04",
            "occurred_at.time": "10:15", "location": "Year 5 classroom", "categories": "physical_abuse",
            "account": "At 10:15 Amira had a bruise on her left forearm about 3cm across and flinched when I "
                       "touched her shoulder.",
            "child_words": "Dad grabbed me because I spilt the milk",
            "child_views": "She does not want to go home tonight",
            "worry_history": "Since September she has arrived late and hungry most Mondays",
            "others_involved": "Her brother Zak, Year 3", "action_taken": "Nobody else told yet",
            "about_adult": "no"}


def _response_card(body: dict) -> dict:
    assert body.get("type") == "application/vnd.microsoft.card.adaptive", body
    assert body.get("statusCode") == 200
    return body["value"]


# --- the whole journey ------------------------------------------------------------------------------

def test_whole_journey(env, store, caplog):
    from bot.context import configure_logging

    configure_logging("DEBUG")  # even at DEBUG no concern content may reach a log line
    caplog.set_level(logging.DEBUG)
    t, w, conn = env.teams, env.world, env.connector
    try:
        _journey(env, store, t, w, conn)
    finally:
        logging.getLogger().setLevel(logging.WARNING)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for word in SENSITIVE:
        assert word not in logged, f"{word!r} reached a log line"


def _journey(env, store, t, w, conn):
    # 1. Report: the card form, a roster search, per-field errors, then the receipt in place.
    c, step1 = env.reply_to("teacher", "<at>Safeguarding</at> Report a Concern!")
    card_id = c["answer"]["id"]
    assert step1["body"][0]["text"] == "Report a concern"
    # required answers missing on step 1: the same card comes back with messages
    again = _response_card(t.press("teacher", step1, "Find the child", card_id, {"child_query": "a"}))
    assert "Choose an answer" in texts(again) and "at least two letters" in texts(again)
    step2 = _response_card(t.press("teacher", step1, "Find the child", card_id,
                                   {"immediate_danger": "no", "child_query": "amir"}))
    child = inputs_of(step2)["child"]
    assert [ch["title"] for ch in child["choices"]] == ["Amira Zed (Year 5)", "Not on the roll: “amir”"]
    assert inputs_of(step2)["account"]["isRequired"] is True
    raw = {k: v for k, v in _report_inputs(w).items() if k not in ("account", "location")}
    raw["child_words"] = "x" * 10
    errs = _response_card(t.press("teacher", step2, "Send to the DSL", card_id, raw))
    assert "Fill in “What happened — the facts”." in texts(errs) and "Fill in “Where?”." in texts(errs)
    assert inputs_of(errs)["child_words"]["value"] == "x" * 10  # what was typed is kept
    with store.session() as s:
        assert s.exec(select(Concern)).all() == []

    full = _report_inputs(w)
    last_form = errs
    out = _response_card(t.press("teacher", last_form, "Send to the DSL", card_id, full))
    while out["body"][0]["text"] == "Report a concern":  # wording suggestions are shown once
        assert "could be clearer" in texts(out)
        last_form = out
        out = _response_card(t.press("teacher", last_form, "Send to the DSL", card_id, full))
    receipt_card = out
    with store.session() as s:
        concern = s.exec(select(Concern)).one()
    assert concern.child_id == w.child and concern.location == "Year 5 classroom"
    assert concern.occurred_at.day == 4 and concern.occurred_at.month == 11  # the date was read day-first right
    assert concern.submission_key.startswith(f"teams:a:1personal-teacher:{card_id}:")
    assert receipt_card["body"][0]["text"] == "Concern sent" and concern.reference in texts(receipt_card)
    for word in SENSITIVE:  # the form was replaced in place: nothing of the concern stays in the chat
        assert word not in json.dumps(receipt_card)
    # Teams retries the invoke (or a double click): no second concern, the same receipt
    again = _response_card(t.press("teacher", last_form, "Send to the DSL", card_id, full))
    assert concern.reference in texts(again)
    with store.session() as s:
        assert len(s.exec(select(Concern)).all()) == 1

    # 2. Alerts through the outbox: a 1:1 chat created with each DSL (they never wrote to the bot).
    assert env.deliver()["sent"] == 3
    creates = [c for c in conn.calls if c["method"] == "POST" and c["path"].rstrip("/").endswith("/v3/conversations")]
    assert sorted(c["body"]["members"][0]["id"] for c in creates) == sorted([AAD["dsl"], AAD["deputy"]])
    assert all(c["body"]["tenantId"] == TENANT_ID for c in creates)
    with store.session() as s:
        alerts = {m.recipient_id: m for m in s.exec(select(OutboxMessage).where(OutboxMessage.kind == "concern_alert"))}
        assert {m.transport for m in alerts.values()} == {"teams"}
        receipt_msg = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "receipt")).one()
        assert receipt_msg.transport == "teams"
    dsl_alert_call, dsl_alert = env.to("dsl")[0]
    assert dsl_alert_call["body"]["summary"] == f"New safeguarding concern {concern.reference} needs you"
    assert dsl_alert["fallbackText"] == dsl_alert_call["body"]["summary"]
    assert [a["title"] for a in dsl_alert["actions"]] == ["Acknowledge", "Open record", "Record decision",
                                                          "Ask the referrer"]
    assert all(a["type"] == "Action.Execute" and a["verb"] == a["data"]["action"] for a in dsl_alert["actions"])
    dsl_alert_id = alerts[w.dsl].platform_ref["activity_id"]
    deputy_alert_id = alerts[w.deputy].platform_ref["activity_id"]
    _, deputy_alert = env.to("deputy")[0]

    # 3. Acknowledge: the clicker's card is replaced; every other copy is updated (PUT) by the outbox.
    acked = _response_card(t.press("dsl", dsl_alert, "Acknowledge", dsl_alert_id))
    assert "Acknowledged by Dana Shah at" in texts(acked)
    assert "Acknowledge" not in [a["title"] for a in acked["actions"]]
    env.deliver()
    puts = [c for c in conn.calls if c["method"] == "PUT"]
    assert sorted(p["path"].rsplit("/", 1)[-1] for p in puts) == sorted([dsl_alert_id, deputy_alert_id])
    for p in puts:
        assert "Acknowledged by Dana Shah at" in texts(card_of(p["body"]))
        assert p["body"]["summary"] == f"{concern.reference} acknowledged by Dana Shah"
    late = _response_card(t.press("deputy", deputy_alert, "Acknowledge", deputy_alert_id))
    assert "Acknowledged by Dana Shah at" in texts(late)  # who got there first
    assert env.deliver()["sent"] == 0

    # 4. Open the record (audited): the whole record, in the DSL's own chat only; then hide it again.
    rec = _response_card(t.press("dsl", acked, "Open record", dsl_alert_id))
    assert "Amira Zed" in texts(rec) and "Dad grabbed me because I spilt the milk" in texts(rec)
    with store.session() as s:
        opened = s.exec(select(AuditEvent).where(AuditEvent.action == "record.opened")).all()
        assert [e.details["via"] for e in opened] == ["teams"]
    hidden = _response_card(t.press("dsl", rec, "Hide record", dsl_alert_id))
    assert "Amira" not in json.dumps(hidden) and "Acknowledged by Dana Shah" in texts(hidden)

    # 5. Record a decision: the flow's decision form as a card; errors per field; then recorded.
    dec = _response_card(t.press("dsl", hidden, "Record decision", dsl_alert_id))
    assert {"decision", "reasons", "participants", "review_date"} <= set(inputs_of(dec))
    bad = _response_card(t.press("dsl", dec, "Record decision", dsl_alert_id, {"decision": "monitor",
                                                                               "reasons": "short"}))
    assert "at least 20 characters" in texts(bad) and "Fill in “Who took part in the decision”." in texts(bad)
    review = (utcnow() + timedelta(days=3)).date()
    decided = _response_card(t.press("dsl", bad, "Record decision", dsl_alert_id, {
        "decision": "monitor", "reasons": "Bruise explained in part; monitor attendance and presentation daily.",
        "participants": "Dana Shah (DSL), Helen Brooks (Head)", "review_date": review.isoformat()}))
    assert "decision recorded (Monitor in school)" in texts(decided)
    # the same form sent twice (a retried invoke) records one decision
    t.press("dsl", bad, "Record decision", dsl_alert_id, {
        "decision": "monitor", "reasons": "Bruise explained in part; monitor attendance and presentation daily.",
        "participants": "Dana Shah (DSL), Helen Brooks (Head)", "review_date": review.isoformat()})
    with store.session() as s:
        c = s.get(Concern, concern.id)
        assert c.status == "decided" and c.decision_kind == "monitor" and c.review_date == review
        assert len(s.exec(select(AuditEvent).where(AuditEvent.action == "concern.decision")).all()) == 1

    # 6. Ask the referrer, who answers from their card.
    ask = _response_card(t.press("dsl", decided, "Open record", dsl_alert_id))
    ask = _response_card(t.press("dsl", ask, "Ask the referrer", dsl_alert_id))
    asked = _response_card(t.press("dsl", ask, "Send question", dsl_alert_id,
                                   {"question": "Did she say when it happened?"}))
    assert asked["body"][0]["text"] == "Question sent"
    env.deliver()
    q_call, q_card = env.to("teacher")[-1]
    assert q_call["body"]["summary"] == f"The safeguarding lead has a question about {concern.reference}"
    q_id = q_call["answer"]["id"]
    answer_form = _response_card(t.press("teacher", q_card, "Answer", q_id))
    assert "Did she say when it happened?" in texts(answer_form)
    answered = _response_card(t.press("teacher", answer_form, "Send answer", q_id, {"answer": "Yesterday evening."}))
    assert answered["body"][0]["text"] == "Answer sent"

    # 7. Share an outcome: only those words reach the referrer.
    share = _response_card(t.press("dsl", asked, "Share outcome", dsl_alert_id))
    shared = _response_card(t.press("dsl", share, "Share with the referrer", dsl_alert_id,
                                    {"text": "Thank you. We are supporting the family and watching closely."}))
    assert shared["body"][0]["text"] == "Outcome shared"
    env.deliver()
    o_call, o_card = env.to("teacher")[-1]
    assert o_call["body"]["summary"] == f"An update on your concern {concern.reference}"
    assert "We are supporting the family" in texts(o_card)
    _, mine = env.reply_to("teacher", "MY REPORTS")
    assert concern.reference in texts(mine) and "We are supporting the family" in texts(mine)

    # 8. The review date comes: the referrer is asked to check in; "no change" asks the team to re-assess.
    later = utcnow() + timedelta(days=10)
    env.deliver(now=later, nudges=True)
    checkins = [(c, card) for c, card in env.to("teacher") if c["body"].get("summary", "").startswith("Checking in")]
    assert checkins, [c["body"].get("summary") for c, _ in env.to("teacher")]
    ci_call, ci_card = checkins[-1]
    ci_id = ci_call["answer"]["id"]
    assert [a["title"] for a in actions_of(ci_card)][:4] == ["Improved", "No change", "Worse", "Don't know"]
    done = _response_card(t.press("teacher", ci_card, "No change", ci_id))
    assert "you answered “No change”" in texts(done)
    again = _response_card(t.press("teacher", ci_card, "No change", ci_id))  # double click
    assert again["body"][0]["text"] == "Already done"
    env.deliver(now=later)
    assert any(c["body"].get("summary", "").endswith("has not improved: re-assess") for c, _ in env.to("dsl"))

    # 9. Close, with an outcome summary.
    close = _response_card(t.press("dsl", shared, "Close", dsl_alert_id))
    short = _response_card(t.press("dsl", close, "Close concern", dsl_alert_id, {"summary": "done"}))
    assert "at least 20 characters" in texts(short)
    closed = _response_card(t.press("dsl", short, "Close concern", dsl_alert_id,
                                    {"summary": "Monitored for six weeks; attendance and presentation now good."}))
    assert closed["body"][0]["text"] == "Concern closed"
    with store.session() as s:
        assert s.get(Concern, concern.id).status == "closed"

    # Privacy: no notification text or card fallback carries concern content; every card is valid.
    for c, card in env.cards_sent():
        for word in SENSITIVE:
            assert word not in c["body"].get("summary", ""), word
            assert word not in card.get("fallbackText", ""), word
        assert c["body"].get("summary") and card.get("fallbackText")
    # nothing of the concern in what the referrer's chat shows now (their cards, as last replaced)
    for c, card in env.to("teacher"):
        for word in SENSITIVE:
            assert word not in json.dumps(card), word
    every = [card for _, card in env.cards_sent()] + [r["value"] for r in t.responses
                                                      if r.get("type") == "application/vnd.microsoft.card.adaptive"]
    assert len(every) > 25
    for card in every:
        assert card.get("fallbackText")
        assert_valid_card(card)


# --- a blocked bot ----------------------------------------------------------------------------------

def test_a_blocked_bot_marks_the_reference_stale_and_the_alert_reaches_the_team_another_way(env, store):
    t, w, conn = env.teams, env.world, env.connector
    for who in ("dsl", "deputy"):  # both have written to the bot: references stored
        env.reply_to(who, "help")
    receipt, _ = _submit_report(env)
    conn.script(403)  # the first send (the DSL's alert) is refused: Dana blocked the bot
    env.deliver()
    with store.session() as s:
        alerts = {m.recipient_id: m for m in s.exec(select(OutboxMessage).where(OutboxMessage.kind == "concern_alert"))}
        # Not left in a terminal inbox she may never open: dead-lettered, and the team is told.
        assert alerts[w.dsl].state == "dead" and alerts[w.dsl].last_error == "RecipientUnreachable"
        told = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "delivery_failed")).all()
        assert {m.recipient_id for m in told} >= {w.deputy, w.tso}
        assert alerts[w.deputy].state == "sent" and alerts[w.deputy].transport == "teams"
        assert s.get(ConversationRef, w.dsl).stale
        stale = s.exec(select(AuditEvent).where(AuditEvent.action == "teams.ref_stale")).all()
        assert [e.details["person_id"] for e in stale] == [w.dsl]
    from flows import queries

    inbox = queries.inbox(store, w.dsl)
    assert any(n.kind == "concern_alert" for n in inbox)
    # nothing more goes to the stale reference; the deputy acknowledges from Teams
    calls = len(conn.calls)
    _, deputy_alert = env.to("deputy")[-1]
    deputy_id = alerts[w.deputy].platform_ref["activity_id"]
    _response_card(t.press("deputy", deputy_alert, "Acknowledge", deputy_id))
    env.deliver()
    dsl_conv = env.conversation_of("dsl")
    assert not any(dsl_conv in c["path"] for c in conn.calls[calls:])
    with store.session() as s:
        ack = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "alert_acknowledged",
                                                 OutboxMessage.recipient_id == w.dsl)).one()
        assert ack.transport == "console"
    # when Dana writes to the bot again, the reference is fresh and Teams reaches her again
    env.reply_to("dsl", "help")
    with store.session() as s:
        assert not s.get(ConversationRef, w.dsl).stale


def test_a_blocked_bot_with_no_other_route_is_dead_lettered_and_the_team_alerted(env, store):
    """With only Teams to try, an undeliverable alert is never dropped: it is recorded and the rest
    of the DSL team and the trust safeguarding officer are told."""
    from bot.worker import Counts, Worker

    w = env.world
    env.reply_to("dsl", "help")
    _submit_report(env)
    env.connector.script(403)
    Worker(store, transports=[env.transport], worker_id="teams-only").deliver(utcnow(), Counts())
    with store.session() as s:
        dsl_alert = s.exec(select(OutboxMessage).where(OutboxMessage.dedupe_key.like("alert:%"),
                                                       OutboxMessage.recipient_id == w.dsl)).one()
        assert dsl_alert.state == "dead"
        told = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "delivery_failed")).all()
        assert {m.recipient_id for m in told} >= {w.deputy, w.tso}
        assert all(m.payload["exclude_transports"] == ["teams"] for m in told)


def _submit_report(env, who: str = "teacher") -> tuple[dict, str]:
    t = env.teams
    c, step1 = env.reply_to(who, "report a concern")
    card_id = c["answer"]["id"]
    step2 = _response_card(t.press(who, step1, "Find the child", card_id, {"immediate_danger": "no",
                                                                          "child_query": "amira"}))
    full = _report_inputs(env.world)
    out = _response_card(t.press(who, step2, "Send to the DSL", card_id, full))
    while out["body"][0]["text"] == "Report a concern":
        out = _response_card(t.press(who, out, "Send to the DSL", card_id, full))
    assert out["body"][0]["text"] == "Concern sent"
    return out, card_id


# --- unknown users ----------------------------------------------------------------------------------

def test_an_unknown_user_is_told_whom_to_ask_and_loses_nothing(env, store):
    t = env.teams
    c, card = env.reply_to("stranger", "report a concern")
    words = texts(card)
    assert card["body"][0]["text"] == "You are not in the safeguarding directory yet"
    assert "Dana Shah or Dev Patel (safeguarding team)" in words and "999" in words
    assert c["body"]["summary"] == "You are not in the safeguarding directory yet"
    assert_valid_card(card)
    # a filled report card sent by someone the directory no longer knows comes back with their answers
    full = _report_inputs(env.world)
    body = t.invoke("stranger", {"action": "report_submit", "child_query": "amira", "n": "x1", **full}, "17000001")
    back = _response_card(body)
    assert "You are not in the safeguarding directory yet" in texts(back)
    assert inputs_of(back)["account"]["value"] == full["account"]  # nothing lost
    assert_valid_card(back)
    with store.session() as s:
        assert s.exec(select(Concern)).all() == []
        assert s.exec(select(ConversationRef)).all() == []  # nobody to attach a reference to
    # a known person whose object id arrives from another tenant is not matched (refused at the door)
    other = t.post(__import__("tests.teams_support", fromlist=["message_activity"]).message_activity(
        env.connector.service_url, "help", tenant_id="0b0b0b0b-9999-4999-8999-999999999999",
        aad_object_id=AAD["teacher"]))
    assert other.status_code == 401


# --- the conversation: commands, Action.Submit, install ---------------------------------------------

def test_typed_commands_ignore_mentions_case_and_punctuation(env):
    _, card = env.reply_to("teacher", "<at>Safeguarding</at>  HELP!")
    assert card["body"][0]["text"] == "Safeguarding concerns" and "report a concern" in texts(card)
    _, card = env.reply_to("teacher", "<at>Safeguarding Bot</at> My Reports")
    assert card["body"][0]["text"] == "My reports"
    _, card = env.reply_to("teacher", "report a concern.")
    assert card["body"][0]["text"] == "Report a concern"
    _, card = env.reply_to("teacher", "what is this?")
    assert "I did not understand that" in texts(card)
    for _, c in env.to("teacher"):
        assert_valid_card(c)


def test_action_submit_arrives_as_a_message_with_value_and_updates_the_card_in_place(env, store):
    c, help_card = env.reply_to("teacher", "help")
    card_id = c["answer"]["id"]
    before = len(env.connector.calls)
    env.teams.submit("teacher", {"action": "my_reports"}, card_id)
    assert wait_for(lambda: len(env.connector.calls) > before)
    put = env.connector.calls[-1]
    assert put["method"] == "PUT" and put["path"].endswith(f"/activities/{card_id}")
    assert card_of(put["body"])["body"][0]["text"] == "My reports"
    assert put["body"]["summary"]
    assert_valid_card(card_of(put["body"]))
    # a whole report through Action.Submit (Teams clients without Action.Execute): keyed on the card id
    full = _report_inputs(env.world)
    env.teams.submit("teacher", {"action": "report_submit", "child_query": "amira", "n": "s1", "wc": 1, **full},
                     card_id)
    env.teams.submit("teacher", {"action": "report_submit", "child_query": "amira", "n": "s1", "wc": 1, **full},
                     card_id)  # sent twice
    assert wait_for(lambda: "Concern sent" in texts(card_of(env.connector.calls[-1]["body"])))
    with store.session() as s:
        concerns = s.exec(select(Concern)).all()
        assert len(concerns) == 1 and concerns[0].submission_key == f"teams:a:1personal-teacher:{card_id}:s1"


def test_install_greets_once_says_whom_it_alerts_and_uninstall_marks_the_reference_stale(env, store):
    from tests.teams_journey_support import user_ids
    from tests.teams_support import message_activity

    t, w, conn = env.teams, env.world, env.connector
    ids = user_ids("teacher")
    update = message_activity(conn.service_url, type="conversationUpdate", **ids,
                              membersAdded=[{"id": f"28:{__import__('tests.teams_support', fromlist=['APP_ID']).APP_ID}"}])
    update.pop("text")
    install = message_activity(conn.service_url, type="installationUpdate", action="add", **ids)
    install.pop("text")
    assert t.post(update).status_code == 200
    assert t.post(install).status_code == 200  # Teams sends both on install: one greeting
    assert wait_for(lambda: env.to("teacher"))
    import time as _t

    _t.sleep(0.3)
    greetings = env.to("teacher")
    assert len(greetings) == 1
    call, card = greetings[0]
    words = texts(card)
    assert "Dana Shah, Dev Patel (the safeguarding team at Test Primary)" in words
    assert "report a concern" in words and "999" in words
    assert call["body"]["summary"].startswith("Hello")
    assert_valid_card(card)
    with store.session() as s:
        assert not s.get(ConversationRef, w.teacher).stale  # the greeting stored the reference
    remove = message_activity(conn.service_url, type="installationUpdate", action="remove", **ids)
    remove.pop("text")
    assert t.post(remove).status_code == 200
    with store.session() as s:
        assert s.get(ConversationRef, w.teacher).stale


def test_every_invoke_gets_a_typed_response(env):
    from tests.teams_journey_support import user_ids
    from tests.teams_support import message_activity

    t = env.teams
    for name in ("task/fetch", "task/submit"):
        act = message_activity(env.connector.service_url, **user_ids("teacher"), type="invoke", name=name,
                               value={"data": {"action": "report_concern"}})
        act.pop("text")
        r = t.post(act)
        assert r.status_code == 200 and r.json() == {"task": {"type": "message", "value": (
            "The safeguarding forms open in our chat: type “report a concern” there.")}}
    for data in ({"action": "no_such_button"}, {"action": "acknowledge", "concern_id": 999999},
                 {"action": "acknowledge", "concern_id": "not a number"}, {}):
        body = t.invoke("teacher", data, "17000002", verb=data.get("action") or "x")
        assert body["statusCode"] == 200
        assert body["type"] in ("application/vnd.microsoft.card.adaptive", "application/vnd.microsoft.activity.message")
        if body["type"] == "application/vnd.microsoft.card.adaptive":
            assert_valid_card(body["value"])
        else:
            assert body["value"]


# --- Slack beside Teams -----------------------------------------------------------------------------

def test_a_slack_request_is_served_beside_teams(store, ms, connector, monkeypatch):
    from bot.server import create_app
    from tests.slack_support import SECRET, TOKEN, FakeSlack, Slack

    # slack_sdk takes HTTPS_PROXY for every URL and ignores NO_PROXY; the test proxy (for Microsoft's
    # hosts) refuses plain HTTP, so the Slack clients here go to the loopback fake directly.
    for mod in ("slack_sdk.web.async_base_client", "slack_sdk.web.base_client"):
        monkeypatch.setattr(f"{mod}.load_http_proxy_from_env", lambda *a, **k: None)
    world = teams_world(store)
    fake = FakeSlack()
    try:
        settings = teams_settings(store, SLACK_BOT_TOKEN=TOKEN, SLACK_SIGNING_SECRET=SECRET, SLACK_API_URL=fake.url)
        app = create_app(settings, store)
        assert app.state.teams is not None and app.state.slack is not None
        with ServerThread(app) as srv:
            teams = Teams(srv.url, ms, connector)
            teams.say("teacher", "help")
            slack = Slack(srv.url)
            r = slack.command(f"U{'TEACHER'}S")
            assert r.status_code == 200 and r.text == ""
            fake.wait(lambda f: f.of("views.open"))
            assert wait_for(lambda: connector.sends())
            assert card_of(connector.sends()[0]["body"])["body"][0]["text"] == "Safeguarding concerns"
            # a forged Slack request is still refused while Teams is on
            r = slack.command("UTEACHERS", secret="not-the-secret")
            assert r.status_code == 401
    finally:
        fake.close()
    assert world.teacher


# --- outbound through the outbox: throttling ---------------------------------------------------------

def test_throttled_sends_are_retried_and_a_connector_outage_leaves_the_message_for_later(env, store, monkeypatch):
    from bot.teams import client

    monkeypatch.setattr(client, "MAX_WAIT_SECONDS", 1.0)
    w, conn = env.world, env.connector
    env.reply_to("dsl", "help")
    env.reply_to("deputy", "help")
    _submit_report(env)
    conn.script(429, retry_after="1")  # the first alert is throttled once, then accepted
    first = len(conn.calls)
    assert env.deliver()["sent"] == 3
    tries = [c for c in conn.calls[first:] if c["method"] == "POST"]
    assert len(tries) == 4 and tries[1]["at"] - tries[0]["at"] >= 0.9  # Retry-After honoured
    # the connector is down (503 on every try): the middleware gives up, the outbox keeps the message
    from flows import triage

    with store.session() as s:
        cid = s.exec(select(Concern)).one().id
    triage.ask_referrer(store, w.dsl, cid, "Which classroom was it?")
    conn.script(503, retry_after="0", times=10)
    out = env.deliver()
    assert out == {"sent": 0, "retried": 1, "dead": 0}
    with store.session() as s:
        q = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "info_request")).one()
        assert q.state == "pending" and q.attempts == 1 and q.last_error == "TransientDeliveryError"
    conn._script.clear()
    assert env.deliver(now=utcnow() + timedelta(hours=1))["sent"] == 1


def test_the_child_picker_searches_the_roll_with_teams_typeahead(env):
    """Where the client has dynamic typeahead, the picker's `application/search` invoke is answered
    from the searcher's school roll (and the name as typed, for a pupil not on the roll)."""
    from tests.teams_journey_support import user_ids
    from tests.teams_support import message_activity

    act = message_activity(env.connector.service_url, **user_ids("teacher"), type="invoke", name="application/search",
                           value={"queryText": "zed", "dataset": "children", "queryOptions": {"skip": 0, "top": 15}})
    act.pop("text")
    r = env.teams.post(act)
    assert r.status_code == 200
    body = r.json()
    assert body["type"] == "application/vnd.microsoft.search.searchResponse"
    assert [x["title"] for x in body["value"]["results"]] == ["Amira Zed (Year 5)", "Zak Zed (Year 5)",
                                                              "Not on the roll: “zed”"]
    act = message_activity(env.connector.service_url, **user_ids("stranger"), type="invoke", name="application/search",
                           value={"queryText": "zed", "dataset": "children"})
    act.pop("text")
    assert env.teams.post(act).json()["value"]["results"] == []  # not in the directory: no pupils


# --- every card the product can send ----------------------------------------------------------------

def test_every_notice_kind_and_every_card_builder_renders_a_valid_card_without_content_in_its_summary(env, store):
    """Each outbox notice kind (flows.notices.compose) as the Teams transport renders it, and each
    card builder the conversation uses, through Microsoft's renderer."""
    from flows import notices, triage
    from bot.teams import cards
    from storage.models import OutboxMessage as Msg

    w = env.world
    _submit_report(env)
    with store.session() as s:
        c = s.exec(select(Concern)).one()
        c.urgent = True
        s.add(c)
    cid = c.id
    kinds = [("concern_alert", {}), ("alert_acknowledged", {"by_id": w.dsl, "at": utcnow().isoformat()}),
             ("receipt", {}), ("info_request", {"by_id": w.dsl, "question_text": "When?"}), ("info_answered", {}),
             ("outcome_shared", {"by_id": w.dsl, "outcome_text": "We are supporting the family."}),
             ("checkin", {}), ("referrer_follow_up", {}), ("escalation", {"why": "Nobody has acknowledged it yet."}),
             ("reassess", {"why": "Check-in answer: Worse."}), ("update_requested", {}),
             ("ack_overdue", {"title": "Not acknowledged yet", "text": "A concern is waiting", "lines": ["Open it."]}),
             ("delivery_failed", {"title": "A safeguarding message could not be delivered",
                                  "text": "A safeguarding message could not be delivered", "lines": ["Call them."]})]
    built = []
    with store.session() as s:
        for kind, extra in kinds:
            n = notices.compose(s, Msg(kind=kind, recipient_id=w.dsl, dedupe_key=f"x:{kind}", urgent=True,
                                       payload={"concern_id": cid, **extra}))
            act = cards.notice_activity(n)
            card = act["attachments"][0]["content"]
            assert act["summary"] == n.text == card["fallbackText"], kind
            for word in SENSITIVE:
                assert word not in act["summary"], (kind, word)
            built.append(card)
    rec = triage.open_record(store, w.dsl, cid, via="teams")
    form = __import__("flows.report", fromlist=["report_form"]).report_form()
    built += [cards.record_card(rec), cards.receipt("SG-1", ["line"], True, cid),
              cards.report_step1(form, {"immediate_danger": "yes"}, {"child": "Type more."}, note="note"),
              cards.report_step2(form, [], "nobody", {}, {"account": "Add more detail."},
                                 danger_advice="Call 999."),
              cards.decision_card(triage.decision_form(), "SG-1", cid, {"decision": "police"},
                                  {"agency": "Fill in.", "referred_at": "Give a date."}),
              cards.text_card("Answer", ["q"], "answer", "Your answer", cards.ANSWER_SUBMIT, "Send", fallback="Answer",
                              error="Write your answer.", cancel=None, concern_id=cid),
              cards.my_reports_card(__import__("flows.queries", fromlist=["my_reports"]).my_reports(store, w.teacher)),
              cards.help_card(["help"])]
    for card in built:
        assert card.get("fallbackText") if isinstance(card, dict) else card.fallback_text
        assert_valid_card(card)


def test_outside_a_personal_chat_the_bot_shows_no_form(env, store):
    from tests.teams_journey_support import user_ids
    from tests.teams_support import message_activity

    act = message_activity(env.connector.service_url, "<at>Safeguarding</at> report a concern", **user_ids("teacher"))
    act["conversation"]["conversationType"] = "channel"
    act["conversation"]["id"] = "19:channel@thread.tacv2"
    before = len(env.connector.calls)
    assert env.teams.post(act).status_code == 200
    assert wait_for(lambda: len(env.connector.calls) > before)
    reply = env.connector.calls[-1]["body"]
    assert "private 1:1 chat" in reply["text"] and not reply.get("attachments")
    with store.session() as s:
        assert s.get(ConversationRef, env.world.teacher) is None  # a channel is not where to reach them


def test_someone_in_the_directory_by_email_only_is_matched_through_teams_and_remembered(env, store):
    """Directories often hold emails only: the member's email from Teams finds the person, and
    their AAD object id is kept so that the next message needs no look-up."""
    from urllib.parse import unquote

    w = env.world
    with store.session() as s:
        p = s.get(Person, w.ta)
        p.teams_aad_object_id = None
        s.add(p)
    ta_aad = "a0a0a0a0-0000-4000-8000-0000000000a5"
    env.connector.members["29:1teams-ta"] = {"id": "29:1teams-ta", "name": "Amy Clarke", "aadObjectId": ta_aad,
                                             "email": "ta@s.test", "userPrincipalName": "ta@s.test"}
    _, card = env.reply_to("ta", "my reports")
    assert card["body"][0]["text"] == "My reports"
    lookups = [c for c in env.connector.calls if c["method"] == "GET"]
    assert len(lookups) == 1 and unquote(lookups[0]["path"]).endswith("/members/29:1teams-ta")
    with store.session() as s:
        assert s.get(Person, w.ta).teams_aad_object_id == ta_aad
        assert s.get(ConversationRef, w.ta) is not None
    env.srv.app.state.teams.safeguarding.handlers.directory.forget()
    env.reply_to("ta", "help")
    assert len([c for c in env.connector.calls if c["method"] == "GET"]) == 1  # known now: no look-up
    # an email that belongs to nobody in the directory: told whom to ask, and not asked again at once
    env.connector.members["29:1teams-stranger"] = {"id": "29:1teams-stranger", "email": "nobody@else.test"}
    _, card = env.reply_to("stranger", "help")
    assert card["body"][0]["text"] == "You are not in the safeguarding directory yet"
    env.reply_to("stranger", "help")
    assert len([c for c in env.connector.calls if c["method"] == "GET"]) == 2


def test_the_manifest_command_list_is_what_the_bot_understands():
    from pathlib import Path

    from bot.teams.handlers import COMMANDS, command_of

    manifest = json.loads((Path(__file__).resolve().parent.parent / "manifests/teams/manifest.json").read_text())
    titles = [c["title"] for bot in manifest["bots"] for cl in bot["commandLists"] for c in cl["commands"]]
    assert {command_of(t) for t in titles} == set(COMMANDS.values())  # every command listed, each understood


def test_the_adult_picker_searches_the_staff_list_with_teams_typeahead(env):
    """The report's "Which adult?" picker: staff of the searcher's school only, then the name as typed
    (which is never matched to a person by its spelling)."""
    from tests.teams_journey_support import user_ids
    from tests.teams_support import message_activity

    act = message_activity(env.connector.service_url, **user_ids("teacher"), type="invoke", name="application/search",
                           value={"queryText": "dana", "dataset": "staff", "queryOptions": {"skip": 0, "top": 15}})
    act.pop("text")
    body = env.teams.post(act).json()
    assert [(x["title"], x["value"]) for x in body["value"]["results"]] == [
        ("Dana Shah (DSL)", f"person:{env.world.dsl}"), ("Not on the staff list: “dana”", "dana")]
    act = message_activity(env.connector.service_url, **user_ids("stranger"), type="invoke", name="application/search",
                           value={"queryText": "dana", "dataset": "staff"})
    act.pop("text")
    assert env.teams.post(act).json()["value"]["results"] == []
