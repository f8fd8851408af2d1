"""Subject access requests: everything held about one person, as one JSON document.

For a pupil: their whole child protection file (the transfer pack's content), transfers,
QA reviews and the audit trail of who opened or changed their file. For a member of staff:
their directory entry and roles, the concerns they raised (with what they wrote), every
chronology entry they made, concerns about them, the messages and reminders sent to them,
and the audit trail of what they did.

The export is for the data protection officer, not for handing over as it is: records
about a child hold other people's information (and vice versa), which must be reviewed and
redacted before disclosure. The document says so at the top.

Concerns about an adult (allegations) follow UK subject-access practice (UK GDPR art. 15;
Data Protection Act 2018 schedules 2 and 3; the ICO's guidance on exemptions) and the one
access rule (flows/access.py), decided per concern by :func:`disclosure`:

1. **Withheld** when the person running the export may not handle the concern (it is about
   them, or its adult is not yet identified and they are in the DSL team): neither its content
   nor its reference appears, nor an audit row or reminder that would show it exists. Its
   holders (its owner, else its routed recipients) are told that an export went without it,
   so the DPO gets it from someone entitled to it.
2. **For the data protection officer** when the runner may handle it but the person the
   export is about may not: the adult concerned, the referrer (their own report is their data,
   but it names the adult and the child), a pupil or their parent. It is kept out of the
   document's ordinary sections and put under ``for_dpo_review`` with the exemptions to
   consider before anything of it is disclosed:

   - ``third_party`` (sch. 2 para. 16): it names the child, the referrer, witnesses; their
     information is disclosed only with consent or where it is reasonable without it, and a
     referrer's identity is normally withheld;
   - ``crime`` (sch. 2 para. 2): disclosure would be likely to prejudice an enquiry by the
     police or the LADO; ask them before disclosing anything;
   - ``serious_harm`` (sch. 3 parts 3 and 4, social work and education data): withhold what
     would be likely to cause serious harm to the physical or mental health of anyone;
   - ``child_abuse_data`` (sch. 3 para. 21, a pupil's export asked for by a parent; not in
     Scotland): withhold what it is not in the child's best interests for the parent to see.

   Each item says ``"disclose": false``: nothing of it goes out before the DPO records a decision.
3. **Included** as any other record when both may handle it (a headteacher's own export of the
   entries they wrote while handling an allegation about someone else).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlmodel import Session, select

from storage import chain
from storage.db import Store
from storage.models import (AuditEvent, Child, ChronologyEntry, Concern, Nudge, OutboxMessage, Person, QaReview,
                            RoleAssignment, School, Transfer, utcnow)
from storage.people import person_by_email, roles_of

from .access import actor, is_dsl_team, may_handle
from .chronology import require_dsl_for_child, visible_concerns
from .errors import NotAllowed, NotFound
from .transfer import build_pack
from .withheld import tell_holders

INCLUDE, REVIEW, WITHHOLD = "include", "review", "withhold"
EXEMPTIONS = {
    "third_party": "DPA 2018 sch. 2 para. 16: it names other people (the child, the referrer, witnesses); disclose "
                   "their information only with consent or where it is reasonable without it.",
    "crime": "DPA 2018 sch. 2 para. 2: disclosure may prejudice an enquiry by the police or the LADO; ask them "
             "before disclosing.",
    "serious_harm": "DPA 2018 sch. 3 parts 3 and 4: withhold what would be likely to cause serious harm to the "
                    "physical or mental health of anyone.",
    "child_abuse_data": "DPA 2018 sch. 3 para. 21: asked for by a parent, withhold what it is not in the child's "
                        "best interests for them to see.",
}
ABOUT_ADULT_EXEMPTIONS = ("third_party", "crime", "serious_harm")
CHILD_EXEMPTIONS = ("third_party", "crime", "serious_harm", "child_abuse_data")


def disclosure(s: Session, actor_id: int, subject_id: int | None, concern: Concern) -> str:
    """INCLUDE, REVIEW (for the DPO) or WITHHOLD, for one concern in an export run by
    ``actor_id`` about the person ``subject_id`` (None: a pupil). See the module docstring."""
    if not concern.about_adult:
        return INCLUDE
    if not may_handle(s, actor_id, concern):
        return WITHHOLD
    if subject_id is None or subject_id == concern.subject_person_id or not may_handle(s, subject_id, concern):
        return REVIEW
    return INCLUDE


def _review_item(c: Concern, relation: str, content: dict, exemptions: tuple[str, ...]) -> dict:
    return {"reference": c.reference, "relation": relation, "created_at": _iso(c.created_at), "status": c.status,
            "subject_role": c.subject_role, "disclose": False,
            "exemptions_to_consider": {k: EXEMPTIONS[k] for k in exemptions}, "content": content}

NOTICE = ("Subject access export. It may contain information about other people (children, families, staff): "
          "review and redact before disclosure, and record any exemption applied.")


def _iso(v):
    return v.isoformat() if isinstance(v, (datetime, date)) else v


class _Sorter:
    """Puts each record that belongs to a concern where :func:`disclosure` says: the ordinary
    section (True), the concern's item for the DPO, or nowhere (its holders are told later)."""

    def __init__(self, s: Session, actor_id: int, subject_id: int | None, exemptions: tuple[str, ...]):
        self.s, self.actor_id, self.subject_id, self.exemptions = s, actor_id, subject_id, exemptions
        self.review: dict[int, dict] = {}
        self.withheld: dict[int, Concern] = {}
        self._seen: dict[int, str] = {}

    def main(self, concern: Concern | None, section: str, item) -> bool:
        if concern is None:
            return True
        if concern.id not in self._seen:
            self._seen[concern.id] = disclosure(self.s, self.actor_id, self.subject_id, concern)
        d = self._seen[concern.id]
        if d == INCLUDE:
            return True
        if d == WITHHOLD:
            self.withheld[concern.id] = concern
            return False
        if concern.id not in self.review:
            self.review[concern.id] = _review_item(concern, self._relation(concern), {}, self.exemptions)
        self.review[concern.id]["content"].setdefault(section, []).append(item)
        return False

    def _relation(self, c: Concern) -> str:
        if self.subject_id is None:
            return "about an adult, in the pupil's file"
        if c.subject_person_id == self.subject_id:
            return "about them"
        if c.referrer_id == self.subject_id:
            return "raised by them"
        return "in records they made or received"

    def finish(self, doc: dict, what: str, now: datetime) -> dict:
        doc["for_dpo_review"] = list(self.review.values())
        if self.withheld:
            tell_holders(self.s, list(self.withheld.values()), actor_id=self.actor_id, now=now, what=what)
        return doc


