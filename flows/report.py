"""Report a concern: the form, the clear-language check, submission, routing and receipt."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from storage import chain
from storage.db import Store
from storage.models import Child, Concern, EntryKind, Person, ReferenceCounter, Role, School, utcnow

from . import notices, schedule, taxonomy
from .access import PICKED, UNRESOLVED, subject_unresolved
from .errors import FormErrors, NotAllowed, NotInDirectory
from .forms import Choice, Field, Form, Kind, clean
from .routing import route

DANGER_ADVICE = (
    "If the child is in immediate danger: call 999 now and ask for the police "
    "(or an ambulance if they are hurt). Then find the safeguarding lead in person — do not "
    "wait for a reply to this message. Stay with the child if it is safe to do so. "
    "Then complete this report: the safeguarding team and the headteacher will be alerted as urgent."
)

ABOUT_ADULT_CHOICES = (
    Choice(value="no", label="No — it is about a child"),
    Choice(value="staff", label="Yes — a member of staff"),
    Choice(value="volunteer", label="Yes — a volunteer"),
    Choice(value="headteacher", label="Yes — the headteacher"),
    Choice(value="other_adult", label="Yes — another adult in school (contractor, visitor, supply)"),
)


def report_form() -> Form:
    return _report_form(taxonomy.current().version)


@lru_cache(maxsize=4)
def _report_form(taxonomy_version: str) -> Form:
    # Built once per taxonomy version: the form is frozen, and every request that opens or
    # checks a report needs it (Slack's acks share the event loop with that work).
    tax = taxonomy.version(taxonomy_version)
    return Form(
        id="report_concern",
        title="Report a concern",
        submit_label="Send to the DSL",
        intro="Everything you write goes privately to the safeguarding team. Write facts: what you "
              "saw and heard, who, when and where, and the child's own words.",
        fields=(
            Field(name="immediate_danger", label="Is the child in immediate danger right now?", kind=Kind.boolean,
                  required=True, help="If yes: call 999 first, then find the DSL in person."),
            Field(name="child", label="Which child?", kind=Kind.child, required=True, max_length=200,
                  help="Search the school roll by name. If the child is not listed, type their full name and "
                       "year group: the DSL will match the record."),
            Field(name="occurred_at", label="When did it happen (or when did you notice)?", kind=Kind.datetime,
                  required=True, not_in_future=True, help="Date and time, e.g. 25/11/2026 14:30."),
            Field(name="location", label="Where?", kind=Kind.text, required=True, max_length=200,
                  placeholder="e.g. Year 4 classroom, playground, online"),
            Field(name="categories", label="Category", kind=Kind.multichoice, required=True,
                  choices=tuple(Choice(value=c.code, label=c.label) for c in tax.categories),
                  help="Choose every category that fits. The trust keeps this list the same in every school."),
            Field(name="account", label="What happened — the facts", kind=Kind.longtext, required=True,
                  min_length=20, max_length=3000,
                  help="What you saw and heard, who was there, when and where. Facts, not opinions; "
                       "name body parts and actions plainly."),
            Field(name="child_words", label="What the child said, in their exact words", kind=Kind.longtext,
                  max_length=3000, help="Write their words exactly as they said them, even if they are "
                                        "rude or unclear. Leave empty if the child said nothing."),
            Field(name="child_views", label="The child's views and wishes", kind=Kind.longtext, max_length=2000,
                  help="What does the child want to happen? How do they describe their life at home and school?"),
            Field(name="worry_history", label="How long have you been worried, and why?", kind=Kind.longtext,
                  max_length=2000, help="Earlier signs, changes you noticed, anything that adds up over time."),
            Field(name="others_involved", label="Other children involved, and siblings", kind=Kind.longtext,
                  max_length=1000, help="Names and year groups, and whether siblings may be affected too."),
            Field(name="action_taken", label="Action you have already taken", kind=Kind.longtext, max_length=2000,
                  help="e.g. first aid given, spoke to the child, nobody told yet. Do not investigate yourself."),
            Field(name="about_adult", label="Is this concern about a member of staff, volunteer or other adult in school?",
                  kind=Kind.choice, required=True, choices=ABOUT_ADULT_CHOICES,
                  help="Concerns about adults go to the headteacher (or the chair of governors if about the headteacher)."),
            Field(name="subject", label="Which adult?", kind=Kind.person, max_length=200, required=True,
                  show_if=("about_adult", ("staff", "volunteer", "headteacher", "other_adult")),
                  help="Search the staff list by name. If they are not on it (a visitor, a contractor), type "
                       "their name and what they do: the headteacher then decides who may see this report."),
        ),
    )


CHILD_PREFIX = "child:"
STAFF_PREFIX = "person:"


def child_value(child_id: int) -> str:
    return f"{CHILD_PREFIX}{child_id}"


def staff_value(person_id: int) -> str:
    return f"{STAFF_PREFIX}{person_id}"


def search_staff(store: Store, referrer_id: int, query: str, limit: int = 20) -> list[tuple[str, str]]:
    """(value, label) of the adults on the referrer's school staff list whose name or email matches
    every word typed: what the report's "Which adult?" picker offers."""
    from storage.people import search_staff as _search

    with store.session() as s:
        referrer = _referrer(s, referrer_id)
        if referrer.school_id is None:
            return []
        return [(staff_value(p.id), label) for p, label in _search(s, referrer.school_id, query, limit=limit)]


