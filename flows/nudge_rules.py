"""The nudge rules: when a reminder or an escalation becomes due, who gets it, and what
cancels it. All timings come from the school's policy (flows/data/policy.toml, ``[nudges]``
and ``[statutory]``, with trust and school overrides); none is a constant here.

Two halves, both transport-neutral:

- **Scheduling** (`on_concern_event`, registered with flows.schedule): flows call
  ``schedule.on_event`` inside the transaction of every change; the rules add Nudge rows
  (each with a ``dedupe_key``, so a rule never creates the same nudge twice) and cancel the
  ones whose awaited event has just been recorded.
- **Firing** (`fire_batch`, called by the worker, bot/worker.py, in the transaction that
  claimed and locked the due rows and their concerns): each nudge re-checks its concern
  (stale ones are cancelled, not sent), becomes outbox message(s) and, for a ladder,
  schedules its next step — all in that one transaction.

Kinds of nudge (Nudge.kind):

| kind | scheduled when | recipients | cancelled by |
| --- | --- | --- | --- |
| ``ack`` step 1/2/3 | raised | routed recipients, then deputy DSLs, then the headteacher (the chair when the head is the subject) | acknowledged, decided, closed |
| ``referrer_follow_up`` | raised | the referrer | outcome_shared, closed |
| ``review_checkin`` | decided (review date) | the referrer and the handler | a new decision (new date), closed |
| ``social_care`` step 1-5 | social care referral; each recorded step | the handler (else the routed recipients) | that step recorded, closed |
| ``inactivity`` | any event (re-armed) | the handler (else the routed recipients) | the next event (re-armed), closed |

Urgent concerns' acknowledgement ladder runs in minutes at any hour; every other nudge is
reckoned in working time and delivered inside the school's working hours.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Callable, Iterable

from sqlalchemy import JSON, text, update
from sqlmodel import Session, select

from storage import chain
from storage.types import UTCDateTime
from storage.models import Concern, ConcernStatus, Nudge, OutboxMessage, Person, Role, RoleAssignment, School, Trust

from . import access, notices, schedule
from .policy import (STATUTORY_STEPS, Policy, add_working_days, add_working_hours, next_working_time, policy_for,
                     statutory_deadline)

log = logging.getLogger(__name__)

ACK = "ack"
REFERRER_FOLLOW_UP = "referrer_follow_up"
REVIEW = "review_checkin"
SOCIAL_CARE = "social_care"
INACTIVITY = "inactivity"
KINDS = (ACK, REFERRER_FOLLOW_UP, REVIEW, SOCIAL_CARE, INACTIVITY)

ACK_STEPS = {1: "re-alert", 2: "deputy DSLs", 3: "headteacher"}
SC_STEP_NO = {name: i + 1 for i, name in enumerate(STATUTORY_STEPS)}  # Nudge.step for social care
SC_LABELS = {"sc_acknowledgement": "Social care acknowledgement of the referral",
             "sc_decision": "Social care's initial decision",
             "strategy_discussion": "Strategy discussion",
             "section47": "Section 47 enquiries",
             "icpc": "Initial child protection conference"}


# --- timing (shared by scheduling, firing and tests) ----------------------------------------

def working_day_hours(policy: Policy) -> float:
    wh = policy.working_hours
    d = date(2000, 1, 3)
    return (datetime.combine(d, wh.end) - datetime.combine(d, wh.start)).total_seconds() / 3600


def after_working_days(policy: Policy, start: datetime, days: int) -> datetime:
    """``days`` full working days of working time after ``start`` (Tuesday 11:00 + 1 is
    Wednesday 11:00; Friday 17:00 + 1 is Monday 17:00; bank holidays and closures skipped),
    moved into working hours: by definition
    ``next_working_time(add_working_hours(start, days * hours in a working day))``.

    Computed in closed form (the sweep calls this for every inactivity nudge): from the
    working moment ``start`` becomes, the same time of day on the ``days``-th working day
    after it (tests/test_nudges.py checks it against the definition)."""
    if days <= 0:
        return next_working_time(policy, start)
    begin = _next_working_moment(policy, start)
    day = _nth_working_day_after(policy, begin.date(), days)
    # ``begin`` is inside working hours, so the same time on a working day is too.
    return datetime.combine(day, begin.time().replace(tzinfo=None), tzinfo=policy.tz).astimezone(timezone.utc)


def _next_working_moment(policy: Policy, at: datetime) -> datetime:
    """policy.next_working_time, in school local time, from day-level caches."""
    local = at.astimezone(policy.tz)
    wh, d = policy.working_hours, local.date()
    if _is_working_day(policy, d) and local.time() < wh.end:
        return local if local.time() >= wh.start else datetime.combine(d, wh.start, tzinfo=policy.tz)
    return datetime.combine(_nth_working_day_after(policy, d, 1), wh.start, tzinfo=policy.tz)


# Day-level answers per Policy object. A sweep asks them thousands of times; keyed by the
# object's identity (the entry keeps the object alive, so the id cannot be reused) because
# hashing a Policy's nested models costs more than the answer.
_CALENDARS: dict[int, tuple[Policy, dict, dict]] = {}


def _calendar(policy: Policy) -> tuple[dict, dict]:
    entry = _CALENDARS.get(id(policy))
    if entry is None or entry[0] is not policy:
        if len(_CALENDARS) > 256:
            _CALENDARS.clear()
        entry = _CALENDARS[id(policy)] = (policy, {}, {})
    return entry[1], entry[2]


def _is_working_day(policy: Policy, d: date) -> bool:
    known, _ = _calendar(policy)
    if d not in known:
        from .policy import is_working_day

        known[d] = is_working_day(policy, d)
    return known[d]


def _nth_working_day_after(policy: Policy, d: date, n: int) -> date:
    _, known = _calendar(policy)
    if (d, n) not in known:
        noon = datetime.combine(d, time(12), tzinfo=policy.tz)
        known[(d, n)] = add_working_days(policy, noon, n).astimezone(policy.tz).date()
    return known[(d, n)]


def ack_due(policy: Policy, concern: Any, step: int) -> datetime:
    """When step ``step`` of the not-acknowledged ladder fires, counted from the raising."""
    n = policy.nudges
    if concern.urgent:  # minutes, day or night
        minutes = {1: n.urgent_ack_realert_minutes, 2: n.urgent_ack_escalate_deputies_minutes,
                   3: n.urgent_ack_escalate_head_minutes}[step]
        return concern.created_at + timedelta(minutes=minutes)
    if step == 1:
        return next_working_time(policy, add_working_hours(policy, concern.created_at, n.ack_realert_working_hours))
    days = n.ack_escalate_deputies_working_days if step == 2 else n.ack_escalate_head_working_days
    return after_working_days(policy, concern.created_at, days)


def referrer_follow_up_due(policy: Policy, raised_at: datetime) -> datetime:
    return after_working_days(policy, raised_at, policy.nudges.referrer_followup_working_days)


def inactivity_due(policy: Policy, last_activity: datetime) -> datetime:
    return after_working_days(policy, last_activity, policy.nudges.inactivity_working_days)


def review_due(policy: Policy, review_date: date) -> datetime:
    """The start of working hours on the review date (or the next working period)."""
    start = datetime.combine(review_date, policy.working_hours.start, tzinfo=policy.tz)
    return next_working_time(policy, start)


def social_care_due(policy: Policy, step: str, start: datetime) -> tuple[datetime, datetime]:
    """(statutory deadline, when the chase fires): the step is overdue once its deadline (the end
    of working hours on the last allowed working day) has passed; the DSL hears at the start
    of the next working period."""
    deadline = statutory_deadline(policy, step, start)
    return deadline, next_working_time(policy, deadline + timedelta(seconds=1))


def local_text(policy: Policy, at: datetime) -> str:
    return at.astimezone(policy.tz).strftime("%a %d %b %Y %H:%M")


@lru_cache(maxsize=1024)
def _built_policy(nation: str, tz: str, closures: tuple, trust_json: str, school_json: str) -> Policy:
    # Keyed by content: schools sharing their trust's policy share one validated Policy, and a
    # changed policy is a new key.
    from .policy import build_policy

    return build_policy(nation=nation, timezone=tz, closures=closures,
                        overrides=[json.loads(trust_json), json.loads(school_json)])


def _policy(s: Session, school_id: int) -> Policy:
    school = s.get(School, school_id)
    return policy_for(school, s.get(Trust, school.trust_id))


# --- writing rows ---------------------------------------------------------------------------

def insert_ignoring_duplicates(s: Session, table, rows: list[dict], key: str = "dedupe_key") -> None:
    """One multi-row INSERT; rows whose ``key`` already exists are skipped (never an error), so
    a rule or a worker that runs twice writes nothing twice."""
    if not rows:
        return
    dialect = s.get_bind().dialect
    if dialect.name == "postgresql":
        # One statement and one parameter whatever the number of rows (a sweep writes
        # thousands): the rows travel as one JSON document that json_populate_recordset
        # turns back into rows of the table's own type on the server.
        cols = list(rows[0])
        stamps = [c for c in cols if isinstance(table.c[c].type, UTCDateTime)]
        docs, naive = [], {None: None}  # most rows share a few instants (the sweep's now)
        for r in rows:
            r = dict(r)
            for c in stamps:
                v = r[c]
                if v not in naive:
                    naive[v] = v.astimezone(timezone.utc).replace(tzinfo=None).isoformat()
                r[c] = naive[v]
            docs.append(r)
        names = ", ".join(cols)
        s.execute(text(f"INSERT INTO {table.name} ({names}) SELECT {names} "
                       f"FROM json_populate_recordset(NULL::{table.name}, CAST(:rows AS json)) "
                       f"ON CONFLICT ({key}) DO NOTHING"), {"rows": json.dumps(docs)})
        return
    from sqlalchemy.dialects.sqlite import insert

    s.execute(insert(table).on_conflict_do_nothing(index_elements=[key]), rows)


def _set_state(s: Session, ids: list[int], state: str, at: datetime) -> None:
    if not ids:
        return
    if s.get_bind().dialect.name == "postgresql":  # one array parameter, not thousands
        s.execute(text("UPDATE nudge SET state = :state, fired_at = :at WHERE id = ANY(CAST(:ids AS INTEGER[]))"),
                  {"state": state, "at": at.astimezone(timezone.utc).replace(tzinfo=None), "ids": ids})
        return
    s.execute(update(Nudge).where(Nudge.id.in_(ids)).values(state=state, fired_at=at)
              .execution_options(synchronize_session=False))


def nudge_row(*, kind: str, concern_id: int | None, due_at: datetime, dedupe_key: str, now: datetime,
              recipient_id: int | None = None, step: int = 0, urgent: bool = False,
              payload: dict | None = None) -> dict:
    return {"kind": kind, "concern_id": concern_id, "recipient_id": recipient_id, "due_at": due_at,
            "urgent": urgent, "state": "pending", "step": step, "payload": payload or {},
            "dedupe_key": dedupe_key, "created_at": now, "fired_at": None}


def _add(s: Session, *, replace: bool = False, **kw) -> None:
    """Schedule a nudge. Its dedupe_key makes this idempotent: a pending or fired nudge with the
    key is left alone; a cancelled one is brought back (the awaited thing is awaited again).
    ``replace``: other pending nudges of the same kind and step for the concern are cancelled."""
    row = nudge_row(**kw)
    if replace:
        cancel(s, row["concern_id"], [row["kind"]], step=row["step"], keep=row["dedupe_key"])
    if s.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(Nudge.__table__).values(row)
    s.execute(stmt.on_conflict_do_update(
        index_elements=["dedupe_key"], set_={"state": "pending", "due_at": stmt.excluded.due_at},
        where=Nudge.__table__.c.state == "cancelled"))


def cancel(s: Session, concern_id: int, kinds: Iterable[str] | None = None, *, step: int | None = None,
           keep: str | None = None) -> int:
    q = update(Nudge).where(Nudge.concern_id == concern_id, Nudge.state == "pending")
    if kinds is not None:
        q = q.where(Nudge.kind.in_(list(kinds)))
    if step is not None:
        q = q.where(Nudge.step == step)
    if keep is not None:
        q = q.where(Nudge.dedupe_key != keep)
    return s.execute(q.values(state="cancelled").execution_options(synchronize_session=False)).rowcount


# --- scheduling: called by the flows through schedule.on_event -------------------------------

def _iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds")


def _arm_inactivity(s: Session, concern: Concern, policy: Policy, now: datetime) -> None:
    if concern.status == ConcernStatus.closed:
        cancel(s, concern.id, [INACTIVITY])
        return
    _add(s, kind=INACTIVITY, concern_id=concern.id, due_at=inactivity_due(policy, now), now=now, replace=True,
         dedupe_key=f"inactivity:{concern.id}:{_iso(now)}", payload={"since": now.isoformat()})


def _schedule_social_care(s: Session, concern: Concern, policy: Policy, step: str, start: datetime,
                          now: datetime) -> None:
    deadline, due = social_care_due(policy, step, start)
    _add(s, kind=SOCIAL_CARE, concern_id=concern.id, step=SC_STEP_NO[step], due_at=due, now=now, replace=True,
         dedupe_key=f"sc:{concern.id}:{step}:{_iso(start)}",
         payload={"step": step, "from": start.isoformat(), "deadline": deadline.isoformat()})


@schedule.rule
def on_concern_event(s: Session, concern: Concern, event: str, now: datetime, info: dict) -> None:
    if event in ("transfer_exported", "transfer_confirmed"):
        return  # the child protection file's own rules
    if event == "closed":
        cancel(s, concern.id)
        return
    policy = _policy(s, concern.school_id)
    if event == "raised":
        if concern.handler_id is None:
            _add(s, kind=ACK, concern_id=concern.id, step=1, urgent=concern.urgent, now=now,
                 due_at=ack_due(policy, concern, 1), dedupe_key=f"ack:{concern.id}:1")
        _add(s, kind=REFERRER_FOLLOW_UP, concern_id=concern.id, recipient_id=concern.referrer_id, now=now,
             due_at=referrer_follow_up_due(policy, concern.created_at), dedupe_key=f"referrer:{concern.id}")
    elif event == "acknowledged":
        cancel(s, concern.id, [ACK])
    elif event == "decided":
        cancel(s, concern.id, [ACK])  # deciding takes ownership
        if concern.review_date:
            _add(s, kind=REVIEW, concern_id=concern.id, now=now, due_at=review_due(policy, concern.review_date),
                 replace=True,
                 dedupe_key=f"review:{concern.id}:{concern.review_date.isoformat()}",
                 payload={"review_date": concern.review_date.isoformat()})
        if info.get("decision") == "social_care_referral" and info.get("referred_at"):
            key = f"sc:{concern.id}:%:{_iso(info['referred_at'])}"
            s.execute(update(Nudge).where(Nudge.concern_id == concern.id, Nudge.kind == SOCIAL_CARE,
                                          Nudge.state == "pending", ~Nudge.dedupe_key.like(key))
                      .values(state="cancelled").execution_options(synchronize_session=False))  # a new clock
            for step in ("sc_acknowledgement", "sc_decision"):
                _schedule_social_care(s, concern, policy, step, info["referred_at"], now)
    elif event == "social_care_step":
        step, at = info["step"], info.get("at") or now
        cancel(s, concern.id, [SOCIAL_CARE], step=SC_STEP_NO[step])
        if step == "sc_decision":
            _schedule_social_care(s, concern, policy, "strategy_discussion", at, now)
        elif step == "strategy_discussion":
            _schedule_social_care(s, concern, policy, "section47", at, now)
            _schedule_social_care(s, concern, policy, "icpc", at, now)  # of the last strategy discussion
    elif event == "outcome_shared":
        cancel(s, concern.id, [REFERRER_FOLLOW_UP])
    _arm_inactivity(s, concern, policy, now)


# --- firing: called by the worker with the due rows locked ----------------------------------

CONCERN_COLUMNS = tuple(dict.fromkeys((
    "id", "school_id", "reference", "referrer_id", "status", "urgent", "handler_id", "acknowledged_at", "routed_to",
    "outcome_shared_at", "closed_at", "last_activity_at", "created_at", "review_date", "subject_person_id",
    "subject_role", "decision_kind") + access.RULE_COLUMNS))  # the recipients pass flows.access.may_be_told
NUDGE_COLUMNS = ("id", "kind", "concern_id", "recipient_id", "due_at", "urgent", "step", "payload")


@dataclass
class Fired:
    """What one batch did (counts only; no content)."""
    fired: int = 0
    cancelled: int = 0
    messages: int = 0
    by_kind: dict = field(default_factory=dict)


class FireContext:
    """Caches and pending writes for one batch; `flush` writes everything with a few statements."""

    def __init__(self, s: Session, now: datetime, concerns: list):
        self.s, self.now = s, now
        self._concerns = concerns
        self._by_id = {c.id: c for c in concerns}
        self._policies: dict[int, Policy] = {}
        self._roles: dict[tuple, list[int]] = {}
        ids: set[int] = set()
        for c in concerns:
            ids.update(i for i in (c.handler_id, c.referrer_id) if i)
            ids.update(c.routed_to or ())
        self._active = set(s.exec(select(Person.id).where(Person.id.in_(ids), Person.active))) if ids else set()
        self.outbox: list[dict] = []
        self.nudges: list[dict] = []
        self.done: list[int] = []
        self.cancelled: list[int] = []
        self.audits: list[dict] = []
        self.result = Fired()

    def policy(self, school_id: int) -> Policy:
        if school_id not in self._policies:
            if not self._policies:  # first use: every school of the batch, and their trusts, in two queries
                self._load_policies()
            if school_id not in self._policies:
                self._policies[school_id] = _policy(self.s, school_id)
        return self._policies[school_id]

    def _load_policies(self) -> None:
        ids = {c.school_id for c in self._concerns}
        if not ids:
            return
        schools = list(self.s.exec(select(School.id, School.trust_id, School.nation, School.timezone, School.closures,
                                          School.policy).where(School.id.in_(ids))))
        trusts = dict(self.s.exec(select(Trust.id, Trust.policy).where(Trust.id.in_({r[1] for r in schools}))).all())
        for sid, tid, nation, tz, closures, policy in schools:
            self._policies[sid] = _built_policy(nation, tz, tuple(closures or ()),
                                                json.dumps(trusts.get(tid) or {}, sort_keys=True),
                                                json.dumps(policy or {}, sort_keys=True))

    def inactivity_from_now(self, school_id: int) -> datetime:
        key = ("inactivity", school_id)
        if key not in self._roles:
            self._roles[key] = inactivity_due(self.policy(school_id), self.now)
        return self._roles[key]

    def with_roles(self, school_id: int, roles: Iterable[str]) -> list[int]:
        key = (school_id, tuple(sorted(str(r) for r in roles)))
        if key not in self._roles:
            q = (select(Person.id).join(RoleAssignment, RoleAssignment.person_id == Person.id)
                 .where(RoleAssignment.role.in_(key[1]), RoleAssignment.school_id == school_id, Person.active)
                 .order_by(Person.id))
            self._roles[key] = list(dict.fromkeys(self.s.exec(q)))
            self._active.update(self._roles[key])
        return self._roles[key]

    def active(self, ids: Iterable[int | None]) -> list[int]:
        return [i for i in dict.fromkeys(ids) if i and i in self._active]

    def handler_or_team(self, c) -> list[int]:
        """Whoever owns the concern; failing that (nobody yet, or they have left) the routed
        recipients; failing that the school's DSL team."""
        return (self.active([c.handler_id]) or self.active(c.routed_to or ())
                or self.with_roles(c.school_id, (Role.dsl, Role.deputy_dsl)))

    def send(self, nudge, kind: str, recipients: Iterable[int], payload: dict, urgent: bool = False) -> int:
        concern = self._by_id.get(nudge.concern_id)
        if concern is not None:  # never the adult it is about, whatever rule chose them (flows/access.py)
            recipients = access.told(self.s, concern, recipients, escalated=True)
        n = 0
        for rid in recipients:
            self.outbox.append({
                "dedupe_key": f"nudge:{nudge.id}:{rid}", "recipient_id": rid, "kind": kind, "payload": payload,
                "urgent": urgent, "state": "pending", "attempts": 0, "next_attempt_at": self.now,
                "last_error": None, "transport": None, "platform_ref": {}, "created_at": self.now, "sent_at": None,
                "claimed_by": None, "claimed_at": None})
            n += 1
        self.result.messages += n
        return n

    def schedule(self, **kw) -> None:
        self.nudges.append(nudge_row(now=self.now, **kw))

    def flush(self) -> None:
        s = self.s
        insert_ignoring_duplicates(s, OutboxMessage.__table__, self.outbox)
        insert_ignoring_duplicates(s, Nudge.__table__, self.nudges)
        _set_state(s, self.done, "done", self.now)
        _set_state(s, self.cancelled, "cancelled", self.now)
        for a in self.audits:
            chain.audit(s, at=self.now, **a)


