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

import json
import statistics
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache

from sqlalchemy import Float, Text, cast, func, literal_column, select

from storage.db import Store
from storage.models import ChronologyEntry, Concern, School, Transfer, Trust, utcnow

from .policy import Policy, is_working_day, policy_for

SUPPRESS_BELOW = 5  # counts 1..4 are shown as "<5" in trust roll-ups
SUPPRESSED = f"<{SUPPRESS_BELOW}"
CHECKIN_WORRYING = ("no_change", "worse")
STATUTORY_FROM_REFERRAL = ("sc_acknowledgement", "sc_decision")
STATUTORY_FROM_STRATEGY = ("section47", "icpc")


SECONDARY = "c"  # withheld so that a "<5" cannot be worked out by subtraction from a total


def suppress(n: int) -> int | str:
    return SUPPRESSED if 0 < n < SUPPRESS_BELOW else n


def protect(cells: dict) -> dict:
    """Primary suppression (1..4 -> "<5"), then secondary: when exactly one cell of a set
    that adds up to a published total is suppressed, the smallest other non-zero cell is
    withheld too ("c"), so the suppressed one cannot be recovered by subtraction."""
    out = {k: suppress(v) for k, v in cells.items()}
    hidden = [k for k, v in out.items() if v == SUPPRESSED]
    if len(hidden) == 1:
        others = sorted((v, str(k), k) for k, v in cells.items() if k not in hidden and v > 0)
        if others:
            out[others[0][2]] = SECONDARY
    return out


def _stats(values: list[float]) -> dict:
    if not values:
        return {"n": 0, "median": None, "p90": None}
    values = sorted(values)
    p90 = values[0] if len(values) == 1 else statistics.quantiles(values, n=10, method="inclusive")[8]
    return {"n": len(values), "median": round(statistics.median(values), 2), "p90": round(p90, 2)}


def _given(n: int, median: float | None, p90: float | None) -> dict:
    if not n:
        return {"n": 0, "median": None, "p90": None}
    return {"n": n, "median": round(float(median), 2), "p90": round(float(p90), 2)}


class _Deadlines:
    """``add_working_days`` per school, answered from a precomputed calendar of working days
    (bisect), shared by schools whose calendar and overrides are the same. Equal to
    ``policy.add_working_days`` (tests/test_cpfile_report.py checks it)."""

    def __init__(self, schools: dict[int, School], trusts: dict[int, Trust]):
        by_signature: dict[str, int] = {}
        self.policies: dict[int, Policy] = {}
        self._group: dict[int, int] = {}
        self._group_policy: list[Policy] = []
        for sid, sc in schools.items():
            trust = trusts.get(sc.trust_id)
            sig = json.dumps([sc.nation, sc.timezone, sorted(sc.closures or []), getattr(trust, "policy", None),
                              sc.policy], sort_keys=True, default=str)
            if sig not in by_signature:
                by_signature[sig] = len(self._group_policy)
                self._group_policy.append(policy_for(sc, trust))
            self._group[sid] = by_signature[sig]
            self.policies[sid] = self._group_policy[by_signature[sig]]
        self._days: dict[int, tuple[date, date, list[date]]] = {}
        self._cache: dict[tuple, datetime] = {}

    def _calendar(self, group: int, d: date, n: int) -> list[date]:
        lo, hi, days = self._days.get(group, (None, None, []))
        need_hi = d + timedelta(days=7 * n + 60)
        if lo is None or d < lo or need_hi > hi:  # grow by a year each way: a few rebuilds at most
            lo = min(d, lo or d) - timedelta(days=366)
            hi = max(need_hi, hi or need_hi) + timedelta(days=366)
            pol = self._group_policy[group]
            days = [lo + timedelta(days=i) for i in range((hi - lo).days + 1)
                    if is_working_day(pol, lo + timedelta(days=i))]
            self._days[group] = (lo, hi, days)
        return days

    def add(self, school_id: int, start: datetime, n: int) -> datetime:
        group = self._group[school_id]
        pol = self._group_policy[group]
        d = start.astimezone(pol.tz).date()
        key = (group, d, n)
        hit = self._cache.get(key)
        if hit is None:
            days = self._calendar(group, d, n)
            day = days[bisect_left(days, d)] if n == 0 else days[bisect_right(days, d) + n - 1]
            hit = datetime.combine(day, pol.working_hours.end, tzinfo=pol.tz).astimezone(timezone.utc)
            self._cache[key] = hit
        return hit


