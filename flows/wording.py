"""Clear-language check: points out vague or euphemistic wording so the record says plainly
what was seen and heard (seed 003: "euphemistic language in reports and written records";
seed 001: "using clear and accurate language").

A suggestion, never a block: `check` only returns hints and the writer may keep the words.
Each hint names the phrase, why it is a problem and what to write instead.

What is never judged: the child's own words (the fields in `VERBATIM_FIELDS`) and anything
in quotation marks in any field. Those are somebody's words, recorded exactly as said.

The rules are data (flows/data/wording.toml): classes of words (minimisers, injuries, harm
verbs, labels, ...) and patterns over them, with conditions for negation ("no marks were
seen"), a named agent ("hit by her brother") and a description that follows a label. The
words are cut by flows/wording_text.py and matched by flows/wording_rules.py.

Age-limited rules (``only_under_age``, e.g. "had sex" about a child under 13, which at that
age is abuse and must be described as what happened) apply when the child's age is known and
below the limit, and also when the age is not known; then the prompt begins
"If the child is under N: ". They do not apply when the child is known to be older.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from . import wording_rules
from .wording_rules import Rule
from .wording_text import tokenize

# Form fields that hold somebody's exact words: recorded as said, never checked.
VERBATIM_FIELDS = frozenset({"child_words"})


@dataclass(frozen=True)
class WordingHint:
    phrase: str   # the text as found
    start: int
    end: int
    prompt: str   # why it is a problem, then what to write instead (one sentence each)
    why: str = ""
    instead: str = ""
    rule: str = ""
    kind: str = ""


def rules() -> tuple[Rule, ...]:
    return wording_rules.load()[1]


def check(text: str, *, child_age: int | None = None) -> list[WordingHint]:
    """Hints for vague wording in ``text``, in order of position, none overlapping (where two
    rules match overlapping text, the longer match, then the earlier rule, is kept)."""
    if not text or not text.strip():
        return []
    lex, all_rules = wording_rules.load()
    tokens = tokenize(text)
    if not tokens:
        return []
    enc = wording_rules.Encoded(tokens, lex)
    order = {r.id: i for i, r in enumerate(all_rules)}
    found = []
    for m in wording_rules.find(enc, all_rules, child_age):
        start, end = tokens[m.first].start, tokens[m.last].end
        found.append((start, -(end - start), order[m.rule.id], end, m.rule))
    found.sort(key=lambda f: f[:3])
    hints: list[WordingHint] = []
    for start, _, _, end, rule in found:
        if hints and start < hints[-1].end:
            continue
        hints.append(WordingHint(phrase=text[start:end], start=start, end=end, prompt=rule.prompt_for(child_age),
                                 why=rule.why, instead=rule.instead, rule=rule.id, kind=rule.kind))
    return hints


def check_fields(values: Mapping[str, str | None], *, child_age: int | None = None) -> dict[str, list[WordingHint]]:
    """`check` for several text fields at once; only fields with hints appear in the result.
    A field in `VERBATIM_FIELDS` (the child's own words) is never checked."""
    out = {}
    for name, text in values.items():
        if name in VERBATIM_FIELDS:
            continue
        hints = check(text or "", child_age=child_age)
        if hints:
            out[name] = hints
    return out
