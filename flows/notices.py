"""Outbound messages, transport-neutral.

Flows write an OutboxMessage in the same transaction as the change that caused it; its
payload holds ids and references only. When a transport delivers it, `compose` turns it
into a Notice: `text` is what a lock screen or notification shows (never a child's name or
any detail), `lines` is the body of a 1:1 message, `actions` are buttons with stable ids
that every transport maps to its own widgets."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from storage.models import Concern, OutboxMessage, Person, School, utcnow

from . import taxonomy
from .access import subject_unresolved

# Stable action ids (Slack action_id / Teams verb / terminal menu).
ACKNOWLEDGE = "acknowledge"
OPEN_RECORD = "open_record"
RECORD_DECISION = "record_decision"
ASK_REFERRER = "ask_referrer"
ANSWER_QUESTION = "answer_question"
CHECKIN = "checkin"
STILL_WORRIED = "still_worried"
REQUEST_UPDATE = "request_update"
REPORT_CONCERN = "report_concern"
SHARE_OUTCOME = "share_outcome"
CLOSE = "close"
IDENTIFY_SUBJECT = "identify_subject"  # the routed recipient says who a typed name means (flows/subject.py)

CHECKIN_ANSWERS = {"improved": "Improved", "no_change": "No change", "worse": "Worse", "dont_know": "Don't know"}


class Action(BaseModel):
    id: str
    label: str
    value: dict[str, Any] = {}
    style: Optional[str] = None  # "primary" | "danger" | None


class Notice(BaseModel):
    kind: str
    text: str                      # notification-safe
    title: str
    lines: list[str] = []
    actions: list[Action] = []
    concern_id: Optional[int] = None
    reference: Optional[str] = None
    urgent: bool = False


def enqueue(s: Session, *, kind: str, recipient_id: int, dedupe_key: str, payload: dict | None = None,
            urgent: bool = False, at: datetime | None = None) -> OutboxMessage | None:
    """Queue a message; a second message with the same dedupe key is dropped (retries, double clicks)."""
    if s.exec(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == dedupe_key)).first():
        return None
    msg = OutboxMessage(kind=kind, recipient_id=recipient_id, dedupe_key=dedupe_key, payload=payload or {},
                        urgent=urgent, next_attempt_at=at or utcnow())
    try:
        with s.begin_nested():
            s.add(msg)
            s.flush()
    except IntegrityError:  # a concurrent writer queued it first
        return None
    return msg


def _concern_actions(cid: int, concern: Concern | None = None) -> list[Action]:
    v = {"concern_id": cid}
    acts = [Action(id=ACKNOWLEDGE, label="Acknowledge", value=v, style="primary"),
            Action(id=OPEN_RECORD, label="Open record", value=v),
            Action(id=RECORD_DECISION, label="Record decision", value=v),
            Action(id=ASK_REFERRER, label="Ask the referrer", value=v)]
    if concern is not None and subject_unresolved(concern):  # only its routed recipient is told
        acts.insert(0, Action(id=IDENTIFY_SUBJECT, label="Identify the adult", value=v, style="primary"))
        acts[1] = acts[1].model_copy(update={"style": None})
    return acts


UNRESOLVED_LINE = ("The referrer typed the adult's name instead of choosing them from the staff list. Say who it "
                   "is (Identify the adult): until you do, nobody in the safeguarding team can see this concern.")


def compose(s: Session, msg: OutboxMessage) -> Notice:
    p = msg.payload
    concern = s.get(Concern, p["concern_id"]) if p.get("concern_id") else None
    ref = concern.reference if concern else p.get("reference")
    cid = concern.id if concern else None
    name = _name(s, p.get("by_id"))
    kind = msg.kind
    v = {"concern_id": cid}

    if kind == "concern_alert":
        urgent = bool(concern and concern.urgent)
        cats = ", ".join(taxonomy.label(c, concern.taxonomy_version) for c in concern.categories)
        school = s.get(School, concern.school_id)
        lines = [f"Reference: {ref}", f"School: {school.name}", f"Categories: {cats}",
                 f"Raised by: {_name(s, concern.referrer_id)} at {_local(concern.created_at)}"]
        if concern.about_adult:
            lines.append("This concern is about an adult in school: handle it under the allegations procedure.")
        if subject_unresolved(concern):
            lines.append(UNRESOLVED_LINE)
        if concern.needs_child_match:
            lines.append("The child was not found in the roster: match the record when you open it.")
        if urgent:
            lines.insert(0, "URGENT: the referrer says the child is in immediate danger.")
        prefix = "URGENT safeguarding concern" if urgent else "New safeguarding concern"
        return Notice(kind=kind, text=f"{prefix} {ref} needs you", title=prefix, lines=lines,
                      actions=_concern_actions(cid, concern), concern_id=cid, reference=ref, urgent=urgent)
    if kind == "alert_acknowledged":
        when = _local(datetime.fromisoformat(p["at"]))
        return Notice(kind=kind, text=f"{ref} acknowledged by {name}", title="Safeguarding concern acknowledged",
                      lines=[f"Reference: {ref}", f"Acknowledged by {name} at {when}"],
                      actions=[a for a in _concern_actions(cid, concern) if a.id != ACKNOWLEDGE],
                      concern_id=cid, reference=ref)
    if kind == "receipt":
        return Notice(kind=kind, text=f"Your safeguarding concern {ref} was received",
                      title="Concern received", concern_id=cid, reference=ref, lines=[
                          f"Thank you. Your concern has been recorded with reference {ref}.",
                          "What happens next: the safeguarding lead has been alerted privately and will "
                          "decide what to do. You may be asked for more information."
                          if not (concern and subject_unresolved(concern)) else
                          "What happens next: you typed the adult's name, so it has gone privately to the "
                          "headteacher (or the chair of governors), who decides who it is about. You may be "
                          "asked for more information.",
                          "Do not discuss it with colleagues or investigate yourself. If you become worried "
                          "again, or nothing seems to happen, use “I'm still worried” at any time."],
                      actions=[Action(id=STILL_WORRIED, label="I'm still worried", value=v)])
    if kind == "info_request":
        return Notice(kind=kind, text=f"The safeguarding lead has a question about {ref}",
                      title="Question about your concern", concern_id=cid, reference=ref,
                      lines=[f"{name} asks about {ref}:", p.get("question_text", "")],
                      actions=[Action(id=ANSWER_QUESTION, label="Answer", value=v, style="primary")])
    if kind == "info_answered":
        return Notice(kind=kind, text=f"The referrer answered your question on {ref}", title="Referrer answered",
                      concern_id=cid, reference=ref, lines=[f"Reference: {ref}", "Open the record to read the answer."],
                      actions=[Action(id=OPEN_RECORD, label="Open record", value=v)])
    if kind == "outcome_shared":
        return Notice(kind=kind, text=f"An update on your concern {ref}", title="Update from the safeguarding lead",
                      concern_id=cid, reference=ref, lines=[f"About {ref}, {name} says:", p.get("outcome_text", "")],
                      actions=[Action(id=STILL_WORRIED, label="I'm still worried", value=v)])
    if kind in ("checkin", "referrer_follow_up"):
        if kind == "referrer_follow_up":
            first = "You have not been told an outcome yet. You can ask the safeguarding lead for an update."
        elif concern and msg.recipient_id != concern.referrer_id:  # the review date, for the handler
            first = ("The review date has come. Has the child's situation improved? If not, re-assess and "
                     "consider escalation.")
        else:
            first = "Has anything changed for the child since you raised it?"
        actions = [Action(id=CHECKIN, label=label, value={**v, "answer": key}) for key, label in CHECKIN_ANSWERS.items()]
        if kind == "referrer_follow_up":
            actions = [Action(id=REQUEST_UPDATE, label="Ask for an update", value=v, style="primary")] + actions
        actions.append(Action(id=STILL_WORRIED, label="I'm still worried", value=v, style="danger"))
        return Notice(kind=kind, text=f"Checking in about your concern {ref}", title="Checking in",
                      concern_id=cid, reference=ref, lines=[f"Reference: {ref}", first], actions=actions)
    if kind in ("escalation", "reassess", "update_requested"):
        what = {"escalation": "The referrer is still worried",
                "reassess": "A check-in says the child's situation has not improved: re-assess",
                "update_requested": "The referrer asks for an update"}[kind]
        return Notice(kind=kind, text=f"{ref}: {what.lower()}", title=what, concern_id=cid, reference=ref,
                      urgent=msg.urgent, lines=[f"Reference: {ref}", what + ".",
                                                *([p["why"]] if p.get("why") else [])],
                      actions=[Action(id=OPEN_RECORD, label="Open record", value=v),
                               Action(id=RECORD_DECISION, label="Record decision", value=v)])
    # Nudges and system alerts carry their own safe wording in the payload.
    title = p.get("title", "Safeguarding reminder")
    return Notice(kind=kind, text=p.get("text", f"{title}: {ref}" if ref else title), title=title,
                  concern_id=cid, reference=ref, urgent=msg.urgent, lines=list(p.get("lines", [])),
                  actions=[Action(**a) for a in p.get("actions", [])] or
                  ([Action(id=OPEN_RECORD, label="Open record", value=v)] if cid else []))


def _name(s: Session, person_id: int | None) -> str:
    if not person_id:
        return "someone"
    person = s.get(Person, person_id)
    return (person.name or person.email) if person else "someone"


def _local(dt: datetime) -> str:
    from zoneinfo import ZoneInfo

    return dt.astimezone(ZoneInfo("Europe/London")).strftime("%a %d %b %Y %H:%M")