def _filters(school_ids: list[int] | None, start: datetime | None, end: datetime | None) -> list:
    conds = []
    if school_ids is not None:
        conds.append(Concern.school_id.in_(school_ids))
    if start is not None:
        conds.append(Concern.created_at >= start)
    if end is not None:
        conds.append(Concern.created_at < end)
    return conds


def _month(dialect: str, col):
    if dialect == "postgresql":
        return func.to_char(col, "YYYY-MM")
    return func.strftime("%Y-%m", col)


def _hours(dialect: str, later, earlier):
    if dialect == "postgresql":
        return func.extract("epoch", later - earlier) / 3600.0
    return (func.julianday(later) - func.julianday(earlier)) * 24.0


_BY2 = (literal_column("1"), literal_column("2"))


def _timings(dialect: str, conds: list):
    """Hours to acknowledge and to decide. PostgreSQL computes the median and 90th percentile
    itself (percentile_cont: linear interpolation); elsewhere every duration comes back and
    `_stats` computes the same figures."""
    c = Concern
    ack = cast(_hours(dialect, c.acknowledged_at, c.created_at), Float)
    dec = cast(_hours(dialect, c.decided_at, c.created_at), Float)
    if dialect == "postgresql":
        return select(func.count(ack), func.percentile_cont(0.5).within_group(ack),
                      func.percentile_cont(0.9).within_group(ack), func.count(dec),
                      func.percentile_cont(0.5).within_group(dec), func.percentile_cont(0.9).within_group(dec)
                      ).where(*conds)
    return select(ack, dec).where((c.acknowledged_at.is_not(None)) | (c.decided_at.is_not(None)), *conds)


def report_queries(conds: list, dialect: str = "postgresql") -> dict:
    """The report's queries: aggregates are counted by the database; only durations, open
    concerns and the facts of referral entries come back row by row. Read-only, no
    decryption. bench/trust_report.py prints their plans."""
    c = Concern
    open_ = c.status != "closed"
    cats = cast(c.categories, Text)
    answer = ChronologyEntry.facts["answer"].as_string()
    etype = ChronologyEntry.facts["type"].as_string()

    def entries(*cols):
        return select(*cols).join(Concern, Concern.id == ChronologyEntry.concern_id)

    return {
        # GROUP BY ordinals: an expression with bound parameters is not "the same" as its twin
        # in the select list to PostgreSQL.
        "by_month": select(c.school_id, _month(dialect, c.created_at), func.count()).where(*conds).group_by(*_BY2),
        "by_category": select(c.school_id, cats, func.count()).where(*conds).group_by(*_BY2),
        "decisions": select(c.decision_kind, func.count()).where(c.decision_kind.is_not(None), *conds)
        .group_by(c.decision_kind),
        "repeated": select(c.school_id, c.child_id, func.count()).where(c.child_id.is_not(None), *conds)
        .group_by(c.school_id, c.child_id).having(func.count() >= 2),
        "timings": _timings(dialect, conds),
        "open": select(c.id, c.school_id, c.created_at, c.acknowledged_at, c.decided_at,
                       c.review_date, c.urgent).where(open_, *conds),
        "referrals": entries(ChronologyEntry.concern_id, c.school_id, cast(ChronologyEntry.facts, Text))
        .where(ChronologyEntry.kind == "referral", *conds),
        "checkins": entries(c.school_id, answer, func.count(), func.count(func.distinct(ChronologyEntry.concern_id)))
        .where(ChronologyEntry.kind == "follow_up", etype == "checkin", *conds).group_by(*_BY2),
        "worrying": entries(c.school_id, func.count(func.distinct(ChronologyEntry.concern_id)))
        .where(ChronologyEntry.kind == "follow_up", etype == "checkin", answer.in_(CHECKIN_WORRYING), *conds)
        .group_by(c.school_id),
    }


