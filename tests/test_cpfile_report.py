"""The analytics report against a fixture whose figures were counted by hand (see the
comments beside each concern), in every format, and the App Home headline."""

import csv
import io
import json
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlmodel import select

from bot import report_render
from flows import analytics
from storage import chain
from storage.models import Concern

from .conftest import run_cli
from .flow_support import build_world

UTC = timezone.utc
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)  # Monday


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _concern(store, w, n, school, child, created, cats, *, ack_h=None, dec_h=None, decision=None, status="raised",
             review=None, facts=()):
    created = _at(created)
    with store.session() as s:
        c = Concern(school_id=school, reference=f"SG-2026-{n:04d}", child_id=child, referrer_id=w.teacher,
                    taxonomy_version="2026.1", categories=cats, created_at=created, last_activity_at=created,
                    acknowledged_at=created + timedelta(hours=ack_h) if ack_h is not None else None,
                    decided_at=created + timedelta(hours=dec_h) if dec_h is not None else None,
                    decision_kind=decision, status=status, review_date=review, account="Hand-counted fixture.")
        s.add(c)
        s.flush()
        for kind, f in facts:
            chain.append_entry(s, store.cipher, concern_id=c.id, child_id=child, kind=kind, actor_id=w.dsl,
                               at=created, facts=f)
        return c.id


@pytest.fixture
def fixture(store):
    s = build_world(store)
    o = build_world(store, slug="o", trust_slug="t2")
    A, B, SIB, X = s.child, s.other_child, s.sibling, o.child
    # school s ---------------------------------------------------------------------------
    # c1 Mon 7 Sep: ack 2h, decided 6h, referral; social care acknowledged on 21 Sep, but
    #    7 working days from 7 Sep end on 16 Sep: one statutory miss. Decision next day: met.
    _concern(store, s, 1, s.school, A, "2026-09-07T09:00", ["physical_abuse"], ack_h=2, dec_h=6,
             decision="social_care_referral", status="closed",
             facts=[("referral", {"decision": "social_care_referral", "referred_at": "2026-09-07T15:00:00+00:00"}),
                    ("referral", {"step": "sc_acknowledgement", "at": "2026-09-21T10:00:00+00:00"}),
                    ("referral", {"step": "sc_decision", "at": "2026-09-08T10:00:00+00:00"})])
    # c2 Sun 20 Sep: ack 4h, decided 30h, monitor; review 20 Oct passed (review overdue);
    #    check-ins: worse, no change
    _concern(store, s, 2, s.school, A, "2026-09-20T10:00", ["neglect", "physical_abuse"], ack_h=4, dec_h=30,
             decision="monitor", status="decided", review=date(2026, 10, 20),
             facts=[("follow_up", {"type": "checkin", "answer": "worse"}),
                    ("follow_up", {"type": "checkin", "answer": "no_change"})])
    # c3 5 Oct: ack 10h, no decision after 10 working days (undecided overdue); check-in improved
    _concern(store, s, 3, s.school, B, "2026-10-05T08:00", ["neglect"], ack_h=10, status="acknowledged",
             facts=[("follow_up", {"type": "checkin", "answer": "improved"}),
                    ("follow_up", {"type": "question_to_referrer"})])
    # c4 Fri 30 Oct: not acknowledged, but due only by Mon 2 Nov 18:00: nothing overdue yet
    _concern(store, s, 4, s.school, A, "2026-10-30T09:00", ["bullying"])
    # c5 1 Oct: never acknowledged: unacknowledged and undecided overdue
    _concern(store, s, 5, s.school, SIB, "2026-10-01T09:00", ["neglect"])
    # school o ---------------------------------------------------------------------------
    _concern(store, o, 6, o.school, X, "2026-09-10T09:00", ["neglect"], ack_h=1, dec_h=2,
             decision="no_further_action", status="closed")
    _concern(store, o, 7, o.school, X, "2026-10-12T09:00", ["online_safety"], ack_h=3, dec_h=5,
             decision="early_help_referral", status="decided", review=date(2026, 12, 1))
    return s, o


def test_school_report_matches_the_hand_count(store, fixture):
    s, _ = fixture
    r = analytics.build_report(store, school="s", now=NOW)
    assert r["concerns"] == 5
    assert r["by_category"] == {"bullying": 1, "neglect": 3, "physical_abuse": 2}
    assert r["by_month"] == {"2026-09": 2, "2026-10": 3}
    assert r["by_school"] == {"s": 5}
    assert r["time_to_acknowledge_hours"] == {"n": 3, "median": 4.0, "p90": 8.8}  # 2, 4, 10
    assert r["time_to_decision_hours"] == {"n": 2, "median": 18.0, "p90": 27.6}   # 6, 30
    assert r["decisions"] == {"monitor": 1, "social_care_referral": 1}
    assert r["overdue"] == {"unacknowledged": 1, "undecided": 2, "review_overdue": 1, "total": 4}
    assert r["statutory_missed"] == {"sc_acknowledgement": 1, "total": 1}
    assert r["repeated_concerns"] == {"children": 1, "list": [{"child_id": s.child, "concerns": 3}]}
    assert r["checkins"] == {"no_change": 1, "worse": 1, "improved": 1, "dont_know": 0, "concerns_no_change_or_worse": 1}
    assert r["scope"]["suppressed_below"] is None


