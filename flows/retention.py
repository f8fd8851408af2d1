"""The retention policy: which child protection records have reached the end of their
retention period, and deleting their content without breaking the audit chain.

Defaults in flows/data/retention.toml; a trust overrides keys in Trust.policy["retention"].

Deletion is redaction, because the chronology is hash-chained and removing a row would
break the chain for everything after it:

- chronology entries: ``body`` blanked, ``child_id`` cleared, ``redacted_at`` set; the
  hashes stay. The ``retention.redacted`` audit event lists their ids, and
  ``storage.chain.verify`` accepts exactly those rows as redacted.
- the concern: every encrypted column emptied (account, child's words and views, location,
  names typed, source link...), the link to the child cleared, ``redacted_at`` set. Category,
  dates, status and decision kind stay as anonymous facts so trust trends still add up.
- the pupil (once nothing of theirs is kept): name, date of birth, UPN, year and family
  link removed; the row stays as an empty tombstone because audit events refer to its id.
- QA notes, pending nudges and queued message payloads about those concerns are cleared.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path

from sqlalchemy import update
from sqlmodel import Session, select

from storage import chain
from storage.db import Store
from storage.models import (Child, ChronologyEntry, Concern, Nudge, OutboxMessage, QaReview, School, Trust,
                            utcnow)

DATA = Path(__file__).parent / "data" / "retention.toml"
CONCERN_TEXT = ("child_name_given", "subject_name", "location", "account", "child_words", "child_views",
                "worry_history", "action_taken", "others_involved", "source_link")
TOMBSTONE_NAME = "[deleted under the retention policy]"


@lru_cache
def defaults() -> dict:
    return tomllib.loads(DATA.read_text())


def rules_for(trust: Trust | None) -> dict:
    rules = dict(defaults())
    override = ((trust.policy or {}).get("retention") if trust else None) or {}
    unknown = set(override) - set(rules)
    if unknown:
        raise ValueError(f"unknown retention key(s) in the trust policy: {', '.join(sorted(unknown))}")
    rules.update(override)
    return rules


def _years_after(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:  # 29 February
        return d.replace(year=d.year + years, day=28)


@dataclass
class Due:
    concern_id: int
    reference: str
    school: str
    child_id: int | None
    rule: str
    keep_until: date | None


@dataclass
class RetentionResult:
    dry_run: bool
    due: list[Due] = field(default_factory=list)
    review: list[Due] = field(default_factory=list)  # cannot be decided automatically
    chronology_redacted: int = 0
    children_removed: list[int] = field(default_factory=list)

    def lines(self) -> list[str]:
        verb = "would delete" if self.dry_run else "deleted"
        out = [f"{verb} {len(self.due)} concern record(s)"
               + ("" if self.dry_run else f", {self.chronology_redacted} chronology entries, "
                                          f"{len(self.children_removed)} pupil record(s)")]
        for d in self.due:
            out.append(f"  {d.school} {d.reference} (child id {d.child_id or '—'}): {d.rule}, "
                       f"kept until {d.keep_until}")
        if self.review:
            out.append(f"{len(self.review)} record(s) need a person to decide:")
            for d in self.review:
                out.append(f"  {d.school} {d.reference}: {d.rule}")
        return out


def assess(s: Session, today: date) -> tuple[list[Due], list[Due]]:
    """Which concerns have passed their retention date, and which need a person to decide."""
    schools = {sc.id: sc for sc in s.exec(select(School))}
    rules = {sid: rules_for(s.get(Trust, sc.trust_id)) for sid, sc in schools.items()}
    children: dict[int, Child] = {}
    due, review = [], []
    for c in s.exec(select(Concern).where(Concern.redacted_at.is_(None)).order_by(Concern.id)):
        r = rules[c.school_id]
        slug = schools[c.school_id].slug
        raised = c.created_at.date()
        if c.about_adult:
            ten = _years_after((c.closed_at or c.created_at).date(), r["staff_allegation_min_years"])
            review.append(Due(c.id, c.reference, slug, c.child_id,
                              f"allegation about an adult: keep until their normal retirement age "
                              f"({r['staff_allegation_retirement_age']}) or {ten}, whichever is later — "
                              "their date of birth is not held, so decide by hand", None))
            continue
        child = None
        if c.child_id is not None:
            child = children.get(c.child_id) or s.get(Child, c.child_id)
            children[c.child_id] = child
        if child is not None and child.date_of_birth:
            until = _years_after(date.fromisoformat(child.date_of_birth), r["child_file_until_age"])
            rule = f"child protection file: until the child's {r['child_file_until_age']}th birthday"
        else:
            until = _years_after(raised, r["unknown_birth_years_after_raised"])
            rule = (f"date of birth not known: {r['unknown_birth_years_after_raised']} years after the concern "
                    "was raised")
        if until <= today:
            due.append(Due(c.id, c.reference, slug, c.child_id, rule, until))
    return due, review


def run(store: Store, *, now: datetime | None = None, dry_run: bool = True,
        actor_id: int | None = None) -> RetentionResult:
    """List (dry run) or delete what the policy says has been kept long enough; one transaction."""
    now = now or utcnow()
    with store.session() as s:
        due, review = assess(s, now.date())
        result = RetentionResult(dry_run=dry_run, due=due, review=review)
        if dry_run or not due:
            if not dry_run:
                chain.audit(s, "retention.run", actor_id=actor_id, at=now, details={"deleted": 0})
            return result
        ids = [d.concern_id for d in due]
        entry_ids = list(s.exec(select(ChronologyEntry.id).where(ChronologyEntry.concern_id.in_(ids),
                                                                ChronologyEntry.redacted_at.is_(None))))
        if entry_ids:
            s.execute(update(ChronologyEntry).where(ChronologyEntry.id.in_(entry_ids))
                      .values(body="", child_id=None, redacted_at=now))
        child_ids = sorted({d.child_id for d in due if d.child_id is not None})
        for c in s.exec(select(Concern).where(Concern.id.in_(ids))):
            for col in CONCERN_TEXT:
                setattr(c, col, None)
            c.child_id, c.redacted_at = None, now
            s.add(c)
        for r in s.exec(select(QaReview).where(QaReview.concern_id.in_(ids))):
            r.notes = None
            s.add(r)
        for n in s.exec(select(Nudge).where(Nudge.concern_id.in_(ids), Nudge.state == "pending")):
            n.state = "cancelled"
            s.add(n)
        for m in s.exec(select(OutboxMessage).where(OutboxMessage.payload["concern_id"].as_integer().in_(ids))):
            m.payload = {"concern_id": m.payload.get("concern_id"), "redacted": True}
            s.add(m)
        s.flush()
        removed = []
        for cid in child_ids:
            still = s.exec(select(Concern.id).where(Concern.child_id == cid)).first()
            if still is None:  # nothing of theirs is kept any more
                child = s.get(Child, cid)
                child.name, child.date_of_birth, child.mis_id = TOMBSTONE_NAME, None, f"deleted-{cid}"
                child.year_group, child.family_group, child.active = None, None, False
                s.add(child)
                removed.append(cid)
        chain.audit(s, "retention.redacted", actor_id=actor_id, at=now,
                    details={"chronology_ids": entry_ids, "concern_ids": ids, "child_ids": removed,
                             "rules": sorted({d.rule for d in due})})
        result.chronology_redacted, result.children_removed = len(entry_ids), removed
        return result