def _actions(cid: int, *ids: str) -> list[dict]:
    labels = {notices.ACKNOWLEDGE: "Acknowledge", notices.OPEN_RECORD: "Open record",
              notices.RECORD_DECISION: "Record decision"}
    return [{"id": i, "label": labels[i], "value": {"concern_id": cid},
             **({"style": "primary"} if i == notices.ACKNOWLEDGE else {})} for i in ids]


def _fire_ack(ctx: FireContext, n, c) -> bool:
    if c.handler_id is not None or c.acknowledged_at is not None or c.status != ConcernStatus.raised:
        return False
    policy, step = ctx.policy(c.school_id), n.step or 1
    excluded = {c.referrer_id, c.subject_person_id}
    if step == 1:
        recipients = ctx.active(c.routed_to or ())
    elif step == 2:
        recipients = ctx.with_roles(c.school_id, [Role.deputy_dsl])
    else:
        head = [Role.chair_of_governors] if c.subject_role == "headteacher" else [Role.headteacher]
        recipients = ctx.with_roles(c.school_id, head)
    recipients = access.told(ctx.s, c, [r for r in recipients if r not in excluded], escalated=True)
    urgent = "URGENT " if c.urgent else ""
    raised = local_text(policy, c.created_at)
    if step == 1:
        payload = {"concern_id": c.id, "title": "Reminder: concern not acknowledged",
                   "text": f"Reminder: {urgent}safeguarding concern {c.reference} is waiting for you",
                   "lines": [f"Reference: {c.reference}", f"Raised {raised}; nobody has acknowledged it yet.",
                             "Acknowledge it to take ownership, or open the record."],
                   "actions": _actions(c.id, notices.ACKNOWLEDGE, notices.OPEN_RECORD)}
        kind = "ack_reminder"
    else:
        as_whom = "a deputy safeguarding lead" if step == 2 else (
            "chair of governors" if c.subject_role == "headteacher" else "the headteacher")
        payload = {"concern_id": c.id, "title": "Escalation: concern not acknowledged",
                   "text": f"Escalation: {urgent}safeguarding concern {c.reference} has not been acknowledged",
                   "lines": [f"Reference: {c.reference}", f"Raised {raised}; nobody has acknowledged it yet.",
                             f"You are alerted as {as_whom} under the school's escalation policy."],
                   "actions": _actions(c.id, notices.ACKNOWLEDGE, notices.OPEN_RECORD)}
        kind = "ack_escalation"
        ctx.audits.append({"action": "nudge.escalated", "school_id": c.school_id, "concern_id": c.id,
                           "details": {"nudge_id": n.id, "step": step, "recipients": recipients}})
    ctx.send(n, kind, recipients, payload, urgent=c.urgent)
    if step < 3:  # the next rung, in this same transaction
        ctx.schedule(kind=ACK, concern_id=c.id, step=step + 1, urgent=c.urgent,
                     due_at=ack_due(policy, c, step + 1), dedupe_key=f"ack:{c.id}:{step + 1}")
    return True


