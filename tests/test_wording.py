"""Clear-language check: the phrase list is data, and every entry is proved against its own
vague example and its clear rewrite."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings, strategies as st

from flows.wording import WordingHint, check, check_fields, compile_pattern, entries

ENTRIES = entries()
IDS = [e.pattern[:40] for e in ENTRIES]

FACTUAL = [
    "At 10.20am in the Year 4 classroom, Jamie (8) said: 'My dad punched me in the tummy last night.'",
    "I saw a 4 cm purple bruise on the left side of her neck at 9am on Monday 2 March.",
    "He told me his mum's partner, Darren, locks him in his bedroom without food at weekends.",
    "The school nurse thoroughly cleaned the graze on his knee; the firefighters visited in the afternoon.",
    "She has attended 61% of sessions this term and was collected by an unknown adult twice.",
    "He smells of cigarette smoke; he was lying on the floor of the cloakroom when I found him.",
]


def test_the_list_is_substantial():
    assert len(ENTRIES) >= 30


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_each_entry_catches_its_own_example(entry):
    age = entry.only_under_age - 1 if entry.only_under_age else None
    hints = check(entry.example, child_age=age)
    ours = [h for h in hints if entry.regex.fullmatch(h.phrase)]
    assert ours, f"{entry.pattern!r} did not catch {entry.example!r}"
    h = ours[0]
    assert entry.example[h.start:h.end] == h.phrase
    assert h.prompt == entry.prompt


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_no_entry_fires_on_the_clear_rewrite(entry):
    # The strictest setting: age unknown, so age-limited entries are live too.
    assert check(entry.clear) == [], entry.clear


@pytest.mark.parametrize("sentence", FACTUAL)
def test_clear_factual_sentences_get_no_hints(sentence):
    assert check(sentence) == []
    assert check(sentence, child_age=7) == []


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_entries_are_well_formed(entry):
    assert entry.prompt.strip() and entry.example.strip() and entry.clear.strip()
    assert entry.regex.search("") is None  # a pattern matching nothing would give empty hints
    # A space inside [...] would not be turned into "any whitespace" sensibly; use (-| ).
    assert not re.search(r"\[[^\]]* [^\]]*\]", entry.pattern), entry.pattern
    assert entry.only_under_age is None or (isinstance(entry.only_under_age, int) and entry.only_under_age > 0)


REQUIRED = [
    "inappropriate touching", "touched inappropriately", "sexual activity", "had sex", "sexual relationship",
    "rough handling", "roughly handled", "manhandled", "home conditions are poor", "poor home conditions",
    "seemed a bit upset", "seemed upset", "a bit down", "the usual", "as usual", "same as before",
    "family issues", "issues at home", "something happened", "inappropriate behaviour",
    "inappropriate relationship", "boyfriend", "disclosed something", "alleged", "unkempt", "smelly",
    "chastised", "lovebites", "love bites", "hickey", "consensual", "promiscuous",
    "putting themselves at risk", "sexting", "self-harming behaviour", "fight",
]


@pytest.mark.parametrize("phrase", REQUIRED)
def test_required_phrases_are_caught_whole(phrase):
    text = f"Note: {phrase}."
    hints = check(text, child_age=8)
    assert [h.phrase for h in hints] == [phrase]
    assert hints[0].start == 6 and hints[0].end == 6 + len(phrase)


@pytest.mark.parametrize("text", [
    "He thoroughly handled the equipment.",    # "roughly" inside "thoroughly"
    "The firefighters came in.",               # "fight" inside "firefighters"
    "A sextant was used in the lesson.",       # "sext" inside "sextant"
    "The alleyway was closed.",
    "Unusual weather today.",                  # "usual" inside "unusual", no "as"/"the"
    "He smacked his lips.",
])
def test_word_boundaries(text):
    hints = check(text)
    # Only "smacked" is a whole word of interest; the rest must give nothing.
    assert [h.phrase for h in hints] == (["smacked"] if "smacked" in text else [])


def test_case_and_line_breaks_do_not_hide_a_phrase():
    text = "There was INAPPROPRIATE\n   touching reported."
    [h] = check(text)
    assert h.phrase == "INAPPROPRIATE\n   touching" and text[h.start:h.end] == h.phrase


@pytest.mark.parametrize("text", ["They had sex.", "It was sexual activity.", "It was consensual.",
                                  "She mentioned her boyfriend.", "A sexual relationship."])
def test_age_limited_entries(text):
    under = check(text, child_age=12)
    assert len(under) == 1 and not under[0].prompt.startswith("If the child")
    assert check(text, child_age=13) == []
    assert check(text, child_age=16) == []
    unknown = check(text)
    assert len(unknown) == 1 and unknown[0].prompt == f"If the child is under 13: {under[0].prompt}"


def test_entries_without_an_age_limit_apply_at_any_age():
    for age in (None, 4, 12, 13, 17):
        assert [h.phrase for h in check("She was roughly handled.", child_age=age)] == ["roughly handled"]


def test_overlapping_matches_keep_the_longest_and_hints_are_sorted():
    text = "As usual she seemed a bit upset; family issues at home; then a fight."
    hints = check(text)
    assert [h.phrase for h in hints] == ["As usual", "seemed a bit upset", "family issues", "fight"]
    assert all(a.end <= b.start for a, b in zip(hints, hints[1:]))


def test_check_fields():
    result = check_fields({"what_happened": "Something happened at lunch.", "child_said": "'He hit me.'",
                           "views": "", "worried_since": None, "action": "They had sex"}, child_age=10)
    assert set(result) == {"what_happened", "action"}
    assert [h.phrase for h in result["what_happened"]] == ["Something happened"]
    assert [h.phrase for h in result["action"]] == ["had sex"]
    assert check_fields({"a": "They had sex"}, child_age=15) == {}


def test_the_check_never_blocks():
    # It returns hints; it never raises, whatever the text, and leaves the text alone.
    everything = " ".join(e.example for e in ENTRIES)
    hints = check(everything)
    assert len(hints) >= len(ENTRIES)
    assert all(isinstance(h, WordingHint) for h in hints)
    assert check("") == [] and check("   \n") == []
    assert len(check("the usual " * 20000)) == 20000


def test_compile_pattern_is_whole_word_and_whitespace_tolerant():
    rx = compile_pattern("rough(ly)? handl(ed|ing)")
    assert rx.search("roughly  handled") and rx.search("Rough\thandling")
    assert not rx.search("thoroughly handled") and not rx.search("roughly handledness")


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=300), words=st.lists(st.sampled_from(REQUIRED + ["the", "and", "x"]), max_size=8),
       age=st.one_of(st.none(), st.integers(min_value=0, max_value=18)))
def test_hints_are_true_spans_sorted_and_disjoint(text, words, age):
    text = text + " " + " ".join(words)
    hints = check(text, child_age=age)
    for h in hints:
        assert text[h.start:h.end] == h.phrase and h.phrase and h.prompt
    assert all(a.end <= b.start for a, b in zip(hints, hints[1:]))
