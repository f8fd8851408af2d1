"""The transfer pack: a child's whole child protection file as one JSON document that moves
with the child to a new school, and its import at the receiving school.

Format: ``schemas/transfer-pack.schema.json`` (documented in the README). The pack carries
``content_sha256``, the SHA-256 of its canonical content (every other key, serialised as
JSON with sorted keys, no whitespace, UTF-8), so any change on the way is detected.

Import is all-or-nothing: schema first, then the hash, then the receiving school's checks,
then everything written in one transaction.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from storage import chain
from storage.db import Store
from storage.models import (AuditEvent, Child, ChronologyEntry, Concern, Nudge, Person, School, Transfer, Trust,
                            utcnow)
from storage.people import siblings_of

from . import schedule
from .access import actor, is_dsl_team
from .chronology import require_dsl_for_child, visible_concerns
from .withheld import tell_holders
from .errors import Conflict, FlowError, NotAllowed, NotFound

FORMAT = "safeguarding-bot.transfer-pack"
FORMAT_VERSION = 1
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "transfer-pack.schema.json"
NUDGE_KIND = "transfer_unconfirmed"

CONCERN_TEXT = ("child_name_given", "subject_name", "location", "account", "child_words", "child_views",
                "worry_history", "action_taken", "others_involved", "source_link")
CONCERN_PLAIN = ("status", "urgent", "immediate_danger", "about_adult", "subject_role", "taxonomy_version",
                 "decision_kind", "needs_child_match")
CONCERN_TIMES = ("created_at", "occurred_at", "acknowledged_at", "decided_at", "outcome_shared_at", "closed_at",
                 "last_activity_at", "redacted_at")


class PackRefused(FlowError):
    """A pack that cannot be imported; the message says why. Nothing was written."""


@lru_cache
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def canonical(pack: dict) -> bytes:
    body = {k: v for k, v in pack.items() if k != "content_sha256"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def content_hash(pack: dict) -> str:
    return hashlib.sha256(canonical(pack)).hexdigest()


def _iso(v: datetime | date | None) -> str | None:
    return v.isoformat() if v is not None else None


def _dt(v: str | None) -> datetime | None:
    return datetime.fromisoformat(v) if v else None


# --- export ----------------------------------------------------------------------------------

def _person_ref(s: Session, cache: dict, pid: int | None) -> dict | None:
    if not pid:
        return None
    if pid not in cache:
        p = s.get(Person, pid)
        cache[pid] = {"email": p.email, "name": p.name} if p else {"email": f"unknown-{pid}@invalid", "name": None}
    return cache[pid]


def _school_ref(school: School) -> dict:
    return {"slug": school.slug, "name": school.name}


PURPOSES = {"export": "exported", "transfer": "sent", "sar": "made a subject access export of"}


def build_pack(s: Session, store: Store, child: Child, *, exported_by: int, to_school: str | None,
               now: datetime, purpose: str = "export") -> dict:
    """The pack for one child (no access check or audit: the callers do both), holding the
    concerns the exporter may handle (flows/access.py). Any other concern is left out without
    a trace in the pack, which would tell the adult it is about that it exists; instead the
    people who hold it are told, in the same transaction, that the file went without it."""
    people: dict = {}
    school = s.get(School, child.school_id)
    concerns = []
    shown, withheld = visible_concerns(s, child.id, exported_by)
    where = f" to {to_school}" if to_school else ""
    tell_holders(s, withheld, actor_id=exported_by, now=now,
                 what=f"{PURPOSES.get(purpose, purpose)} the child protection file of the child it is about{where}")
    for c in shown:
        origin = c.origin or {}
        item: dict[str, Any] = {
            "reference": origin.get("reference", c.reference),
            "school": origin.get("school", _school_ref(s.get(School, c.school_id))),
            "categories": list(c.categories),
            "review_date": _iso(c.review_date),
            "referrer": _person_ref(s, people, c.referrer_id),
            "handler": _person_ref(s, people, c.handler_id),
            "subject_person": _person_ref(s, people, c.subject_person_id),
            "routed_to": [_person_ref(s, people, pid) for pid in c.routed_to],
        }
        for k in CONCERN_TEXT:
            item[k] = getattr(c, k)
        for k in CONCERN_PLAIN:
            item[k] = getattr(c, k)
        for k in CONCERN_TIMES:
            item[k] = _iso(getattr(c, k))
        entries = []
        for e in s.exec(select(ChronologyEntry).where(ChronologyEntry.concern_id == c.id).order_by(ChronologyEntry.seq)):
            entries.append({"kind": e.kind, "at": _iso(e.at), "actor": _person_ref(s, people, e.actor_id),
                            "body": chain.read_body(store.cipher, e), "facts": dict(e.facts),
                            "redacted": e.redacted_at is not None})
        item["entries"] = entries
        concerns.append(item)
    siblings = [{"mis_id": sib.mis_id, "name": sib.name, "date_of_birth": sib.date_of_birth,
                 "year_group": sib.year_group} for sib in siblings_of(s, child)]
    pack = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "exported_at": _iso(now), "exported_by": _person_ref(s, people, exported_by),
        "from_school": {"slug": school.slug, "name": school.name, "nation": school.nation},
        "to_school": to_school,
        "child": {"mis_id": child.mis_id, "name": child.name, "date_of_birth": child.date_of_birth,
                  "year_group": child.year_group},
        "siblings": siblings,
        "concerns": concerns,
    }
    pack["content_sha256"] = content_hash(pack)
    return pack


def export_pack(store: Store, actor_id: int, child_id: int, *, to_school: str | None = None, fmt: str = "json",
                now: datetime | None = None) -> dict:
    """The pack for a child the actor's DSL team holds; the export is audited."""
    now = now or utcnow()
    with store.session() as s:
        child = _child(s, child_id)
        person = require_dsl_for_child(s, actor_id, child)
        pack = build_pack(s, store, child, exported_by=person.id, to_school=to_school, now=now)
        chain.audit(s, "child.exported", actor_id=person.id, school_id=child.school_id, child_id=child.id, at=now,
                    details={"format": fmt, "pack_sha256": pack["content_sha256"]})
        return pack