def _fire_referrer(ctx: FireContext, n, c) -> bool:
    if c.outcome_shared_at is not None:
        return False
    ctx.send(n, "referrer_follow_up", ctx.active([n.recipient_id or c.referrer_id]), {"concern_id": c.id})
    return True


def _fire_review(ctx: FireContext, n, c) -> bool:
    if not c.review_date or n.payload.get("review_date") != c.review_date.isoformat():
        return False  # superseded by a later decision's review date
    ctx.send(n, "checkin", ctx.active([c.referrer_id, *ctx.handler_or_team(c)]), {"concern_id": c.id})
    return True


def _fire_social_care(ctx: FireContext, n, c) -> bool:
    policy, step = ctx.policy(c.school_id), n.payload["step"]
    deadline = datetime.fromisoformat(n.payload["deadline"])
    ctx.send(n, "social_care_chase", ctx.handler_or_team(c), {
        "concern_id": c.id, "step": step, "title": "Social care timescale passed: chase",
        "text": f"{c.reference}: a children's social care timescale has passed",
        "lines": [f"Reference: {c.reference}",
                  f"{SC_LABELS[step]} was due by {local_text(policy, deadline)} and nothing is recorded.",
                  "Chase children's social care, then record the step on the record "
                  "(or a note of why it is late). Consider the escalation procedure if it stays late."],
        "actions": _actions(c.id, notices.OPEN_RECORD)})
    return True


