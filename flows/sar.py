"""Subject access requests: everything held about one person, as one JSON document.

For a pupil: their whole child protection file (the transfer pack's content), transfers,
QA reviews and the audit trail of who opened or changed their file. For a member of staff:
their directory entry and roles, the concerns they raised (with what they wrote), every
chronology entry they made, concerns about them, the messages and reminders sent to them,
and the audit trail of what they did.

The export is for the data protection officer, not for handing over as it is: records
about a child hold other people's information (and vice versa), which must be reviewed and
redacted before disclosure. The document says so at the top.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlmodel import Session, select

from storage import chain
from storage.db import Store
from storage.models import (AuditEvent, Child, ChronologyEntry, Concern, Nudge, OutboxMessage, Person, QaReview,
                            RoleAssignment, School, Transfer, utcnow)
from storage.people import person_by_email, roles_of

from .access import actor, is_dsl_team
from .chronology import require_dsl_for_child
from .errors import NotAllowed, NotFound
from .transfer import build_pack

NOTICE = ("Subject access export. It may contain information about other people (children, families, staff): "
          "review and redact before disclosure, and record any exemption applied.")


def _iso(v):
    return v.isoformat() if isinstance(v, (datetime, date)) else v


def _audit_rows(s: Session, q) -> list[dict]:
    emails: dict[int, str] = {}

    def email(pid):
        if pid is None:
            return None
        if pid not in emails:
            p = s.get(Person, pid)
            emails[pid] = p.email if p else str(pid)
        return emails[pid]

    return [{"at": _iso(e.at), "action": e.action, "by": email(e.actor_id), "concern_id": e.concern_id,
             "child_id": e.child_id, "details": e.details} for e in s.exec(q.order_by(AuditEvent.seq))]


def child_export(store: Store, actor_id: int, child_id: int, *, now: datetime | None = None) -> dict:
    now = now or utcnow()
    with store.session() as s:
        child = s.get(Child, child_id)
        if child is None:
            raise NotFound("No such pupil.")
        person = require_dsl_for_child(s, actor_id, child)
        pack = build_pack(s, store, child, exported_by=person.id, to_school=None, now=now)
        concern_ids = list(s.exec(select(Concern.id).where(Concern.child_id == child.id)))
        doc = {
            "notice": NOTICE, "subject": "child", "generated_at": now.isoformat(), "generated_by": person.email,
            "child": pack["child"], "siblings": pack["siblings"], "concerns": pack["concerns"],
            "transfers": [{"id": t.id, "to_school": t.to_school, "state": t.state, "exported_at": _iso(t.exported_at),
                           "sent_at": _iso(t.sent_at), "confirmed_at": _iso(t.confirmed_at),
                           "confirmed_by": t.confirmed_by}
                          for t in s.exec(select(Transfer).where(Transfer.child_id == child.id))],
            "qa_reviews": [{"id": r.id, "concern_id": r.concern_id, "scores": r.scores, "total": r.total,
                            "notes": r.notes, "scored_at": _iso(r.scored_at)}
                           for r in s.exec(select(QaReview).where(QaReview.concern_id.in_(concern_ids)))]
            if concern_ids else [],
            "audit": _audit_rows(s, select(AuditEvent).where(
                (AuditEvent.child_id == child.id) | (AuditEvent.concern_id.in_(concern_ids or [-1])))),
        }
        chain.audit(s, "sar.exported", actor_id=person.id, school_id=child.school_id, child_id=child.id, at=now,
                    details={"subject": "child"})
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
        raised = []
        for c in s.exec(select(Concern).where(Concern.referrer_id == subject.id).order_by(Concern.created_at)):
            raised.append({"reference": c.reference, "school": s.get(School, c.school_id).slug,
                           "created_at": _iso(c.created_at), "status": c.status,
                           "what_they_wrote": {k: getattr(c, k) for k in ("location", "account", "child_words",
                                                                          "child_views", "worry_history",
                                                                          "action_taken", "others_involved")}})
        entries = []
        for e in s.exec(select(ChronologyEntry).where(ChronologyEntry.actor_id == subject.id)
                        .order_by(ChronologyEntry.seq)):
            ref = s.get(Concern, e.concern_id).reference
            entries.append({"concern": ref, "kind": e.kind, "at": _iso(e.at), "body": chain.read_body(store.cipher, e),
                            "facts": e.facts, "redacted": e.redacted_at is not None})
        about = [{"reference": c.reference, "created_at": _iso(c.created_at), "status": c.status,
                  "subject_role": c.subject_role, "account": c.account, "decision": c.decision_kind}
                 for c in s.exec(select(Concern).where(Concern.subject_person_id == subject.id))]
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
            "concerns_about_them": about,
            "messages": [{"kind": m.kind, "state": m.state, "created_at": _iso(m.created_at), "sent_at": _iso(m.sent_at)}
                         for m in s.exec(select(OutboxMessage).where(OutboxMessage.recipient_id == subject.id))],
            "reminders": [{"kind": n.kind, "state": n.state, "due_at": _iso(n.due_at), "payload": n.payload}
                          for n in s.exec(select(Nudge).where(Nudge.recipient_id == subject.id))],
            "qa_reviews_done": [{"id": r.id, "total": r.total, "scored_at": _iso(r.scored_at)}
                                for r in s.exec(select(QaReview).where(QaReview.reviewer_id == subject.id))],
            "audit": _audit_rows(s, select(AuditEvent).where(AuditEvent.actor_id == subject.id)),
        }
        chain.audit(s, "sar.exported", actor_id=me.id, school_id=subject.school_id, at=now,
                    details={"subject": "person", "person_id": subject.id})
        return doc