def record_export(store: Store, actor_id: int, child_id: int, fmt: str, *, now: datetime | None = None) -> None:
    """Audit an HTML or PDF export (made from the child file, itself audited as an opening)."""
    now = now or utcnow()
    with store.session() as s:
        child = _child(s, child_id)
        person = require_dsl_for_child(s, actor_id, child)
        chain.audit(s, "child.exported", actor_id=person.id, school_id=child.school_id, child_id=child.id, at=now,
                    details={"format": fmt})
        tell_holders(s, visible_concerns(s, child.id, person.id)[1], actor_id=person.id, now=now,
                     what=f"exported ({fmt}) the child protection file of the child it is about")


def _child(s: Session, child_id: int) -> Child:
    child = s.get(Child, child_id)
    if child is None:
        raise NotFound("No such pupil.")
    return child


# --- transfer --------------------------------------------------------------------------------

@dataclass
class Sent:
    transfer_id: int
    pack: dict
    due: datetime


def _sent_on(s: Session, t: Transfer) -> Concern | None:
    """The concern whose chronology records the sending (the latest one its sender could see):
    the confirmation goes beside it, where the same people read it."""
    for e in s.exec(select(ChronologyEntry).where(ChronologyEntry.child_id == t.child_id,
                                                  ChronologyEntry.kind == "transfer")):
        if e.facts.get("type") == "transfer_sent" and e.facts.get("transfer_id") == t.id:
            return s.get(Concern, e.concern_id)
    return s.exec(select(Concern).where(Concern.child_id == t.child_id)
                  .order_by(Concern.created_at.desc(), Concern.id.desc())).first()


def send(store: Store, actor_id: int, child_id: int, to_school: str, *, now: datetime | None = None) -> Sent:
    """Export the pack and record that it was sent to ``to_school``: chronology entries and
    audit events for the export and the sending, and a nudge to the sender if the receiving
    school has not confirmed receipt within ``nudges.transfer_confirm_working_days``."""
    now = now or utcnow()
    to_school = (to_school or "").strip()
    if not to_school:
        raise FlowError("Say which school the file is going to (--to).")
    with store.session() as s:
        child = _child(s, child_id)
        person = require_dsl_for_child(s, actor_id, child)
        shown, withheld = visible_concerns(s, child.id, person.id)
        if shown:
            return _send(s, store, person, child, shown[-1], to_school, now)
        # Nothing this sender may handle: answered as for a child with no file at all (anything
        # else would tell the adult a withheld concern is about that it exists); its holders are told.
        tell_holders(s, withheld, actor_id=person.id, now=now,
                     what=f"tried to send the child protection file of the child it is about to {to_school}")
    raise Conflict("This child has no concerns on file: there is no child protection file to transfer.")


