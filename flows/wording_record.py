"""The clear-language check for what the DSL team writes into a record: notes, a decision's
reasons, outcomes (for the record or shared with the referrer), the closing summary.

A transport calls `hints` (or one of the helpers) with what is about to be saved, BEFORE the
flow that saves it (flows.triage.add_entry, record_decision, record_outcome, share_outcome,
close; flows.followup.record_challenge). When hints come back it shows them once, with the
text kept for editing, and saves whatever is sent next, changed or not: a suggestion, never
a block. The same fields are what QA scores for clear language (flows/qa.py), so a DSL sees
at writing time what a reviewer would see later.
"""

from __future__ import annotations

from datetime import date
from typing import Mapping

from storage.db import Store
from storage.models import Child

from . import wording
from .access import require_handler
from .chronology import age_on
from .wording import WordingHint

# What is written, and the fields of its form that hold free text to check.
WRITTEN: dict[str, tuple[str, ...]] = {
    "note": ("text",),
    "discussion": ("text",),
    "action": ("text",),
    "decision": ("reasons", "other_detail", "parents_not_informed_reason"),
    "outcome": ("text",),
    "shared_outcome": ("text",),
    "closing_summary": ("summary",),
    "social_care_step": ("note",),
    "challenge": ("note",),
}

# The same texts as they are stored: chronology entry kind -> fields of its body (QA reads these).
STORED: dict[str, tuple[str, ...]] = {
    "note": ("text",),
    "discussion": ("text",),
    "action": ("text",),
    "decision": ("reasons", "other_detail", "parents_not_informed_reason"),
    "outcome": ("text", "shared_text"),
    "referral": ("note",),
}


def hints(store: Store, actor_id: int, concern_id: int, what: str,
          values: Mapping[str, object | None], *, today: date | None = None) -> dict[str, list[WordingHint]]:
    """Hints per field for text about to be written into a concern's record.

    ``what`` is a key of `WRITTEN`; ``values`` the form's raw values (other fields are
    ignored). Only someone who may write to the record may ask (the same check as the flows
    that save it), since the answer depends on the child's age."""
    if what not in WRITTEN:
        raise ValueError(f"unknown record text {what!r}; one of {', '.join(WRITTEN)}")
    with store.session() as s:
        _, concern = require_handler(s, actor_id, concern_id)
        child = s.get(Child, concern.child_id) if concern.child_id else None
        age = age_on(child.date_of_birth, today or date.today()) if child else None
    texts = {f: str(values.get(f) or "") for f in WRITTEN[what]}
    return wording.check_fields(texts, child_age=age)


def text_hints(store: Store, actor_id: int, concern_id: int, what: str, text: str) -> list[WordingHint]:
    """`hints` for a form with one text field (a note, an outcome, the closing summary)."""
    fields = WRITTEN.get(what, ())
    if len(fields) != 1:
        raise ValueError(f"{what!r} is not a one-text form; use hints()")
    return hints(store, actor_id, concern_id, what, {fields[0]: text}).get(fields[0], [])


def stored_texts(kind: str, body: Mapping[str, object]) -> list[str]:
    """The checked free text of a stored chronology entry (empty for kinds not checked)."""
    return [str(body[f]) for f in STORED.get(kind, ()) if body.get(f)]