def _audit(s: Session, q) -> list[tuple[AuditEvent, dict]]:
    emails: dict[int, str] = {}

    def email(pid):
        if pid is None:
            return None
        if pid not in emails:
            p = s.get(Person, pid)
            emails[pid] = p.email if p else str(pid)
        return emails[pid]

    return [(e, {"at": _iso(e.at), "action": e.action, "by": email(e.actor_id), "concern_id": e.concern_id,
                 "child_id": e.child_id, "details": e.details}) for e in s.exec(q.order_by(AuditEvent.seq))]


def child_export(store: Store, actor_id: int, child_id: int, *, now: datetime | None = None) -> dict:
    now = now or utcnow()
    with store.session() as s:
        child = s.get(Child, child_id)
        if child is None:
            raise NotFound("No such pupil.")
        person = require_dsl_for_child(s, actor_id, child)
        # The pack holds only what the runner may handle; build_pack tells the holders of the rest.
        pack = build_pack(s, store, child, exported_by=person.id, to_school=None, now=now, purpose="sar")
        shown, withheld = visible_concerns(s, child.id, person.id)
        sorter = _Sorter(s, person.id, None, CHILD_EXEMPTIONS)
        concerns = [item for c, item in zip(shown, pack["concerns"]) if sorter.main(c, "concern", item)]
        ids = [c.id for c in shown]
        by_id = {c.id: c for c in shown}
        hidden = {c.id for c in withheld}
        audit = [row for ev, row in _audit(s, select(AuditEvent).where(
            (AuditEvent.child_id == child.id) | (AuditEvent.concern_id.in_(ids or [-1]))))
            if ev.concern_id not in hidden and sorter.main(by_id.get(ev.concern_id), "audit", row)]
        doc = {
            "notice": NOTICE, "subject": "child", "generated_at": now.isoformat(), "generated_by": person.email,
            "child": pack["child"], "siblings": pack["siblings"], "concerns": concerns,
            "transfers": [{"id": t.id, "to_school": t.to_school, "state": t.state, "exported_at": _iso(t.exported_at),
                           "sent_at": _iso(t.sent_at), "confirmed_at": _iso(t.confirmed_at),
                           "confirmed_by": t.confirmed_by}
                          for t in s.exec(select(Transfer).where(Transfer.child_id == child.id))],
            "qa_reviews": [{"id": r.id, "concern_id": r.concern_id, "scores": r.scores, "total": r.total,
                            "notes": r.notes, "scored_at": _iso(r.scored_at)}
                           for r in s.exec(select(QaReview).where(QaReview.concern_id.in_(ids)))
                           if sorter.main(by_id[r.concern_id], "qa_review", {"id": r.id, "total": r.total})]
            if ids else [],
            "audit": audit,
        }
        sorter.finish(doc, "", now)  # the holders of withheld concerns were told by build_pack
        chain.audit(s, "sar.exported", actor_id=person.id, school_id=child.school_id, child_id=child.id, at=now,
                    details={"subject": "child", "for_dpo_review": len(doc["for_dpo_review"])})
        return doc


