"""The whole journey in the terminal, through the real `safeguarding-bot chat` command with
scripted input: report -> alert -> acknowledge -> decision with reasons -> referral ->
outcome shared -> check-in -> escalation -> close.

Each test takes the `store` fixture so the test database is migrated first, as
`safeguarding-bot db upgrade` does for PostgreSQL (SQLite files upgrade themselves)."""

import pytest
from sqlmodel import select

from storage.models import ChronologyEntry, Concern

from .conftest import run_cli


def chat(cli_env, tmp_path, who, lines):
    r = run_cli(["chat", "--as", who], cli_env, cwd=tmp_path, input="\n".join(lines) + "\n")
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


REPORT = [
    "1",                    # Report a safeguarding concern
    "n",                    # immediate danger? no
    "ava", "1",             # search the roll, pick Ava Morgan
    "24/11/2026 12:40",     # when
    "Year 6 classroom",     # where
    "1",                    # category: physical abuse
    "She seemed a bit upset after lunch today and would not say why.",  # vague on purpose
    "My dad grabbed my arm", "I don't want to go home tonight", "", "", "",
    "1",                    # about an adult? no
    "1",                    # clear-language check: rewrite
    "At 12:40 Ava had a red mark round her left wrist and cried when I asked about it.",
    "y",                    # send
    "quit",
]


def test_whole_journey_in_the_terminal(store, cli_env, tmp_path, db_url, data_key):
    out = chat(cli_env, tmp_path, "teacher@demo.school", REPORT)
    assert "built-in demo school" in out
    assert "“seemed a bit upset”" in out  # the clear-language check spoke up
    assert "Sent — reference SG-2026-0001" in out and "What happens next" in out

    out = chat(cli_env, tmp_path, "dsl@demo.school", [
        "1", "1",            # queue, the concern
        "1",                 # acknowledge
        "2",                 # open the record
        "5",                 # record a decision
        "7",                 # referral to children's social care
        "Mark on wrist with a disclosure that dad grabbed her; she does not want to go home.",
        "Dana Shah (DSL), Helen Brooks (Head)", "Northshire MASH", "24/11/2026 14:00", "1", "MASH-42",
        "n", "Telling dad today could put Ava at greater risk.", "",
        "7", "Thank you: social care are involved and the school is supporting Ava.",  # share outcome
        "0", "quit"])
    assert "New safeguarding concern — SG-2026-0001" in out   # the alert, in the DSL's notices
    assert "is yours" in out
    assert "My dad grabbed my arm" in out                      # the record shows the child's words
    assert "Decision recorded" in out and "Shared with the referrer" in out

    out = chat(cli_env, tmp_path, "teacher@demo.school", [
        "2", "1", "1", "3", "Another mark today, on her other wrist",   # check in: worse
        "2", "1", "3", "Still no social worker has visited",            # I'm still worried
        "quit"])
    assert "social care are involved" in out              # the outcome the DSL chose to share
    assert "asked to re-assess" in out and "Escalated" in out

    out = chat(cli_env, tmp_path, "dsl@demo.school", [
        "1", "1", "9", "Child protection plan agreed; school attends core group meetings.", "0", "quit"])
    assert "Closed." in out

    with store.session() as s:
        c = s.exec(select(Concern)).one()
        assert c.status == "closed" and c.decision_kind == "social_care_referral"
        kinds = [e.kind for e in s.exec(select(ChronologyEntry).where(ChronologyEntry.concern_id == c.id)
                                        .order_by(ChronologyEntry.seq))]
    for k in ("raised", "acknowledged", "viewed", "decision", "referral", "outcome", "follow_up", "escalation", "closed"):
        assert k in kinds
    assert run_cli(["audit", "verify"], cli_env, cwd=tmp_path).returncode == 0


def test_validation_errors_reprompt_only_the_bad_fields(store, cli_env, tmp_path):
    out = chat(cli_env, tmp_path, "ta@demo.school", [
        "1", "n", "zz", "y",          # not on the roll: use the name as typed... too short, so re-asked
        "01/01/2030 10:00", "Hall", "1", "Too short", "", "", "", "", "", "1",
        "Jo Bloggs Year 3", "y",      # child re-asked: not on the roll, use the name as typed
        "23/11/2026 10:00",           # when re-asked (was in the future)
        "Jo had a cut lip at 10:00 and said an older pupil punched her in the hall.",  # account re-asked
        "y", "quit"])
    assert "Please fix these:" in out and "in the future" in out and "at least 20" in out
    assert "Sent — reference SG-2026-0001" in out