def _send(s: Session, store: Store, person: Person, child: Child, latest: Concern, to_school: str,
          now: datetime) -> Sent:
    """The transfer's entries go on the latest concern the sender may handle."""
    from .policy import add_working_days, policy_for

    pack = build_pack(s, store, child, exported_by=person.id, to_school=to_school, now=now, purpose="transfer")
    t = Transfer(child_id=child.id, from_school_id=child.school_id, to_school=to_school,
                 pack_hash=pack["content_sha256"], exported_by=person.id, exported_at=now, sent_at=now,
                 state="sent")
    s.add(t)
    s.flush()
    for kind, what in (("transfer_exported", "Transfer pack exported"), ("transfer_sent", "Transfer pack sent")):
        chain.append_entry(s, store.cipher, concern_id=latest.id, child_id=child.id, kind="transfer",
                           actor_id=person.id, at=now, body={"text": f"{what} to {to_school}.", "to_school": to_school},
                           facts={"type": kind, "transfer_id": t.id, "pack_sha256": t.pack_hash})
        chain.audit(s, f"transfer.{kind.split('_')[1]}", actor_id=person.id, school_id=child.school_id,
                    child_id=child.id, concern_id=latest.id, at=now,
                    details={"transfer_id": t.id, "pack_sha256": t.pack_hash})
    school = s.get(School, child.school_id)
    pol = policy_for(school, s.get(Trust, school.trust_id))
    days = pol.nudges.transfer_confirm_working_days
    due = add_working_days(pol, now, days)
    # Not tied to a concern: the worker drops nudges of closed concerns, and a file is
    # usually transferred with its concerns closed.
    s.add(Nudge(kind=NUDGE_KIND, concern_id=None, recipient_id=person.id, due_at=due,
                dedupe_key=f"{NUDGE_KIND}:{t.id}",
                payload={"transfer_id": t.id,
                         "title": "A child protection file transfer is not confirmed",
                         "text": f"Transfer {t.id}, sent {now:%d/%m/%Y}, has no confirmation of receipt after "
                                 f"{days} school days.",
                         "lines": ["Ask the receiving school's DSL to confirm they have received the file.",
                                   f"Then record it: safeguarding-bot transfer confirm {t.id} --by \"name, role\"."]}))
    latest.last_activity_at = now
    s.add(latest)
    schedule.on_event(s, latest, "transfer_exported", now, transfer_id=t.id)
    return Sent(transfer_id=t.id, pack=pack, due=due)


def confirm(store: Store, actor_id: int, transfer_id: int, confirmed_by: str, *, at: datetime | None = None,
            now: datetime | None = None) -> dict:
    """Record the receiving school's confirmation of receipt (who confirmed, when) and stop
    the nudge. Recorded by the sending school's DSL team, or by the receiving school's when
    both schools use this system."""
    now = now or utcnow()
    if not (confirmed_by or "").strip():
        raise FlowError("Say who at the receiving school confirmed receipt (--by \"name, role\").")
    with store.session() as s:
        person = actor(s, actor_id)
        t = s.get(Transfer, transfer_id)
        if t is None:
            raise NotFound(f"No transfer {transfer_id}.")
        if not (is_dsl_team(s, person.id, t.from_school_id) or _receiving_dsl(s, person.id, t)):
            raise NotAllowed("Only the sending or receiving school's safeguarding team can confirm a transfer.")
        return _confirm(s, store, person, t, confirmed_by.strip(), at or now, now)


def _receiving_dsl(s: Session, person_id: int, t: Transfer) -> bool:
    for school in s.exec(select(School).where((School.name == t.to_school) | (School.slug == t.to_school))):
        if is_dsl_team(s, person_id, school.id):
            return True
    return False


