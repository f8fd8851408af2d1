"""One child's child protection file: every concern about them and every entry of each, in
time order, with siblings' files linked and the file's own openings shown.

Only the DSL team of the child's school may open it, and every opening is recorded in the
audit trail (``chronology.opened``), which the file itself lists, so the DSL sees who else
has looked. Transports call :func:`child_file`; the CLI calls it too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from storage import chain
from storage.db import Store
from storage.models import AuditEvent, Child, ChronologyEntry, Concern, Person, School, Transfer, utcnow
from storage.people import person_by_email, siblings_of

from . import taxonomy
from .access import actor, is_dsl_team
from .errors import NotAllowed, NotFound

ENTRY_WORDS = {
    "raised": "Concern raised", "viewed": "Record opened", "acknowledged": "Acknowledged", "note": "Note",
    "discussion": "Discussion", "action": "Action", "decision": "Decision", "referral": "Referral",
    "outcome": "Outcome", "follow_up": "Follow-up", "escalation": "Escalation", "closed": "Closed",
    "transfer": "Transfer", "file_opened": "Child protection file opened",
}


@dataclass
class FileEntry:
    at: datetime
    kind: str
    concern_id: int | None
    reference: str | None
    actor: str
    body: dict
    facts: dict
    seq: int | None = None
    redacted: bool = False

    @property
    def label(self) -> str:
        return ENTRY_WORDS.get(self.kind, self.kind.replace("_", " ").capitalize())


@dataclass
class ConcernSummary:
    concern_id: int
    reference: str
    created_at: datetime
    status: str
    urgent: bool
    categories: list[str]  # labels
    decision: str | None
    about_adult: bool
    details: dict


@dataclass
class SiblingLink:
    child_id: int
    name: str
    year_group: str | None
    concerns: list[tuple[int, str, datetime, str]]  # (concern id, reference, raised at, status)


@dataclass
class ChildFile:
    child_id: int
    mis_id: str
    name: str
    date_of_birth: str | None
    year_group: str | None
    school: str
    school_id: int
    concerns: list[ConcernSummary] = field(default_factory=list)
    entries: list[FileEntry] = field(default_factory=list)
    siblings: list[SiblingLink] = field(default_factory=list)
    transfers: list[dict] = field(default_factory=list)
    timezone: str = "Europe/London"  # the school's: times are shown in it

    def local(self, when: datetime) -> datetime:
        return when.astimezone(ZoneInfo(self.timezone))

    def lines(self) -> list[str]:
        """Plain text for the terminal chat and the CLI."""
        out = [f"Child protection file: {self.name} ({self.mis_id}), year {self.year_group or '?'}, {self.school}",
               f"{len(self.concerns)} concern(s), {len(self.entries)} chronology entries"]
        out.append(ALLEGATIONS_NOTE)
        for c in self.concerns:
            out.append(f"  {c.reference}  {self.local(c.created_at):%d/%m/%Y}  {c.status}  {', '.join(c.categories)}"
                       + (f"  decision: {decision_label(c.decision)}" if c.decision else ""))
        if self.siblings:
            out.append("Siblings:")
            for sib in self.siblings:
                refs = ", ".join(r for _, r, _, _ in sib.concerns) or "no concerns"
                out.append(f"  {sib.name} (year {sib.year_group or '?'}; child id {sib.child_id}): {refs}")
        out.append("Chronology:")
        for e in self.entries:
            out.append(f"  {self.local(e.at):%d/%m/%Y %H:%M}  {e.reference or '—':<14} {e.label:<28} {e.actor}"
                       + (f" — {summarise(e)}" if summarise(e) else ""))
        return out


# Shown on every file, whoever opens it: a count of what this viewer may not see would tell the
# adult a concern is about that there is one.
ALLEGATIONS_NOTE = ("Concerns about an adult in school are shown only to those who may handle them: never to the "
                    "adult concerned, and to the headteacher alone while the adult is not yet identified.")


def decision_label(code: str | None) -> str:
    from .triage import DECISIONS

    return next((c.label for c in DECISIONS if c.value == code), code or "")


def summarise(e: FileEntry) -> str:
    """One line of what an entry says."""
    if e.redacted:
        return "[deleted under the retention policy]"
    b, f = e.body, e.facts
    if e.kind == "raised":
        return b.get("account", "")
    if e.kind == "decision":
        return (f"{decision_label(b.get('decision', f.get('decision')))}: {b.get('reasons', '')} "
                f"(took part: {b.get('participants', '')})")
    if e.kind == "referral":
        if f.get("step"):
            return f"{b.get('step_label', f['step'])} on {f.get('at', '')[:10]} {b.get('note', '')}".strip()
        return f"to {b.get('agency', '')} by {b.get('method', '')} ({b.get('agency_reference') or 'no ref yet'})"
    if e.kind == "follow_up" and f.get("type") == "checkin":
        return f"check-in: {f.get('answer')} {b.get('note', '')}".strip()
    if e.kind == "viewed" or e.kind == "file_opened":
        return f"via {f.get('via', '?')}"
    for key in ("text", "shared_text", "question", "answer", "note", "with_whom"):
        if b.get(key):
            return str(b[key])
    if f.get("type"):
        return str(f["type"]).replace("_", " ")
    return ""


def category_label(code: str, version: str | None) -> str:
    """The label a category had in the version it was filed under (a pack from another trust
    may carry a version unknown here: then the current label, else the code itself)."""
    try:
        return taxonomy.label(code, version)
    except KeyError:
        return taxonomy.current().label(code)


def resolve_child(s: Session, ref: str | int, *, school_ids: list[int] | None = None) -> Child:
    """A child by internal id or MIS id/UPN (restricted to ``school_ids`` when given)."""
    text = str(ref).strip()
    q = select(Child).where(Child.mis_id == text)
    if school_ids is not None:
        q = q.where(Child.school_id.in_(school_ids))
    found = list(s.exec(q))
    if len(found) == 1:
        return found[0]
    if text.isdigit():
        child = s.get(Child, int(text))
        if child is not None and (school_ids is None or child.school_id in school_ids):
            return child
    if len(found) > 1:
        raise NotFound(f"More than one pupil has the id {text}: use the internal child id.")
    raise NotFound(f"No pupil with the id {text} in your school.")


def dsl_schools(s: Session, person_id: int) -> list[int]:
    from storage.models import DSL_TEAM, RoleAssignment

    return [sid for sid in s.exec(select(RoleAssignment.school_id).where(
        RoleAssignment.person_id == person_id, RoleAssignment.role.in_([str(r) for r in DSL_TEAM])))
        if sid is not None]


def require_dsl_for_child(s: Session, person_id: int, child: Child) -> Person:
    person = actor(s, person_id)
    if not is_dsl_team(s, person.id, child.school_id):
        raise NotAllowed("Only the safeguarding team of the child's school can open a child protection file.")
    return person


def person_id_for(store: Store, email: str) -> int:
    with store.session() as s:
        p = person_by_email(s, email)
        if p is None:
            raise NotAllowed(f"{email} is not in the directory.")
        return p.id


def find_child(store: Store, actor_id: int, ref: str | int) -> int:
    """The internal id of a child the actor's DSL team may open (by internal id or MIS id)."""
    with store.session() as s:
        schools = dsl_schools(s, actor_id)
        if not schools:
            raise NotAllowed("Only a school's safeguarding team can open a child protection file.")
        return resolve_child(s, ref, school_ids=schools).id


