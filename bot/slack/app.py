"""The Slack app: slack-bolt's AsyncApp, thin listeners that call the flows in a worker thread.

Every listener acks first. Entry points that show a modal open it straight after the ack
(a trigger_id lives 3 s and works once) with a loading view, then look things up and fill it
in with views.update. Submissions are keyed on view.id, events on event_id."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
import time

from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import (AsyncConnectionErrorRetryHandler,
                                                         AsyncRateLimitErrorRetryHandler,
                                                         AsyncServerErrorRetryHandler)
from slack_sdk.web.async_client import AsyncWebClient

from flows import followup, notices, queries, report, triage
from flows.access import require_handler
from flows.errors import FlowError, FormErrors
from storage import idempotency
from storage.db import Store

from . import identify, ids, render
from .identity import Directory

log = logging.getLogger(__name__)
to_thread = asyncio.to_thread
_REPEAT = object()  # what a once-only click answers when it was done already

HELP = ("I help you tell your school's safeguarding team (the DSL) about a worry about a child, privately.\n"
        "• Type /concern anywhere, use the ⚡ shortcut “Report a concern”, or press the button below.\n"
        "• From a message: its ⋮ menu → “Start a concern report” (only a link to the message is kept).\n"
        "• My Home tab shows your reports and what happened to them.\n"
        "If a child is in immediate danger, call 999 first and find the safeguarding lead in person.")


def web_client(settings) -> AsyncWebClient:
    return AsyncWebClient(token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url,
                          retry_handlers=[AsyncConnectionErrorRetryHandler(max_retry_count=1),
                                          AsyncRateLimitErrorRetryHandler(max_retry_count=1),
                                          AsyncServerErrorRetryHandler(max_retry_count=2)])


def _value(body: dict) -> dict:
    try:
        return json.loads(body["actions"][0].get("value") or "{}")
    except (KeyError, IndexError, ValueError):
        return {}


def _team(body: dict) -> str | None:
    return ((body.get("user") or {}).get("team_id") or (body.get("team") or {}).get("id")
            or body.get("team_id"))


def _user(body: dict) -> str:
    u = body.get("user")
    return u["id"] if isinstance(u, dict) else (body.get("user_id") or u)


def _in_view(body: dict) -> bool:
    return (body.get("container") or {}).get("type") == "view" and (body.get("view") or {}).get("type") == "modal"


def _errors_for(view: dict, errors: dict[str, str]) -> dict[str, str]:
    """FormErrors keyed by field name -> block ids present in this view (errors only show under inputs)."""
    inputs = [b["block_id"] for b in view.get("blocks", []) if b.get("type") == "input"]
    out = {}
    for name, msg in errors.items():
        block = name if name in inputs else (inputs[0] if inputs else name)
        out[block] = (out[block] + " " if block in out else "") + msg
    return out


class SlackHandlers:
    def __init__(self, store: Store, settings):
        self.store = store
        self.settings = settings
        self.directory = Directory(store)
        # Work after the ack (saving a concern) takes at most two of the default executor's
        # threads, so that the checks a view submission must answer within 3 s never queue
        # behind a burst of saves.
        self.after_ack = asyncio.Semaphore(2)

    # ------------------------------------------------------------ helpers

    def claim(self, key: str) -> bool:
        """True the first time a key is seen (events on event_id, one-click answers)."""
        return idempotency.claim(self.store, key)

    async def person(self, client, body: dict) -> int | None:
        return await self.directory.person_id(client, _team(body), _user(body))

    async def open_view(self, client, body: dict, view: dict) -> str:
        if _in_view(body):
            resp = await client.views_push(trigger_id=body["trigger_id"], view=view)
        else:
            resp = await client.views_open(trigger_id=body["trigger_id"], view=view)
        return resp["view"]["id"]

    async def unknown(self, client, body: dict, view_id: str | None = None) -> None:
        text = await to_thread(self.directory.whom_to_ask, _team(body))
        if view_id:
            await client.views_update(view_id=view_id, view=render.info_modal("Not in the directory", [text]))
        else:
            await self.dm(client, _user(body), "You are not in the safeguarding directory yet", text)

    async def dm(self, client, user_id: str, text: str, line: str | None = None, blocks: list | None = None) -> None:
        """A 1:1 message; `text` (the notification) never carries concern content."""
        ch = (await client.conversations_open(users=user_id))["channel"]["id"]
        if blocks is None and line:
            blocks = render.answered_blocks(text, line)
        await client.chat_postMessage(channel=ch, text=text, blocks=blocks)

    async def tell(self, client, body: dict, title: str, line: str, *, replace: bool = False) -> None:
        """Feedback after a button: in the modal it came from, else in the DM (replacing the buttons)."""
        if _in_view(body):
            await client.views_update(view_id=body["view"]["id"], view=render.info_modal(title, [line]))
            return
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
        ts = (body.get("message") or {}).get("ts") or (body.get("container") or {}).get("message_ts")
        if replace and channel and ts:
            await client.chat_update(channel=channel, ts=ts, text=title, blocks=render.answered_blocks(title, line))
        elif channel and channel.startswith("D"):
            await client.chat_postMessage(channel=channel, text=title, blocks=render.answered_blocks(title, line))
        else:
            await self.dm(client, _user(body), title, line)

    def click_key(self, body: dict, action_id: str) -> str:
        c = body.get("container") or {}
        where = c.get("message_ts") or f"{c.get('view_id')}:{int(float(body['actions'][0].get('action_ts', time.time())) // 30)}"
        return f"slack-click:{_user(body)}:{action_id}:{json.dumps(_value(body), sort_keys=True)}:{where}"

    # ------------------------------------------------------------ report

    async def start_report(self, client, body: dict, source_link: str | None = None) -> None:
        form = report.report_form()
        md = {"src": source_link} if source_link else {}
        if self.directory.cached(_team(body), _user(body)) is not None:
            # Known (no look-up needed): the form itself is opened at once, one call.
            await self.open_view(client, body, render.blank_report_modal() if not md else
                                 render.report_modal(form, metadata=md))
            return
        view_id = await self.open_view(client, body, render.loading_modal(ids.VIEW_REPORT, form.title))
        pid = await self.person(client, body)
        if pid is None:
            await self.unknown(client, body, view_id)
            return
        view = render.blank_report_modal() if not md else render.report_modal(form, metadata=md)
        await client.views_update(view_id=view_id, view=view)

    def check_report(self, person_id: int, raw: dict) -> dict:
        report.validate(self.store, person_id, raw)
        return report.wording_hints(self.store, person_id, raw)

    async def on_report_submission(self, ack, body, client, view) -> None:
        """The form's own checks (flows.forms.clean: every field a person can get wrong, no
        database) are answered in the ack, inline under each field. Then, after the ack, the
        flow's full validation (the roster) and the clear-language check (an updated view that
        may be sent as it is), and the concern is saved, keyed on view.id (a double click saves
        it once). Should anything be slow, Slack never sees a late answer."""
        from flows.forms import clean

        form = report.report_form()
        md = render.read_meta(view)
        raw = render.state_values(view)
        labels = render.selected_labels(view)
        try:
            clean(form, raw)
        except FormErrors as exc:
            await ack(response_action="errors", errors=_errors_for(view, exc.errors))
            return
        pid = self.directory.cached(_team(body), _user(body))
        if pid is None:
            pid = await self.person(client, body)
        if pid is None:
            await ack(response_action="update", view=render.info_modal(
                "Not in the directory", [await to_thread(self.directory.whom_to_ask, _team(body))]))
            return
        await ack(response_action="update", view=render.info_modal(
            "Sending…", ["Checking your report and sending it to the safeguarding team…"]))
        try:
            hints = await to_thread(self.check_report, pid, raw) if not md.get("wc") else None
            if md.get("wc"):
                await to_thread(report.validate, self.store, pid, raw)
        except FormErrors as exc:
            await client.views_update(view_id=view["id"], view=render.report_modal(
                form, values=raw, labels=labels, metadata=md, problems=exc.errors))
            return
        except FlowError as exc:
            await client.views_update(view_id=view["id"], view=render.info_modal("Cannot send this", [str(exc)]))
            return
        if hints:
            md["wc"] = 1  # shown once: then it can be sent as it is
            await client.views_update(view_id=view["id"], view=render.report_modal(
                form, values=raw, hints=hints, labels=labels, metadata=md))
            return
        try:
            async with self.after_ack:
                receipt = await to_thread(report.submit, self.store, pid, raw, submission_key=f"slack:{view['id']}",
                                          source_link=md.get("src"))
        except FormErrors as exc:  # e.g. the pupil left the roll in between: nothing saved, nothing lost
            await client.views_update(view_id=view["id"], view=render.report_modal(
                form, values=raw, labels=labels, metadata=md, problems=exc.errors))
            return
        log.info("slack: concern submitted (concern id %s, duplicate=%s)", receipt.concern_id, receipt.duplicate)
        await client.views_update(view_id=view["id"], view=render.receipt_modal(receipt.lines, receipt.reference,
                                                                                receipt.urgent))

    async def child_options(self, body: dict, client) -> list[dict]:
        from storage.models import Person
        from storage.people import search_children

        pid = await self.person(client, body)
        typed = " ".join((body.get("value") or "").split())
        if pid is None or len(typed) < 2:
            return []

        def find():
            with self.store.session() as s:
                p = s.get(Person, pid)
                if p is None or p.school_id is None:
                    return []
                return [(c.id, c.name, c.year_group) for c in search_children(s, p.school_id, typed, limit=20)]

        found = await to_thread(find)
        opts = [{"text": {"type": "plain_text", "text": render.cut(f"{name} (Year {year})" if year else name, 75)},
                 "value": report.child_value(cid)} for cid, name, year in found]
        opts.append({"text": {"type": "plain_text", "text": render.cut(f"Not on the roll: “{typed}”", 75)},
                     "value": typed[:150]})
        return opts

    async def staff_options(self, body: dict, client) -> list[dict]:
        """The report's "Which adult?" picker: the school's staff list, then the name as typed."""
        pid = await self.person(client, body)
        typed = " ".join((body.get("value") or "").split())
        if pid is None or len(typed) < 2:
            return []
        found = await to_thread(report.search_staff, self.store, pid, typed)
        opts = [{"text": {"type": "plain_text", "text": render.cut(label, 75)}, "value": value}
                for value, label in found]
        if (body.get("view") or {}).get("callback_id") != ids.VIEW_IDENTIFY:  # that form asks "not listed" itself
            opts.append({"text": {"type": "plain_text", "text": render.cut(f"Not on the staff list: “{typed}”", 75)},
                         "value": typed[:150]})
        return opts

    async def on_field_change(self, ack, body, client) -> None:
        """A field others depend on changed: show or hide the dependent fields (state is kept)."""
        await ack()
        view = body.get("view") or {}
        raw = render.state_values(view)
        md = render.read_meta(view)
        if view.get("callback_id") == ids.VIEW_REPORT:
            new = render.report_modal(report.report_form(), values=raw, labels=render.selected_labels(view),
                                      metadata=md)
        elif view.get("callback_id") == ids.VIEW_DECISION:
            new = render.flow_form_modal(triage.decision_form(), ids.VIEW_DECISION, values=raw, metadata=md)
        elif view.get("callback_id") == ids.VIEW_IDENTIFY:
            new = identify.identify_modal(md, raw, render.selected_labels(view))
        else:
            return
        await client.views_update(view_id=view["id"], hash=view.get("hash"), view=new)

    # ------------------------------------------------------------ DSL side

    async def acknowledge(self, ack, body, client) -> None:
        await ack()
        pid = await self.person(client, body)
        if pid is None:
            return await self.unknown(client, body)
        cid = _value(body).get("concern_id")
        try:
            res = await to_thread(triage.acknowledge, self.store, pid, cid)
        except FlowError as exc:
            return await self.tell(client, body, "Not acknowledged", str(exc))
        if res.get("already"):
            when = render._when(res.get("at"))
            await self.tell(client, body, f"{res['reference']} already acknowledged",
                            f"{res['reference']} was already acknowledged by {res['acknowledged_by']} at {when}.")
            return
        # Every copy of the alert is updated by the outbox (alert_acknowledged); the clicker's
        # own copy is updated at once too, with the same words.
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
        ts = (body.get("message") or {}).get("ts") or (body.get("container") or {}).get("message_ts")
        if channel and ts and not _in_view(body):
            notice = await to_thread(self._acknowledged_notice, pid, cid, res["at"])
            await client.chat_update(channel=channel, ts=ts, text=notice.text, blocks=render.notice_blocks(notice))

    def _acknowledged_notice(self, pid: int, cid: int, at):
        from storage.models import OutboxMessage

        with self.store.session() as s:  # composed, never saved: the outbox has its own copy
            return notices.compose(s, OutboxMessage(kind="alert_acknowledged", recipient_id=pid, dedupe_key="-",
                                                    payload={"concern_id": cid, "by_id": pid, "at": at.isoformat()}))

    async def open_record(self, ack, body, client) -> None:
        await ack()
        view_id = await self.open_view(client, body, render.loading_modal(ids.VIEW_RECORD, "Record"))
        pid = await self.person(client, body)
        if pid is None:
            return await self.unknown(client, body, view_id)
        try:
            rec = await to_thread(triage.open_record, self.store, pid, _value(body).get("concern_id"), via="slack")
        except FlowError as exc:
            return await client.views_update(view_id=view_id, view=render.info_modal("Cannot open", [str(exc)]))
        await client.views_update(view_id=view_id, view=render.record_modal(rec))

    async def open_child_file(self, ack, body, client) -> None:
        await ack()
        view_id = await self.open_view(client, body, render.loading_modal(ids.VIEW_CHILD_FILE, "Child's file"))
        pid = await self.person(client, body)
        if pid is None:
            return await self.unknown(client, body, view_id)

        def load():
            from flows import chronology
            from storage.models import Concern

            with self.store.session() as s:
                concern = s.get(Concern, _value(body).get("concern_id"))
                child_id = concern.child_id if concern else None
            if child_id is None:
                raise FlowError("This concern is not matched to a pupil on the roll yet.")
            return chronology.child_file(self.store, pid, child_id, via="slack")  # refuses all but the DSL team

        try:
            cf = await to_thread(load)
        except FlowError as exc:
            return await client.views_update(view_id=view_id, view=render.info_modal("Cannot open", [str(exc)]))
        await client.views_update(view_id=view_id, view=render.child_file_modal(cf))

    def _may_handle(self, pid: int, cid: int) -> str:
        with self.store.session() as s:
            _, concern = require_handler(s, pid, cid)
            return concern.reference

    async def _handler_modal(self, body, client, loading_title: str, build) -> None:
        view_id = await self.open_view(client, body, render.loading_modal(ids.VIEW_INFO, loading_title))
        pid = await self.person(client, body)
        if pid is None:
            return await self.unknown(client, body, view_id)
        cid = _value(body).get("concern_id")
        try:
            ref = await to_thread(self._may_handle, pid, cid)
        except FlowError as exc:
            return await client.views_update(view_id=view_id, view=render.info_modal("Not allowed", [str(exc)]))
        view = build(cid, ref)
        if inspect.isawaitable(view):  # a builder that must read the database first
            view = await view
        await client.views_update(view_id=view_id, view=view)

    async def record_decision(self, ack, body, client) -> None:
        await ack()
        await self._handler_modal(body, client, "Record decision", lambda cid, ref: render.flow_form_modal(
            triage.decision_form(), ids.VIEW_DECISION, metadata={"concern_id": cid},
            top=[render.SectionBlock(text=render.MarkdownTextObject(text=f"*{ref}*"))]))

    async def ask_referrer(self, ack, body, client) -> None:
        await ack()
        await self._handler_modal(body, client, "Ask the referrer", lambda cid, ref: render.text_modal(
            ids.VIEW_ASK, "Ask the referrer", "Your question", field="question", metadata={"concern_id": cid},
            lines=[f"{ref}: the referrer gets your question in a private message and can answer with one click."]))

    async def share_outcome(self, ack, body, client) -> None:
        await ack()
        await self._handler_modal(body, client, "Share outcome", lambda cid, ref: render.text_modal(
            ids.VIEW_SHARE, "Share outcome", "What the referrer should be told", metadata={"concern_id": cid},
            lines=[f"{ref}: only these words reach the referrer. Share what they need to know, nothing more."]))

    async def close(self, ack, body, client) -> None:
        await ack()
        await self._handler_modal(body, client, "Close concern", lambda cid, ref: render.text_modal(
            ids.VIEW_CLOSE, "Close concern", "Outcome summary", field="summary", submit="Close concern",
            metadata={"concern_id": cid},
            lines=[f"{ref}: how it was followed up and resolved. Closing needs a recorded decision."]))

    async def add_note(self, ack, body, client) -> None:
        await ack()
        await self._handler_modal(body, client, "Add note", lambda cid, ref: render.text_modal(
            ids.VIEW_NOTE, "Add note", "Note", metadata={"concern_id": cid}, submit="Add note",
            lines=[f"{ref}: a note for the chronology (it is never edited; a correction is a new note)."]))

    async def match_child(self, ack, body, client) -> None:
        await ack()

        def given(cid):
            from storage.models import Concern

            with self.store.session() as s:
                c = s.get(Concern, cid)
                return c.child_name_given if c else None

        async def build(cid, ref):
            return render.match_child_modal(cid, ref, await to_thread(given, cid))

        await self._handler_modal(body, client, "Match to a pupil", build)

    async def _submit_view(self, ack, body, client, view, call, done_title: str, done_line) -> None:
        """Run a flow for a modal submission; FormErrors shown inline; a resubmission of the same
        view (double click) does nothing twice."""
        pid = await self.person(client, body)
        if pid is None:
            await ack(response_action="update", view=render.info_modal(
                "Not in the directory", [await to_thread(self.directory.whom_to_ask, _team(body))]))
            return
        md = render.read_meta(view)
        raw = render.state_values(view)
        key = f"slack-view:{view['id']}"

        def run():
            with idempotency.once(self.store, key) as o:
                if o.done:
                    return "duplicate"
                return call(pid, md, raw)

        try:
            out = await to_thread(run)
        except FormErrors as exc:
            await ack(response_action="errors", errors=_errors_for(view, exc.errors))
            return
        except FlowError as exc:
            await ack(response_action="update", view=render.info_modal("Not done", [str(exc)]))
            return
        line = done_line(out) if callable(done_line) else done_line
        if view.get("previous_view_id"):
            await ack(response_action="clear")  # back to the conversation; the record shows it next time
            return
        await ack(response_action="update", view=render.info_modal(done_title, [line]))

    # ------------------------------------------------------------ referrer side

    async def answer_question(self, ack, body, client) -> None:
        await ack()
        view_id = await self.open_view(client, body, render.loading_modal(ids.VIEW_ANSWER, "Answer"))
        pid = await self.person(client, body)
        if pid is None:
            return await self.unknown(client, body, view_id)
        cid = _value(body).get("concern_id")
        try:
            qs = await to_thread(triage.open_questions, self.store, pid, cid)
        except FlowError as exc:
            return await client.views_update(view_id=view_id, view=render.info_modal("Not allowed", [str(exc)]))
        if not qs:
            return await client.views_update(view_id=view_id, view=render.info_modal(
                "No open question", ["Every question on this concern has been answered. Thank you."]))
        q = qs[-1]
        await client.views_update(view_id=view_id, view=render.text_modal(
            ids.VIEW_ANSWER, "Answer the DSL", "Your answer", field="answer", metadata={"concern_id": cid, "seq": q["seq"]},
            lines=[f"The safeguarding lead asks: {q['question']}"]))

    async def one_click(self, ack, body, client, action_id: str, call, title: str, line) -> None:
        await ack()
        pid = await self.person(client, body)
        if pid is None:
            return await self.unknown(client, body)
        key = self.click_key(body, action_id)

        def run():
            # The click's key and its effect in one transaction: concurrent copies apply once,
            # and a refused or failed click leaves no key behind, so it can be pressed again.
            with idempotency.once(self.store, key) as o:
                if o.done:
                    return _REPEAT
                return call(pid, _value(body))

        try:
            out = await to_thread(run)
        except FlowError as exc:
            return await self.tell(client, body, "Not done", str(exc))
        if out is _REPEAT:
            return  # a double click or a retry: done already
        await self.tell(client, body, title, line(out) if callable(line) else line, replace=not _in_view(body))

    # ------------------------------------------------------------ home and DMs

    def home_data(self, pid: int) -> dict:
        from flows import analytics
        from storage.models import Person

        with self.store.session() as s:
            person = s.get(Person, pid)
            name, school_id = person.name, person.school_id
        dsl = queries.is_dsl_team(self.store, pid)
        return {"name": name, "reports": queries.my_reports(self.store, pid),
                "queue": queries.dsl_queue(self.store, pid) if dsl else None,
                "figures": analytics.headline(self.store, school_id, viewer_id=pid) if dsl and school_id else None}

    async def publish_home(self, client, body: dict, user_id: str) -> None:
        pid = await self.directory.person_id(client, _team(body) or body.get("team_id"), user_id)
        if pid is None:
            view = render.home_view(name=None, reports=[], unknown_message=await to_thread(
                self.directory.whom_to_ask, _team(body)))
        else:
            view = render.home_view(**await to_thread(self.home_data, pid))
        await client.views_publish(user_id=user_id, view=view)


def build_app(settings, store: Store) -> AsyncApp:
    client = web_client(settings)
    app = AsyncApp(client=client, signing_secret=settings.slack_signing_secret.get_secret_value()
                   if settings.slack_signing_secret else None,
                   process_before_response=False, request_verification_enabled=settings.slack_signing_secret is not None,
                   logger=logging.getLogger("slack_bolt.App"))
    h = SlackHandlers(store, settings)
    app.safeguarding = h  # for tests and the CLI

    # Entry points: /concern, the global and message shortcuts, the buttons in DMs and App Home.
    @app.command(ids.COMMAND)
    async def on_command(ack, body, client):
        await ack()  # empty: nothing is ever posted in the channel it was typed in
        await h.start_report(client, body)

    @app.shortcut(ids.GLOBAL_SHORTCUT)
    async def on_shortcut(ack, body, client):
        await ack()
        await h.start_report(client, body)

    @app.shortcut(ids.MESSAGE_SHORTCUT)
    async def on_message_shortcut(ack, body, client):
        await ack()
        domain = (body.get("team") or {}).get("domain") or "app"
        ch = (body.get("channel") or {}).get("id", "")
        ts = (body.get("message") or {}).get("ts") or body.get("message_ts", "")
        link = f"https://{domain}.slack.com/archives/{ch}/p{ts.replace('.', '')}"  # the link only, never the text
        await h.start_report(client, body, source_link=link)

    @app.action(notices.REPORT_CONCERN)
    async def on_report_button(ack, body, client):
        await ack()
        await h.start_report(client, body)

    @app.options(ids.CHILD_ACTION)
    async def on_child_options(ack, body, client):
        await ack(options=await h.child_options(body, client))

    @app.options(ids.STAFF_ACTION)
    async def on_staff_options(ack, body, client):
        await ack(options=await h.staff_options(body, client))

    @app.action(re.compile(r"^f\."))
    async def on_field_change(ack, body, client):
        await h.on_field_change(ack, body, client)

    @app.view(ids.VIEW_REPORT)
    async def on_report(ack, body, client, view):
        await h.on_report_submission(ack, body, client, view)

    for cb in (ids.VIEW_RECEIPT, ids.VIEW_INFO, ids.VIEW_RECORD):
        @app.view(cb)
        async def on_plain_view(ack):
            await ack()

    # DSL side.
    app.action(notices.ACKNOWLEDGE)(h.acknowledge)
    app.action(notices.OPEN_RECORD)(h.open_record)
    app.action(notices.RECORD_DECISION)(h.record_decision)
    app.action(notices.ASK_REFERRER)(h.ask_referrer)
    app.action(notices.SHARE_OUTCOME)(h.share_outcome)
    app.action(notices.CLOSE)(h.close)
    app.action(ids.ADD_NOTE)(h.add_note)
    app.action(ids.OPEN_CHILD_FILE)(h.open_child_file)

    @app.view(ids.VIEW_DECISION)
    async def on_decision(ack, body, client, view):
        await h._submit_view(ack, body, client, view,
                             lambda pid, md, raw: triage.record_decision(store, pid, md["concern_id"], raw),
                             "Decision recorded", lambda out: f"{out['reference']}: decision recorded. "
                                                              f"Review date {render._when(out['review_date'])}.")

    @app.view(ids.VIEW_ASK)
    async def on_ask(ack, body, client, view):
        await h._submit_view(ack, body, client, view,
                             lambda pid, md, raw: triage.ask_referrer(store, pid, md["concern_id"], raw.get("question") or ""),
                             "Question sent", "The referrer has been asked privately. You will be told when they answer.")

    @app.view(ids.VIEW_SHARE)
    async def on_share(ack, body, client, view):
        await h._submit_view(ack, body, client, view,
                             lambda pid, md, raw: triage.share_outcome(store, pid, md["concern_id"], raw.get("text") or ""),
                             "Outcome shared", "The referrer will receive these words in a private message.")

    @app.view(ids.VIEW_CLOSE)
    async def on_close(ack, body, client, view):
        await h._submit_view(ack, body, client, view,
                             lambda pid, md, raw: triage.close(store, pid, md["concern_id"], raw.get("summary") or ""),
                             "Concern closed", "Closed with its outcome summary. The referrer can still say "
                                               "they are worried, which reopens it.")

    app.action(ids.MATCH_CHILD)(h.match_child)
    identify.register(app, h, store)  # "Identify the adult"

    def _match(pid, md, raw):
        value = raw.get("child") or ""
        if not value.startswith("child:"):
            raise FormErrors({"child": "Choose a pupil from the roll (search by name)."})
        return triage.match_child(store, pid, md["concern_id"], int(value.split(":", 1)[1]))

    @app.view(ids.VIEW_MATCH)
    async def on_match(ack, body, client, view):
        await h._submit_view(ack, body, client, view, _match, "Matched", "The record is now linked to the pupil "
                                                                        "on the roll, with their wider history.")

    @app.view(ids.VIEW_NOTE)
    async def on_note(ack, body, client, view):
        await h._submit_view(ack, body, client, view,
                             lambda pid, md, raw: triage.add_entry(store, pid, md["concern_id"], "note", raw.get("text") or ""),
                             "Note added", "Added to the chronology.")

    # Referrer side.
    @app.view(ids.VIEW_ANSWER)
    async def on_answer(ack, body, client, view):
        await h._submit_view(ack, body, client, view,
                             lambda pid, md, raw: triage.answer_referrer_question(
                                 store, pid, md["concern_id"], raw.get("answer") or "", question_seq=md.get("seq")),
                             "Answer sent", "Thank you: your answer has gone to the safeguarding lead.")

    app.action(notices.ANSWER_QUESTION)(h.answer_question)

    @app.action(re.compile(r"^checkin:(\w+)$"))
    async def on_checkin(ack, body, client, action):
        answer = action["action_id"].split(":", 1)[1]

        def call(pid, v):
            return followup.checkin(store, pid, v["concern_id"], answer)

        def line(out):
            said = notices.CHECKIN_ANSWERS.get(answer, answer)
            extra = (" The safeguarding team has been asked to look again. If you are still worried, say so: "
                     "use “I'm still worried” in my Home tab.") if out.get("reassess") else ""
            return f"{out['reference']}: you answered “{said}”. Thank you.{extra}"

        await h.one_click(ack, body, client, action["action_id"], call, "Check-in answered", line)

    @app.action(notices.STILL_WORRIED)
    async def on_still_worried(ack, body, client):
        await h.one_click(ack, body, client, notices.STILL_WORRIED,
                          lambda pid, v: followup.still_worried(store, pid, v["concern_id"]),
                          "You are still worried: the team has been told",
                          lambda out: f"{out['reference']}: {out['told']} that you are still worried. "
                                      "If a child is in immediate danger, call 999.")

    @app.action(notices.REQUEST_UPDATE)
    async def on_request_update(ack, body, client):
        await h.one_click(ack, body, client, notices.REQUEST_UPDATE,
                          lambda pid, v: followup.request_update(store, pid, v["concern_id"]),
                          "Update requested", "The safeguarding lead has been asked for an update.")

    # Events: App Home and DMs, each event handled once whatever Slack retries.
    @app.event("app_home_opened")
    async def on_home(body, event, client):
        if event.get("tab") not in (None, "home"):
            return
        if not await to_thread(h.claim, f"slack-event:{body.get('event_id')}"):
            return
        await h.publish_home(client, body, event["user"])

    @app.event("message")
    async def on_dm(body, event, client):
        if event.get("channel_type") != "im" or event.get("subtype") or event.get("bot_id"):
            return
        if not await to_thread(h.claim, f"slack-event:{body.get('event_id')}"):
            return
        text = (event.get("text") or "").lower()
        pid = await h.directory.person_id(client, body.get("team_id"), event["user"])
        if pid is None:
            msg = await to_thread(h.directory.whom_to_ask, body.get("team_id"))
            await client.chat_postMessage(channel=event["channel"], text="You are not in the safeguarding directory yet",
                                          blocks=render.answered_blocks("Not in the directory", msg))
            return
        if re.search(r"\b(concern|report|worried)\b", text):
            blocks = render.report_button_blocks("Press the button to open the report form. It goes privately to "
                                                 "the safeguarding team. If a child is in immediate danger, call 999 first.")
            await client.chat_postMessage(channel=event["channel"], text="Report a safeguarding concern", blocks=blocks)
        else:
            await client.chat_postMessage(channel=event["channel"], text="How I can help",
                                          blocks=render.report_button_blocks(HELP))

    return app