def test_date_range_start_inclusive_end_exclusive(store, fixture):
    r = analytics.build_report(store, school="s", start=_at("2026-10-01T09:00"), end=_at("2026-10-30T09:00"), now=NOW)
    assert r["concerns"] == 2 and r["by_month"] == {"2026-10": 2}  # c5 (at the start), c3; not c4 (at the end)
    r = analytics.build_report(store, school="s", start=_at("2026-10-01T00:00"), end=_at("2026-11-01T00:00"), now=NOW)
    assert r["concerns"] == 3


def test_trust_rollup_suppresses_small_numbers_and_names_no_child(store, fixture):
    r = analytics.build_report(store, now=NOW)
    assert r["concerns"] == 7 and r["scope"]["suppressed_below"] == 5
    # o's 2 would follow from 7 - 5: s is withheld too (secondary suppression)
    assert r["by_school"] == {"o": "<5", "s": "c"}
    assert r["by_category"] == {"bullying": "<5", "neglect": "<5", "online_safety": "<5", "physical_abuse": "<5"}
    assert r["repeated_concerns"] == {"children": "<5", "list": []}
    roll = {row["school"]: row for row in r["trust_rollup"]}
    assert roll["s"]["concerns"] == "c" and roll["s"]["overdue"] == "<5" and roll["o"]["concerns"] == "<5"
    assert roll["o"]["overdue"] == 0
    one = analytics.build_report(store, trust="t2", now=NOW)
    assert one["concerns"] == 2 and one["by_school"] == {"o": "<5"} and one["scope"]["trust"] == "t2"
    with pytest.raises(LookupError):
        analytics.build_report(store, trust="nope")
    text = json.dumps(r)
    for secret in ("Amira", "Zed", "Ben Oak", "A100", "Hand-counted"):
        assert secret not in text


def test_secondary_suppression():
    assert analytics.protect({"a": 3, "b": 40, "c": 12}) == {"a": "<5", "b": 40, "c": "c"}
    assert analytics.protect({"a": 3, "b": 2, "c": 12}) == {"a": "<5", "b": "<5", "c": 12}  # only a range follows
    assert analytics.protect({"a": 0, "b": 9}) == {"a": 0, "b": 9}
    assert analytics.protect({"a": 1}) == {"a": "<5"}


def test_formats(store, fixture):
    r = analytics.build_report(store, school="s", now=NOW)
    rows = list(csv.reader(io.StringIO(report_render.to_csv(r))))
    assert rows[0] == ["section", "key", "value"]
    assert ["by_category", "neglect", "3"] in rows and ["overdue", "total", "4"] in rows
    assert ["time_to_acknowledge_hours", "p90", "8.8"] in rows
    table = report_render.to_table(r)
    assert "Neglect" in table and "Referral to children's social care" in table
    html = report_render.to_html(r)
    assert html.count("data:image/png;base64,") == 3 and "Trend by month" in html
    assert json.loads(report_render.to_json(r)) == json.loads(json.dumps(r, default=str))


def test_report_command_on_the_fixture(store, fixture, cli_env, tmp_path):
    res = run_cli(["report", "--school", "s", "--format", "json", "--now", NOW.isoformat()], cli_env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["concerns"] == 5 and data["overdue"]["total"] == 4
    res = run_cli(["report", "--from", "2026-10-01", "--to", "2026-10-31", "--format", "csv", "--now", NOW.isoformat()],
                  cli_env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "total,concerns,4" in res.stdout  # c3, c4, c5 and c7: --to is inclusive of its day
    out = tmp_path / "r.html"
    res = run_cli(["report", "--trust", "t", "--format", "html", "--out", str(out)], cli_env, cwd=tmp_path)
    assert res.returncode == 0 and "<img" in out.read_text() and "trust t" in out.read_text()
    res = run_cli(["report", "--trust", "t", "--format", "table", "--now", NOW.isoformat()], cli_env, cwd=tmp_path)
    assert res.returncode == 0 and "counts under 5 shown as <5" in res.stdout
    res = run_cli(["report", "--school", "nope"], cli_env, cwd=tmp_path)
    assert res.returncode == 2 and "no school" in res.stderr


def test_headline_for_the_app_home(store, fixture):
    s, o = fixture
    h = analytics.headline(store, s.school, now=NOW)
    assert h["open"] == 4 and h["awaiting_acknowledgement"] == 2
    assert h["concerns_this_month"] == 0 and h["concerns_last_month"] == 3
    assert h["overdue"] == 4 and h["reviews_overdue"] == 1 and h["statutory_missed_open"] == 0
    assert h["transfers_awaiting_confirmation"] == 0
    assert all(isinstance(v, (int, float)) or v is None for v in h.values())


def test_fast_deadlines_equal_policy_add_working_days(store, fixture):
    import random

    from flows.policy import add_working_days, policy_for
    from storage.models import School, Trust

    with store.session() as s:
        schools = {sc.id: sc for sc in s.exec(select(School))}
        trusts = {t.id: t for t in s.exec(select(Trust))}
    dl = analytics._Deadlines(schools, trusts)
    rnd = random.Random(4)
    for _ in range(400):
        sid = rnd.choice(list(schools))
        start = datetime(2025, 12, 1, tzinfo=UTC) + timedelta(minutes=rnd.randrange(0, 60 * 24 * 500))
        n = rnd.choice([0, 1, 2, 5, 7, 10, 15])
        assert dl.add(sid, start, n) == add_working_days(policy_for(schools[sid], trusts[schools[sid].trust_id]), start, n)
