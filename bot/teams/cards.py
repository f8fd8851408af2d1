"""Adaptive Cards 1.5 for Teams, built with `microsoft_teams.cards` models from the flows' own
definitions: the report form (flows.report.report_form) and the decision form
(flows.triage.decision_form) become card inputs; a flows.notices.Notice becomes a card whose
buttons are `Action.Execute` with both `verb` and `data.action` (the stable notice action id).

Privacy: every card carries `fallbackText` and every activity a `summary`: both are the
notification-safe text (a reference at most, never a child's name or any detail).

The report is two steps in one card that is replaced in place (Action.Execute answers with the
next card): 1. immediate danger + a roster search for the child; 2. the chosen child and the rest
of the form. On submit the card is replaced by the receipt, so no concern content stays in the chat.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from microsoft_teams.cards import (ActionSet, AdaptiveCard, ChoiceSetInput, DateInput, ExecuteAction, Fact,
                                   FactSet, QueryData, TextBlock, TextInput, TimeInput)
from microsoft_teams.cards import Choice as CardChoice

from flows import notices
from flows.forms import Field, Form, Kind

VERSION = "1.5"
MAX_ACTIONS = 5
LONDON = ZoneInfo("Europe/London")

# Verbs of our own (the notice action ids in flows.notices are used as they are).
REPORT_FIND_CHILD = "report_find_child"
REPORT_SUBMIT = "report_submit"
REPORT_RESTART = "report_restart"
DECISION_SUBMIT = "decision_submit"
ASK_SUBMIT = "ask_submit"
ANSWER_SUBMIT = "answer_submit"
SHARE_SUBMIT = "share_submit"
CLOSE_SUBMIT = "close_submit"
NOTE_SUBMIT = "note_submit"
IDENTIFY_SUBMIT = "identify_subject_submit"
ADD_NOTE = "add_note"
HIDE_RECORD = "hide_record"
CHILD_SEARCH_DATASET = "children"  # Teams' dynamic typeahead (application/search) for the child picker
STAFF_SEARCH_DATASET = "staff"     # ... and for the report's "Which adult?" picker
STAFF_ONLY_DATASET = "staff_only"  # ... and "Identify the adult" (no "not on the list" entry: it asks that itself)
STAFF_LISTED = 100                 # staff offered without searching (clients with no typeahead)
TYPED_SUFFIX = ".typed"            # a person picker's "not on the list" text box

DATE_SUFFIX, TIME_SUFFIX = ".date", ".time"
CHILD_QUERY = "child_query"


# --- building blocks ----------------------------------------------------------------------------

def execute(title: str, verb: str, style: str | None = None, **data) -> ExecuteAction:
    """An Action.Execute with both the verb (Teams needs it) and data.action (the SDK routes on it)."""
    kw = {"style": "positive" if style == "primary" else "destructive" if style == "danger" else None}
    return ExecuteAction(title=title, verb=verb, data={"action": verb, **data}, **{k: v for k, v in kw.items() if v})


def text(value: str, **kw) -> TextBlock:
    return TextBlock(text=value, wrap=True, **kw)


def card(title: str, body: Iterable[Any], actions: Iterable[ExecuteAction] = (), *, fallback: str) -> AdaptiveCard:
    """A card: a bold title, the body, Action.Execute buttons, and a text fallback (notification-safe)."""
    items = [text(title, weight="Bolder", size="Medium"), *body]
    acts = list(actions)
    if len(acts) > MAX_ACTIONS:  # hosts show at most 5 actions in a row: put them in rows of 3
        items += [ActionSet(actions=acts[i:i + 3]) for i in range(0, len(acts), 3)]
        acts = []
    return AdaptiveCard(version=VERSION, fallback_text=fallback, body=items, actions=acts or None)


def activity(c: AdaptiveCard, summary: str) -> dict:
    """A message activity (JSON) carrying the card; `summary` is what a notification shows."""
    from microsoft_teams.api import MessageActivityInput

    act = MessageActivityInput().add_card(c)
    out = act.model_dump(by_alias=True, exclude_none=True, mode="json")
    out["summary"] = summary
    return out


def message(title: str, lines: Iterable[str], actions: Iterable[ExecuteAction] = (), *, fallback: str | None = None,
            attention: bool = False) -> AdaptiveCard:
    body = [text(line, color="Attention" if attention and i == 0 else None) if line else None
            for i, line in enumerate(lines)]
    return card(title, [b for b in body if b is not None], actions, fallback=fallback or title)


def when(dt: datetime | str | None) -> str:
    if dt is None:
        return "?"
    if isinstance(dt, str):
        dt = datetime.fromisoformat(dt)
    if getattr(dt, "tzinfo", None) is None and isinstance(dt, datetime):
        from datetime import timezone

        dt = dt.replace(tzinfo=timezone.utc)
    if not isinstance(dt, datetime):  # a date
        return dt.strftime("%a %d %b %Y")
    return dt.astimezone(LONDON).strftime("%a %d %b %Y %H:%M")


# --- forms ----------------------------------------------------------------------------------------

def _label(f: Field) -> str:
    if f.show_if:
        return f"{f.label} (only if it applies)"
    return f.label


def _value(values: dict, name: str) -> str | None:
    v = values.get(name)
    if v is None or v == "":
        return None
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v)
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v)


def field_inputs(f: Field, values: dict, errors: dict, staff: list[tuple[str, str]] = ()) -> list:
    """The card elements for one form field: the input (label, required, current value), its help,
    and its error message from the last submission, if any. `staff`: (value, label) pairs a person
    picker offers before anyone searches."""
    required = f.required and f.show_if is None  # conditional fields: the flow checks them
    common = dict(label=_label(f), is_required=required or None,
                  error_message=(errors.get(f.name) or "Fill in this answer.") if required else None)
    common = {k: v for k, v in common.items() if v is not None}
    v = _value(values, f.name)
    out: list = []
    if f.kind in (Kind.text, Kind.longtext, Kind.child):
        out.append(TextInput(id=f.name, is_multiline=f.kind == Kind.longtext or None, max_length=f.max_length,
                             placeholder=f.placeholder or None, value=v, **common))
    elif f.kind in (Kind.choice, Kind.multichoice):
        multi = f.kind == Kind.multichoice
        out.append(ChoiceSetInput(id=f.name, choices=[CardChoice(title=c.label, value=c.value) for c in f.choices],
                                  is_multi_select=multi or None, style="expanded" if multi else "compact",
                                  value=v, wrap=True, **common))
    elif f.kind == Kind.boolean:
        out.append(ChoiceSetInput(id=f.name, choices=[CardChoice(title="Yes", value="yes"),
                                                      CardChoice(title="No", value="no")],
                                  style="expanded", value=v, **common))
    elif f.kind == Kind.person:
        # Pick from the staff list (Teams' typeahead searches all of it); a name that is not on the
        # list goes in the box below, never matched to a person by its spelling.
        picked = v if v and v.startswith("person:") else None
        if staff:  # a choice set needs at least one choice (nobody to offer: an unknown sender's form)
            out.append(ChoiceSetInput(id=f.name, label=_label(f), style="filtered", wrap=True, value=picked,
                                      choices=[CardChoice(title=label, value=value)
                                               for value, label in staff[:STAFF_LISTED]],
                                      choices_data=QueryData(dataset=STAFF_SEARCH_DATASET)))
        out.append(TextInput(id=f.name + TYPED_SUFFIX, label="Not on the staff list? Their name and what they do",
                             max_length=f.max_length, value=None if picked else v))
    elif f.kind == Kind.date:
        out.append(DateInput(id=f.name, value=v, **common))
    elif f.kind == Kind.datetime:
        d, t = _split_datetime(values.get(f.name + DATE_SUFFIX), values.get(f.name + TIME_SUFFIX))
        out.append(DateInput(id=f.name + DATE_SUFFIX, value=d, **common))
        out.append(TimeInput(id=f.name + TIME_SUFFIX, value=t, label="Time",
                             **({"is_required": True, "error_message": "Give the time."} if required else {})))
    else:  # pragma: no cover - a new kind must be given a widget here
        raise ValueError(f"no card input for {f.kind}")
    if f.help:
        out.append(text(f.help, is_subtle=True, size="Small", spacing="None"))
    if errors.get(f.name):
        out.append(text(errors[f.name], color="Attention", spacing="Small"))
    return out


def _split_datetime(d: Any, t: Any) -> tuple[str | None, str | None]:
    return (str(d) if d else None), (str(t) if t else None)


def read_values(form: Form, data: dict) -> dict:
    """Card input values (Action.Execute data / Action.Submit value) -> the raw values the flow
    expects: strings, lists for multichoice, "yes"/"no", datetimes as "dd/mm/yyyy HH:MM"."""
    raw: dict[str, Any] = {}
    for f in form.fields:
        if f.kind == Kind.datetime:
            d = str(data.get(f.name + DATE_SUFFIX) or "").strip()
            t = str(data.get(f.name + TIME_SUFFIX) or "").strip()
            if d:
                try:
                    y, m, day = (int(x) for x in d.split("-"))
                    d = f"{day:02d}/{m:02d}/{y:04d}"  # the flow reads day first
                except ValueError:
                    pass
            raw[f.name] = f"{d} {t}".strip() if d else ""
            continue
        v = data.get(f.name)
        if f.kind == Kind.person:
            v = v or data.get(f.name + TYPED_SUFFIX)
        if f.kind == Kind.multichoice and isinstance(v, str):
            v = [x for x in v.split(",") if x.strip()]
        raw[f.name] = v
    return raw


def form_body(form: Form, values: dict, errors: dict, *, skip: Iterable[str] = ()) -> list:
    skip = set(skip)
    out: list = []
    if errors:
        out.append(text("Some answers need changing: see the messages under them.", color="Attention"))
    unknown = [k for k in errors if k not in {f.name for f in form.fields}]
    for k in unknown:
        out.append(text(errors[k], color="Attention"))
    for f in form.fields:
        if f.name in skip:
            continue
        out += field_inputs(f, values, errors)
    return out


# --- the report (two steps in one card, replaced in place) -----------------------------------------

def report_step1(form: Form, values: dict | None = None, errors: dict | None = None, *,
                 note: str | None = None) -> AdaptiveCard:
    values, errors = values or {}, errors or {}
    danger = form.field("immediate_danger")
    child = form.field("child")
    body = [text(form.intro, is_subtle=True)]
    if note:
        body.append(text(note, color="Attention"))
    body += field_inputs(danger, values, errors)
    body.append(TextInput(id=CHILD_QUERY, label=child.label + " Type part of their name", is_required=True,
                          error_message=errors.get("child") or "Type part of the child's name.", max_length=100,
                          value=_value(values, CHILD_QUERY)))
    body.append(text(child.help, is_subtle=True, size="Small", spacing="None"))
    if errors.get("child"):
        body.append(text(errors["child"], color="Attention"))
    return card(form.title, body, [execute("Find the child", REPORT_FIND_CHILD, style="primary")],
                fallback="Report a safeguarding concern")


def report_step2(form: Form, children: list[tuple[str, str]], typed: str, values: dict | None = None,
                 errors: dict | None = None, *, danger_advice: str | None = None,
                 hints: dict | None = None, staff: list[tuple[str, str]] = ()) -> AdaptiveCard:
    """`children`: (value, label) pairs from the roster search; `typed`: what was searched for
    (offered as "not on the roll"); `staff`: the school's staff list for the "Which adult?" picker."""
    values, errors, hints = values or {}, errors or {}, hints or {}
    body: list = []
    if danger_advice:
        body.append(text(danger_advice, color="Attention", weight="Bolder"))
    if errors:
        body.append(text("Some answers need changing: see the messages under them.", color="Attention"))
    for k in [k for k in errors if k not in {f.name for f in form.fields}]:
        body.append(text(errors[k], color="Attention"))
    if hints:
        body.append(text("Some wording could be clearer (a suggestion only: you can send it as it is).",
                         color="Warning", weight="Bolder"))
    choices = [CardChoice(title=label, value=value) for value, label in children]
    if typed:
        choices.append(CardChoice(title=f"Not on the roll: “{typed}”", value=typed))
    chosen = _value(values, "child") or (children[0][0] if len(children) == 1 else None)
    f = form.field("child")
    # The pupils found, as a filtered list; where the client has Teams' dynamic typeahead, typing
    # searches the whole roll (an `application/search` invoke for the "children" dataset).
    body.append(ChoiceSetInput(id="child", label=f.label, is_required=True, style="filtered", wrap=True,
                               error_message=errors.get("child") or "Choose the child.", choices=choices,
                               choices_data=QueryData(dataset=CHILD_SEARCH_DATASET), value=chosen))
    if not children:
        body.append(text("No pupil on the roll matched. Choose the name you typed (the DSL will match the "
                         "record) or search again.", is_subtle=True, size="Small"))
    if errors.get("child"):
        body.append(text(errors["child"], color="Attention"))
    for fld in form.fields:
        if fld.name == "child":
            continue
        body += field_inputs(fld, values, errors, staff)
        for h in hints.get(fld.name, []):
            body.append(text(f"“{h.phrase}”: {h.prompt}", color="Warning", size="Small"))
    data = {CHILD_QUERY: typed}
    if hints:
        data["wc"] = 1
    return card(form.title, body, [execute(form.submit_label, REPORT_SUBMIT, style="primary", **data),
                                   execute("Search for the child again", REPORT_RESTART)],
                fallback="Report a safeguarding concern")


