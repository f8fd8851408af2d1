"""The terminal chat, through the real `safeguarding-bot chat` command: a report whose adult is
typed goes to the headteacher, who is offered "Identify the adult"; the DSL it may mean sees
nothing of it (no notice, no queue line, no file entry) before or after."""

from __future__ import annotations

from sqlmodel import select

from storage.models import Concern

from .test_console_journey import chat as _chat


def chat(*a) -> str:
    return " ".join(_chat(*a).split())  # the terminal wraps long lines

TYPED_REPORT = [
    "1",                    # Report a safeguarding concern
    "n",                    # immediate danger? no
    "ava", "1",             # search the roll, pick Ava Morgan
    "24/11/2026 12:40",     # when
    "Year 6 classroom",     # where
    "1",                    # category
    "At 12:40 Mrs D Shah pulled Ava by her left wrist out of the lunch queue and Ava cried.",
    "She hurt my arm", "", "", "", "",
    "2",                    # about an adult? yes, a member of staff
    "Mrs D Shah",           # search the staff list: nobody matches the spelling
    "y",                    # use the name as typed
    "y",                    # send
    "quit",
]


def test_typed_adult_in_the_terminal(store, cli_env, tmp_path):
    out = chat(cli_env, tmp_path, "teacher@demo.school", TYPED_REPORT)
    assert "Nobody on the staff list matches" in out
    assert "will go privately to the headteacher" in out and "Sent — reference SG-2026-0001" in out
    assert "nobody in the safeguarding team can see it" in out

    for dsl in ("dsl@demo.school", "deputy@demo.school"):
        seen = chat(cli_env, tmp_path, dsl, ["1", "quit"])  # their notices, then the queue
        assert "SG-2026-0001" not in seen and "Nothing open." in seen

    head = chat(cli_env, tmp_path, "head@demo.school", [
        "1", "1",           # the queue, the concern
        "1",                # Identify the adult (offered first)
        "1",                # on the staff list
        "shah", "1",        # search, choose Dana Shah
        "The referrer confirmed she meant Dana Shah, the DSL.",
        "0", "quit"])
    assert "New safeguarding concern — SG-2026-0001" in head and "Identify the adult" in head
    assert "the referrer wrote “Mrs D Shah”" in head and "recorded as about Dana Shah" in head
    with store.session() as s:
        c = s.exec(select(Concern)).one()
        assert c.subject_status == "identified" and c.subject_name == "Dana Shah"

    deputy = chat(cli_env, tmp_path, "deputy@demo.school", ["1", "1", "2", "0", "quit"])
    assert "SG-2026-0001" in deputy and "pulled Ava by her left wrist" in deputy
    assert "Identify the adult" not in deputy
    dsl = chat(cli_env, tmp_path, "dsl@demo.school", ["1", "2", "ava", "1", "quit"])
    assert "SG-2026-0001" not in dsl and "pulled Ava" not in dsl