def _fire_inactivity(ctx: FireContext, n, c) -> bool:
    policy = ctx.policy(c.school_id)
    due = inactivity_due(policy, c.last_activity_at)
    if due > ctx.now:  # something happened that no event reported: wait for the real date
        ctx.schedule(kind=INACTIVITY, concern_id=c.id, due_at=due, dedupe_key=f"inactivity:{c.id}:{_iso(c.last_activity_at)}",
                     payload={"since": c.last_activity_at.isoformat()})
        return False
    days = policy.nudges.inactivity_working_days
    ctx.send(n, "inactivity_reminder", ctx.handler_or_team(c), {
        "concern_id": c.id, "title": "No activity on an open concern",
        "text": f"{c.reference}: no activity for {days} working days",
        "lines": [f"Reference: {c.reference}",
                  f"Nothing has been recorded since {local_text(policy, c.last_activity_at)}.",
                  "Record what has happened, a decision with reasons, or close it with an outcome."],
        "actions": _actions(c.id, notices.OPEN_RECORD, notices.RECORD_DECISION)})
    ctx.schedule(kind=INACTIVITY, concern_id=c.id, due_at=ctx.inactivity_from_now(c.school_id),
                 dedupe_key=f"inactivity:{c.id}:{_iso(ctx.now)}", payload={"since": ctx.now.isoformat()})
    return True


