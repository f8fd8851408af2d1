"""Quality assurance of closed concerns (seed 001: "facilitate and capture evidence of regular
quality assurance of safeguarding concerns").

A random sample of closed concerns becomes QaReview rows; each is scored on a checklist drawn
from the seeds. What can be computed is scored automatically, with the reason; a reviewer may
override any item. Scores are stored as {item: {"score": 0|1, "auto": bool, "why": str}}:
counts and reasons only, never the record's words.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timedelta

from sqlmodel import Session, select

from storage import chain
from storage.db import Store
from storage.models import Child, ChronologyEntry, Concern, Person, QaReview, Role, School, Trust, utcnow
from storage.people import roles_of

from . import wording, wording_record
from .access import actor, is_dsl_team, may_handle
from .chronology import age_on
from .errors import FormErrors, NotAllowed, NotFound

CHECKLIST = (
    ("clear_summary", "A clear and comprehensive summary of the concern, and how it was followed up and resolved"),
    ("child_voice", "The child's own words and views recorded"),
    ("decision_reasons", "Decision recorded with its reasons and who took part"),
    ("outcome_shared", "Outcome recorded and shared with the referrer"),
    ("timescales_met", "Timescales met (acknowledgement, decision, social care steps)"),
    ("clear_language", "Clear, specific language (no euphemisms or vague words)"),
)
ITEMS = tuple(k for k, _ in CHECKLIST)
MIN_SUMMARY = 50


def _may_review(s: Session, person: Person, school: School) -> bool:
    if is_dsl_team(s, person.id, school.id):
        return True
    return (Role.trust_safeguarding_officer.value in roles_of(s, person.id, school.id)
            and person.trust_id == school.trust_id)


def _schools_for(s: Session, person: Person, slug: str | None) -> list[School]:
    q = select(School)
    if slug:
        q = q.where(School.slug == slug)
    schools = [sc for sc in s.exec(q) if _may_review(s, person, sc)]
    if slug and not schools:
        raise NotAllowed(f"You cannot review concerns of {slug}: only its safeguarding team or the trust "
                         "safeguarding officer can.")
    if not schools:
        raise NotAllowed("Only a safeguarding team or the trust safeguarding officer can sample concerns for review.")
    return schools


def sample(store: Store, actor_id: int, *, school: str | None = None, n: int = 5, seed: int | None = None,
           now: datetime | None = None) -> list[int]:
    """Pick ``n`` closed concerns not yet reviewed, at random (``seed`` makes it repeatable)."""
    now = now or utcnow()
    if n < 1:
        raise FormErrors({"n": "Sample at least one concern."})
    with store.session() as s:
        person = actor(s, actor_id)
        schools = _schools_for(s, person, school)
        reviewed = set(s.exec(select(QaReview.concern_id)))
        # A concern its reviewer may not handle (flows/access.py) is never sampled for them: the
        # review would name it.
        pool = [c.id for c in s.exec(select(Concern).where(
            Concern.school_id.in_([sc.id for sc in schools]), Concern.status == "closed",
            Concern.redacted_at.is_(None)).order_by(Concern.id))
            if c.id not in reviewed and (not c.about_adult or may_handle(s, person.id, c))]
        picked = sorted(random.Random(seed).sample(pool, min(n, len(pool))))
        ids = []
        for cid in picked:
            r = QaReview(concern_id=cid, sampled_at=now)
            s.add(r)
            s.flush()
            ids.append(r.id)
        chain.audit(s, "qa.sampled", actor_id=person.id, at=now,
                    details={"review_ids": ids, "schools": [sc.slug for sc in schools], "seed": seed})
        return ids


def auto_score(s: Session, store: Store, concern: Concern) -> dict[str, dict]:
    from .analytics import _Deadlines, _statutory_missed

    entries = list(s.exec(select(ChronologyEntry).where(ChronologyEntry.concern_id == concern.id)
                          .order_by(ChronologyEntry.seq)))
    bodies = [(e, chain.read_body(store.cipher, e)) for e in entries]
    out: dict[str, dict] = {}

    closing = [b for e, b in bodies if e.kind == "outcome" and e.facts.get("closing_summary")]
    account_ok = len((concern.account or "").strip()) >= MIN_SUMMARY
    out["clear_summary"] = _item(account_ok and bool(closing),
                                 "account of at least %d characters and a closing summary" % MIN_SUMMARY
                                 if account_ok and closing else
                                 ("account shorter than %d characters" % MIN_SUMMARY if not account_ok
                                  else "no closing summary of how it was followed up and resolved"))
    has_words, has_views = bool((concern.child_words or "").strip()), bool((concern.child_views or "").strip())
    out["child_voice"] = _item(has_words or has_views,
                               "; ".join(x for x in ("child's words recorded" if has_words else "no child's words",
                                                     "child's views recorded" if has_views else "no child's views")))
    decisions = [b for e, b in bodies if e.kind == "decision"]
    good = [b for b in decisions if len((b.get("reasons") or "").strip()) >= 20 and (b.get("participants") or "").strip()]
    out["decision_reasons"] = _item(bool(good), "decision with reasons and participants" if good else
                                    ("no decision recorded" if not decisions else "reasons or participants missing"))
    outcomes = [e for e, _ in bodies if e.kind == "outcome"]
    shared = concern.outcome_shared_at is not None or any(e.facts.get("shared_with_referrer") for e in outcomes)
    out["outcome_shared"] = _item(bool(outcomes) and shared,
                                  "outcome recorded and shared with the referrer" if outcomes and shared else
                                  ("no outcome recorded" if not outcomes else "outcome not shared with the referrer"))
    school = s.get(School, concern.school_id)
    dl = _Deadlines({school.id: school}, {school.trust_id: s.get(Trust, school.trust_id)})
    pol = dl.policies[school.id]
    problems = []
    ack_due = (concern.created_at + timedelta(minutes=pol.nudges.urgent_ack_escalate_deputies_minutes) if concern.urgent
               else dl.add(school.id, concern.created_at, pol.nudges.ack_escalate_deputies_working_days))
    if concern.acknowledged_at is None or concern.acknowledged_at > ack_due:
        problems.append("acknowledged late")
    if concern.decided_at is None or concern.decided_at > dl.add(school.id, concern.created_at,
                                                                 pol.nudges.inactivity_working_days):
        problems.append("decided late")
    missed = _statutory_missed([(concern.id, e.facts) for e in entries if e.kind == "referral"],
                               {concern.id: school.id}, dl, concern.closed_at or utcnow())
    problems += [f"statutory {step} missed" for step in missed["by_concern"].get(concern.id, [])]
    out["timescales_met"] = _item(not problems, "; ".join(problems) or "acknowledged, decided and referred on time")
    child = s.get(Child, concern.child_id) if concern.child_id else None
    age = age_on(child.date_of_birth, concern.created_at.date()) if child else None
    out["clear_language"] = _clear_language(concern, bodies, age)
    return out


def _clear_language(concern: Concern, bodies: list, age: int | None) -> dict:
    """The referrer's account and the DSL team's written record, as the clear-language check
    sees them when they are written (flows.wording_record): the child's own words and
    anything quoted are never counted. The reason gives counts and kinds, never the words."""
    texts = [concern.account, concern.worry_history, concern.action_taken]
    for e, b in bodies:
        texts += wording_record.stored_texts(e.kind, b)
    found = [h for t in texts for h in wording.check(t or "", child_age=age)]
    if not found:
        return _item(True, "no vague or euphemistic wording found")
    kinds = ", ".join(sorted({h.kind for h in found}))
    return _item(False, f"{len(found)} vague or euphemistic phrase(s) found by the wording check ({kinds})")


def _item(ok: bool, why: str) -> dict:
    return {"score": 1 if ok else 0, "auto": True, "why": why}


def score(store: Store, actor_id: int, review_id: int, *, overrides: dict[str, int] | None = None,
          notes: str | None = None, now: datetime | None = None) -> QaReview:
    """Score a sampled concern: the automatic checklist, then the reviewer's overrides."""
    now = now or utcnow()
    overrides = overrides or {}
    bad = {k: "Unknown checklist item; use one of " + ", ".join(ITEMS) for k in overrides if k not in ITEMS}
    bad.update({k: "Score 0 or 1." for k, v in overrides.items() if k in ITEMS and v not in (0, 1)})
    if bad:
        raise FormErrors(bad)
    with store.session() as s:
        person = actor(s, actor_id)
        review = s.get(QaReview, review_id)
        if review is None:
            raise NotFound(f"No QA review {review_id}.")
        concern = s.get(Concern, review.concern_id)
        if not _may_review(s, person, s.get(School, concern.school_id)):
            raise NotAllowed("Only the school's safeguarding team or the trust safeguarding officer can score this.")
        scores = auto_score(s, store, concern)
        for item, value in overrides.items():
            scores[item] = {"score": value, "auto": False, "why": "set by the reviewer",
                            "auto_score": scores[item]["score"], "auto_why": scores[item]["why"]}
        review.scores, review.total = scores, sum(v["score"] for v in scores.values())
        review.reviewer_id, review.scored_at = person.id, now
        if notes is not None:
            review.notes = notes
        s.add(review)
        chain.audit(s, "qa.scored", actor_id=person.id, school_id=concern.school_id, concern_id=concern.id, at=now,
                    details={"review_id": review.id, "total": review.total, "overridden": sorted(overrides)})
        return review