def _confirm(s: Session, store: Store, person: Person, t: Transfer, confirmed_by: str, at: datetime,
             now: datetime) -> dict:
    if t.state == "confirmed":
        raise Conflict(f"Transfer {t.id} was already confirmed on {t.confirmed_at:%d/%m/%Y} by {t.confirmed_by}.")
    t.state, t.confirmed_at, t.confirmed_by = "confirmed", at, confirmed_by
    s.add(t)
    latest = _sent_on(s, t)
    if latest is not None:
        chain.append_entry(s, store.cipher, concern_id=latest.id, child_id=t.child_id, kind="transfer",
                           actor_id=person.id, at=now,
                           body={"text": f"Receipt confirmed by {confirmed_by} on {at:%d/%m/%Y %H:%M}.",
                                 "confirmed_by": confirmed_by, "confirmed_at": at.isoformat()},
                           facts={"type": "transfer_confirmed", "transfer_id": t.id})
    chain.audit(s, "transfer.confirmed", actor_id=person.id, school_id=t.from_school_id, child_id=t.child_id,
                at=now, details={"transfer_id": t.id})
    for n in s.exec(select(Nudge).where(Nudge.dedupe_key == f"{NUDGE_KIND}:{t.id}", Nudge.state == "pending")):
        n.state = "cancelled"
        s.add(n)
    if latest is not None:
        schedule.on_event(s, latest, "transfer_confirmed", now, transfer_id=t.id)
    return {"transfer_id": t.id, "confirmed_at": at, "confirmed_by": confirmed_by}


# --- import ----------------------------------------------------------------------------------

@dataclass
class Imported:
    child_id: int
    concerns: int
    entries: int
    content_sha256: str
    siblings_linked: list[int] = field(default_factory=list)
    siblings_not_here: int = 0
    confirmed_transfer: int | None = None


