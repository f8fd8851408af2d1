"""Timescales, working days and working hours, as policy data (flows/data/policy.toml).

A school's policy is the defaults file, with the trust's overrides and then the school's
overrides deep-merged over it (school wins). The merged result is validated; a bad value
is refused with a `PolicyError` naming the key, e.g. ``nudges.inactivity_working_days``.
Top-level tables this module does not own (routing, say) are left for their owners.

Every function takes and returns aware datetimes; results are in UTC. Days and hours
are reckoned in the school's own timezone, so BST/GMT changes need no special care.

Working day: one of ``working_hours.days`` that is neither a bank holiday in the school's
nation (the ``holidays`` package, GB subdivisions ENG/WLS/SCT/NIR) nor a closure date.
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone as dt_timezone
from functools import lru_cache
from itertools import islice
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from dateutil.rrule import DAILY, rrule
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, field_validator, model_validator

DATA = Path(__file__).parent / "data" / "policy.toml"

Nation = Literal["england", "wales", "scotland", "northern_ireland"]
SUBDIVISION = {"england": "ENG", "wales": "WLS", "scotland": "SCT", "northern_ireland": "NIR"}
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
STATUTORY_STEPS = ("sc_acknowledgement", "sc_decision", "strategy_discussion", "section47", "icpc")


class PolicyError(ValueError):
    """A policy (defaults plus overrides) that cannot be used; the message names the key."""


class _Section(BaseModel):
    # Unknown keys inside a table we own are almost always typos that would silently
    # leave a default in force, so they are refused.
    model_config = ConfigDict(extra="forbid", frozen=True)


class WorkingHours(_Section):
    start: time
    end: time
    days: frozenset[int]  # 0 = Monday, as date.weekday()

    @field_validator("days", mode="before")
    @classmethod
    def _day_names(cls, v: Any) -> Any:
        if isinstance(v, (list, tuple, set, frozenset)):
            out = []
            for d in v:
                if isinstance(d, str):
                    if d.lower()[:3] not in WEEKDAYS:
                        raise ValueError(f"unknown day {d!r}; use {', '.join(WEEKDAYS)}")
                    d = WEEKDAYS.index(d.lower()[:3])
                out.append(d)
            return frozenset(out)
        return v

    @field_validator("days")
    @classmethod
    def _some_days(cls, v: frozenset[int]) -> frozenset[int]:
        if not v:
            raise ValueError("at least one working day is needed")
        if not v <= set(range(7)):
            raise ValueError("weekdays are 0 (Monday) to 6 (Sunday)")
        return v

    @model_validator(mode="after")
    def _start_before_end(self) -> "WorkingHours":
        if self.start >= self.end:
            raise ValueError(f"start ({self.start:%H:%M}) must be before end ({self.end:%H:%M})")
        return self


class Statutory(_Section):
    # Zero is allowed: "the same working day" is a procedure a trust may choose.
    sc_acknowledgement: int = Field(ge=0)
    sc_decision: int = Field(ge=0)
    strategy_discussion: int = Field(ge=0)
    section47: int = Field(ge=0)
    icpc: int = Field(ge=0)


class Nudges(_Section):
    urgent_ack_realert_minutes: PositiveInt
    urgent_ack_escalate_deputies_minutes: PositiveInt
    urgent_ack_escalate_head_minutes: PositiveInt
    ack_realert_working_hours: float = Field(gt=0)
    ack_escalate_deputies_working_days: PositiveInt
    ack_escalate_head_working_days: PositiveInt
    referrer_followup_working_days: PositiveInt
    inactivity_working_days: PositiveInt
    review_default_working_days: PositiveInt
    transfer_confirm_working_days: PositiveInt

    @model_validator(mode="after")
    def _ladder_in_order(self) -> "Nudges":
        # The headteacher is the last rung: reaching them before the deputies would skip one.
        if self.urgent_ack_escalate_head_minutes < self.urgent_ack_escalate_deputies_minutes:
            raise ValueError("urgent_ack_escalate_head_minutes must not be less than "
                             "urgent_ack_escalate_deputies_minutes")
        if self.ack_escalate_head_working_days < self.ack_escalate_deputies_working_days:
            raise ValueError("ack_escalate_head_working_days must not be less than "
                             "ack_escalate_deputies_working_days")
        return self


class Pattern(_Section):
    window_days: PositiveInt
    concerns_in_window: PositiveInt
    same_category_repeats: PositiveInt


class _Settings(BaseModel):
    model_config = ConfigDict(extra="ignore")  # other modules' tables pass through
    nation: Nation
    timezone: str
    closures: frozenset[date]
    working_hours: WorkingHours
    statutory: Statutory
    nudges: Nudges
    pattern: Pattern

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {v!r} (use an IANA name such as Europe/London)") from None
        return v


@dataclass(frozen=True)
class Policy:
    nation: str
    timezone: str
    closures: frozenset[date]
    working_hours: WorkingHours
    statutory: Statutory
    nudges: Nudges
    pattern: Pattern

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@lru_cache
def defaults() -> dict[str, Any]:
    return tomllib.loads(DATA.read_text())


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _merge(dict(out[k]), v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def build_policy(*, nation: str = "england", timezone: str = "Europe/London",
                 closures: Iterable[str | date] = (),
                 overrides: Iterable[Mapping[str, Any] | None] = ()) -> Policy:
    """Defaults, then each override in order (pass ``[trust_dict, school_dict]``)."""
    merged: dict[str, Any] = {}
    for layer in [defaults(), *(o or {} for o in overrides)]:
        if not isinstance(layer, Mapping):
            raise PolicyError(f"policy overrides must be a table of keys, not {type(layer).__name__}")
        merged = _merge(merged, layer)
    merged.update(nation=nation, timezone=timezone, closures=list(closures or ()))
    try:
        s = _Settings.model_validate(merged)
    except ValidationError as e:
        raise PolicyError("invalid policy: " + "; ".join(_describe(err) for err in e.errors())) from None
    return Policy(nation=s.nation, timezone=s.timezone, closures=s.closures,
                  working_hours=s.working_hours, statutory=s.statutory, nudges=s.nudges, pattern=s.pattern)


def _describe(err: Mapping[str, Any]) -> str:
    key = ".".join(str(p) for p in err["loc"]) or "policy"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key (check the spelling against flows/data/policy.toml)"
    elif "input" in err and err["type"] != "missing" and not isinstance(err["input"], Mapping):
        msg += f" (got {err['input']!r})"
    return f"{key}: {msg}"


def policy_for(school: Any, trust: Any = None) -> Policy:
    """The policy for a School row, with its Trust's overrides under the school's."""
    return build_policy(nation=school.nation, timezone=school.timezone, closures=school.closures or (),
                        overrides=[getattr(trust, "policy", None), school.policy])


# --- working days -------------------------------------------------------------------------

@lru_cache(maxsize=256)
def _bank_holidays(nation: str, year: int) -> frozenset[date]:
    # Built eagerly per year and frozen: a shared lazily-expanding holidays object would be
    # mutated from several worker threads.
    return frozenset(holidays.country_holidays("GB", subdiv=SUBDIVISION[nation], years=year).keys())


def is_working_day(policy: Policy, d: date) -> bool:
    return (d.weekday() in policy.working_hours.days
            and d not in policy.closures
            and d not in _bank_holidays(policy.nation, d.year))


def _working_days_after(policy: Policy, d: date) -> Iterable[date]:
    days = sorted(policy.working_hours.days)
    for dt in rrule(DAILY, dtstart=datetime.combine(d + timedelta(days=1), time()), byweekday=days):
        if is_working_day(policy, dt.date()):
            yield dt.date()


def _local(policy: Policy, at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("an aware datetime is required (naive times are ambiguous across BST/GMT)")
    return at.astimezone(policy.tz)


def _at(policy: Policy, d: date, t: time) -> datetime:
    return datetime.combine(d, t, tzinfo=policy.tz).astimezone(dt_timezone.utc)


def add_working_days(policy: Policy, start: datetime, n: int) -> datetime:
    """The deadline for something due "within ``n`` working days of ``start``".

    It is the end of working hours (school local time) on the ``n``th working day after
    the local calendar day of ``start``. The day of ``start`` itself never counts, whatever
    the hour: a referral on Friday at 09:00 or at 21:00, or on Saturday, with n=1 is due by
    Monday 18:00 (when Monday is a working day). n=0 means the end of working hours on the
    day of ``start`` if that is a working day, else on the next working day.
    """
    if n < 0:
        raise ValueError("n must not be negative")
    d = _local(policy, start).date()
    if n == 0:
        if not is_working_day(policy, d):
            d = next(iter(_working_days_after(policy, d)))
    else:
        d = next(islice(_working_days_after(policy, d), n - 1, None))
    return _at(policy, d, policy.working_hours.end)


def working_days_between(policy: Policy, a: datetime, b: datetime) -> int:
    """Working days after the local day of ``a`` up to and including the local day of ``b``
    (negative when ``b`` is earlier), so that
    ``working_days_between(p, s, add_working_days(p, s, n)) == n`` for n >= 1."""
    da, db = _local(policy, a).date(), _local(policy, b).date()
    if db < da:
        return -working_days_between(policy, b, a)
    count = 0
    for d in _working_days_after(policy, da):
        if d > db:
            break
        count += 1
    return count


# --- working hours ------------------------------------------------------------------------

def in_working_hours(policy: Policy, at: datetime) -> bool:
    local = _local(policy, at)
    wh = policy.working_hours
    return is_working_day(policy, local.date()) and wh.start <= local.time() < wh.end


def next_working_time(policy: Policy, at: datetime) -> datetime:
    """``at`` itself (in UTC) when it falls in working hours on a working day, else the start
    of the next working period: where a non-urgent nudge due in the evening, at a weekend,
    on a bank holiday or a closure day is delivered."""
    if in_working_hours(policy, at):
        return at.astimezone(dt_timezone.utc)
    local = _local(policy, at)
    d = local.date()
    if not (is_working_day(policy, d) and local.time() < policy.working_hours.start):
        d = next(iter(_working_days_after(policy, d)))
    return _at(policy, d, policy.working_hours.start)


def add_working_hours(policy: Policy, start: datetime, hours: float) -> datetime:
    """``start`` plus ``hours`` of working time, counting only time inside working hours on
    working days. Time before ``start``'s working period begins is not counted; a result
    that uses up a period exactly is that period's end (e.g. 16:00 + 2h = 18:00)."""
    if hours < 0:
        raise ValueError("hours must not be negative")
    remaining = timedelta(hours=hours)
    cur = next_working_time(policy, start)
    while True:
        # Arithmetic in UTC: aware datetimes sharing a ZoneInfo subtract as wall-clock times.
        period_end = _at(policy, _local(policy, cur).date(), policy.working_hours.end)
        available = period_end - cur
        if remaining <= available:
            return cur + remaining
        remaining -= available
        cur = next_working_time(policy, period_end)


def statutory_deadline(policy: Policy, step: str, start: datetime) -> datetime:
    """When a children's social care step is due (seed 004), counted as ``add_working_days``
    from ``start``: the referral for sc_acknowledgement and sc_decision; the decision to hold
    one for strategy_discussion; the strategy discussion for section47; the last strategy
    discussion for icpc."""
    if step not in STATUTORY_STEPS:
        raise ValueError(f"unknown statutory step {step!r}; expected one of {', '.join(STATUTORY_STEPS)}")
    return add_working_days(policy, start, getattr(policy.statutory, step))