def receipt(reference: str, lines: list[str], urgent: bool, concern_id: int) -> AdaptiveCard:
    return message("Concern sent" if not urgent else "URGENT concern sent", lines,
                   [execute("I'm still worried", notices.STILL_WORRIED, concern_id=concern_id)],
                   fallback=f"Your safeguarding concern {reference} was sent", attention=urgent)


# --- notices (outbox messages) ----------------------------------------------------------------------

def notice_actions(actions: Iterable[notices.Action]) -> list[ExecuteAction]:
    return [execute(a.label, a.id, style=a.style, **a.value) for a in actions]


def notice_card(n: notices.Notice) -> AdaptiveCard:
    lines = [line for line in n.lines if line]
    return message(n.title, lines, notice_actions(n.actions), fallback=n.text,
                   attention=n.urgent and n.kind == "concern_alert")


def notice_activity(n: notices.Notice) -> dict:
    return activity(notice_card(n), n.text)


def acknowledged_card(reference: str, concern_id: int, by: str, at: datetime | str | None) -> AdaptiveCard:
    """What every DSL's copy of the alert shows once someone acknowledged (same words as the
    outbox's alert_acknowledged notice)."""
    v = {"concern_id": concern_id}
    acts = [notices.Action(id=notices.OPEN_RECORD, label="Open record", value=v),
            notices.Action(id=notices.RECORD_DECISION, label="Record decision", value=v),
            notices.Action(id=notices.ASK_REFERRER, label="Ask the referrer", value=v)]
    return message("Safeguarding concern acknowledged",
                   [f"Reference: {reference}", f"Acknowledged by {by} at {when(at)}"], notice_actions(acts),
                   fallback=f"{reference} acknowledged by {by}")