def build_report(store: Store, *, school: str | None = None, trust: str | None = None,
                 start: datetime | None = None, end: datetime | None = None, now: datetime | None = None,
                 exclude: list[int] | None = None) -> dict:
    """The report as a plain dict (JSON-ready). ``school`` is a slug: that school's exact
    figures. Otherwise a roll-up with small numbers suppressed, of one ``trust`` (slug) or of
    every school in the database. ``end`` is exclusive. ``exclude``: concern ids left out of
    every figure (those a viewer may not handle: ``headline``)."""
    now = now or utcnow()
    with store.session() as s:
        schools = {sc.id: sc for sc in s.scalars(select(School))}
        trusts = {t.id: t for t in s.scalars(select(Trust))}
        school_ids = None
        if school is not None:
            match = [sc for sc in schools.values() if sc.slug == school]
            if not match:
                raise LookupError(f"no school {school!r}")
            school_ids = [match[0].id]
        elif trust is not None:
            match = [t for t in trusts.values() if t.slug == trust]
            if not match:
                raise LookupError(f"no trust {trust!r}")
            school_ids = [sid for sid, sc in schools.items() if sc.trust_id == match[0].id]
        conds = _filters(school_ids, start, end) + ([Concern.id.not_in(exclude)] if exclude else [])
        queries = report_queries(conds, s.get_bind().dialect.name)
        data = {name: s.execute(q).all() for name, q in queries.items()}
    report = _compute(data, schools, _Deadlines(schools, trusts), now=now, school=school, start=start, end=end)
    report["scope"]["trust"] = trust if school is None else None
    return report


@lru_cache(maxsize=4096)
def _json_list(text: str | None) -> tuple:
    return tuple(json.loads(text)) if text else ()


def _compute(data: dict, schools, deadlines: _Deadlines, *, now, school, start, end) -> dict:
    by_category: Counter = Counter()
    by_month: Counter = Counter()
    by_school: Counter = Counter()
    per_school: dict[int, Counter] = defaultdict(Counter)
    for sid, month, n in data["by_month"]:
        by_month[month] += n
        by_school[schools[sid].slug] += n
        per_school[sid]["concerns"] += n
    for sid, cats, n in data["by_category"]:
        for cat in _json_list(cats):
            by_category[cat] += n
            per_school[sid]["cat:" + cat] += n
    decisions = Counter({k: n for k, n in data["decisions"]})
    if len(data["timings"]) == 1 and len(data["timings"][0]) == 6:  # computed by PostgreSQL
        n_a, med_a, p90_a, n_d, med_d, p90_d = data["timings"][0]
        ack_stats, decision_stats = _given(n_a, med_a, p90_a), _given(n_d, med_d, p90_d)
    else:
        ack_stats = _stats([a for a, _ in data["timings"] if a is not None])
        decision_stats = _stats([d for _, d in data["timings"] if d is not None])

    overdue = Counter(unacknowledged=0, undecided=0, review_overdue=0)
    today = now.date()
    for cid, sid, created, acked, decided, review, urgent in data["open"]:
        pol = deadlines.policies[sid]
        if acked is None:
            due = (created + timedelta(minutes=pol.nudges.urgent_ack_escalate_deputies_minutes) if urgent
                   else deadlines.add(sid, created, pol.nudges.ack_escalate_deputies_working_days))
            if now > due:
                overdue["unacknowledged"] += 1
                per_school[sid]["overdue"] += 1
        if decided is None and now > deadlines.add(sid, created, pol.nudges.inactivity_working_days):
            overdue["undecided"] += 1
            per_school[sid]["overdue"] += 1
        if review is not None and review < today:
            overdue["review_overdue"] += 1
            per_school[sid]["overdue"] += 1

    school_of = {cid: sid for cid, sid, _ in data["referrals"]}
    missed = _statutory_missed([(cid, json.loads(facts)) for cid, _, facts in data["referrals"]], school_of,
                               deadlines, now)
    for cid, steps in missed["by_concern"].items():
        per_school[school_of[cid]]["statutory_missed"] += len(steps)

    checkins: Counter = Counter()
    for sid, answer, n, _ in data["checkins"]:
        checkins[answer] += n
    worrying = 0
    for sid, n in data["worrying"]:
        worrying += n
        per_school[sid]["checkin_worrying"] += n

    repeated = sorted(((sid, cid, n) for sid, cid, n in data["repeated"]), key=lambda t: (-t[2], t[1]))
    for sid, _, _ in repeated:
        per_school[sid]["repeated_children"] += 1

    trust_scope = school is None
    sup = suppress if trust_scope else (lambda n: n)
    prot = protect if trust_scope else (lambda d: dict(d))

    def n_only(stats: dict) -> dict:  # in a roll-up, a duration summary of 1..4 concerns says too much
        if trust_scope and 0 < stats["n"] < SUPPRESS_BELOW:
            return {"n": SUPPRESSED, "median": None, "p90": None}
        return stats

    return {
        "scope": {"school": school, "from": start.date().isoformat() if start else None,
                  "to": (end - timedelta(days=1)).date().isoformat() if end else None,
                  "generated_at": now.isoformat(), "suppressed_below": SUPPRESS_BELOW if trust_scope else None},
        "concerns": sum(by_school.values()),
        "by_category": {k: sup(v) for k, v in sorted(by_category.items())},
        "by_month": prot(dict(sorted(by_month.items()))),
        "by_school": prot(dict(sorted(by_school.items()))),
        "time_to_acknowledge_hours": n_only(ack_stats),
        "time_to_decision_hours": n_only(decision_stats),
        "decisions": prot(dict(sorted(decisions.items()))),
        "overdue": {**prot(dict(overdue)), "total": sup(sum(overdue.values()))},
        "statutory_missed": {**prot(dict(sorted(missed["by_step"].items()))),
                             "total": sup(sum(missed["by_step"].values()))},
        "repeated_concerns": {"children": sup(len(repeated)),
                              "list": [] if trust_scope else [{"child_id": cid, "concerns": n} for _, cid, n in repeated]},
        "checkins": {"no_change": sup(checkins["no_change"]), "worse": sup(checkins["worse"]),
                     "improved": sup(checkins["improved"]), "dont_know": sup(checkins["dont_know"]),
                     "concerns_no_change_or_worse": sup(worrying)},
        "trust_rollup": _rollup(per_school, schools),
    }


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
    """One row per school, for the trust: each column is protected across the schools (a
    column adds up to a figure shown elsewhere in the report)."""
    sids = sorted(per_school, key=lambda i: schools[i].slug)
    columns = {"concerns": "concerns", "overdue": "overdue", "statutory_missed": "statutory_missed",
               "repeated_children": "repeated_children", "checkins_no_change_or_worse": "checkin_worrying"}
    protected = {name: protect({sid: per_school[sid][key] for sid in sids}) for name, key in columns.items()}
    cats = sorted({k for sid in sids for k in per_school[sid] if k.startswith("cat:")})
    by_cat = {k: protect({sid: per_school[sid][k] for sid in sids}) for k in cats}
    out = []
    for sid in sids:
        row = {"school": schools[sid].slug, "concerns": protected["concerns"][sid],
               "by_category": {k[4:]: by_cat[k][sid] for k in cats if per_school[sid][k]}}
        for name in ("overdue", "statutory_missed", "repeated_children", "checkins_no_change_or_worse"):
            row[name] = protected[name][sid]
        out.append(row)
    return out