FIRERS: dict[str, Callable[[FireContext, Any, Any], bool]] = {
    ACK: _fire_ack, REFERRER_FOLLOW_UP: _fire_referrer, REVIEW: _fire_review,
    SOCIAL_CARE: _fire_social_care, INACTIVITY: _fire_inactivity,
}


def firer(kind: str):
    """Register how another module's nudge kind fires: fn(ctx, nudge, concern) -> bool (sent?)."""
    def deco(fn):
        FIRERS[kind] = fn
        return fn
    return deco


def _fire_generic(ctx: FireContext, n, c) -> bool:
    """A nudge kind with no rule here: delivered as-is when it names a recipient and carries its
    own safe wording (payload title/text), else cancelled with a logged error."""
    if n.recipient_id and n.payload.get("title"):
        ctx.send(n, n.kind, [n.recipient_id], {**n.payload, "concern_id": n.concern_id}, urgent=n.urgent)
        return True
    log.error("nudge %s of unknown kind %s has no recipient or wording: cancelled", n.id, n.kind)
    return False


def fire_batch(s: Session, rows: list[tuple[Any, Any]], now: datetime) -> Fired:
    """Fire claimed nudges. ``rows`` are (nudge, concern-or-None) with both rows locked by the
    caller; everything is written in the caller's transaction."""
    ctx = FireContext(s, now, [c for _, c in rows if c is not None])
    for n, c in rows:
        if c is None and n.concern_id is not None:
            ok = False
        elif c is not None and c.status == ConcernStatus.closed:
            ok = False
        else:
            ok = FIRERS.get(n.kind, _fire_generic)(ctx, n, c)
        (ctx.done if ok else ctx.cancelled).append(n.id)
        if ok:
            ctx.result.fired += 1
            ctx.result.by_kind[n.kind] = ctx.result.by_kind.get(n.kind, 0) + 1
        else:
            ctx.result.cancelled += 1
    ctx.flush()
    return ctx.result