# --- the DSL's cards ------------------------------------------------------------------------------

DETAIL_LABELS = (("occurred_at", "When"), ("location", "Where"), ("account", "What happened"),
                 ("child_words", "The child's words"), ("child_views", "The child's views"),
                 ("worry_history", "How long worried"), ("others_involved", "Others involved, siblings"),
                 ("action_taken", "Action already taken"), ("about_adult", "About an adult"),
                 ("subject_name", "Name of the adult"), ("decision", "Decision"))


def _handler_actions(cid: int) -> list[ExecuteAction]:
    return [execute("Record decision", notices.RECORD_DECISION, concern_id=cid),
            execute("Ask the referrer", notices.ASK_REFERRER, concern_id=cid),
            execute("Share outcome", notices.SHARE_OUTCOME, concern_id=cid),
            execute("Add note", ADD_NOTE, concern_id=cid),
            execute("Close", notices.CLOSE, concern_id=cid),
            execute("Hide record", HIDE_RECORD, concern_id=cid)]


def identify_card(form: Form, reference: str, typed: str, cid: int, staff: list[tuple[str, str]],
                  values: dict | None = None, errors: dict | None = None) -> AdaptiveCard:
    """"Identify the adult" (flows/subject.py): on the staff list (who) or not, and why."""
    values, errors = values or {}, errors or {}
    body: list = [text(f"{reference}: the referrer wrote “{typed}”.", weight="Bolder"), text(form.intro, is_subtle=True)]
    if errors:
        body.append(text("Some answers need changing: see the messages under them.", color="Attention"))
    for f in form.fields:
        if f.kind != Kind.person:
            body += field_inputs(f, values, errors)
            continue
        picked = _value(values, f.name)
        body.append(ChoiceSetInput(id=f.name, label=_label(f), style="filtered", wrap=True, value=picked,
                                   choices=[CardChoice(title=label, value=value) for value, label in staff[:STAFF_LISTED]]
                                   or [CardChoice(title="(search by name)", value="")],
                                   choices_data=QueryData(dataset=STAFF_ONLY_DATASET)))
        body.append(text(f.help, is_subtle=True, size="Small", spacing="None"))
        if errors.get(f.name):
            body.append(text(errors[f.name], color="Attention", spacing="Small"))
    return card(form.title, body, [execute(form.submit_label, IDENTIFY_SUBMIT, style="primary", concern_id=cid),
                                   execute("Cancel", HIDE_RECORD, concern_id=cid)],
                fallback=f"Identify the adult: {reference}")


