"""Figures for a school and a trust: concerns by category, month and school; time to
acknowledge and to decide; decisions; overdue items and statutory timescales missed;
children with repeated concerns; check-ins that said "no change" or "worse"; a trust
roll-up with small numbers suppressed.

Only counts, ids and durations leave this module: never a name, never concern content.
Every query reads indexed, non-sensitive columns (no decryption), so the trust report over
100,000 concerns is one pass over a few narrow result sets (see bench/trust_report.py).

Conventions: months are UTC calendar months of ``created_at``; durations are calendar hours;
percentiles interpolate linearly between ranks (as PostgreSQL's percentile_cont and the
"inclusive" method of Python's statistics.quantiles).
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any, Iterable

from sqlalchemy import and_, func, select

from storage.db import Store
from storage.models import ChronologyEntry, Concern, School, Transfer, Trust, utcnow

from .policy import Policy, add_working_days, policy_for

SUPPRESS_BELOW = 5  # counts 1..4 are shown as "<5" in trust roll-ups
SUPPRESSED = f"<{SUPPRESS_BELOW}"
CHECKIN_WORRYING = ("no_change", "worse")
STATUTORY_FROM_REFERRAL = ("sc_acknowledgement", "sc_decision")
STATUTORY_FROM_STRATEGY = ("section47", "icpc")


def suppress(n: int) -> int | str:
    return SUPPRESSED if 0 < n < SUPPRESS_BELOW else n


def _stats(values: list[float]) -> dict:
    if not values:
        return {"n": 0, "median": None, "p90": None}
    values = sorted(values)
    p90 = values[0] if len(values) == 1 else statistics.quantiles(values, n=10, method="inclusive")[8]
    return {"n": len(values), "median": round(statistics.median(values), 2), "p90": round(p90, 2)}


class _Deadlines:
    """add_working_days per school, cached on the school-local day it counts from."""

    def __init__(self, schools: dict[int, School], trusts: dict[int, Trust]):
        self.policies: dict[int, Policy] = {sid: policy_for(sc, trusts.get(sc.trust_id)) for sid, sc in schools.items()}
        self._cache: dict[tuple, datetime] = {}

    def add(self, school_id: int, start: datetime, n: int) -> datetime:
        pol = self.policies[school_id]
        key = (school_id, start.astimezone(pol.tz).date(), n)
        if key not in self._cache:
            self._cache[key] = add_working_days(pol, start, n)
        return self._cache[key]


def _filters(school_ids: list[int] | None, start: datetime | None, end: datetime | None) -> list:
    conds = []
    if school_ids is not None:
        conds.append(Concern.school_id.in_(school_ids))
    if start is not None:
        conds.append(Concern.created_at >= start)
    if end is not None:
        conds.append(Concern.created_at < end)
    return conds


def build_report(store: Store, *, school: str | None = None, start: datetime | None = None,
                 end: datetime | None = None, now: datetime | None = None) -> dict:
    """The report as a plain dict (JSON-ready). ``school`` is a slug; without it, the whole
    database (every trust) with small numbers suppressed. ``end`` is exclusive."""
    now = now or utcnow()
    with store.session() as s:
        schools = {sc.id: sc for sc in s.scalars(select(School))}
        trusts = {t.id: t for t in s.scalars(select(Trust))}
        school_ids = None
        if school:
            match = [sc for sc in schools.values() if sc.slug == school]
            if not match:
                raise LookupError(f"no school {school!r}")
            school_ids = [match[0].id]
        conds = _filters(school_ids, start, end)
        rows = s.execute(select(Concern.id, Concern.school_id, Concern.created_at, Concern.acknowledged_at,
                                Concern.decided_at, Concern.decision_kind, Concern.status, Concern.child_id,
                                Concern.categories, Concern.review_date, Concern.urgent)
                         .where(*conds)).all()
        referral_rows = s.execute(select(ChronologyEntry.concern_id, ChronologyEntry.facts)
                                  .join(Concern, Concern.id == ChronologyEntry.concern_id)
                                  .where(ChronologyEntry.kind == "referral", *conds)).all()
        followup_rows = s.execute(select(ChronologyEntry.concern_id, ChronologyEntry.facts)
                                  .join(Concern, Concern.id == ChronologyEntry.concern_id)
                                  .where(ChronologyEntry.kind == "follow_up", *conds)).all()
    deadlines = _Deadlines(schools, trusts)
    return _compute(rows, referral_rows, followup_rows, schools, deadlines, now=now, school=school,
                    start=start, end=end)


def _compute(rows, referral_rows, followup_rows, schools, deadlines: _Deadlines, *, now, school, start, end) -> dict:
    by_category: Counter = Counter()
    by_month: Counter = Counter()
    by_school: Counter = Counter()
    decisions: Counter = Counter()
    ack_hours: list[float] = []
    decision_hours: list[float] = []
    overdue = Counter(unacknowledged=0, undecided=0, review_overdue=0)
    per_school: dict[int, Counter] = defaultdict(Counter)
    children: Counter = Counter()
    school_of = {}
    today = now.date()
    for r in rows:
        school_of[r.id] = r.school_id
        by_school[schools[r.school_id].slug] += 1
        by_month[r.created_at.strftime("%Y-%m")] += 1
        for cat in r.categories or ():
            by_category[cat] += 1
            per_school[r.school_id]["cat:" + cat] += 1
        per_school[r.school_id]["concerns"] += 1
        if r.acknowledged_at is not None:
            ack_hours.append((r.acknowledged_at - r.created_at).total_seconds() / 3600)
        if r.decided_at is not None:
            decision_hours.append((r.decided_at - r.created_at).total_seconds() / 3600)
        if r.decision_kind:
            decisions[r.decision_kind] += 1
        if r.child_id is not None:
            children[(r.school_id, r.child_id)] += 1
        if r.status != "closed":
            pol = deadlines.policies[r.school_id]
            if r.acknowledged_at is None:
                due = (r.created_at + timedelta(minutes=pol.nudges.urgent_ack_escalate_deputies_minutes) if r.urgent
                       else deadlines.add(r.school_id, r.created_at, pol.nudges.ack_escalate_deputies_working_days))
                if now > due:
                    overdue["unacknowledged"] += 1
                    per_school[r.school_id]["overdue"] += 1
            if r.decided_at is None and now > deadlines.add(r.school_id, r.created_at, pol.nudges.inactivity_working_days):
                overdue["undecided"] += 1
                per_school[r.school_id]["overdue"] += 1
            if r.review_date is not None and r.review_date < today:
                overdue["review_overdue"] += 1
                per_school[r.school_id]["overdue"] += 1

    missed = _statutory_missed(referral_rows, school_of, deadlines, now)
    for cid, steps in missed["by_concern"].items():
        per_school[school_of[cid]]["statutory_missed"] += len(steps)

    checkins = Counter()
    worrying_concerns = set()
    for cid, facts in followup_rows:
        if facts.get("type") == "checkin":
            checkins[facts.get("answer")] += 1
            if facts.get("answer") in CHECKIN_WORRYING:
                worrying_concerns.add(cid)
    for cid in worrying_concerns:
        per_school[school_of[cid]]["checkin_worrying"] += 1

    repeated = sorted(((sid, cid, n) for (sid, cid), n in children.items() if n >= 2), key=lambda t: (-t[2], t[1]))
    for sid, _, _ in repeated:
        per_school[sid]["repeated_children"] += 1

    trust_scope = school is None
    sup = suppress if trust_scope else (lambda n: n)
    report: dict[str, Any] = {
        "scope": {"school": school, "from": start.date().isoformat() if start else None,
                  "to": (end - timedelta(days=1)).date().isoformat() if end else None,
                  "generated_at": now.isoformat(), "suppressed_below": SUPPRESS_BELOW if trust_scope else None},
        "concerns": len(rows),
        "by_category": {k: sup(v) for k, v in sorted(by_category.items())},
        "by_month": {k: sup(v) for k, v in sorted(by_month.items())},
        "by_school": {k: sup(v) for k, v in sorted(by_school.items())},
        "time_to_acknowledge_hours": _stats(ack_hours),
        "time_to_decision_hours": _stats(decision_hours),
        "decisions": {k: sup(v) for k, v in sorted(decisions.items())},
        "overdue": {**{k: sup(v) for k, v in overdue.items()}, "total": sup(sum(overdue.values()))},
        "statutory_missed": {**{k: sup(v) for k, v in sorted(missed["by_step"].items())},
                             "total": sup(sum(missed["by_step"].values()))},
        "repeated_concerns": {"children": sup(len(repeated)),
                              "list": [] if trust_scope else [{"child_id": cid, "concerns": n} for _, cid, n in repeated]},
        "checkins": {"no_change": sup(checkins["no_change"]), "worse": sup(checkins["worse"]),
                     "improved": sup(checkins["improved"]), "dont_know": sup(checkins["dont_know"]),
                     "concerns_no_change_or_worse": sup(len(worrying_concerns))},
        "trust_rollup": _rollup(per_school, schools),
    }
    return report


def _statutory_missed(referral_rows, school_of, deadlines: _Deadlines, now: datetime) -> dict:
    """Social care timescales (seed 004) missed: a step recorded after its deadline, or the
    acknowledgement/initial decision not recorded when its deadline has passed."""
    referred: dict[int, datetime] = {}
    steps: dict[int, dict[str, datetime]] = defaultdict(dict)
    for cid, facts in referral_rows:
        if facts.get("decision") == "social_care_referral" and facts.get("referred_at"):
            at = datetime.fromisoformat(facts["referred_at"])
            referred[cid] = min(at, referred.get(cid, at))
        elif facts.get("step") and facts.get("at"):
            steps[cid].setdefault(facts["step"], datetime.fromisoformat(facts["at"]))
    by_step: Counter = Counter()
    by_concern: dict[int, list[str]] = defaultdict(list)

    def check(cid: int, step: str, start: datetime, done: datetime | None) -> None:
        pol = deadlines.policies[school_of[cid]]
        due = deadlines.add(school_of[cid], start, getattr(pol.statutory, step))
        if (done is not None and done > due) or (done is None and now > due):
            by_step[step] += 1
            by_concern[cid].append(step)

    for cid, at in referred.items():
        for step in STATUTORY_FROM_REFERRAL:
            check(cid, step, at, steps[cid].get(step))
    for cid, done in steps.items():
        strategy = done.get("strategy_discussion")
        if strategy is not None:
            for step in STATUTORY_FROM_STRATEGY:
                if step in done:
                    check(cid, step, strategy, done[step])
    return {"by_step": by_step, "by_concern": by_concern}


def _rollup(per_school: dict[int, Counter], schools: dict[int, School]) -> list[dict]:
    """One row per school, every count 1..4 suppressed: for the trust, not the school."""
    out = []
    for sid in sorted(per_school, key=lambda i: schools[i].slug):
        c = per_school[sid]
        cats = {k[4:]: suppress(v) for k, v in sorted(c.items()) if k.startswith("cat:")}
        out.append({"school": schools[sid].slug, "concerns": suppress(c["concerns"]), "by_category": cats,
                    "overdue": suppress(c["overdue"]), "statutory_missed": suppress(c["statutory_missed"]),
                    "repeated_children": suppress(c["repeated_children"]),
                    "checkins_no_change_or_worse": suppress(c["checkin_worrying"])})
    return out


def headline(store: Store, school_id: int, *, now: datetime | None = None) -> dict:
    """Headline figures for the DSL's Slack App Home (counts only; no names, no content)."""
    now = now or utcnow()
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last_month_start = (month_start - timedelta(days=1)).replace(day=1)
    with store.session() as s:
        school_row = s.get(School, school_id)
        if school_row is None:
            raise LookupError("no such school")
        slug = school_row.slug
        open_by_status = dict(s.execute(select(Concern.status, func.count()).where(
            Concern.school_id == school_id, Concern.status != "closed").group_by(Concern.status)).all())
        this_month = s.scalar(select(func.count()).where(Concern.school_id == school_id,
                                                         Concern.created_at >= month_start))
        last_month = s.scalar(select(func.count()).where(Concern.school_id == school_id,
                                                         Concern.created_at >= last_month_start,
                                                         Concern.created_at < month_start))
        awaiting_transfer = s.scalar(select(func.count()).select_from(Transfer).where(
            Transfer.from_school_id == school_id, Transfer.state == "sent"))
    recent = build_report(store, school=slug, start=now - timedelta(days=30), now=now)
    open_report = _open_report(store, school_id, now)
    return {
        "open": sum(open_by_status.values()),
        "awaiting_acknowledgement": open_by_status.get("raised", 0),
        "concerns_this_month": this_month, "concerns_last_month": last_month,
        "overdue": open_report["overdue"]["total"],
        "reviews_overdue": open_report["overdue"]["review_overdue"],
        "statutory_missed_open": open_report["statutory_missed"]["total"],
        "median_hours_to_acknowledge_30d": recent["time_to_acknowledge_hours"]["median"],
        "checkins_no_change_or_worse_30d": recent["checkins"]["no_change"] + recent["checkins"]["worse"],
        "children_with_repeated_concerns_30d": recent["repeated_concerns"]["children"],
        "transfers_awaiting_confirmation": awaiting_transfer,
    }


def _open_report(store: Store, school_id: int, now: datetime) -> dict:
    """Overdue and statutory figures over the school's open concerns only."""
    with store.session() as s:
        schools = {sc.id: sc for sc in s.scalars(select(School).where(School.id == school_id))}
        trusts = {t.id: t for t in s.scalars(select(Trust))}
        conds = [Concern.school_id == school_id, Concern.status != "closed"]
        rows = s.execute(select(Concern.id, Concern.school_id, Concern.created_at, Concern.acknowledged_at,
                                Concern.decided_at, Concern.decision_kind, Concern.status, Concern.child_id,
                                Concern.categories, Concern.review_date, Concern.urgent).where(*conds)).all()
        referral_rows = s.execute(select(ChronologyEntry.concern_id, ChronologyEntry.facts)
                                  .join(Concern, Concern.id == ChronologyEntry.concern_id)
                                  .where(ChronologyEntry.kind == "referral", *conds)).all()
    return _compute(rows, referral_rows, [], schools, _Deadlines(schools, trusts), now=now, school="",
                    start=None, end=None)