def qa_report(store: Store, *, school: str | None = None) -> dict:
    """Scores per school and per month scored: mean total (of 6) and each item's pass rate."""
    with store.session() as s:
        schools = {sc.id: sc.slug for sc in s.exec(select(School))}
        q = select(QaReview, Concern.school_id).join(Concern, Concern.id == QaReview.concern_id)
        rows = list(s.exec(q))
    per_school: dict[str, list] = defaultdict(list)
    per_month: dict[str, list] = defaultdict(list)
    sampled: dict[str, int] = defaultdict(int)
    for review, school_id in rows:
        slug = schools[school_id]
        if school and slug != school:
            continue
        sampled[slug] += 1
        if review.scored_at is None:
            continue
        per_school[slug].append(review)
        per_month[review.scored_at.strftime("%Y-%m")].append(review)

    def summary(reviews: list) -> dict:
        n = len(reviews)
        return {"scored": n, "mean_total": round(sum(r.total for r in reviews) / n, 2) if n else None,
                "out_of": len(ITEMS),
                "pass_rate": {item: round(sum(r.scores.get(item, {}).get("score", 0) for r in reviews) / n, 2)
                              if n else None for item in ITEMS}}

    return {"checklist": dict(CHECKLIST),
            "schools": {slug: {"sampled": sampled[slug], **summary(per_school.get(slug, []))} for slug in sorted(sampled)},
            "months": {m: summary(per_month[m]) for m in sorted(per_month)}}