@dataclass
class Receipt:
    concern_id: int
    reference: str
    urgent: bool
    lines: list[str]
    duplicate: bool = False  # an earlier submission with the same key was found
    recipients: list[int] = field(default_factory=list)


def _school_of(s: Session, person: Person) -> School:
    if person.school_id is None:
        raise NotAllowed("You are not attached to a school in the directory, so a concern cannot be routed. "
                         "Ask your school's safeguarding lead or IT admin to add you.")
    return s.get(School, person.school_id)


def validate(store: Store, referrer_id: int, raw: dict, *, now: datetime | None = None) -> dict:
    """Check a submission without saving anything; raises FormErrors with per-field messages."""
    with store.session() as s:
        referrer = _referrer(s, referrer_id)
        school = _school_of(s, referrer)
        return _clean(s, school, raw, now=now)


def _referrer(s: Session, person_id: int) -> Person:
    person = s.get(Person, person_id)
    if person is None or not person.active:
        raise NotInDirectory("You are not in the school directory.")
    return person


def _clean(s: Session, school: School, raw: dict, *, now: datetime | None) -> dict:
    def checks(values, errors):
        child = values.get("child")
        if child and child.startswith(CHILD_PREFIX):
            row = _child_in_school(s, school, child)
            if row is None:
                errors["child"] = "That pupil is not on this school's roll: search again or type the name."
        elif child is not None and len(child) < 3:
            errors["child"] = "Type the child's full name (and year group) so the DSL can find them."
        adult = values.get("subject")
        if adult and adult.startswith(STAFF_PREFIX):
            if _staff_in_school(s, school, adult) is None:
                errors["subject"] = "That person is not on this school's staff list: search again or type the name."
        elif adult is not None and len(adult) < 3:
            errors["subject"] = "Type the adult's full name and what they do (e.g. visiting coach)."

    return clean(report_form(), raw, tz=ZoneInfo(school.timezone), now=now, extra_checks=checks)


def _child_in_school(s: Session, school: School, value: str) -> Child | None:
    try:
        cid = int(value[len(CHILD_PREFIX):])
    except ValueError:
        return None
    child = s.get(Child, cid)
    return child if child and child.school_id == school.id else None


def _staff_in_school(s: Session, school: School, value: str) -> Person | None:
    try:
        pid = int(value[len(STAFF_PREFIX):])
    except ValueError:
        return None
    person = s.get(Person, pid)
    return person if person and person.active and person.school_id == school.id else None