def headline(store: Store, school_id: int, *, now: datetime | None = None, viewer_id: int | None = None) -> dict:
    """Headline figures for the DSL's Slack App Home (counts only; no names, no content).
    With ``viewer_id``, over the concerns that person may handle (flows/access.py): a figure
    that counted an allegation about them, or one whose adult is not yet identified, would
    tell them it exists."""
    from .access import withheld_ids

    now = now or utcnow()
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last_month_start = (month_start - timedelta(days=1)).replace(day=1)
    with store.session() as s:
        school_row = s.get(School, school_id)
        if school_row is None:
            raise LookupError("no such school")
        slug = school_row.slug
        hidden = withheld_ids(s, viewer_id, school_id) if viewer_id is not None else []
        mine = [Concern.school_id == school_id] + ([Concern.id.not_in(hidden)] if hidden else [])
        open_by_status = dict(s.execute(select(Concern.status, func.count()).where(
            *mine, Concern.status != "closed").group_by(Concern.status)).all())
        this_month = s.scalar(select(func.count()).where(*mine, Concern.created_at >= month_start))
        last_month = s.scalar(select(func.count()).where(*mine, Concern.created_at >= last_month_start,
                                                         Concern.created_at < month_start))
        awaiting_transfer = s.scalar(select(func.count()).select_from(Transfer).where(
            Transfer.from_school_id == school_id, Transfer.state == "sent"))
    recent = build_report(store, school=slug, start=now - timedelta(days=30), now=now, exclude=hidden)
    open_report = _open_report(store, school_id, now, hidden)
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


def _open_report(store: Store, school_id: int, now: datetime, exclude: list[int]) -> dict:
    """Overdue and statutory figures over the school's open concerns only."""
    with store.session() as s:
        schools = {sc.id: sc for sc in s.scalars(select(School).where(School.id == school_id))}
        trusts = {t.id: t for t in s.scalars(select(Trust))}
        queries = report_queries([Concern.school_id == school_id, Concern.status != "closed"]
                                 + ([Concern.id.not_in(exclude)] if exclude else []), s.get_bind().dialect.name)
        data = {name: s.execute(q).all() for name, q in queries.items()}
    return _compute(data, schools, _Deadlines(schools, trusts), now=now, school="", start=None, end=None)
