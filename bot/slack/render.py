"""Slack rendering, built with slack_sdk.models so that Slack's limits (lengths, counts) are
checked here, before anything is sent: a flow Form -> modal, modal state -> raw values,
a Notice -> message blocks, the record, App Home. No I/O here."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from slack_sdk.models.blocks import (ActionsBlock, ButtonElement, ContextBlock, DatePickerElement,
                                     DateTimePickerElement, DividerBlock, ExternalDataSelectElement, HeaderBlock,
                                     InputBlock, MarkdownTextObject, Option, PlainTextInputElement,
                                     RadioButtonsElement, SectionBlock, StaticMultiSelectElement, StaticSelectElement)
from slack_sdk.models.views import View

from flows.forms import Field, Form, Kind
from flows.notices import Action, Notice

from . import ids

TZ = ZoneInfo("Europe/London")
YES_NO = (("yes", "Yes"), ("no", "No"))


def esc(text: Any) -> str:
    """Escape user text for mrkdwn (Slack's three control characters)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def meta(**kw) -> str:
    out = json.dumps(kw, separators=(",", ":"))
    if len(out) > 3000:
        raise ValueError("private_metadata over 3000 characters")
    return out


def read_meta(view: dict) -> dict:
    try:
        return json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}


# ---------------------------------------------------------------- forms

def controlling_fields(form: Form) -> set[str]:
    return {f.show_if[0] for f in form.fields if f.show_if}


def _option(value: str, label: str) -> Option:
    return Option(value=value, label=cut(label, 75))


def _element(f: Field, value: Any, label: str | None):
    aid = ids.FIELD_PREFIX + f.name
    if f.kind in (Kind.text, Kind.longtext):
        return PlainTextInputElement(action_id=aid, multiline=f.kind == Kind.longtext,
                                     max_length=min(f.max_length, 3000), initial_value=value or None,
                                     placeholder=cut(f.placeholder, 150) or None)
    if f.kind == Kind.boolean:
        opts = [_option(v, l) for v, l in YES_NO]
        init = next((o for o in opts if o.value == value), None)
        return RadioButtonsElement(action_id=aid, options=opts, initial_option=init)
    if f.kind == Kind.choice:
        opts = [_option(c.value, c.label) for c in f.choices]
        init = next((o for o in opts if o.value == value), None)
        if len(opts) <= 5:
            return RadioButtonsElement(action_id=aid, options=opts, initial_option=init)
        return StaticSelectElement(action_id=aid, options=opts, initial_option=init, placeholder="Choose")
    if f.kind == Kind.multichoice:
        opts = [_option(c.value, c.label) for c in f.choices]
        chosen = [o for o in opts if o.value in (value or [])]
        return StaticMultiSelectElement(action_id=aid, options=opts, initial_options=chosen or None,
                                        placeholder="Choose all that fit")
    if f.kind == Kind.datetime:
        init = None
        if isinstance(value, (int, float)) or (isinstance(value, str) and value.isdigit()):
            init = int(value)
        return DateTimePickerElement(action_id=aid, initial_date_time=init)
    if f.kind == Kind.date:
        return DatePickerElement(action_id=aid, initial_date=value or None)
    if f.kind in (Kind.child, Kind.person):
        # Answered from the roll or the staff list by the options handler (bot/slack/app.py).
        chosen = "The child chosen" if f.kind == Kind.child else "The person chosen"
        init = _option(value, label or chosen) if value else None
        return ExternalDataSelectElement(action_id=aid, placeholder="Type 2 letters of the name",
                                         min_query_length=2, initial_option=init)
    raise ValueError(f"no Slack element for {f.kind}")