def record_card(rec) -> AdaptiveCard:
    """The whole record (flows.triage.RecordView) for the DSL, in their 1:1 chat only."""
    facts = [Fact(title="Reference", value=rec.reference), Fact(title="Status", value=rec.status),
             Fact(title="School", value=rec.school),
             Fact(title="Child", value=rec.child_name + (f" (Year {rec.child_year})" if rec.child_year else "")),
             Fact(title="Raised by", value=rec.referrer), Fact(title="Handler", value=rec.handler or "nobody yet"),
             Fact(title="Categories", value=", ".join(rec.categories))]
    if rec.review_date:
        facts.append(Fact(title="Review date", value=when(rec.review_date)))
    body: list = []
    if rec.urgent:
        body.append(text("URGENT: the referrer said the child was in immediate danger.", color="Attention"))
    body.append(FactSet(facts=facts))
    for key, label in DETAIL_LABELS:
        v = rec.details.get(key)
        if v in (None, "", []):
            continue
        body.append(text(label, weight="Bolder", spacing="Medium"))
        body.append(text(when(v) if isinstance(v, datetime) else str(v)))
    body.append(text("Chronology", weight="Bolder", spacing="Medium"))
    for e in rec.entries:
        what = e.body.get("text") or e.body.get("question") or e.body.get("answer") or e.body.get("shared_text") \
            or e.body.get("reasons") or ""
        body.append(text(f"{when(e.at)} · {e.kind} · {e.actor}" + (f": {what}" if what else ""), size="Small"))
    hist = getattr(rec, "history", None)
    items = getattr(hist, "items", None) or getattr(hist, "entries", None) or []
    if items:
        body.append(text(f"Wider history: {len(items)} earlier item(s) for this child or their siblings.",
                         is_subtle=True))
    acts = _handler_actions(rec.concern_id)
    if getattr(rec, "subject_unresolved", False):
        body.insert(0, text("The referrer typed the adult's name: say who it is. Until then the safeguarding team "
                            "cannot see this concern.", color="Attention"))
        acts.insert(0, execute("Identify the adult", notices.IDENTIFY_SUBJECT, style="primary",
                               concern_id=rec.concern_id))
    return card(f"Record {rec.reference}", body, acts, fallback=f"Safeguarding record {rec.reference}")