def person_export(store: Store, actor_id: int, email: str, *, now: datetime | None = None) -> dict:
    now = now or utcnow()
    with store.session() as s:
        me = actor(s, actor_id)
        subject = person_by_email(s, email) or s.exec(select(Person).where(Person.email == email.strip().lower())).first()
        if subject is None:
            raise NotFound(f"Nobody with the email {email} is held here.")
        allowed = (subject.school_id is not None and is_dsl_team(s, me.id, subject.school_id)) or (
            "trust_safeguarding_officer" in roles_of(s, me.id, None) and me.trust_id == subject.trust_id)
        if not allowed:
            raise NotAllowed("Only the person's school safeguarding team or the trust safeguarding officer can "
                             "export a subject access request.")
        sorter = _Sorter(s, me.id, subject.id, ABOUT_ADULT_EXEMPTIONS)
        concerns: dict[int, Concern | None] = {}

        def concern(cid: int | None) -> Concern | None:
            if cid is not None and cid not in concerns:
                concerns[cid] = s.get(Concern, cid)
            return concerns.get(cid)

        raised = []
        for c in s.exec(select(Concern).where(Concern.referrer_id == subject.id).order_by(Concern.created_at)):
            item = {"reference": c.reference, "school": s.get(School, c.school_id).slug,
                    "created_at": _iso(c.created_at), "status": c.status,
                    "what_they_wrote": {k: getattr(c, k) for k in ("location", "account", "child_words",
                                                                   "child_views", "worry_history",
                                                                   "action_taken", "others_involved")}}
            if sorter.main(c, "what_they_wrote", item):
                raised.append(item)
        entries = []
        for e in s.exec(select(ChronologyEntry).where(ChronologyEntry.actor_id == subject.id)
                        .order_by(ChronologyEntry.seq)):
            c = concern(e.concern_id)
            item = {"concern": c.reference, "kind": e.kind, "at": _iso(e.at), "body": chain.read_body(store.cipher, e),
                    "facts": e.facts, "redacted": e.redacted_at is not None}
            if sorter.main(c, "chronology_entries_they_made", item):
                entries.append(item)
        for c in s.exec(select(Concern).where(Concern.subject_person_id == subject.id).order_by(Concern.created_at)):
            # Never included as it is: the adult concerned may not handle it (flows/access.py).
            sorter.main(c, "what_was_raised", {"account": c.account, "decision": c.decision_kind,
                                               "categories": list(c.categories)})
        messages = [{"kind": m.kind, "state": m.state, "created_at": _iso(m.created_at), "sent_at": _iso(m.sent_at)}
                    for m in s.exec(select(OutboxMessage).where(OutboxMessage.recipient_id == subject.id)
                                    .order_by(OutboxMessage.id))
                    if sorter.main(concern((m.payload or {}).get("concern_id")), "messages", {"kind": m.kind})]
        reminders = [{"kind": n.kind, "state": n.state, "due_at": _iso(n.due_at), "payload": n.payload}
                     for n in s.exec(select(Nudge).where(Nudge.recipient_id == subject.id).order_by(Nudge.id))
                     if sorter.main(concern(n.concern_id), "reminders", {"kind": n.kind, "due_at": _iso(n.due_at)})]
        audit = [row for ev, row in _audit(s, select(AuditEvent).where(AuditEvent.actor_id == subject.id))
                 if sorter.main(concern(ev.concern_id), "audit", row)]
        doc = {
            "notice": NOTICE, "subject": "person", "generated_at": now.isoformat(), "generated_by": me.email,
            "person": {"email": subject.email, "name": subject.name, "active": subject.active,
                       "school": s.get(School, subject.school_id).slug if subject.school_id else None,
                       "slack_user_id": subject.slack_user_id, "teams_aad_object_id": subject.teams_aad_object_id,
                       "created_at": _iso(subject.created_at),
                       "roles": sorted(f"{r.role}@{r.school_id or 'trust'}" for r in
                                       s.exec(select(RoleAssignment).where(RoleAssignment.person_id == subject.id)))},
            "concerns_raised": raised,
            "chronology_entries_made": entries,
            "concerns_about_them": [],  # an allegation about them is only ever for the DPO: see for_dpo_review
            "messages": messages,
            "reminders": reminders,
            "qa_reviews_done": [{"id": r.id, "total": r.total, "scored_at": _iso(r.scored_at)}
                                for r in s.exec(select(QaReview).where(QaReview.reviewer_id == subject.id))],
            "audit": audit,
        }
        sorter.finish(doc, f"made a subject access export about {subject.email}, which this concern is part of", now)
        chain.audit(s, "sar.exported", actor_id=me.id, school_id=subject.school_id, at=now,
                    details={"subject": "person", "person_id": subject.id,
                             "for_dpo_review": len(doc["for_dpo_review"])})
        return doc