def form_blocks(form: Form, values: dict | None = None, *, errors_hint: dict[str, list] | None = None,
                labels: dict[str, str] | None = None, top: list | None = None, dispatch: tuple = (),
                problems: dict[str, str] | None = None) -> list:
    """Input blocks for the fields visible with these values; block_id = field name, so that
    FormErrors map straight to `response_action: errors`."""
    values = values or {}
    control = controlling_fields(form) | set(dispatch)
    blocks: list = list(top or [])
    if form.intro:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=esc(form.intro))]))
    for f in form.fields:
        if not f.visible(values):
            continue
        if (problems or {}).get(f.name):
            blocks.append(ContextBlock(elements=[MarkdownTextObject(text=cut(f":warning: *{esc(problems[f.name])}*", 3000))]))
        for hint in (errors_hint or {}).get(f.name, []):
            blocks.append(ContextBlock(elements=[MarkdownTextObject(
                text=cut(f":mag: *“{esc(hint.phrase)}”*: {esc(hint.prompt)}", 3000))]))
        blocks.append(InputBlock(block_id=f.name, label=cut(f.label, 2000), hint=cut(f.help, 2000) or None,
                                 optional=not f.required, dispatch_action=True if f.name in control else None,
                                 element=_element(f, values.get(f.name), (labels or {}).get(f.name))))
    return blocks


def state_values(view: dict) -> dict:
    """Modal state -> the raw values flows expect (strings, lists, "yes"/"no", unix time)."""
    raw: dict[str, Any] = {}
    for block_id, actions in ((view.get("state") or {}).get("values") or {}).items():
        for action_id, st in actions.items():
            if not action_id.startswith(ids.FIELD_PREFIX):
                continue
            name = action_id[len(ids.FIELD_PREFIX):]
            t = st.get("type")
            if t in ("plain_text_input",):
                raw[name] = st.get("value")
            elif t in ("radio_buttons", "static_select", "external_select"):
                raw[name] = (st.get("selected_option") or {}).get("value")
            elif t in ("multi_static_select", "checkboxes", "multi_external_select"):
                raw[name] = [o["value"] for o in st.get("selected_options") or []]
            elif t == "datetimepicker":
                raw[name] = st.get("selected_date_time")
            elif t == "datepicker":
                raw[name] = st.get("selected_date")
    return raw


def selected_labels(view: dict) -> dict[str, str]:
    """The labels of the options chosen in external selects (the child, the adult), by field name:
    Slack sends back only the value, and a re-rendered form must show the name again."""
    out = {}
    for block_id, actions in ((view.get("state") or {}).get("values") or {}).items():
        for action_id, st in actions.items():
            text = ((st.get("selected_option") or {}).get("text") or {}).get("text")
            if st.get("type") == "external_select" and action_id.startswith(ids.FIELD_PREFIX) and text:
                out[action_id[len(ids.FIELD_PREFIX):]] = text
    return out


def modal(callback_id: str, title: str, blocks: list, *, submit: str | None = None, close: str = "Cancel",
          private_metadata: str | None = None) -> dict:
    v = View(type="modal", callback_id=callback_id, title=cut(title, 24), blocks=blocks,
             submit=cut(submit, 24) if submit else None, close=cut(close, 24), private_metadata=private_metadata,
             notify_on_close=False)
    return v.to_dict()


def loading_modal(callback_id: str, title: str) -> dict:
    return modal(callback_id, title, [SectionBlock(text=MarkdownTextObject(text=":hourglass_flowing_sand: One moment…"))],
                 close="Close")


def info_modal(title: str, lines: list[str], *, close: str = "Close") -> dict:
    blocks = [SectionBlock(text=MarkdownTextObject(text=cut(esc(line), 3000))) for line in lines if line]
    return modal(ids.VIEW_INFO, title, blocks[:100], close=close)


def danger_block() -> SectionBlock:
    from flows.report import DANGER_ADVICE

    return SectionBlock(text=MarkdownTextObject(text=f":rotating_light: *{esc(DANGER_ADVICE)}*"))