def decision_card(form: Form, reference: str, cid: int, values: dict | None = None,
                  errors: dict | None = None) -> AdaptiveCard:
    body = [text(f"{reference}. {form.intro}", is_subtle=True), *form_body(form, values or {}, errors or {})]
    return card(form.title, body, [execute(form.submit_label, DECISION_SUBMIT, style="primary", concern_id=cid),
                                   execute("Cancel", HIDE_RECORD, concern_id=cid)],
                fallback=f"Record a decision on {reference}")


def text_card(title: str, lines: list[str], field: str, label: str, verb: str, submit: str, *,
              fallback: str, error: str | None = None, value: str | None = None, cancel: str | None = HIDE_RECORD,
              **data) -> AdaptiveCard:
    body = [text(line) for line in lines]
    body.append(TextInput(id=field, label=label, is_multiline=True, is_required=True, max_length=3000,
                          error_message=error or "Write something here.", value=value))
    if error:
        body.append(text(error, color="Attention"))
    acts = [execute(submit, verb, style="primary", **data)]
    if cancel:
        acts.append(execute("Cancel", cancel, **data))
    return card(title, body, acts, fallback=fallback)


# --- plain replies --------------------------------------------------------------------------------

def help_card(text_lines: list[str]) -> AdaptiveCard:
    return message("Safeguarding concerns", text_lines,
                   [execute("Report a concern", notices.REPORT_CONCERN, style="primary"),
                    execute("My reports", "my_reports")],
                   fallback="How the safeguarding bot helps")


def my_reports_card(reports) -> AdaptiveCard:
    if not reports:
        body = [text("You have not reported any concern from this account.")]
    else:
        body = [FactSet(facts=[Fact(title=r.reference, value=f"{r.status_words} (sent {when(r.created_at)})")
                               for r in reports])]
        for r in reports:
            if r.shared_outcome:
                body.append(text(f"{r.reference}: the safeguarding lead says: {r.shared_outcome}"))
    acts = [execute("Report a concern", notices.REPORT_CONCERN, style="primary")]
    acts += [execute(f"I'm still worried about {r.reference}", notices.STILL_WORRIED, concern_id=r.concern_id)
             for r in reports[:3] if r.status != "closed"]
    return card("My reports", body, acts, fallback="Your safeguarding reports")