def test_immediate_danger_advice_is_the_first_thing_shown(store, cli_env, tmp_path):
    out = chat(cli_env, tmp_path, "teacher@demo.school", ["1", "y", "quit"])
    after_answer = out.split("[y/n]", 1)[1]
    assert after_answer.lstrip().startswith("!! If the child is in immediate danger: call 999")


def test_unknown_person_is_told_whom_to_ask(store, cli_env, tmp_path):
    r = run_cli(["chat", "--as", "stranger@nowhere.test"], cli_env, cwd=tmp_path, input="")
    assert r.returncode == 2 and "not in the school directory" in r.stdout


def test_database_down_mid_report_is_told_and_nothing_half_saved(store, world_demo):
    """The database goes away between filling in the form and sending it."""
    from bot.console import Console
    from flows import queries

    teacher = queries.who(store, email="teacher@demo.school")
    script = iter(["1", "n", "ava", "1", "24/11/2026 12:40", "Hall", "1",
                   "At 12:40 Ava had a red mark round her left wrist.", "", "", "", "", "", "1", "y", "quit"])
    out = []

    def read(prompt):
        answer = next(script)
        if prompt.startswith("Send it now?"):
            store.engine.dispose()
            dbapi = store.engine.dialect.dbapi

            def refuse(*a, **k):
                raise dbapi.OperationalError("connection refused")

            store.engine.pool._creator = refuse  # every new connection now fails, as when the server is down
        return answer

    Console(store, teacher, read=read, write=out.append).run()
    text = "\n".join(out)
    assert "cannot be reached" in text and "nothing was saved" in text and "Sent —" not in text


@pytest.fixture
def world_demo(store):
    from storage.demo import ensure_directory

    assert ensure_directory(store)


def test_dsl_opens_a_childs_whole_file_in_the_terminal(store, world_demo, cli_env, tmp_path):
    from sqlmodel import select as sel

    from storage.models import AuditEvent

    chat(cli_env, tmp_path, "teacher@demo.school", REPORT)
    out = chat(cli_env, tmp_path, "dsl@demo.school", ["2", "ava", "1", "quit"])
    assert "Ava Morgan" in out and "SG-2026-0001" in out and "red mark round her left wrist" in out
    with store.session() as s:
        assert s.exec(sel(AuditEvent).where(AuditEvent.action == "chronology.opened")).first() is not None
    staff = chat(cli_env, tmp_path, "teacher@demo.school", ["quit"])
    assert "A child's file" not in staff  # not offered to staff


def test_questions_notes_steps_challenges_and_updates_in_the_terminal(store, world_demo, cli_env, tmp_path):
    chat(cli_env, tmp_path, "teacher@demo.school", REPORT)
    out = chat(cli_env, tmp_path, "dsl@demo.school", [
        "1", "1",
        "3", "Did you see the mark yourself, and when?",                 # ask the referrer
        "4", "2", "Spoke with the head about next steps.", "Dana Shah, Helen Brooks",  # a discussion
        "5", "7", "Mark on wrist with a disclosure; social care must assess.", "Dana Shah (DSL)",
        "Northshire MASH", "24/11/2026 14:00", "1", "", "y", "",           # referral, parents told
        "6", "1", "26/11/2026 09:00", "Acknowledgement letter received",   # social care step
        "8", "2", "01/12/2026", "Team manager, MASH", "Challenged NFA after a second injury.",  # challenge
        "0", "quit"])
    assert "Sent privately to the referrer" in out and "Added to the record" in out
    assert out.count("Recorded.") >= 1 and "Challenge recorded." in out

    out = chat(cli_env, tmp_path, "teacher@demo.school", [
        "2", "1", "1", "Yes, at 12:40 in the classroom.",   # answer the DSL's question
        "2", "1", "2",                                       # ask for an update
        "quit"])
    assert "Did you see the mark yourself" in out and "your answer is in the record" in out
    assert "has been asked for an update" in out

    out = chat(cli_env, tmp_path, "dsl@demo.school", ["1", "1", "2", "0", "quit"])
    out = " ".join(out.split())  # the terminal wraps long lines
    for text in ("Did you see the mark yourself", "Yes, at 12:40", "Spoke with the head",
                 "social care: Social care acknowledged the referral", "professional challenge, stage 2",
                 "referrer asked for an update", "decision: social care referral"):
        assert text in out, text
