"""Policy: defaults and overrides, working days per UK nation, working hours, statutory clocks."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings, strategies as st

from flows.policy import (
    STATUTORY_STEPS,
    Policy,
    PolicyError,
    add_working_days,
    add_working_hours,
    build_policy,
    in_working_hours,
    is_working_day,
    next_working_time,
    policy_for,
    statutory_deadline,
    working_days_between,
)
from storage.models import School, Trust

LONDON = ZoneInfo("Europe/London")
UTC = timezone.utc
NATIONS = ("england", "wales", "scotland", "northern_ireland")


def london(y, m, d, hh=10, mm=0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=LONDON)


def p(nation="england", **kw) -> Policy:
    return build_policy(nation=nation, **kw)


# --- defaults -----------------------------------------------------------------------------

def test_defaults_are_the_documented_ones():
    pol = p()
    assert pol.nation == "england" and pol.timezone == "Europe/London" and pol.closures == frozenset()
    assert pol.working_hours.start == time(8) and pol.working_hours.end == time(18)
    assert pol.working_hours.days == frozenset({0, 1, 2, 3, 4})
    assert (pol.statutory.sc_acknowledgement, pol.statutory.sc_decision, pol.statutory.strategy_discussion,
            pol.statutory.section47, pol.statutory.icpc) == (7, 1, 1, 10, 15)
    n = pol.nudges
    assert (n.urgent_ack_realert_minutes, n.urgent_ack_escalate_deputies_minutes,
            n.urgent_ack_escalate_head_minutes) == (10, 20, 30)
    assert (n.ack_realert_working_hours, n.ack_escalate_deputies_working_days, n.ack_escalate_head_working_days,
            n.referrer_followup_working_days, n.inactivity_working_days, n.review_default_working_days,
            n.transfer_confirm_working_days) == (2, 1, 2, 3, 10, 20, 5)
    assert (pol.pattern.window_days, pol.pattern.concerns_in_window, pol.pattern.same_category_repeats) == (30, 3, 2)


# --- working days per nation --------------------------------------------------------------

# (day, nations for which it is NOT a working day, why)
HOLIDAY_TABLE = [
    (date(2026, 12, 25), NATIONS, "Christmas Day"),
    (date(2026, 12, 28), NATIONS, "Boxing Day observed (26th is a Saturday)"),
    (date(2026, 12, 29), (), "ordinary Tuesday between Christmas and New Year"),
    (date(2027, 1, 1), NATIONS, "New Year's Day"),
    (date(2026, 1, 2), ("scotland",), "2 January, Scotland only"),
    (date(2027, 1, 4), ("scotland",), "2 January observed (a Saturday), Scotland only"),
    (date(2026, 4, 3), NATIONS, "Good Friday"),
    (date(2026, 4, 6), ("england", "wales", "northern_ireland"), "Easter Monday: not a bank holiday in Scotland"),
    (date(2027, 3, 29), ("england", "wales", "northern_ireland"), "Easter Monday 2027"),
    (date(2026, 5, 4), NATIONS, "early May bank holiday"),
    (date(2026, 5, 25), NATIONS, "spring bank holiday"),
    (date(2026, 8, 3), ("scotland",), "summer bank holiday, Scotland: first Monday of August"),
    (date(2026, 8, 31), ("england", "wales", "northern_ireland"), "summer bank holiday elsewhere: last Monday"),
    (date(2026, 3, 17), ("northern_ireland",), "St Patrick's Day"),
    (date(2027, 3, 17), ("northern_ireland",), "St Patrick's Day 2027 (Wednesday)"),
    (date(2026, 7, 13), ("northern_ireland",), "12 July observed (the 12th is a Sunday)"),
    (date(2027, 7, 12), ("northern_ireland",), "Battle of the Boyne 2027"),
    (date(2026, 11, 30), ("scotland",), "St Andrew's Day"),
    (date(2026, 10, 10), NATIONS, "a Saturday"),
    (date(2026, 10, 11), NATIONS, "a Sunday"),
    (date(2026, 10, 12), (), "an ordinary Monday"),
]


@pytest.mark.parametrize("nation", NATIONS)
@pytest.mark.parametrize("day,closed_in,why", HOLIDAY_TABLE, ids=[r[2] for r in HOLIDAY_TABLE])
def test_is_working_day_per_nation(day, closed_in, why, nation):
    assert is_working_day(p(nation), day) is (nation not in closed_in)


def test_school_closure_dates_are_not_working_days():
    pol = p(closures=["2026-10-12", "2026-10-13"])
    assert not is_working_day(pol, date(2026, 10, 12))
    assert not is_working_day(pol, date(2026, 10, 13))
    assert is_working_day(pol, date(2026, 10, 14))
    assert is_working_day(p(), date(2026, 10, 12))


def test_working_days_follow_the_configured_week():
    pol = p(overrides=[{"working_hours": {"days": ["mon", "tue", "wed", "thu", "fri", "sat"]}}])
    assert pol.working_hours.days == frozenset(range(6))
    assert is_working_day(pol, date(2026, 10, 10))
    assert not is_working_day(pol, date(2026, 10, 11))


# --- add_working_days ---------------------------------------------------------------------

# (nation, start (London), n, expected due date (London, at 18:00), why)
ADD_DAYS_TABLE = [
    ("england", london(2026, 12, 24), 1, date(2026, 12, 29), "over Christmas and Boxing Day observed"),
    ("england", london(2026, 12, 24), 7, date(2027, 1, 7), "statutory acknowledgement over New Year"),
    ("scotland", london(2026, 12, 31), 1, date(2027, 1, 5), "Scotland: 1 and 2(->4) January"),
    ("england", london(2026, 12, 31), 1, date(2027, 1, 4), "England: only 1 January"),
    ("england", london(2026, 4, 2), 1, date(2026, 4, 7), "Good Friday and Easter Monday"),
    ("wales", london(2026, 4, 2), 1, date(2026, 4, 7), "Wales as England at Easter"),
    ("northern_ireland", london(2026, 4, 2), 1, date(2026, 4, 7), "NI as England at Easter"),
    ("scotland", london(2026, 4, 2), 1, date(2026, 4, 6), "Scotland works Easter Monday"),
    ("england", london(2026, 5, 1), 1, date(2026, 5, 5), "early May bank holiday"),
    ("england", london(2026, 5, 22), 1, date(2026, 5, 26), "spring bank holiday"),
    ("scotland", london(2026, 7, 31), 1, date(2026, 8, 4), "Scottish summer bank holiday"),
    ("england", london(2026, 7, 31), 1, date(2026, 8, 3), "3 August is ordinary in England"),
    ("england", london(2026, 8, 28), 1, date(2026, 9, 1), "English late summer bank holiday"),
    ("scotland", london(2026, 8, 28), 1, date(2026, 8, 31), "31 August is ordinary in Scotland"),
    ("northern_ireland", london(2026, 3, 16), 1, date(2026, 3, 18), "St Patrick's Day"),
    ("england", london(2026, 3, 16), 1, date(2026, 3, 17), "17 March is ordinary in England"),
    ("northern_ireland", london(2026, 7, 10), 1, date(2026, 7, 14), "12 July observed on the 13th"),
    ("scotland", london(2026, 11, 27), 1, date(2026, 12, 1), "St Andrew's Day"),
    ("england", london(2026, 10, 9), 1, date(2026, 10, 12), "over a weekend"),
    ("england", london(2026, 10, 10), 1, date(2026, 10, 12), "starting on a Saturday"),
    ("england", london(2026, 10, 9, 23, 30), 1, date(2026, 10, 12), "late Friday evening: the day itself never counts"),
    ("england", london(2026, 10, 12, 7, 0), 1, date(2026, 10, 13), "before hours: the day itself never counts"),
    ("england", london(2026, 10, 12), 0, date(2026, 10, 12), "n=0: end of the same working day"),
    ("england", london(2026, 10, 10), 0, date(2026, 10, 12), "n=0 on a weekend: the next working day"),
    ("england", london(2026, 3, 27), 1, date(2026, 3, 30), "over the change to BST"),
    ("england", london(2026, 10, 23), 1, date(2026, 10, 26), "over the change to GMT"),
]


@pytest.mark.parametrize("nation,start,n,due,why", ADD_DAYS_TABLE, ids=[r[4] for r in ADD_DAYS_TABLE])
def test_add_working_days(nation, start, n, due, why):
    got = add_working_days(p(nation), start, n)
    assert got.tzinfo == UTC
    assert got == datetime.combine(due, time(18), tzinfo=LONDON)


def test_add_working_days_skips_a_school_closure():
    pol = p(closures=["2026-10-12"])
    assert add_working_days(pol, london(2026, 10, 9), 1) == london(2026, 10, 13, 18)


def test_add_working_days_across_bst_gives_the_right_utc_instant():
    assert add_working_days(p(), london(2026, 3, 27), 1) == datetime(2026, 3, 30, 17, tzinfo=UTC)  # BST
    assert add_working_days(p(), london(2026, 10, 23), 1) == datetime(2026, 10, 26, 18, tzinfo=UTC)  # GMT


def test_add_working_days_uses_the_school_timezone_for_the_start_day():
    # 23:30 UTC on Sunday is 00:30 on Monday in London in summer, so Monday is the start day.
    start = datetime(2026, 6, 7, 23, 30, tzinfo=UTC)
    assert add_working_days(p(), start, 1) == london(2026, 6, 9, 18)


def test_naive_datetimes_and_negative_counts_are_refused():
    with pytest.raises(ValueError, match="aware"):
        add_working_days(p(), datetime(2026, 6, 1, 10), 1)
    with pytest.raises(ValueError):
        add_working_days(p(), london(2026, 6, 1), -1)


@pytest.mark.parametrize("a,b,expected", [
    (london(2026, 12, 24), london(2026, 12, 29), 1),
    (london(2026, 12, 24), london(2027, 1, 7, 9), 7),
    (london(2026, 10, 12, 9), london(2026, 10, 12, 17), 0),
    (london(2026, 10, 9), london(2026, 10, 11), 0),
    (london(2026, 12, 29), london(2026, 12, 24), -1),
])
def test_working_days_between(a, b, expected):
    assert working_days_between(p(), a, b) == expected


# --- working hours ------------------------------------------------------------------------

@pytest.mark.parametrize("at,expected", [
    (london(2026, 6, 1, 7, 59), False),
    (london(2026, 6, 1, 8, 0), True),
    (london(2026, 6, 1, 17, 59), True),
    (london(2026, 6, 1, 18, 0), False),
    (london(2026, 6, 6, 10), False),                     # Saturday
    (london(2026, 5, 25, 10), False),                    # spring bank holiday
    (datetime(2026, 3, 30, 7, 30, tzinfo=UTC), True),    # 08:30 BST
    (datetime(2026, 3, 27, 7, 30, tzinfo=UTC), False),   # 07:30 GMT
])
def test_in_working_hours(at, expected):
    assert in_working_hours(p(), at) is expected


@pytest.mark.parametrize("at,expected", [
    (london(2026, 6, 1, 10, 15), london(2026, 6, 1, 10, 15)),   # already inside: unchanged
    (london(2026, 6, 1, 6, 0), london(2026, 6, 1, 8, 0)),       # early morning
    (london(2026, 6, 5, 18, 30), london(2026, 6, 8, 8, 0)),     # Friday evening -> Monday
    (london(2026, 6, 6, 12, 0), london(2026, 6, 8, 8, 0)),      # Saturday
    (london(2026, 12, 24, 19, 0), london(2026, 12, 29, 8, 0)),  # Christmas
    (london(2026, 4, 2, 18, 0), london(2026, 4, 7, 8, 0)),      # Easter weekend
    (london(2026, 3, 27, 20, 0), datetime(2026, 3, 30, 7, tzinfo=UTC)),  # into BST
])
def test_next_working_time(at, expected):
    got = next_working_time(p(), at)
    assert got == expected and got.tzinfo == UTC


def test_next_working_time_skips_a_closure():
    pol = p(closures=[date(2026, 6, 8)])
    assert next_working_time(pol, london(2026, 6, 5, 18, 30)) == london(2026, 6, 9, 8)


@pytest.mark.parametrize("start,hours,expected", [
    (london(2026, 6, 1, 10), 2, london(2026, 6, 1, 12)),
    (london(2026, 6, 1, 16), 2, london(2026, 6, 1, 18)),           # uses the period up exactly
    (london(2026, 6, 1, 17), 2, london(2026, 6, 2, 9)),            # evening not counted
    (london(2026, 6, 5, 17, 30), 2, london(2026, 6, 8, 9, 30)),    # over the weekend
    (london(2026, 6, 6, 12), 1.5, london(2026, 6, 8, 9, 30)),      # from a Saturday
    (london(2026, 12, 24, 17), 12, london(2026, 12, 30, 9)),       # 1h + 10h + 1h over Christmas
    (london(2026, 3, 27, 17), 2, datetime(2026, 3, 30, 8, tzinfo=UTC)),  # GMT -> BST
    (london(2026, 10, 23, 17), 2, datetime(2026, 10, 26, 9, tzinfo=UTC)),  # BST -> GMT
    (london(2026, 6, 5, 20), 0, london(2026, 6, 8, 8)),
])
def test_add_working_hours(start, hours, expected):
    assert add_working_hours(p(), start, hours) == expected


def test_add_working_hours_follows_configured_hours():
    pol = p(overrides=[{"working_hours": {"start": "09:00", "end": "15:30"}}])
    assert add_working_hours(pol, london(2026, 6, 1, 15), 1) == london(2026, 6, 2, 9, 30)


# --- statutory clock ----------------------------------------------------------------------

@pytest.mark.parametrize("step,due", [
    ("sc_acknowledgement", date(2026, 6, 10)),
    ("sc_decision", date(2026, 6, 2)),
    ("strategy_discussion", date(2026, 6, 2)),
    ("section47", date(2026, 6, 15)),
    ("icpc", date(2026, 6, 22)),
])
def test_statutory_deadlines_from_a_monday(step, due):
    assert statutory_deadline(p(), step, london(2026, 6, 1, 11)) == datetime.combine(due, time(18), tzinfo=LONDON)


def test_statutory_deadline_over_easter():
    # Referral on the Thursday before Easter 2026: England loses Good Friday and Easter Monday,
    # Scotland only Good Friday.
    assert statutory_deadline(p(), "sc_acknowledgement", london(2026, 4, 2)) == london(2026, 4, 15, 18)
    assert statutory_deadline(p("scotland"), "sc_acknowledgement", london(2026, 4, 2)) == london(2026, 4, 14, 18)


def test_statutory_timescales_come_from_policy_not_code():
    pol = p(overrides=[{"statutory": {"icpc": 10}}])
    assert statutory_deadline(pol, "icpc", london(2026, 6, 1)) == london(2026, 6, 15, 18)


def test_unknown_statutory_step_is_refused():
    with pytest.raises(ValueError, match="section47"):
        statutory_deadline(p(), "section_47", london(2026, 6, 1))
    assert STATUTORY_STEPS == ("sc_acknowledgement", "sc_decision", "strategy_discussion", "section47", "icpc")


# --- overrides ----------------------------------------------------------------------------

TRUST = {"statutory": {"icpc": 10, "section47": 8}, "working_hours": {"end": "17:00"},
         "nudges": {"inactivity_working_days": 5}}
SCHOOL = {"working_hours": {"end": "16:30"}, "statutory": {"section47": 12}, "pattern": {"window_days": 60}}


def _check_merged(pol: Policy):
    assert pol.working_hours.end == time(16, 30)      # school beats trust
    assert pol.working_hours.start == time(8)         # untouched default kept in a merged table
    assert pol.statutory.section47 == 12               # school beats trust
    assert pol.statutory.icpc == 10                    # trust beats default
    assert pol.statutory.sc_acknowledgement == 7       # default
    assert pol.nudges.inactivity_working_days == 5
    assert pol.nudges.referrer_followup_working_days == 3
    assert pol.pattern.window_days == 60 and pol.pattern.concerns_in_window == 3


def test_override_merging_school_over_trust_over_defaults():
    _check_merged(build_policy(overrides=[TRUST, SCHOOL]))


def test_policy_for_real_school_and_trust_rows():
    trust = Trust(slug="t", name="Trust", policy=TRUST)
    school = School(trust_id=1, slug="s", name="School", nation="northern_ireland", timezone="Europe/London",
                    policy=SCHOOL, closures=["2026-06-01"])
    pol = policy_for(school, trust)
    _check_merged(pol)
    assert pol.nation == "northern_ireland" and pol.closures == frozenset({date(2026, 6, 1)})
    assert not is_working_day(pol, date(2026, 3, 17))


def test_policy_for_without_trust_and_with_empty_overrides():
    school = SimpleNamespace(nation="wales", timezone="Europe/London", closures=[], policy={})
    assert policy_for(school) == build_policy(nation="wales")
    assert policy_for(SimpleNamespace(nation="wales", timezone="Europe/London", closures=None, policy=None),
                      SimpleNamespace(policy=None)) == build_policy(nation="wales")


def test_merging_does_not_change_the_callers_dicts_or_the_defaults():
    trust = {"working_hours": {"days": ["mon", "tue"]}}
    build_policy(overrides=[trust, {"working_hours": {"end": "17:00"}}])
    assert trust == {"working_hours": {"days": ["mon", "tue"]}}
    assert p().working_hours.end == time(18) and p().working_hours.days == frozenset(range(5))


def test_tables_owned_elsewhere_pass_through():
    pol = build_policy(overrides=[{"routing": {"staff_allegations": "headteacher"}}])
    assert pol.statutory.icpc == 15


def test_other_timezones_are_respected():
    pol = p(timezone="America/New_York")
    assert in_working_hours(pol, datetime(2026, 6, 1, 13, tzinfo=UTC))      # 09:00 EDT
    assert not in_working_hours(pol, datetime(2026, 6, 1, 11, tzinfo=UTC))  # 07:00 EDT


@pytest.mark.parametrize("kwargs,key", [
    ({"overrides": [{"nudges": {"inactivity_working_days": -1}}]}, "nudges.inactivity_working_days"),
    ({"overrides": [{"nudges": {"inactivty_working_days": 3}}]}, "nudges.inactivty_working_days"),
    ({"overrides": [{"statutory": {"icpc": "fifteen"}}]}, "statutory.icpc"),
    ({"overrides": [{"statutory": {"sc_decision": -1}}]}, "statutory.sc_decision"),
    ({"overrides": [{}, {"statutory": 5}]}, "statutory"),
    ({"overrides": [{"working_hours": {"start": "25:00"}}]}, "working_hours.start"),
    ({"overrides": [{"working_hours": {"start": "19:00"}}]}, "working_hours"),
    ({"overrides": [{"working_hours": {"days": ["mon", "funday"]}}]}, "working_hours.days"),
    ({"overrides": [{"working_hours": {"days": []}}]}, "working_hours.days"),
    ({"overrides": [{"pattern": {"window_days": 0}}]}, "pattern.window_days"),
    ({"overrides": [{"nudges": {"urgent_ack_escalate_head_minutes": 15}}]}, "urgent_ack_escalate_head_minutes"),
    ({"overrides": [{"nudges": {"ack_escalate_deputies_working_days": 3}}]}, "ack_escalate_head_working_days"),
    ({"nation": "france"}, "nation"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"closures": ["2026-13-01"]}, "closures"),
])
def test_invalid_policy_is_refused_naming_the_key(kwargs, key):
    with pytest.raises(PolicyError) as e:
        build_policy(**kwargs)
    assert key in str(e.value)


def test_a_school_cannot_break_what_the_trust_set():
    with pytest.raises(PolicyError, match="working_hours"):
        policy_for(SimpleNamespace(nation="england", timezone="Europe/London", closures=[],
                                   policy={"working_hours": {"start": "17:30"}}),
                   SimpleNamespace(policy={"working_hours": {"end": "17:00"}}))


# --- properties ---------------------------------------------------------------------------

instants = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31),
                        timezones=st.just(UTC))
nations = st.sampled_from(NATIONS)
POLICIES = {n: p(n, closures=["2026-10-26", "2027-02-15"]) for n in NATIONS}


@settings(max_examples=150, deadline=None)
@given(nation=nations, start=instants, n=st.integers(min_value=0, max_value=40))
def test_add_working_days_lands_on_the_end_of_a_working_day_and_is_monotonic(nation, start, n):
    pol = POLICIES[nation]
    due = add_working_days(pol, start, n)
    local = due.astimezone(LONDON)
    assert is_working_day(pol, local.date())
    assert local.time() == pol.working_hours.end
    later = add_working_days(pol, start, n + 1)
    assert later >= due
    if n >= 1:
        # n=0 and n=1 coincide when start falls on a non-working day; from 1 on, strictly later
        assert later > due and due > start
        assert working_days_between(pol, start, due) == n


@settings(max_examples=150, deadline=None)
@given(nation=nations, at=instants)
def test_next_working_time_is_the_first_working_instant(nation, at):
    pol = POLICIES[nation]
    nxt = next_working_time(pol, at)
    assert nxt >= at and in_working_hours(pol, nxt)
    if nxt != at:
        assert nxt.astimezone(LONDON).time() == pol.working_hours.start
        # nothing in between was working time (working periods start and end on the hour)
        probe = at
        while probe < nxt - timedelta(hours=1):
            probe += timedelta(hours=1)
            assert not in_working_hours(pol, probe)


@settings(max_examples=100, deadline=None)
@given(nation=nations, start=instants, hours=st.floats(min_value=0, max_value=60, allow_nan=False))
def test_add_working_hours_is_monotonic(nation, start, hours):
    pol = POLICIES[nation]
    end = add_working_hours(pol, start, hours)
    assert end >= start
    assert add_working_hours(pol, start, hours + 0.5) > end