def report_modal(form: Form, *, values: dict | None = None, hints: dict | None = None,
                 labels: dict[str, str] | None = None, metadata: dict | None = None,
                 problems: dict[str, str] | None = None) -> dict:
    values = values or {}
    top = []
    if problems:
        top.append(SectionBlock(text=MarkdownTextObject(
            text=":warning: *Not sent yet.* Please change what is marked below, then send again. Nothing you wrote is lost.")))
    if values.get("immediate_danger") == "yes":
        top.append(danger_block())
    if hints:
        top.append(SectionBlock(text=MarkdownTextObject(
            text=":memo: *Check your wording.* Some words below can be read more than one way. Say plainly "
                 "what you saw and heard, then send — or send it as it is.")))
    if (metadata or {}).get("src"):
        top.append(ContextBlock(elements=[MarkdownTextObject(
            text=f"Started from <{metadata['src']}|a Slack message>: only its link is kept in the record.")]))
    submit = "Send as it is" if hints else form.submit_label
    return modal(ids.VIEW_REPORT, form.title, form_blocks(form, values, errors_hint=hints, labels=labels,
                                                          top=top, dispatch=("immediate_danger",),
                                                          problems=problems),
                 submit=submit, private_metadata=meta(**(metadata or {})))


_BLANK: dict[str, tuple[str, str]] = {}


def blank_report_modal() -> dict:
    """The empty report form, rendered once per taxonomy version (it is the same for everyone)."""
    from flows import taxonomy
    from flows.report import report_form

    version = taxonomy.current().version
    hit = _BLANK.get("v")
    if hit is None or hit[0] != version:
        hit = _BLANK["v"] = (version, json.dumps(report_modal(report_form())))
    return json.loads(hit[1])  # a fresh copy (json's C code: far cheaper than copy.deepcopy)


def receipt_modal(lines: list[str], reference: str, urgent: bool) -> dict:
    blocks: list = []
    if urgent:
        blocks.append(danger_block())
        lines = lines[1:]
    blocks.append(HeaderBlock(text=cut(f"Sent: {reference}", 150)))
    blocks += [SectionBlock(text=MarkdownTextObject(text=esc(line))) for line in lines]
    return modal(ids.VIEW_RECEIPT, "Concern sent", blocks, close="Done")


def flow_form_modal(form: Form, callback_id: str, *, values: dict | None = None, metadata: dict | None = None,
                    top: list | None = None) -> dict:
    return modal(callback_id, form.title, form_blocks(form, values, top=top), submit=form.submit_label,
                 private_metadata=meta(**(metadata or {})))


def text_modal(callback_id: str, title: str, label: str, *, field: str = "text", help: str = "",
               submit: str = "Send", metadata: dict | None = None, lines: list[str] | None = None,
               required: bool = True, extra: list | None = None) -> dict:
    blocks: list = [SectionBlock(text=MarkdownTextObject(text=cut(esc(line), 3000))) for line in (lines or [])]
    blocks += extra or []
    blocks.append(InputBlock(block_id=field, label=label, hint=help or None, optional=not required,
                             element=PlainTextInputElement(action_id=ids.FIELD_PREFIX + field, multiline=True,
                                                           max_length=3000)))
    return modal(callback_id, title, blocks, submit=submit, private_metadata=meta(**(metadata or {})))


# ---------------------------------------------------------------- messages

def button(a: Action) -> ButtonElement:
    return ButtonElement(text=cut(a.label, 75), action_id=a.id if not a.value.get("answer") else f"{a.id}:{a.value['answer']}",
                         value=cut(json.dumps(a.value, separators=(",", ":")), 2000),
                         style=a.style if a.style in ("primary", "danger") else None)


def notice_blocks(notice: Notice, *, footer: str | None = None) -> list[dict]:
    """The body of a 1:1 message: the notification `text` stays Notice.text alone."""
    blocks: list = [HeaderBlock(text=cut((":rotating_light: " if notice.urgent else "") + notice.title, 150))]
    body = "\n".join(esc(line) for line in notice.lines if line)
    if body:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=cut(body, 3000))))
    if notice.actions:
        blocks.append(ActionsBlock(block_id=f"n.{notice.kind}", elements=[button(a) for a in notice.actions[:25]]))
    if footer:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=cut(esc(footer), 3000))]))
    return [b.to_dict() for b in blocks]