def check_pack(pack: Any) -> None:
    """Schema first, then the hash. Raises PackRefused with the reason."""
    import jsonschema

    if not isinstance(pack, dict):
        raise PackRefused("not a transfer pack: the file is not a JSON object")
    validator = jsonschema.Draft202012Validator(schema(), format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(pack), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        where = "/".join(str(p) for p in e.absolute_path) or "(top level)"
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise PackRefused(f"does not match the transfer pack schema at {where}: {e.message}{more}")
    if content_hash(pack) != pack["content_sha256"]:
        raise PackRefused("content hash does not match: the pack was altered or damaged after export")


def load_pack_file(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise PackRefused(f"cannot read the file: {exc}") from None
    except json.JSONDecodeError as exc:
        raise PackRefused(f"not valid JSON: {exc}") from None


def import_pack(store: Store, actor_id: int, pack: Any, school_slug: str, *,
                now: datetime | None = None) -> Imported:
    """Import a pack into ``school_slug``: validated, hash checked, then one transaction."""
    now = now or utcnow()
    check_pack(pack)
    with store.session() as s:
        school = s.exec(select(School).where(School.slug == school_slug)).first()
        if school is None:
            raise PackRefused(f"no school {school_slug!r} here")
        person = actor(s, actor_id)
        if not is_dsl_team(s, person.id, school.id):
            raise NotAllowed("Only the receiving school's safeguarding team can import a child protection file.")
        return _import(s, store, person, school, pack, now)


def _import(s: Session, store: Store, person: Person, school: School, pack: dict, now: datetime) -> Imported:
    people: dict[str, int] = {}

    def pid(ref: dict | None) -> int | None:
        if not ref:
            return None
        email = ref["email"].strip().lower()
        if email not in people:
            p = s.exec(select(Person).where(Person.email == email)).first()
            if p is None:  # staff of the sending school: kept so the record says who did what
                p = Person(trust_id=school.trust_id, school_id=None, email=email, name=ref.get("name"), active=False)
                s.add(p)
                s.flush()
            people[email] = p.id
        return people[email]

    c = pack["child"]
    child = s.exec(select(Child).where(Child.school_id == school.id, Child.mis_id == c["mis_id"])).first()
    if child is None:
        child = Child(school_id=school.id, mis_id=c["mis_id"], name=c["name"], date_of_birth=c.get("date_of_birth"),
                      year_group=c.get("year_group"))
        s.add(child)
        s.flush()
    result = Imported(child_id=child.id, concerns=0, entries=0, content_sha256=pack["content_sha256"])
    redacted_ids: list[int] = []
    for item in pack["concerns"]:
        local_ref = f"{item['school']['slug']}:{item['reference']}"[:200]
        if s.exec(select(Concern.id).where(Concern.school_id == school.id, Concern.reference == local_ref)).first():
            raise PackRefused(f"concern {item['reference']} from {item['school']['name']} is already here "
                              "(this pack, or an earlier one, was imported before)")
        concern = Concern(
            school_id=school.id, reference=local_ref, child_id=child.id, referrer_id=pid(item["referrer"]),
            handler_id=pid(item.get("handler")), subject_person_id=pid(item.get("subject_person")),
            routed_to=[pid(r) for r in item.get("routed_to", []) if r],
            categories=list(item["categories"]),
            review_date=date.fromisoformat(item["review_date"]) if item.get("review_date") else None,
            origin={"school": item["school"], "reference": item["reference"],
                    "pack_sha256": pack["content_sha256"], "imported_at": now.isoformat()},
            **{k: item.get(k) for k in CONCERN_TEXT}, **{k: item[k] for k in CONCERN_PLAIN if k in item},
            **{k: _dt(item.get(k)) for k in CONCERN_TIMES})
        if concern.last_activity_at is None:
            concern.last_activity_at = concern.created_at
        s.add(concern)
        s.flush()
        for e in item["entries"]:
            row = chain.append_entry(s, store.cipher, concern_id=concern.id, child_id=child.id, kind=e["kind"],
                                     actor_id=pid(e.get("actor")), at=_dt(e["at"]), body=e["body"], facts=e["facts"])
            if e.get("redacted"):
                redacted_ids.append(row.id)
            result.entries += 1
        result.concerns += 1
    if redacted_ids:
        # Entries already deleted under the sending school's retention policy arrive empty.
        for row in s.exec(select(ChronologyEntry).where(ChronologyEntry.id.in_(redacted_ids))):
            row.body, row.redacted_at = "", now
            s.add(row)
        chain.audit(s, "retention.redacted", actor_id=person.id, school_id=school.id, at=now,
                    details={"chronology_ids": redacted_ids, "reason": "arrived redacted in a transfer pack"})
    siblings = [sib for sib in pack.get("siblings", [])]
    family = child.family_group
    for sib in siblings:
        here = s.exec(select(Child).where(Child.school_id == school.id, Child.mis_id == sib["mis_id"])).first()
        if here is None:
            result.siblings_not_here += 1
            continue
        family = family or here.family_group or f"transfer-{child.id}"
        here.family_group = family
        s.add(here)
        result.siblings_linked.append(here.id)
    if family and child.family_group != family:
        child.family_group = family
        s.add(child)
    chain.audit(s, "transfer.imported", actor_id=person.id, school_id=school.id, child_id=child.id, at=now,
                details={"pack_sha256": pack["content_sha256"], "concerns": result.concerns, "entries": result.entries})
    sent = s.exec(select(Transfer).where(Transfer.pack_hash == pack["content_sha256"], Transfer.state == "sent")).first()
    if sent is not None:  # both schools on this system: the import is the confirmation of receipt
        _confirm(s, store, person, sent, f"{person.name or person.email} (imported at {school.name})", now, now)
        result.confirmed_transfer = sent.id
    return result


def list_transfers(store: Store, actor_id: int, *, pending_only: bool = False) -> list[dict]:
    """Transfers sent by the schools whose safeguarding team the actor is in, newest first."""
    from .chronology import dsl_schools

    with store.session() as s:
        schools = dsl_schools(s, actor(s, actor_id).id)
        if not schools:
            raise NotAllowed("Only a school's safeguarding team can see its transfers.")
        q = select(Transfer).where(Transfer.from_school_id.in_(schools)).order_by(Transfer.id.desc())
        if pending_only:
            q = q.where(Transfer.state != "confirmed")
        out = []
        for t in s.exec(q):
            child = s.get(Child, t.child_id)
            nudge = s.exec(select(Nudge).where(Nudge.dedupe_key == f"{NUDGE_KIND}:{t.id}")).first()
            out.append({"id": t.id, "child_id": t.child_id, "mis_id": child.mis_id if child else None,
                        "to_school": t.to_school, "state": t.state, "sent_at": t.sent_at,
                        "confirm_by": nudge.due_at if nudge else None, "confirmed_at": t.confirmed_at,
                        "confirmed_by": t.confirmed_by})
        return out


def transfers_awaiting(s: Session, school_id: int) -> int:
    return len(list(s.exec(select(Transfer.id).where(Transfer.from_school_id == school_id, Transfer.state == "sent"))))


def audit_count(s: Session, action: str) -> int:  # used by tests and the headline
    return len(list(s.exec(select(AuditEvent.id).where(AuditEvent.action == action))))
