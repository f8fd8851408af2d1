"""Nudges are data: each reminder or escalation is a Nudge row with a due time, created here
from policy when something happens to a concern, and cancelled when the awaited event is
recorded. Flows call `on_event` inside the same transaction as the change; the worker
(issue: nudges and the outbox) sweeps due rows.

Events: raised, acknowledged, decided, referral, social_care_step, outcome_shared,
outcome, checkin, escalated, activity, closed, transfer_exported, transfer_confirmed."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from storage.models import Concern

_RULES: list = []


def rule(fn):
    """Register a scheduling rule: fn(session, concern, event, now, info) -> None."""
    _RULES.append(fn)
    return fn


def on_event(s: Session, concern: Concern, event: str, now: datetime, **info) -> None:
    for fn in _RULES:
        fn(s, concern, event, now, info)


from . import nudge_rules  # noqa: E402,F401  (registers the nudge rules)