def child_file(store: Store, actor_id: int, child_id: int, via: str = "chat", *,
               now: datetime | None = None) -> ChildFile:
    """The whole file of one child. Refused unless the actor is in the DSL team of the child's
    school; the opening is audited (``chronology.opened``) in the same transaction."""
    now = now or utcnow()
    with store.session() as s:
        child = s.get(Child, child_id)
        if child is None:
            raise NotFound("No such pupil.")
        person = require_dsl_for_child(s, actor_id, child)
        chain.audit(s, "chronology.opened", actor_id=person.id, school_id=child.school_id, child_id=child.id,
                    at=now, details={"via": via})
        return load_file(s, store, child, viewer_id=person.id)


def visible_concerns(s: Session, child_id: int, viewer_id: int | None) -> tuple[list[Concern], list[Concern]]:
    """The child's concerns, oldest first, split into those the viewer may handle and those
    they may not (flows/access.py: an allegation about the viewer, or one whose adult is not yet
    identified). What is withheld is never shown or counted to the viewer; callers that move a
    file on (exports, transfers) tell the people who hold the withheld ones."""
    from .access import may_handle

    rows = list(s.exec(select(Concern).where(Concern.child_id == child_id).order_by(Concern.created_at, Concern.id)))
    if viewer_id is None:
        return rows, []
    shown = [c for c in rows if may_handle(s, viewer_id, c)]
    return shown, [c for c in rows if c not in shown]


