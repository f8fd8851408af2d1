"""Clear-language check: points out vague or euphemistic wording in a concern before it is
submitted (seed 003: "euphemistic language in reports and written records").

A suggestion, never a block: `check` only returns hints and the person may submit as is.
The phrase list is data (flows/data/wording.toml).

Age-limited entries (``only_under_age``, e.g. "had sex" about a child under 13, which at
that age is abuse and must be described as what happened) apply when the child's age is
known and below the limit, and also when the age is not known; then the prompt begins
"If the child is under N: ". They do not apply when the child is known to be older.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Mapping

DATA = Path(__file__).parent / "data" / "wording.toml"


@dataclass(frozen=True)
class WordingHint:
    phrase: str  # the text as found
    start: int
    end: int
    prompt: str


@dataclass(frozen=True)
class Entry:
    pattern: str
    prompt: str
    example: str
    clear: str
    only_under_age: int | None
    category: str | None
    regex: re.Pattern[str]

    def applies(self, child_age: int | None) -> bool:
        return self.only_under_age is None or child_age is None or child_age < self.only_under_age

    def prompt_for(self, child_age: int | None) -> str:
        if self.only_under_age is not None and child_age is None:
            return f"If the child is under {self.only_under_age}: {self.prompt}"
        return self.prompt


def compile_pattern(pattern: str) -> re.Pattern[str]:
    # Whole words only ("roughly" must not fire inside "thoroughly"); a space stands for any
    # whitespace so that a phrase broken across lines is still found.
    body = pattern.replace(" ", r"\s+")
    return re.compile(rf"(?<!\w)(?:{body})(?!\w)", re.IGNORECASE)


@lru_cache
def entries() -> tuple[Entry, ...]:
    out = []
    for i, raw in enumerate(tomllib.loads(DATA.read_text())["entries"]):
        try:
            out.append(Entry(pattern=raw["pattern"], prompt=raw["prompt"], example=raw["example"],
                             clear=raw["clear"], only_under_age=raw.get("only_under_age"),
                             category=raw.get("category"), regex=compile_pattern(raw["pattern"])))
        except (KeyError, re.error) as e:
            raise ValueError(f"{DATA.name} entry {i + 1} ({raw.get('pattern')!r}): {e!r}") from None
    return tuple(out)


def check(text: str, *, child_age: int | None = None) -> list[WordingHint]:
    """Hints for vague wording in ``text``, in order of position, none overlapping (where two
    entries match overlapping text, the longer match, then the earlier entry, is kept)."""
    if not text:
        return []
    found = []
    for order, entry in enumerate(entries()):
        if entry.applies(child_age):
            for m in entry.regex.finditer(text):
                found.append((m.start(), -(m.end() - m.start()), order, m, entry))
    found.sort(key=lambda f: f[:3])
    hints: list[WordingHint] = []
    for start, _, _, m, entry in found:
        if hints and start < hints[-1].end:
            continue
        hints.append(WordingHint(phrase=m.group(0), start=start, end=m.end(), prompt=entry.prompt_for(child_age)))
    return hints


def check_fields(values: Mapping[str, str | None], *, child_age: int | None = None) -> dict[str, list[WordingHint]]:
    """`check` for several text fields at once; only fields with hints appear in the result."""
    out = {}
    for name, text in values.items():
        hints = check(text or "", child_age=child_age)
        if hints:
            out[name] = hints
    return out
