"""The clear-language check where the product uses it: the report form, the DSL team's
record as it is written, and QA scoring. The child's own words and anything quoted are
recorded exactly and never judged, through every one of these paths."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from flows import qa, report, triage, wording_record
from flows.errors import NotAllowed
from storage.models import Child, QaReview

from .flow_support import NOW, build_world, report_values

# Each of these is pointed out when a member of staff writes it; none may be when it is the
# child's own words or a quotation.
CHILD_SAID = "Daddy just gave me a little smack, I was hit cos I was naughty, I'm a liar Mummy says"


@pytest.fixture
def world(store):
    return build_world(store)


def _quoted_report(world, **over):
    return report_values(world, child_words=CHILD_SAID,
                         account="At 10:15 Amira showed me a 3 cm red mark on her left forearm and said "
                                 "'it's just a small mark, Dad only tapped me'.",
                         worry_history="Mum told me at pick-up: “she’s attention-seeking, she was hit at nursery too”.",
                         **over)


def test_the_report_never_judges_the_childs_words_or_quotations(store, world):
    assert report.wording_hints(store, world.teacher, _quoted_report(world)) == {}
    # The same words written by the teacher, unquoted, are pointed out field by field.
    hints = report.wording_hints(store, world.teacher, report_values(
        world, child_words=CHILD_SAID, account="It's just a small mark, Dad only tapped her.",
        worry_history="Mum says she is attention-seeking; she was hit at nursery too."))
    assert set(hints) == {"account", "worry_history"}
    assert [h.phrase for h in hints["account"]] == ["just a small mark", "only tapped"]
    assert {h.kind for h in hints["worry_history"]} == {"conclusion", "agentless"}


def test_the_report_flow_saves_the_childs_words_exactly(store, world):
    r = report.submit(store, world.teacher, _quoted_report(world), now=NOW)
    view = triage.open_record(store, world.dsl, r.concern_id, now=NOW)
    assert view.details["child_words"] == CHILD_SAID


def _close(store, world, cid, *, note, summary, at):
    triage.acknowledge(store, world.dsl, cid, now=at)
    triage.add_entry(store, world.dsl, cid, "note", note, now=at + timedelta(minutes=5))
    triage.record_decision(store, world.dsl, cid, {
        "decision": "monitor", "participants": "Dana Shah (DSL)",
        "reasons": "A 3 cm mark on her forearm and her own words about her dad: monitor daily for two weeks."},
        now=at + timedelta(minutes=10))
    triage.share_outcome(store, world.dsl, cid, "The DSL is following this up with the family.", now=at + timedelta(minutes=15))
    triage.close(store, world.dsl, cid, summary, now=at + timedelta(minutes=20))


def _qa_score(store, world, cid):
    with store.session() as s:
        review = QaReview(concern_id=cid, sampled_at=NOW)
        s.add(review)
        s.flush()
        rid = review.id
    return qa.score(store, world.dsl, rid).scores["clear_language"]


def test_qa_scores_quoted_words_and_the_childs_words_as_clear(store, world):
    r = report.submit(store, world.teacher, _quoted_report(world), now=NOW)
    _close(store, world, r.concern_id, at=NOW + timedelta(hours=1),
           note="Spoke to Mum at 3pm; she said 'it was only a tap, he's a drama queen'.",
           summary="Mum and Dad attended a meeting on 30 Nov; Dad said “I hit her with my hand”; referred to early help.")
    item = _qa_score(store, world, r.concern_id)
    assert item == {"score": 1, "auto": True, "why": "no vague or euphemistic wording found"}


def test_qa_counts_vague_wording_in_the_dsl_record_by_kind_without_quoting_it(store, world):
    r = report.submit(store, world.teacher, _quoted_report(world), now=NOW)
    _close(store, world, r.concern_id, at=NOW + timedelta(hours=1), note="Marks were noticed on her arm again.",
           summary="Spoke to Mum, all fine now; the matter has been dealt with.")
    item = _qa_score(store, world, r.concern_id)
    assert item["score"] == 0
    assert item["why"] == "3 vague or euphemistic phrase(s) found by the wording check (agentless, vague)"


def test_record_hints_before_a_note_a_decision_an_outcome_and_closing(store, world):
    cid = report.submit(store, world.teacher, report_values(world), now=NOW).concern_id
    [h] = wording_record.text_hints(store, world.dsl, cid, "note", "Marks were noticed on her neck.")
    assert h.phrase == "Marks were noticed" and h.kind == "agentless" and "who saw it" in h.instead.lower()
    assert wording_record.text_hints(store, world.dsl, cid, "note", "She said 'marks were noticed' by her mum.") == []
    d = wording_record.hints(store, world.dsl, cid, "decision", {
        "decision": "no_further_action", "participants": "Mum is attention seeking",  # not a free-text reason
        "reasons": "Just a small mark; there is a difficult home situation.", "parents_not_informed_reason": ""})
    assert set(d) == {"reasons"} and [x.phrase for x in d["reasons"]] == ["Just a small mark", "a difficult home situation"]
    assert wording_record.text_hints(store, world.dsl, cid, "shared_outcome", "Spoke to Mum, all fine now.")
    assert wording_record.text_hints(store, world.dsl, cid, "closing_summary",
                                     "Social care lead a child protection plan; school attends core groups.") == []
    # Hints never block: the flows save the same text afterwards.
    triage.add_entry(store, world.dsl, cid, "note", "Marks were noticed on her neck.", now=NOW)


def test_record_hints_use_the_childs_age_and_the_record_access_rules(store, world):
    cid = report.submit(store, world.teacher, report_values(world), now=NOW).concern_id
    today = date(2026, 11, 24)  # Amira (born 4 March 2016) is 10
    [h] = wording_record.text_hints(store, world.dsl, cid, "note", "She said her boyfriend met her at the park.")
    assert h.rule == "u13-boyfriend" and not h.prompt.startswith("If the child")
    with store.session() as s:
        s.get(Child, world.child).date_of_birth = "2010-01-01"
    assert wording_record.hints(store, world.dsl, cid, "note", {"text": "She said her boyfriend met her."}, today=today) == {}
    unmatched = report.submit(store, world.teacher, report_values(world, child="A girl in Year 5 called Zoe"), now=NOW)
    [h] = wording_record.text_hints(store, world.dsl, unmatched.concern_id, "note", "Her boyfriend met her.")
    assert h.prompt.startswith("If the child is under 13: ")
    with pytest.raises(NotAllowed):
        wording_record.text_hints(store, world.teacher, cid, "note", "Marks were noticed.")
    with pytest.raises(ValueError, match="unknown record text"):
        wording_record.hints(store, world.dsl, cid, "diary", {"text": "x"})
    with pytest.raises(ValueError, match="not a one-text form"):
        wording_record.text_hints(store, world.dsl, cid, "decision", "x")