def child_age(child: Child | None, on: date) -> int | None:
    if child is None or not child.date_of_birth:
        return None
    dob = date.fromisoformat(child.date_of_birth)
    return on.year - dob.year - ((on.month, on.day) < (dob.month, dob.day))


def wording_hints(store: Store, referrer_id: int, raw: dict) -> dict[str, list]:
    """Vague or euphemistic wording in the free-text answers: suggestions, never a block."""
    from . import wording

    age = None
    with store.session() as s:
        referrer = _referrer(s, referrer_id)
        school = _school_of(s, referrer)
        value = raw.get("child") or ""
        if value.startswith(CHILD_PREFIX):
            age = child_age(_child_in_school(s, school, value), date.today())
    texts = {k: raw.get(k) or "" for k in ("account", "worry_history", "action_taken")}  # never the child's words
    return {k: v for k, v in wording.check_fields(texts, child_age=age).items() if v}


def _next_reference(s: Session, school: School, year: int) -> str:
    q = select(ReferenceCounter).where(ReferenceCounter.school_id == school.id,
                                       ReferenceCounter.year == year).with_for_update()
    counter = s.exec(q).first()
    if counter is None:
        try:
            with s.begin_nested():
                s.add(ReferenceCounter(school_id=school.id, year=year, last=0))
                s.flush()
        except IntegrityError:
            pass  # created by a concurrent submission; lock it below
        counter = s.exec(q).one()
    counter.last += 1
    s.add(counter)
    return f"{school.reference_prefix}-{year}-{counter.last:04d}"


def receipt_lines(reference: str, urgent: bool, *, unresolved: bool = False) -> list[str]:
    if unresolved:  # only the routed recipient may see it (flows/access.py): say so, not "the DSL"
        lines = [f"Your concern has been recorded. Reference: {reference}.",
                 "You typed the adult's name rather than choosing them from the staff list, so it has gone "
                 "privately to the headteacher (or, where that cannot be, the chair of governors), who decides who "
                 "it is about. Until then nobody in the safeguarding team can see it. You may be asked for more "
                 "information."]
    else:
        lines = [f"Your concern has been sent to the safeguarding team. Reference: {reference}.",
                 "What happens next: the designated safeguarding lead will review it and decide what to do. "
                 "You may be asked for more information. You will be told when there is an outcome you need to know."]
    lines.append("Do not investigate further or discuss it with colleagues. If you remain worried, say "
                 "“I'm still worried” at any time.")
    if urgent:
        lines.insert(0, DANGER_ADVICE)
    return lines


def submit(store: Store, referrer_id: int, raw: dict, *, submission_key: str | None = None,
           source_link: str | None = None, now: datetime | None = None) -> Receipt:
    """Save the concern, its first chronology entry, the alerts and the receipt in one transaction.

    The same `submission_key` (a Slack view id, a Teams activity id) returns the first receipt
    instead of creating a second concern."""
    now = now or utcnow()
    if submission_key:
        existing = existing_receipt(store, submission_key)
        if existing:
            return existing
    try:
        with store.session() as s:
            return _submit(s, store, referrer_id, raw, submission_key, source_link, now)
    except IntegrityError:
        existing = existing_receipt(store, submission_key) if submission_key else None
        if existing:
            return existing
        raise


def existing_receipt(store: Store, key: str) -> Receipt | None:
    """The receipt of an earlier submission with this key, if there was one (retries, double clicks)."""
    with store.session() as s:
        c = s.exec(select(Concern).where(Concern.submission_key == key)).first()
        if c is None:
            return None
        return Receipt(concern_id=c.id, reference=c.reference, urgent=c.urgent,
                       lines=receipt_lines(c.reference, c.urgent, unresolved=subject_unresolved(c)), duplicate=True,
                       recipients=list(c.routed_to))