def answered_blocks(title: str, line: str) -> list[dict]:
    """A message whose one-click buttons were used: the buttons go, the answer stays."""
    return [b.to_dict() for b in (HeaderBlock(text=cut(title, 150)),
                                  SectionBlock(text=MarkdownTextObject(text=cut(esc(line), 3000))))]


def report_button_blocks(intro: str) -> list[dict]:
    from flows.notices import REPORT_CONCERN

    return [SectionBlock(text=MarkdownTextObject(text=esc(intro))).to_dict(),
            ActionsBlock(block_id="report", elements=[ButtonElement(text="Report a concern", action_id=REPORT_CONCERN,
                                                                    value="{}", style="primary")]).to_dict()]


# ---------------------------------------------------------------- record

def _when(dt: datetime | date | None) -> str:
    if dt is None:
        return "—"
    if isinstance(dt, datetime):
        return dt.astimezone(TZ).strftime("%a %d %b %Y %H:%M")
    return dt.strftime("%a %d %b %Y")


DETAIL_LABELS = (("occurred_at", "When"), ("location", "Where"), ("account", "What happened"),
                 ("child_words", "The child's words"), ("child_views", "The child's views and wishes"),
                 ("worry_history", "How long, and why"), ("others_involved", "Others involved, siblings"),
                 ("action_taken", "Action already taken"), ("subject_name", "Adult concerned"),
                 ("source_link", "Started from"))


def _entry_text(e) -> str:
    body = e.body or {}
    bits = [str(v) for k, v in body.items() if v and k in ("text", "shared_text", "question", "answer", "note",
                                                           "reasons", "decision", "agency", "participants")]
    facts = e.facts or {}
    if facts.get("answer"):
        bits.insert(0, f"check-in: {facts['answer']}")
    if facts.get("type") == "still_worried":
        bits.insert(0, "still worried")
    return "; ".join(bits)


