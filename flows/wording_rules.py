"""Rules of the clear-language check: patterns over classes of words, read from
flows/data/wording.toml (its header documents the format).

A pattern is a sequence of atoms with regular-expression operators between them:
``CLASS`` (a word of that class, e.g. ``INJURY``), ``!CLASS`` (a word not of that class),
``_`` (any word), a lower-case literal word (``dress*``: any longer word starting so), ``( | )`` for alternatives and ``? * + {m,n}``
for repeats. A token sequence is written out as one string (each token as its word and its
classes between control characters) and each pattern compiles to one regular expression over
it, so matching is deterministic and linear in practice. Conditions that a regular expression
cannot say cheaply (a negation just before, an agent named later in the sentence, a
measurement anywhere in the sentence) are checked on the tokens around a match.
"""

from __future__ import annotations

import bisect
import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .wording_text import Token

DATA = Path(__file__).parent / "data" / "wording.toml"
BOUNDARY = {".", "!", "?", ";"}
AUTO_CLASSES = {"W", "NUM", "P", "B", "QUOTE", "DETAIL"}  # given by the tokenizer (DETAIL: also listed words)
RESERVED = AUTO_CLASSES - {"DETAIL"}

_ATOM = re.compile(r"\s*(?:(?P<op>[()|?*+]|\{\d+(?:,\d*)?\})|(?P<neg>!)?(?P<cls>[A-Z][A-Z0-9_]*)|(?P<any>_)"
                   r"|(?P<lit>[^\s()|?*+{}!]+\*?))")
_TOK = "\x02[^\x03]*\x03"   # a token's word part; its classes follow as ":A:B:" up to \x04


@dataclass(frozen=True)
class Lexicon:
    words: dict[str, frozenset[str]]
    prefixes: tuple[tuple[str, str], ...]   # ("bruis", "INJURY"): any word starting so
    suffixes: tuple[tuple[str, str], ...]   # ("ly", "ADV"): any word ending so
    names: frozenset[str]

    def classes(self, tok: Token) -> set[str]:
        out = set(tok.classes)
        if tok.kind == "quote":
            return out
        if tok.kind in ("word", "num"):
            out.add("W")
        if tok.kind == "num":
            out.add("NUM")
        if tok.kind == "punct":
            out.add("P")
            if tok.norm in BOUNDARY:
                out.add("B")
        out |= self.words.get(tok.norm, frozenset())
        if tok.kind == "word":
            out |= {c for p, c in self.prefixes if tok.norm.startswith(p)}
            out |= {c for s, c in self.suffixes if tok.norm.endswith(s) and len(tok.norm) > len(s) + 1}
        return out


@dataclass(frozen=True)
class Rule:
    id: str
    kind: str
    pattern: str
    why: str
    instead: str
    examples: tuple[str, ...]
    clear: tuple[str, ...]
    only_under_age: int | None
    regex: re.Pattern[str]
    unless_before: str | None      # a class: a word of it in the clause just before, or inside the match
    before: int
    unless_after: re.Pattern[str] | None   # found within `after` words past the match, same sentence
    unless_sentence: str | None    # a class: any word of it in the match's sentence

    def applies(self, child_age: int | None) -> bool:
        return self.only_under_age is None or child_age is None or child_age < self.only_under_age

    def prompt_for(self, child_age: int | None) -> str:
        text = f"{self.why} {self.instead}"
        if self.only_under_age is not None and child_age is None:
            return f"If the child is under {self.only_under_age}: {text}"
        return text


def compile_pattern(pattern: str, names: frozenset[str]) -> str:
    """The regular expression (over encoded tokens) for a pattern; unknown classes refused."""
    out, pos = [], 0
    while pos < len(pattern):
        if pattern[pos:].strip() == "":
            break
        m = _ATOM.match(pattern, pos)
        if not m or m.end() == pos:
            raise ValueError(f"cannot read the pattern at {pattern[pos:]!r}")
        pos = m.end()
        if m.group("op"):
            out.append({"(": "(?:"}.get(m.group("op"), m.group("op")))
        elif m.group("cls"):
            cls = m.group("cls")
            if cls not in names and cls not in AUTO_CLASSES:
                raise ValueError(f"unknown word class {cls}")
            if m.group("neg"):
                out.append(f"(?:{_TOK}(?=[^\x04]*:W:)(?![^\x04]*:{cls}:)[^\x04]*\x04)")
            else:
                out.append(f"(?:{_TOK}[^\x04]*:{cls}:[^\x04]*\x04)")
        elif m.group("any"):
            out.append(f"(?:{_TOK}[^\x04]*:W:[^\x04]*\x04)")
        elif m.group("lit").endswith("*"):  # a prefix: "dress*" is dressed, dresses, dressing
            out.append(f"(?:\x02{re.escape(m.group('lit')[:-1].lower())}[^\x03]*\x03[^\x04]*\x04)")
        else:
            out.append(f"(?:\x02{re.escape(m.group('lit').lower())}\x03[^\x04]*\x04)")
    return "".join(out)


