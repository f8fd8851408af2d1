"""Words for the clear-language check: a text cut into tokens with their places, quotations
masked.

Anything in quotation marks is somebody's own words, recorded exactly, so it is never
judged: a quoted span becomes one QUOTE token that no rule looks inside. Straight, curly,
single and double quotes all count; an apostrophe inside a word ("Mum's", "don't") or after
a plural ("the boys' toilets") is not a quotation mark. A quotation left open runs to the
end of its line, so a child's words whose closing mark was forgotten are still left alone.

Contractions are split so that rules see the words ("isn't" is "is" + "n't", "she's" is
"she" + "'s"); a hyphen between letters joins nothing ("attention-seeking" reads as
"attention seeking").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

OPEN_ONLY = "“„«‘"
CLOSE_FOR = {"“": "”", "„": "”", "«": "»", "‘": "’", '"': '"', "'": "'", "’": "’"}
SINGLE = "'’"
OPENERS_BEFORE = " \t\n([{:;,—–-"  # a straight/right single quote opens after these

_TOKEN = re.compile(r"""
    (?P<num>\d+(?:[.,:]\d+)*(?:%|st|nd|rd|th|am|pm|cm|mm|kg|km|m|s)?(?![^\W\d_]))
  | (?P<word>[^\W\d_]+(?:['’][^\W\d_]+)*)
  | (?P<punct>[^\w\s])
""", re.VERBOSE)
_CLITIC = re.compile(r"^(?P<base>.+?)(?P<clitic>n't|'s|'re|'ve|'ll|'m|'d)$")
_NEGATED_BASE = {"ca": "can", "wo": "will", "sha": "shall", "ai": "is"}
_UNIT = re.compile(r"^\d+(?:[.,]\d+)*(?:cm|mm)$")


@dataclass
class Token:
    norm: str          # lower case, curly apostrophes straightened
    start: int
    end: int
    kind: str          # word | num | punct | quote
    classes: set[str] = field(default_factory=set)


def _letter(ch: str) -> bool:
    return ch.isalpha()


def quoted_spans(text: str) -> list[tuple[int, int]]:
    """The (start, end) of every quotation in ``text``, marks included."""
    spans: list[tuple[int, int]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if _opens(text, i):
            close = _closing(text, i, CLOSE_FOR[ch])
            spans.append((i, close))
            i = close
        else:
            i += 1
    return spans


def _opens(text: str, i: int) -> bool:
    ch = text[i]
    if ch in OPEN_ONLY or ch == '"':
        return True
    if ch in SINGLE:
        before = text[i - 1] if i else " "
        after = text[i + 1] if i + 1 < len(text) else " "
        return before in OPENERS_BEFORE and not after.isspace()
    return False


def _closing(text: str, i: int, mark: str) -> int:
    """End of the quotation opened at ``i``: just past its closing mark, else the line's end."""
    j = i + 1
    while j < len(text):
        ch = text[j]
        if ch == "\n":
            return j
        if ch == mark or (mark in SINGLE and ch in SINGLE):
            if mark not in SINGLE:
                return j + 1
            before = text[j - 1]
            after = text[j + 1] if j + 1 < len(text) else " "
            if not (_letter(before) and _letter(after)) and not before.isspace():
                return j + 1  # an apostrophe inside a word does not close it
        j += 1
    return j


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    for qs, qe in quoted_spans(text) + [(len(text), len(text))]:
        tokens += _plain_tokens(text, pos, qs)
        if qe > qs:
            tokens.append(Token(norm="«quote»", start=qs, end=qe, kind="quote", classes={"QUOTE"}))
        pos = qe
    return tokens


def _plain_tokens(text: str, start: int, end: int) -> list[Token]:
    out: list[Token] = []
    for m in _TOKEN.finditer(text, start, end):
        kind = m.lastgroup
        raw = m.group(0)
        if kind == "punct" and raw == "-" and 0 < m.start() and m.end() < len(text) \
                and text[m.start() - 1].isalnum() and text[m.end()].isalnum():
            continue  # a hyphen inside a compound: "attention-seeking", "14-year-old"
        norm = raw.lower().replace("’", "'")
        if kind == "word":
            out += _split_clitic(norm, m.start(), m.end())
            continue
        tok = Token(norm=norm, start=m.start(), end=m.end(), kind=kind)
        if kind == "num" and _UNIT.match(norm):
            tok.classes.add("DETAIL")
        out.append(tok)
    return out


def _split_clitic(norm: str, start: int, end: int) -> list[Token]:
    m = _CLITIC.match(norm)
    if not m or len(m.group("base")) < 1:
        return [Token(norm=norm, start=start, end=end, kind="word")]
    base, clitic = m.group("base"), m.group("clitic")
    cut = start + len(base)
    base = _NEGATED_BASE.get(base, base) if clitic == "n't" else base
    return [Token(norm=base, start=start, end=cut, kind="word"), Token(norm=clitic, start=cut, end=end, kind="word")]
