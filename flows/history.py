"""A child's wider history, and the pattern flags the DSL should not miss (seed 001: "all
concerns are considered in the context of a child's wider history")."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import Session, select

from storage.models import Child, Concern, ConcernStatus, School
from storage.people import siblings_of

from . import taxonomy
from .access import may_handle


@dataclass
class PastConcern:
    concern_id: int
    reference: str
    created_at: datetime
    categories: list[str]
    status: str
    decision: str | None
    child_name: str | None = None


@dataclass
class History:
    earlier: list[PastConcern] = field(default_factory=list)
    siblings: list[PastConcern] = field(default_factory=list)
    open_cases: list[PastConcern] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)


def _past(c: Concern, name: str | None = None) -> PastConcern:
    return PastConcern(c.id, c.reference, c.created_at, list(c.categories), c.status, c.decision_kind, name)


def wider_history(s: Session, concern: Concern, viewer_id: int) -> History:
    """The child's other concerns and their siblings' that ``viewer_id`` may handle
    (flows/access.py), and the pattern flags computed from those alone: a concern withheld from
    the viewer (an allegation about them, or one whose adult is not yet identified) shows no
    reference, category or decision, and moves no count."""
    h = History()
    if concern.child_id is None:
        h.flags.append("The child is not matched to the roll yet, so their earlier history cannot be shown.")
        return h
    child = s.get(Child, concern.child_id)
    others = [c for c in s.exec(select(Concern).where(Concern.child_id == child.id, Concern.id != concern.id)
                                .order_by(Concern.created_at))
              if may_handle(s, viewer_id, c)]
    h.earlier = [_past(c) for c in others]
    h.open_cases = [_past(c) for c in others if c.status != ConcernStatus.closed]
    for sib in siblings_of(s, child):
        for c in s.exec(select(Concern).where(Concern.child_id == sib.id).order_by(Concern.created_at)):
            if may_handle(s, viewer_id, c):
                h.siblings.append(_past(c, sib.name))
    h.flags = pattern_flags(s, concern, others)
    return h


def pattern_flags(s: Session, concern: Concern, others: list[Concern]) -> list[str]:
    from storage.models import Trust

    from .policy import policy_for

    school = s.get(School, concern.school_id)
    pattern = policy_for(school, s.get(Trust, school.trust_id)).pattern
    flags = []
    window_start = concern.created_at - timedelta(days=pattern.window_days)
    recent = [c for c in others if window_start <= c.created_at <= concern.created_at]
    if len(recent) + 1 >= pattern.concerns_in_window:
        flags.append(f"{len(recent) + 1} concerns about this child in {pattern.window_days} days.")
    counts = Counter(cat for c in others for cat in c.categories)
    for cat in concern.categories:
        if counts[cat] + 1 >= pattern.same_category_repeats:
            flags.append(f"“{taxonomy.label(cat)}” has been raised {counts[cat] + 1} times for this child.")
    return flags