def _submit(s: Session, store: Store, referrer_id: int, raw: dict, submission_key, source_link, now) -> Receipt:
    referrer = _referrer(s, referrer_id)
    school = _school_of(s, referrer)
    values = _clean(s, school, raw, now=now)
    child_row = None
    if values["child"].startswith(CHILD_PREFIX):
        child_row = _child_in_school(s, school, values["child"])
    subject_role, subject_person, subject_name = _subject(s, school, values)
    subject_status = None if subject_role is None else (PICKED if subject_person else UNRESOLVED)
    urgent = bool(values["immediate_danger"])
    routing = route(s, school, referrer_id=referrer.id, subject_role=subject_role,
                    subject_person_id=subject_person.id if subject_person else None, urgent=urgent,
                    subject_unresolved=subject_status == UNRESOLVED)
    concern = Concern(
        school_id=school.id, reference=_next_reference(s, school, now.year),
        child_id=child_row.id if child_row else None,
        child_name_given=None if child_row else values["child"], needs_child_match=child_row is None,
        referrer_id=referrer.id, urgent=urgent, immediate_danger=urgent,
        about_adult=subject_role is not None, subject_role=subject_role,
        subject_person_id=subject_person.id if subject_person else None, subject_name=subject_name,
        subject_status=subject_status, taxonomy_version=taxonomy.current().version, categories=values["categories"],
        occurred_at=values["occurred_at"], location=values["location"], account=values["account"],
        child_words=values.get("child_words"), child_views=values.get("child_views"),
        worry_history=values.get("worry_history"), action_taken=values.get("action_taken"),
        others_involved=values.get("others_involved"), source_link=source_link,
        routed_to=[p.id for p in routing.recipients], created_at=now, last_activity_at=now,
        submission_key=submission_key)
    s.add(concern)
    s.flush()
    body = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in values.items()}
    chain.append_entry(s, store.cipher, concern_id=concern.id, child_id=concern.child_id, kind=EntryKind.raised,
                       actor_id=referrer.id, at=now, body=body,
                       facts={"categories": values["categories"], "urgent": urgent, "route": routing.route})
    chain.audit(s, "concern.raised", actor_id=referrer.id, school_id=school.id, concern_id=concern.id,
                child_id=concern.child_id, at=now,
                details={"reference": concern.reference, "route": routing.route,
                         "recipients": concern.routed_to, "urgent": urgent})
    for person in routing.recipients:
        notices.enqueue(s, at=now, kind="concern_alert", recipient_id=person.id, urgent=urgent,
                        dedupe_key=f"alert:{concern.id}:{person.id}", payload={"concern_id": concern.id})
    notices.enqueue(s, at=now, kind="receipt", recipient_id=referrer.id, dedupe_key=f"receipt:{concern.id}",
                    payload={"concern_id": concern.id})
    schedule.on_event(s, concern, "raised", now)
    return Receipt(concern_id=concern.id, reference=concern.reference, urgent=urgent,
                   lines=receipt_lines(concern.reference, urgent, unresolved=subject_status == UNRESOLVED),
                   recipients=list(concern.routed_to))


def _subject(s: Session, school: School, values: dict) -> tuple[str | None, Person | None, str | None]:
    """(role, person, name) of the adult a concern is about. The person is known only when the
    referrer picked them from the staff list: a typed name is never matched to someone, since a
    near miss ("Mrs N. Surname", a typo) would let the adult concerned read it; such a concern
    is unresolved (flows/access.py) until its recipient says who it is about."""
    if values["about_adult"] == "no":
        return None, None, None
    role, value = values["about_adult"], values.get("subject") or ""
    person = _staff_in_school(s, school, value) if value.startswith(STAFF_PREFIX) else None
    if person is None:
        return role, None, value
    from storage.people import roles_of

    if Role.headteacher.value in roles_of(s, person.id, school.id):
        role = "headteacher"  # a concern about the head goes to the chair, whatever was ticked
    return role, person, person.name or person.email