def record_modal(rec, *, can_act: bool = True) -> dict:
    """The record (opened through triage.open_record, so the opening is audited)."""
    blocks: list = [HeaderBlock(text=cut(f"{rec.reference}{' — URGENT' if rec.urgent else ''}", 150)),
                    SectionBlock(fields=[MarkdownTextObject(text=f"*Child*\n{esc(rec.child_name)}"
                                                                 + (f" (Year {esc(rec.child_year)})" if rec.child_year else "")),
                                         MarkdownTextObject(text=f"*Status*\n{esc(rec.status)}"),
                                         MarkdownTextObject(text=f"*Raised by*\n{esc(rec.referrer)}"),
                                         MarkdownTextObject(text=f"*Handled by*\n{esc(rec.handler or 'nobody yet')}"),
                                         MarkdownTextObject(text=f"*Categories*\n{esc(', '.join(rec.categories))}"),
                                         MarkdownTextObject(text=f"*Review date*\n{_when(rec.review_date)}")])]
    for key, label in DETAIL_LABELS:
        v = rec.details.get(key)
        if v:
            blocks.append(SectionBlock(text=MarkdownTextObject(
                text=cut(f"*{label}*\n{_when(v) if isinstance(v, datetime) else esc(v)}", 3000))))
    h = rec.history
    hist = [f":warning: {esc(f)}" for f in h.flags]
    hist += [f"Earlier: {p.reference} ({_when(p.created_at)}) {esc(', '.join(p.categories))} — {p.status}"
             + (f", {p.decision}" if p.decision else "") for p in h.earlier[-10:]]
    hist += [f"Sibling {esc(p.child_name or '')}: {p.reference} ({_when(p.created_at)}) — {p.status}"
             for p in h.siblings[-10:]]
    blocks.append(DividerBlock())
    blocks.append(SectionBlock(text=MarkdownTextObject(text=cut("*Wider history*\n" + ("\n".join(hist) or
                                                                                       "No earlier concerns."), 3000))))
    chron = [f"{_when(e.at)} · {e.kind} · {esc(e.actor)}" + (f": {esc(_entry_text(e))}" if _entry_text(e) else "")
             for e in rec.entries]
    blocks.append(SectionBlock(text=MarkdownTextObject(text=cut("*Chronology*\n" + "\n".join(chron[-30:]), 3000))))
    if rec.child_matched:
        blocks.append(SectionBlock(
            block_id="child_file", text=MarkdownTextObject(text="The child's whole file: every concern, decision and "
                                                                "referral, with siblings linked (the opening is recorded)."),
            accessory=ButtonElement(text="Child's file", action_id=ids.OPEN_CHILD_FILE,
                                    value=json.dumps({"concern_id": rec.concern_id}))))
    if can_act and not rec.child_matched:
        blocks.append(SectionBlock(
            block_id="match", text=MarkdownTextObject(text=":warning: The child is not matched to the school roll yet."),
            accessory=ButtonElement(text="Match to a pupil", action_id=ids.MATCH_CHILD,
                                    value=json.dumps({"concern_id": rec.concern_id}))))
    if can_act and getattr(rec, "subject_unresolved", False):
        blocks.append(SectionBlock(
            block_id="identify", text=MarkdownTextObject(text=":warning: The referrer typed the adult's name: say who "
                                                              "it is. Until then the safeguarding team cannot see it."),
            accessory=ButtonElement(text="Identify the adult", action_id="identify_subject", style="primary",
                                    value=json.dumps({"concern_id": rec.concern_id}))))
    if can_act:
        v = json.dumps({"concern_id": rec.concern_id})
        blocks.append(ActionsBlock(block_id="record_actions", elements=[
            ButtonElement(text="Record decision", action_id="record_decision", value=v, style="primary"),
            ButtonElement(text="Ask the referrer", action_id="ask_referrer", value=v),
            ButtonElement(text="Add note", action_id=ids.ADD_NOTE, value=v),
            ButtonElement(text="Share outcome", action_id="share_outcome", value=v),
            ButtonElement(text="Close concern", action_id="close", value=v, style="danger")]))
    return modal(ids.VIEW_RECORD, cut(f"Record {rec.reference}", 24), blocks[:100], close="Close",
                 private_metadata=meta(concern_id=rec.concern_id))


# ---------------------------------------------------------------- App Home

def child_file_modal(cf) -> dict:
    """A child's whole file (flows.chronology.child_file, which records the opening)."""
    lines = cf.lines()
    blocks: list = [HeaderBlock(text=cut(cf.name, 150))]
    chunk = ""
    for line in lines:  # sections of at most 3000 characters, in order
        piece = esc(line) + "\n"
        if len(chunk) + len(piece) > 2900:
            blocks.append(SectionBlock(text=MarkdownTextObject(text=chunk)))
            chunk = ""
        chunk += cut(piece, 2900)
    if chunk:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=chunk)))
    if len(blocks) > 100:
        blocks = blocks[:99] + [SectionBlock(text=MarkdownTextObject(
            text="The file is longer than Slack can show: export it with `safeguarding-bot export child`."))]
    return modal(ids.VIEW_CHILD_FILE, "Child's file", blocks, close="Close")


FIGURES = (("open", "Open concerns"), ("awaiting_acknowledgement", "Awaiting acknowledgement"),
           ("overdue", "Overdue"), ("reviews_overdue", "Reviews overdue"),
           ("statutory_missed_open", "Statutory timescales missed (open)"),
           ("concerns_this_month", "Raised this month"), ("concerns_last_month", "Raised last month"),
           ("median_hours_to_acknowledge_30d", "Median hours to acknowledge (30 days)"),
           ("checkins_no_change_or_worse_30d", "Check-ins saying no change or worse (30 days)"),
           ("children_with_repeated_concerns_30d", "Children with repeated concerns (30 days)"),
           ("transfers_awaiting_confirmation", "Transfers awaiting confirmation"))


