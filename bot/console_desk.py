"""The terminal chat, the handler's side: the queue, a concern's actions ("Identify the adult"
first while the adult a concern is about is not yet identified), the record, a child's file.
Functions of the Console (bot/console.py), calling the same flows as Slack and Teams."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from flows import followup, notices, queries, report, subject, triage
from flows.errors import FlowError, FormErrors
from flows.forms import Form

if TYPE_CHECKING:
    from .console import Console


def child_file(c: "Console") -> None:
    from flows import chronology

    c.heading("A child's file")
    child = c.pick_child()
    if not child.startswith(report.CHILD_PREFIX):
        c.say("Only a pupil on the roll has a file. Match typed names from the concern first.")
        return
    try:
        cf = chronology.child_file(c.store, c.person.id, int(child[len(report.CHILD_PREFIX):]),
                                   via="terminal")
    except FlowError as exc:
        c.say(str(exc))
        return
    for line in cf.lines():
        c.say(line)

def queue(c: "Console") -> None:
    q = queries.dsl_queue(c.store, c.person.id)
    c.heading("Safeguarding queue")
    items = [(str(i.concern_id), f"{i.reference}  {'URGENT ' if i.urgent else ''}"
                                 f"{'awaiting acknowledgement' if i.handler_id is None else i.status + ', handled by ' + (i.handler_name or '?')}"
                                 f"{'  OVERDUE' if i.overdue else ''}") for i in q.awaiting_ack + q.open]
    if not items:
        c.say("Nothing open.")
        return
    choice = c.choose("Choose a concern:", items)
    if choice:
        concern_menu(c, int(choice))


def concern_menu(c: "Console", concern_id: int) -> None:
    actions = [("ack", "Acknowledge and take ownership"), ("open", "Open the record (recorded)"),
               ("ask", "Ask the referrer for more information"), ("note", "Add a note, discussion or action"),
               ("decide", "Record a decision (with reasons)"), ("step", "Record a social care step"),
               ("share", "Share an outcome with the referrer"), ("challenge", "Record a professional challenge"),
               ("close", "Close with an outcome summary")]
    while True:
        c.heading("Concern")
        offered = actions
        if subject.may_identify(c.store, c.person.id, concern_id):
            offered = [("identify", "Identify the adult (the referrer typed their name)")] + actions
        action = c.choose("Choose:", offered)
        if action is None:
            return
        try:
            out = concern_action(c, concern_id, action)
            if action == "identify" and not out["still_yours"]:
                return  # it is about them: nothing more here for them
        except FormErrors as exc:
            c.say("Not recorded:")
            for name, msg in exc.errors.items():
                c.say(f"• {name}: {msg}", indent="  ")
        except FlowError as exc:
            c.say("Not recorded: " + str(exc))

def concern_action(c: "Console", cid: int, action: str) -> dict | None:
    st, me = c.store, c.person.id
    if action == "identify":
        return identify(c, cid)
    elif action == "ack":
        r = triage.acknowledge(st, me, cid)
        c.say(f"Already acknowledged by {r['acknowledged_by']}." if r["already"]
                 else f"{r['reference']} is yours. The rest of the team can see that.")
    elif action == "open":
        show_record(c, triage.open_record(st, me, cid, via="terminal"))
    elif action == "ask":
        triage.ask_referrer(st, me, cid, c.ask("Question for the referrer > "))
        c.say("Sent privately to the referrer; the question is in the record.")
    elif action == "note":
        kind = c.choose("Which?", [("note", "Note"), ("discussion", "Discussion"), ("action", "Action")])
        if kind:
            text = c.ask("What was noted / discussed / done? > ")
            who = c.ask("Who took part? > ") if kind == "discussion" else None
            triage.add_entry(st, me, cid, kind, text, participants=who)
            c.say("Added to the record.")
    elif action == "decide":
        form = triage.decision_form()
        c.heading(form.title)
        c.say(form.intro)
        values = c.fill(form, lambda v: validate_only(form, v))
        out = triage.record_decision(st, me, cid, values)
        c.say(f"Decision recorded. Review date: {out['review_date']:%d %b %Y}.")
    elif action == "step":
        step = c.choose("Which step?", list(triage.STEP_LABELS.items()))
        if step:
            when = c.ask("When? (e.g. 26/11/2026 10:00, or 'now') > ")
            from flows.forms import _parse_datetime
            at = datetime.now(timezone.utc) if when.lower() == "now" else _parse_datetime(when, timezone.utc)
            triage.record_social_care_step(st, me, cid, step, at, c.ask("Note (optional) > "))
            c.say("Recorded.")
    elif action == "share":
        triage.share_outcome(st, me, cid, c.ask("What should the referrer be told? > "))
        c.say("Shared with the referrer.")
    elif action == "challenge":
        stage = c.choose("Stage:", [(str(k), v) for k, v in followup.CHALLENGE_STAGES.items()])
        if stage:
            on = c.ask("Date (e.g. 01/12/2026) > ")
            from flows.forms import _parse_date
            followup.record_challenge(st, me, cid, stage=int(stage), on=_parse_date(on),
                                      with_whom=c.ask("Raised with (name and role) > "),
                                      note=c.ask("What was challenged and why? > "))
            c.say("Challenge recorded.")
    elif action == "close":
        triage.close(st, me, cid, c.ask("Outcome summary: how it was followed up and resolved > "))
        c.say("Closed.")

def identify(c: "Console", cid: int) -> dict:
    """Say who the adult is, or that they are not on the staff list, with the reason."""
    p = subject.pending(c.store, c.person.id, cid)
    form = subject.identify_form()
    c.heading(form.title)
    c.say(f"{p['reference']}: the referrer wrote “{p['typed']}”.")
    c.say(form.intro)
    values = c.fill(form, lambda v: subject.validate_form(c.store, c.person.id, cid, v), staff_only=True)
    out = subject.identify_from_form(c.store, c.person.id, cid, values)
    c.say(subject.outcome_line(out))
    return out


def show_record(c: "Console", v: triage.RecordView) -> None:
    c.heading(f"{v.reference} — {'URGENT — ' if v.urgent else ''}{v.status}")
    d = v.details
    rows = [("Child", v.child_name + (f" ({year_label(v.child_year)})" if v.child_year else "")),
            ("Raised by", v.referrer), ("Handler", v.handler or "nobody yet"),
            ("Categories", ", ".join(v.categories)),
            ("When", d["occurred_at"].strftime("%d %b %Y %H:%M") if d["occurred_at"] else "?"),
            ("Where", d["location"]), ("What happened", d["account"]),
            ("Child's words", d["child_words"] or "(none recorded)"),
            ("Child's views", d["child_views"] or "(none recorded)"),
            ("Worried since", d["worry_history"]), ("Others involved", d["others_involved"]),
            ("Action taken", d["action_taken"])]
    if d["about_adult"]:
        rows.append(("About an adult", f"{d['about_adult']}: {d['subject_name']}"
                     + (" (typed by the referrer: not yet identified)" if v.subject_unresolved else "")))
    for label, value in rows:
        if value:
            c.say(f"{label}: {value}")
    h = v.history
    c.heading("Wider history")
    for flag in h.flags:
        c.say(f"⚑ {flag}")
    for label, items in (("Earlier concerns", h.earlier), ("Siblings' concerns", h.siblings)):
        c.say(f"{label}: " + ("none" if not items else ""))
        for p in items:
            who = f" ({p.child_name})" if p.child_name else ""
            c.say(f"{p.reference}{who} {p.created_at:%d %b %Y} {', '.join(p.categories)} — "
                     f"{p.status}{', ' + p.decision if p.decision else ''}", indent="   ")
    c.heading("Chronology")
    for e in v.entries:
        summary = "; ".join(f"{k}: {val}" for k, val in e.body.items() if val not in (None, "", []))
        c.say(f"{e.at:%d %b %H:%M} {entry_label(e.kind, e.facts):<28} {e.actor}" +
                 (f" — {summary}" if summary else ""))

ENTRY_TYPES = {"question_to_referrer": "question to the referrer", "referrer_answer": "the referrer's answer",
               "update_requested": "referrer asked for an update", "still_worried": "referrer still worried",
               "child_matched": "matched to the roll"}


def entry_label(kind: str, facts: dict) -> str:
    """A chronology entry's kind in words, with the fact that says what sort it is."""
    t = facts.get("type")
    if t == "checkin":
        return f"check-in: {notices.CHECKIN_ANSWERS.get(facts.get('answer'), '?')}"
    if t == "professional_challenge":
        return f"professional challenge, stage {facts.get('stage')}"
    if facts.get("step"):
        return f"social care: {triage.STEP_LABELS.get(facts['step'], facts['step'])}"
    if kind == "decision":
        return f"decision: {facts.get('decision', '?').replace('_', ' ')}"
    return ENTRY_TYPES.get(t, kind.replace("_", " "))


def year_label(year_group: str | None) -> str:
    if not year_group:
        return "year not known"
    if year_group.upper() in ("R", "RECEPTION"):
        return "Reception"
    return f"Year {year_group}" if year_group.isdigit() else year_group


def validate_only(form: Form, values: dict) -> None:
    from flows.forms import clean

    clean(form, values)