@lru_cache
def load(path: Path = DATA) -> tuple[Lexicon, tuple[Rule, ...]]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    words: dict[str, set[str]] = {}
    prefixes, suffixes = [], []
    for name, members in data["words"].items():
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", name) or name in RESERVED:
            raise ValueError(f"{path.name}: word class name {name!r} must be upper case and not {sorted(RESERVED)}")
        for w in members:
            w = w.lower()
            if w.endswith("*"):
                prefixes.append((w[:-1], name))
            elif w.startswith("*"):
                suffixes.append((w[1:], name))
            else:
                words.setdefault(w, set()).add(name)
    names = frozenset(data["words"])
    lex = Lexicon(words={w: frozenset(c) for w, c in words.items()}, prefixes=tuple(prefixes),
                  suffixes=tuple(suffixes), names=names)
    rules, seen = [], set()
    for i, raw in enumerate(data["rules"]):
        try:
            rid = raw["id"]
            if rid in seen:
                raise ValueError("duplicate id")
            seen.add(rid)
            after = None
            if raw.get("unless_after"):
                gap = f"(?:{_TOK}(?![^\x04]*:B:)[^\x04]*\x04){{0,{int(raw.get('after', 6))}}}?"
                after = re.compile(gap + "(?:" + compile_pattern(raw["unless_after"], names) + ")")
            for key in ("unless_before", "unless_sentence"):
                if raw.get(key) and raw[key] not in names and raw[key] not in AUTO_CLASSES:
                    raise ValueError(f"{key}: unknown word class {raw[key]}")
            rules.append(Rule(
                id=rid, kind=raw["kind"], pattern=raw["pattern"], why=raw["why"], instead=raw["instead"],
                examples=tuple(raw.get("examples", ())), clear=tuple(raw.get("clear", ())),
                only_under_age=raw.get("only_under_age"),
                regex=re.compile(compile_pattern(raw["pattern"], names)),
                unless_before=raw.get("unless_before"), before=int(raw.get("before", 4)),
                unless_after=after, unless_sentence=raw.get("unless_sentence")))
        except (KeyError, ValueError, re.error) as e:
            raise ValueError(f"{path.name} rule {i + 1} ({raw.get('id')!r}): {e}") from None
    return lex, tuple(rules)


@dataclass(frozen=True)
class Match:
    rule: Rule
    first: int   # token indexes, inclusive
    last: int


class Encoded:
    """Tokens written out once for all the rules, with the way back from string to token."""

    def __init__(self, tokens: list[Token], lex: Lexicon):
        self.tokens = tokens
        self.classes = [lex.classes(t) for t in tokens]
        parts, self.offsets = [], []
        pos = 0
        for t, cls in zip(tokens, self.classes):
            part = f"\x02{t.norm}\x03:{':'.join(sorted(cls))}:\x04"
            self.offsets.append(pos)
            parts.append(part)
            pos += len(part)
        self.text = "".join(parts)
        self.length = pos

    def index_at(self, offset: int) -> int:
        return bisect.bisect_right(self.offsets, offset) - 1

    def offset_of(self, index: int) -> int:
        return self.offsets[index] if index < len(self.offsets) else self.length


def find(enc: Encoded, rules: tuple[Rule, ...], child_age: int | None) -> list[Match]:
    out = []
    for rule in rules:
        if not rule.applies(child_age):
            continue
        pos = 0
        while (m := rule.regex.search(enc.text, pos)) is not None:
            first, last = enc.index_at(m.start()), enc.index_at(m.end() - 1)
            if m.end() == m.start():
                break
            if _kept(enc, rule, first, last, m.end()):
                out.append(Match(rule, first, last))
                pos = m.end()
            else:
                pos = enc.offset_of(first + 1)  # a later start may still be a finding
    return out


def _kept(enc: Encoded, rule: Rule, first: int, last: int, end_offset: int) -> bool:
    cls = enc.classes
    if rule.unless_before:
        if any(rule.unless_before in cls[i] for i in range(first, last + 1)):
            return False
        i = first - 1
        while i >= 0 and first - i <= rule.before and "P" not in cls[i] and "QUOTE" not in cls[i]:
            if rule.unless_before in cls[i]:
                return False
            i -= 1
    if rule.unless_after is not None and rule.unless_after.match(enc.text, end_offset):
        return False
    if rule.unless_sentence:
        i = first
        while i > 0 and "B" not in cls[i - 1]:
            i -= 1
        j = last
        while j + 1 < len(cls) and "B" not in cls[j + 1]:
            j += 1
        if any(rule.unless_sentence in cls[k] for k in range(i, j + 1)):
            return False
    return True