def figures_block(figures: dict) -> SectionBlock:
    def show(v):
        return "—" if v is None else (f"{v:.1f}" if isinstance(v, float) else str(v))

    return SectionBlock(block_id="figures", fields=[
        MarkdownTextObject(text=f"*{label}*\n{show(figures.get(key))}") for key, label in FIGURES[:10]])


def home_view(*, name: str | None, reports: list, queue=None, unknown_message: str | None = None,
              figures: dict | None = None) -> dict:
    from flows.notices import REPORT_CONCERN, STILL_WORRIED

    blocks: list = [HeaderBlock(text="Safeguarding")]
    if unknown_message:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=esc(unknown_message))))
        return View(type="home", blocks=blocks).to_dict()
    blocks.append(SectionBlock(text=MarkdownTextObject(
        text="Worried about a child, or about an adult's behaviour towards children? Tell the safeguarding "
             "team now: it goes to them privately. If a child is in immediate danger, call 999 first.")))
    blocks.append(ActionsBlock(block_id="home_report", elements=[
        ButtonElement(text="Report a concern", action_id=REPORT_CONCERN, value="{}", style="primary")]))
    if figures is not None:
        blocks.append(DividerBlock())
        blocks.append(SectionBlock(text=MarkdownTextObject(text="*Your school's figures*")))
        blocks.append(figures_block(figures))
    if queue is not None:
        def lines(items):
            return [f"{'*URGENT* ' if i.urgent else ''}{i.reference} · raised {_when(i.created_at)} · {i.status}"
                    for i in items]

        for title, items in (("Awaiting acknowledgement", queue.awaiting_ack), ("Overdue", queue.overdue),
                             ("Open", queue.open)):
            blocks.append(DividerBlock())
            blocks.append(SectionBlock(text=MarkdownTextObject(text=f"*{title}* ({len(items)})")))
            for item in items[:12]:
                blocks.append(SectionBlock(
                    block_id=f"q.{title[:4]}.{item.concern_id}",
                    text=MarkdownTextObject(text=lines([item])[0]),
                    accessory=ButtonElement(text="Open record", action_id="open_record",
                                            value=json.dumps({"concern_id": item.concern_id}))))
    blocks.append(DividerBlock())
    blocks.append(SectionBlock(text=MarkdownTextObject(text=f"*Your reports* ({len(reports)})")))
    for r in reports[:15]:
        text = f"{r.reference} · {_when(r.created_at)} · {esc(r.status_words)}"
        if r.shared_outcome:
            text += f"\n_{esc(cut(r.shared_outcome, 500))}_"
        blocks.append(SectionBlock(block_id=f"r.{r.concern_id}", text=MarkdownTextObject(text=text),
                                   accessory=ButtonElement(text="I'm still worried", action_id=STILL_WORRIED,
                                                           value=json.dumps({"concern_id": r.concern_id}))))
    if not reports:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text="You have not reported a concern here yet.")]))
    return View(type="home", blocks=blocks[:100]).to_dict()


def match_child_modal(concern_id: int, reference: str, given: str | None = None) -> dict:
    blocks: list = [SectionBlock(text=MarkdownTextObject(
        text=f"{esc(reference)}: choose the pupil on the school roll this concern is about."
             + (f" The referrer wrote: “{esc(given)}”." if given else "")))]
    blocks.append(InputBlock(block_id="child", label="Pupil", element=ExternalDataSelectElement(
        action_id=ids.CHILD_ACTION, placeholder="Type 2 letters of the name", min_query_length=2)))
    return modal(ids.VIEW_MATCH, "Match to a pupil", blocks, submit="Match",
                 private_metadata=meta(concern_id=concern_id))