def load_file(s: Session, store: Store, child: Child, *, viewer_id: int | None = None) -> ChildFile:
    """Build the file without access checks or auditing (callers do both). Concerns the
    viewer may not handle are left out, with their entries, and not counted."""
    names: dict[int, str] = {}

    def name(pid: int | None) -> str:
        if not pid:
            return "system"
        if pid not in names:
            p = s.get(Person, pid)
            names[pid] = (p.name or p.email) if p else "?"
        return names[pid]

    school = s.get(School, child.school_id)
    cf = ChildFile(child_id=child.id, mis_id=child.mis_id, name=child.name or "", date_of_birth=child.date_of_birth,
                   year_group=child.year_group, school=school.name, school_id=school.id,
                   timezone=school.timezone)
    concerns, _ = visible_concerns(s, child.id, viewer_id)
    refs = {c.id: c.reference for c in concerns}
    for c in concerns:
        cf.concerns.append(ConcernSummary(
            concern_id=c.id, reference=c.reference, created_at=c.created_at, status=c.status, urgent=c.urgent,
            categories=[category_label(x, c.taxonomy_version) for x in c.categories], decision=c.decision_kind,
            about_adult=c.about_adult,
            details={"occurred_at": c.occurred_at, "location": c.location, "account": c.account,
                     "child_words": c.child_words, "child_views": c.child_views, "worry_history": c.worry_history,
                     "others_involved": c.others_involved, "action_taken": c.action_taken,
                     "subject_role": c.subject_role, "review_date": c.review_date,
                     "origin": getattr(c, "origin", None)}))
    if refs:
        rows = s.exec(select(ChronologyEntry).where(ChronologyEntry.concern_id.in_(list(refs)))
                      .order_by(ChronologyEntry.at, ChronologyEntry.seq))
        for e in rows:
            cf.entries.append(FileEntry(at=e.at, kind=e.kind, concern_id=e.concern_id, reference=refs[e.concern_id],
                                        actor=name(e.actor_id), body=chain.read_body(store.cipher, e),
                                        facts=dict(e.facts), seq=e.seq, redacted=e.redacted_at is not None))
    for ev in s.exec(select(AuditEvent).where(AuditEvent.child_id == child.id,
                                              AuditEvent.action == "chronology.opened").order_by(AuditEvent.seq)):
        cf.entries.append(FileEntry(at=ev.at, kind="file_opened", concern_id=None, reference=None,
                                    actor=name(ev.actor_id), body={}, facts=dict(ev.details)))
    cf.entries.sort(key=lambda e: (e.at, e.seq or 0))
    for sib in siblings_of(s, child):
        sc = [(c.id, c.reference, c.created_at, c.status) for c in visible_concerns(s, sib.id, viewer_id)[0]]
        cf.siblings.append(SiblingLink(child_id=sib.id, name=sib.name or "", year_group=sib.year_group, concerns=sc))
    for t in s.exec(select(Transfer).where(Transfer.child_id == child.id).order_by(Transfer.id)):
        cf.transfers.append({"id": t.id, "to_school": t.to_school, "state": t.state, "exported_at": t.exported_at,
                             "sent_at": t.sent_at, "confirmed_at": t.confirmed_at, "confirmed_by": t.confirmed_by,
                             "exported_by": name(t.exported_by), "pack_hash": t.pack_hash})
    return cf


def age_on(date_of_birth: str | None, on: date) -> int | None:
    if not date_of_birth:
        return None
    dob = date.fromisoformat(date_of_birth)
    return on.year - dob.year - ((on.month, on.day) < (dob.month, dob.day))