# --- reading: `safeguarding-bot nudges list` -------------------------------------------------

def pending(s: Session, limit: int = 200) -> list[dict]:
    """Pending nudges by due time: kind, step, reference and recipient emails. No content."""
    rows = s.exec(select(Nudge).where(Nudge.state == "pending").order_by(Nudge.due_at, Nudge.id).limit(limit)).all()
    cids = {n.concern_id for n in rows if n.concern_id}
    cols = [getattr(Concern, c) for c in CONCERN_COLUMNS]
    concerns = {r.id: r for r in s.exec(select(*cols).where(Concern.id.in_(cids)))} if cids else {}
    ctx = FireContext(s, datetime.now().astimezone(), list(concerns.values()))
    out = []
    for n in rows:
        c = concerns.get(n.concern_id)
        ids = _recipients_for_listing(ctx, n, c)
        ids = access.told(s, c, ids, escalated=True) if c is not None else ids
        emails = dict(s.exec(select(Person.id, Person.email).where(Person.id.in_(ids))).all()) if ids else {}
        out.append({"id": n.id, "due_at": n.due_at.isoformat(), "kind": n.kind, "step": n.step,
                    "what": SC_LABELS.get(n.payload.get("step"), ACK_STEPS.get(n.step)) if n.kind in (ACK, SOCIAL_CARE) else None,
                    "urgent": n.urgent, "reference": c.reference if c else None,
                    "recipients": [emails[i] for i in ids if i in emails]})
    return out


def _recipients_for_listing(ctx: FireContext, n, c) -> list[int]:
    if c is None:
        return [n.recipient_id] if n.recipient_id else []
    if n.kind == ACK:
        if (n.step or 1) == 1:
            return ctx.active(c.routed_to or ())
        if n.step == 2:
            return ctx.with_roles(c.school_id, [Role.deputy_dsl])
        return ctx.with_roles(c.school_id, [Role.chair_of_governors] if c.subject_role == "headteacher"
                              else [Role.headteacher])
    if n.kind == REFERRER_FOLLOW_UP:
        return [n.recipient_id or c.referrer_id]
    if n.kind == REVIEW:
        return ctx.active([c.referrer_id, *ctx.handler_or_team(c)])
    if n.kind in (SOCIAL_CARE, INACTIVITY):
        return ctx.handler_or_team(c)
    return [n.recipient_id] if n.recipient_id else []
