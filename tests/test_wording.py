"""Clear-language check: the rules are data, each proved against its own examples and clear
sentences; the analyser finds phrases by word class, not by a list of phrases, and never
judges quoted words or the child's own words."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings, strategies as st

from flows import wording_rules
from flows.wording import VERBATIM_FIELDS, WordingHint, check, check_fields, rules
from flows.wording_text import quoted_spans, tokenize

RULES = rules()
IDS = [r.id for r in RULES]
KINDS = {"minimising", "label", "conclusion", "agentless", "blaming", "sexual", "vague"}

FACTUAL = [
    "At 10.20am in the Year 4 classroom, Jamie (8) said: 'My dad punched me in the tummy last night.'",
    "I saw a 4 cm purple bruise on the left side of her neck at 9am on Monday 2 March.",
    "He told me his mum's partner, Darren, locks him in his bedroom without food at weekends.",
    "The school nurse thoroughly cleaned the graze on his knee; the firefighters visited in the afternoon.",
    "She has attended 61% of sessions this term and was collected by an unknown adult twice.",
    "He smells of cigarette smoke; he was lying on the floor of the cloakroom when I found him.",
    "Mum said she was hit by her brother.",
    "I noticed a 3 cm bruise on his right shin.",
    "Telling them could place the child at greater risk.",
    "Second sign of neglect; monitor daily and re-assess in two weeks.",
]


def test_the_rules_are_substantial_and_cover_every_kind():
    assert len(RULES) >= 40
    assert {r.kind for r in RULES} == KINDS
    assert len(IDS) == len(set(IDS))


@pytest.mark.parametrize("rule", RULES, ids=IDS)
def test_each_rule_catches_its_own_examples(rule):
    age = rule.only_under_age - 1 if rule.only_under_age else None
    assert rule.examples, f"{rule.id} has no example"
    lex, _ = wording_rules.load()
    for example in rule.examples:
        # The rule itself matches (a longer overlapping match of another rule may be the one shown).
        assert wording_rules.find(wording_rules.Encoded(tokenize(example), lex), (rule,), age), \
            f"{rule.id} did not catch {example!r}"
        hints = check(example, child_age=age)
        assert hints
        for h in hints:
            if h.rule == rule.id:
                assert example[h.start:h.end] == h.phrase and h.prompt == rule.prompt_for(age)


@pytest.mark.parametrize("rule", RULES, ids=IDS)
def test_no_rule_fires_on_the_clear_sentences(rule):
    # The strictest setting: age unknown, so age-limited rules are live too.
    assert rule.clear, f"{rule.id} has no clear sentence"
    for sentence in rule.clear:
        assert check(sentence) == [], sentence


@pytest.mark.parametrize("sentence", FACTUAL)
def test_clear_factual_sentences_get_no_hints(sentence):
    assert check(sentence) == []
    assert check(sentence, child_age=7) == []


@pytest.mark.parametrize("rule", RULES, ids=IDS)
def test_rules_are_well_formed(rule):
    assert rule.kind in KINDS
    for text in (rule.why, rule.instead):
        assert text.strip() and text.rstrip()[-1] in ".?" and "\n" not in text
    assert rule.only_under_age is None or (isinstance(rule.only_under_age, int) and rule.only_under_age > 0)
    assert check("") == [] and rule.regex.search("") is None  # a pattern matching nothing would give empty hints


def test_a_bad_rules_file_is_refused_with_its_place(tmp_path):
    base = ('[words]\nINJURY = ["mark"]\n[[rules]]\nid = "x"\nkind = "label"\nwhy = "w."\ninstead = "i."\n')
    for pattern, message in [("NOPE mark", "unknown word class NOPE"), ("( mark", "missing \\)"),
                             ("mark {", "cannot read the pattern")]:
        path = tmp_path / "w.toml"
        path.write_text(base + f'pattern = "{pattern}"\n')
        with pytest.raises(ValueError, match=rf"w\.toml rule 1 \('x'\):.*{message}"):
            wording_rules.load.__wrapped__(path)
    path.write_text('[words]\nW = ["x"]\n[[rules]]\n')
    with pytest.raises(ValueError, match="word class name 'W'"):
        wording_rules.load.__wrapped__(path)


REQUIRED = [
    "inappropriate touching", "touched inappropriately", "sexual activity", "had sex", "sexual relationship",
    "rough handling", "roughly handled", "manhandled", "home conditions are poor", "poor home conditions",
    "seemed a bit upset", "seemed upset", "a bit down", "the usual", "as usual", "same as before",
    "family issues", "issues at home", "something happened", "inappropriate behaviour",
    "inappropriate relationship", "boyfriend", "disclosed something", "alleged", "unkempt", "smelly",
    "chastised", "lovebites", "love bites", "hickey", "consensual", "promiscuous",
    "putting themselves at risk", "sexting", "self-harming behaviour", "fight",
    # the language families the check is built around
    "just a small mark", "only a little bruise", "a bit of a scratch", "a difficult home situation",
    "concerning behaviour", "sexualised behaviour", "was abused", "neglected", "a liar", "attention-seeking",
    "marks were noticed", "was hit", "injuries were sustained", "chose to go with him",
    "in a relationship with a 14-year-old", "put herself at risk", "child prostitute",
]


@pytest.mark.parametrize("phrase", REQUIRED)
def test_required_phrases_are_caught_whole(phrase):
    text = f"Note: {phrase}."
    hints = check(text, child_age=8)
    assert [h.phrase for h in hints] == [phrase]
    assert hints[0].start == 6 and hints[0].end == 6 + len(phrase)


@pytest.mark.parametrize("text,found", [
    ("He thoroughly handled the equipment.", []),     # "roughly" inside "thoroughly"
    ("The firefighters came in.", []),                # "fight" inside "firefighters"
    ("A sextant was used in the lesson.", []),        # "sext" inside "sextant"
    ("The alleyway was closed.", []),
    ("Unusual weather today.", []),                   # "usual" inside "unusual", no "as"/"the"
    ("He smacked his lips.", ["smacked"]),            # the word itself is a soft word for a blow
    ("He said his mum smacks him on the face most days.", []),  # ... unless where it landed is said
])
def test_whole_words_only(text, found):
    assert [h.phrase for h in check(text)] == found


def test_case_and_line_breaks_do_not_hide_a_phrase():
    text = "There was INAPPROPRIATE\n   touching reported."
    [h] = check(text)
    assert h.phrase == "INAPPROPRIATE\n   touching" and text[h.start:h.end] == h.phrase


@pytest.mark.parametrize("text,rule", [("They had sex.", "u13-had-sex"), ("It was consensual.", "u13-consent"),
                                       ("She mentioned her boyfriend.", "u13-boyfriend"),
                                       ("He is dating a girl in Year 6.", "u13-sexual-relationship")])
def test_age_limited_rules(text, rule):
    under = check(text, child_age=12)
    assert [h.rule for h in under] == [rule] and not under[0].prompt.startswith("If the child")
    assert check(text, child_age=13) == []
    assert check(text, child_age=16) == []
    unknown = check(text)
    assert len(unknown) == 1 and unknown[0].prompt == f"If the child is under 13: {under[0].prompt}"


def test_sexual_activity_is_a_label_at_any_age_and_abuse_under_13():
    assert [h.rule for h in check("It was sexual activity.", child_age=12)] == ["u13-sexual-activity"]
    assert [h.rule for h in check("It was sexual activity.", child_age=15)] == ["label-adjective"]


def test_rules_without_an_age_limit_apply_at_any_age():
    for age in (None, 4, 12, 13, 17):
        assert [h.phrase for h in check("She was roughly handled.", child_age=age)] == ["roughly handled"]


def test_overlapping_matches_keep_the_longest_and_hints_are_sorted():
    text = "As usual she seemed a bit upset; family issues at home; then a fight."
    hints = check(text)
    assert [h.phrase for h in hints] == ["As usual", "seemed a bit upset", "family issues", "a fight"]
    assert all(a.end <= b.start for a, b in zip(hints, hints[1:]))


def test_each_hint_says_why_and_what_to_write_instead():
    [h] = check("There was just a small mark on his arm.")
    assert h.phrase == "just a small mark" and h.kind == "minimising"
    assert h.prompt == f"{h.why} {h.instead}" and "size" in h.instead and "colour" in h.instead


# --- grammar, not a phrase list --------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "She was hit.", "He was kicked in the playground.", "She has been touched.", "The baby was shaken.",
    "He keeps getting hurt.", "She was grabbed by the arm.",     # "by the arm" names no one
])
def test_passive_harm_without_an_agent_is_pointed_out(text):
    assert [h.kind for h in check(text)] == ["agentless"]


@pytest.mark.parametrize("text", [
    "Mum said she was hit by her brother.", "She was pushed off the climbing frame by Ava.",
    "He was bitten by the family dog on his hand.", "She was not hurt.", "He wasn't hit, he said.",
    "No marks were seen on his arms.", "She denied being hit.",
])
def test_an_agent_or_a_negation_clears_the_passive(text):
    assert check(text) == []


@pytest.mark.parametrize("text", ["Marks were noticed on her neck.", "Bruising observed on both legs.",
                                  "Injuries were sustained at the weekend.", "A burn was found on his hand."])
def test_harm_seen_or_sustained_by_nobody_is_pointed_out(text):
    assert [h.kind for h in check(text)] == ["agentless"]


def test_a_measured_mark_is_not_small_talk():
    assert [h.rule for h in check("A small bruise on his arm.")] == ["vague-size-injury"]
    assert check("A small bruise, about 1 cm, blue, on his left forearm.") == []
    assert [h.rule for h in check("Just a small bruise, about 1 cm.")] == ["minimised-injury"]  # "just" still plays it down


@pytest.mark.parametrize("text", ["Concerning behaviour: he pulled down a Year 2 boy's trousers in the toilets.",
                                  "Sexualised behaviour (he simulated sex with a doll in the home corner)."])
def test_a_label_followed_by_its_description_is_not_pointed_out(text):
    assert check(text) == []


# --- quotation marks and the child's own words -------------------------------------------------

QUOTES = [('"', '"'), ("“", "”"), ("'", "'"), ("‘", "’"), ("’", "’"), ("«", "»")]


@pytest.mark.parametrize("open_,close", QUOTES)
@pytest.mark.parametrize("words", ["He said it was just a little smack.", "I was hit.", "She is a liar and a slag.",
                                   "We were only messing about.", "Mum says I'm attention-seeking."])
def test_quoted_words_are_never_judged(open_, close, words):
    assert check(words), words  # unquoted, each is pointed out
    text = f"At 10am she said {open_}{words}{close} and cried."
    assert check(text) == []
    assert check(f"{text} Marks were noticed on her neck.")[0].phrase == "Marks were noticed"


def test_an_unclosed_quotation_runs_to_the_end_of_its_line():
    text = "She said 'he hit me, it was just a smack\nMarks were noticed on her arm."
    assert [h.phrase for h in check(text)] == ["Marks were noticed"]


def test_apostrophes_are_not_quotation_marks():
    text = "The boys' toilets were empty; Mum's friend said she has been hit and it isn't the first time."
    assert [h.phrase for h in check(text)] == ["has been hit"]
    assert quoted_spans(text) == []
    assert [t.norm for t in tokenize("isn't she's can't")] == ["is", "n't", "she", "'s", "can", "n't"]


def test_check_fields_never_checks_the_childs_words():
    assert "child_words" in VERBATIM_FIELDS
    result = check_fields({"what_happened": "Something happened at lunch.", "child_words": "It was just a smack, I was hit",
                           "views": "", "worried_since": None, "action": "They had sex"}, child_age=10)
    assert set(result) == {"what_happened", "action"}
    assert [h.phrase for h in result["what_happened"]] == ["Something happened"]
    assert [h.phrase for h in result["action"]] == ["had sex"]
    assert check_fields({"a": "They had sex"}, child_age=15) == {}


def test_the_check_never_blocks():
    # It returns hints; it never raises, whatever the text, and leaves the text alone.
    everything = " ".join(e for r in RULES for e in r.examples)
    hints = check(everything)
    assert len(hints) >= len(RULES)
    assert all(isinstance(h, WordingHint) for h in hints)
    assert check("") == [] and check("   \n") == [] and check("''\"“") == []
    assert len(check("the usual " * 2000)) == 2000


def test_pattern_language():
    names = frozenset({"INJURY", "BODY"})
    rx = re.compile(wording_rules.compile_pattern("( just | only ) a? INJURY", names))
    lex = wording_rules.Lexicon(words={"mark": frozenset({"INJURY"})}, prefixes=(("bruis", "INJURY"),), suffixes=(),
                                names=names)
    def hit(text):
        return bool(rx.search(wording_rules.Encoded(tokenize(text), lex).text))
    assert hit("just a mark") and hit("Only bruising") and hit("only a bruise")
    assert not hit("just an arm") and not hit("a mark")
    with pytest.raises(ValueError, match="unknown word class"):
        wording_rules.compile_pattern("NOPE", names)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=300), words=st.lists(st.sampled_from(REQUIRED + ["the", "and", "x", "'", "“"]), max_size=8),
       age=st.one_of(st.none(), st.integers(min_value=0, max_value=18)))
def test_hints_are_true_spans_sorted_and_disjoint(text, words, age):
    text = text + " " + " ".join(words)
    hints = check(text, child_age=age)
    for h in hints:
        assert text[h.start:h.end] == h.phrase and h.phrase and h.prompt
        assert not any(qs <= h.start < qe for qs, qe in quoted_spans(text))
    assert all(a.end <= b.start for a, b in zip(hints, hints[1:]))
