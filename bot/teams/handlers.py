"""The Teams conversation (issue 7 points 6-9), wired to the flows.

`register_handlers(app, settings, store)` is called by `bot.teams.app.build_teams_app` for every
Teams app the server builds (on and playground modes), before `await app.initialize()`. Requests
reach these handlers only after our token checks (bot/teams/auth.py) and the SDK's.

- Messages in the 1:1 chat: typed commands "report a concern", "help", "my reports" (mentions
  stripped, case-insensitive); anything else gets the help card. An `Action.Submit` arrives as a
  message with `value` and no text: it is dispatched like an `Action.Execute`, and the card it came
  from is updated in place.
- `adaptiveCard/action` invokes (Action.Execute): one handler dispatches on `data.action` (the verb
  as a fallback) and ALWAYS answers with a typed response: a replacement card, or a message.
- Install greeting on `conversationUpdate` (the bot added) and `installationUpdate` (add); an
  uninstall marks the stored reference stale.
- Which school: the tenant and the user's AAD object id -> a directory person (bot.teams.identity).
  Unknown users are told whom to ask; a form they submitted comes back with their answers kept.

Flows are synchronous and run in a worker thread. Nothing here logs activity content.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from typing import Any, Callable

from sqlalchemy.exc import IntegrityError

from flows import followup, notices, queries, report, subject, triage
from flows.access import require_handler
from flows.errors import FlowError, FormErrors
from storage import idempotency
from storage.db import Store
from storage.models import Person

from . import cards
from .identity import TeamsDirectory

log = logging.getLogger(__name__)
to_thread = asyncio.to_thread

COMMANDS = {"report a concern": notices.REPORT_CONCERN, "report": notices.REPORT_CONCERN,
            "concern": notices.REPORT_CONCERN, "report concern": notices.REPORT_CONCERN,
            "help": "help", "my reports": "my_reports", "my report": "my_reports"}
MENTION = re.compile(r"<at>.*?</at>", re.IGNORECASE | re.DOTALL)

HELP_LINES = [
    "I help you tell your school's safeguarding team (the designated safeguarding lead, DSL) about a worry "
    "about a child, privately. Only the safeguarding team sees what you write.",
    "Type “report a concern” (or press the button) to fill in the report: it takes about two minutes.",
    "Type “my reports” to see what you reported and what happened next, or “help” for this message.",
    "If a child is in immediate danger, call 999 first and find the safeguarding lead in person.",
]


def command_of(text: str | None) -> str | None:
    """The typed command: mentions removed, case and punctuation ignored."""
    t = MENTION.sub(" ", text or "")
    t = re.sub(r"[^\w\s']", " ", t.lower())
    t = " ".join(t.split())
    return COMMANDS.get(t)


def _dump(obj: Any) -> dict:
    if obj is None:
        return {}
    if isinstance(obj, dict):
        return obj
    return obj.model_dump(by_alias=True, exclude_none=True, mode="json")


class Reply:
    """What a dispatched action answers: a card that replaces the one clicked, or a short message."""

    def __init__(self, card=None, message: str | None = None):
        self.card, self.message = card, message


class TeamsHandlers:
    def __init__(self, app, settings, store: Store):
        self.app, self.settings, self.store = app, settings, store
        self.directory = TeamsDirectory(store)
        self.actions: dict[str, Callable[[int, dict, str], Reply]] = {
            notices.REPORT_CONCERN: self.report_start, "my_reports": self.my_reports, "help": self.help,
            cards.REPORT_FIND_CHILD: self.report_find_child, cards.REPORT_RESTART: self.report_restart,
            cards.REPORT_SUBMIT: self.report_submit,
            notices.ACKNOWLEDGE: self.acknowledge, notices.OPEN_RECORD: self.open_record,
            cards.HIDE_RECORD: self.hide_record, notices.RECORD_DECISION: self.decision_form,
            cards.DECISION_SUBMIT: self.decision_submit, notices.ASK_REFERRER: self.ask_form,
            cards.ASK_SUBMIT: self.ask_submit, notices.SHARE_OUTCOME: self.share_form,
            cards.SHARE_SUBMIT: self.share_submit, notices.CLOSE: self.close_form,
            cards.CLOSE_SUBMIT: self.close_submit, cards.ADD_NOTE: self.note_form,
            cards.NOTE_SUBMIT: self.note_submit,
            notices.ANSWER_QUESTION: self.answer_form, cards.ANSWER_SUBMIT: self.answer_submit,
            notices.CHECKIN: self.checkin, notices.STILL_WORRIED: self.still_worried,
            notices.REQUEST_UPDATE: self.request_update,
            notices.IDENTIFY_SUBJECT: self.identify_form, cards.IDENTIFY_SUBMIT: self.identify_submit,
        }

    # ------------------------------------------------------------ plumbing

    def claim(self, key: str) -> bool:
        """True the first time a key is seen (a retried invoke, a double click)."""
        return idempotency.claim(self.store, key)

    def seen(self, key: str) -> bool:
        return idempotency.seen(self.store, key)

    def once(self, key: str, call: Callable[[], Reply], duplicate: Callable[[], Reply]) -> Reply:
        """Run a state-changing flow once per rendered card (its nonce `n`), in one transaction
        with its key: a retried invoke or a second click on the same card does nothing twice."""
        with idempotency.once(self.store, key) as o:
            if o.done:
                return duplicate()
            return call()

    async def known(self, act) -> None:
        """Someone the directory does not know by AAD object id: ask Teams for their email (the
        conversation member's email or UPN) and match it to the directory, once a minute at most.
        Known people cost nothing here (the directory's cache)."""
        a = _dump(act)
        tenant = ((a.get("channelData") or {}).get("tenant") or {}).get("id") or \
            (a.get("conversation") or {}).get("tenantId")
        frm = a.get("from") or {}
        aad = frm.get("aadObjectId")
        if not aad or self.directory.cached(aad, tenant) or self.directory.missed_recently(aad, tenant):
            return
        if await to_thread(self.directory.person_id, aad, tenant) is not None:
            return
        email = None
        try:
            conv = (a.get("conversation") or {}).get("id")
            member = await asyncio.wait_for(self.app.api.clone(service_url=a.get("serviceUrl")).conversations
                                            .members(conv).get(frm.get("id")), 10)
            email = getattr(member, "email", None) or getattr(member, "user_principal_name", None)
        except Exception as exc:  # no email: they are told whom to ask
            log.info("teams: member look-up failed (%s)", type(exc).__name__)
        pid = await to_thread(self.directory.link_email, email, aad, tenant) if email else None
        if pid is None:
            self.directory.remember_miss(aad, tenant)

    def identify(self, activity) -> tuple[int | None, str | None]:
        """(person id, tenant id) of the sender; saves their conversation reference when known."""
        a = _dump(activity)
        tenant = ((a.get("channelData") or {}).get("tenant") or {}).get("id") or \
            (a.get("conversation") or {}).get("tenantId")
        aad = (a.get("from") or {}).get("aadObjectId")
        pid = self.directory.person_id(aad, tenant)
        if pid is not None and (a.get("conversation") or {}).get("conversationType", "personal") == "personal":
            self.refresh_ref(pid, a)
        return pid, tenant

    def refresh_ref(self, pid: int, a: dict) -> None:
        """Keep the person's conversation reference current (and clear `stale`): a write only when
        something changed, so that an ordinary message costs one primary-key read."""
        from .refs import get_ref, ref_fields, save_ref

        try:
            fields = ref_fields(a)
        except ValueError:
            return  # an activity without a full reference (should not happen in a 1:1 chat)
        ref = get_ref(self.store, pid)
        if ref is not None and not ref.stale and all(getattr(ref, k) == v for k, v in fields.items()
                                                     if k != "aad_object_id" or v):
            return
        try:
            save_ref(self.store, pid, a)
        except IntegrityError:  # two first messages at once: the other one inserted it; update it
            save_ref(self.store, pid, a)

    async def dispatch(self, verb: str | None, pid: int, data: dict, where: str) -> Reply:
        return await to_thread(self.dispatch_sync, verb, pid, data, where)

    def dispatch_sync(self, verb: str | None, pid: int, data: dict, where: str) -> Reply:
        fn = self.actions.get(verb or "")
        if fn is None:
            return Reply(message="That button is no longer in use. Type “help” to see what I can do.")
        try:
            return fn(pid, data, where)
        except FormErrors as exc:  # a flow refused with field errors the card could not show
            return Reply(cards.message("Not done yet", list(exc.errors.values()), fallback="Not done yet"))
        except FlowError as exc:
            return Reply(cards.message("Not done", [str(exc)], fallback="Not done"))

    def invoke_sync(self, act, verb: str | None, data: dict) -> Reply:
        """An invoke in one worker-thread hop: who it is, then the action."""
        pid, tenant = self.identify(act)
        if pid is None:
            return Reply(self._unknown_with_form(tenant, data))
        return self.dispatch_sync(verb, pid, data, self._where(act))

    async def send(self, ctx, c, summary: str) -> None:
        from microsoft_teams.api import MessageActivityInput

        await ctx.send(MessageActivityInput.model_validate(cards.activity(c, summary)))

    def unknown_card(self, tenant: str | None, note: str | None = None):
        lines = [self.directory.whom_to_ask(tenant)]
        if note:
            lines.append(note)
        return cards.message("You are not in the safeguarding directory yet", lines,
                             fallback="You are not in the safeguarding directory yet")

    # ------------------------------------------------------------ SDK entry points

    async def on_message(self, ctx) -> None:
        act = ctx.activity
        if not _personal(act):  # concern content never goes into a channel or a group chat
            await ctx.send(NOT_HERE)
            return
        await self.known(act)
        pid, tenant = await to_thread(self.identify, act)
        value = act.value if isinstance(getattr(act, "value", None), dict) else None
        if value and value.get("action"):  # Action.Submit: data arrives as a message with `value`
            await self._on_submit(ctx, pid, tenant, value)
            return
        cmd = command_of(act.text)
        if pid is None:
            await self.send(ctx, await to_thread(self.unknown_card, tenant), "You are not in the safeguarding directory yet")
            return
        if cmd == notices.REPORT_CONCERN:
            await self.send(ctx, cards.report_step1(report.report_form()), "Report a safeguarding concern")
        elif cmd == "my_reports":
            reply = await to_thread(self.my_reports, pid, {}, "")
            await self.send(ctx, reply.card, "Your safeguarding reports")
        else:
            lines = HELP_LINES if cmd == "help" else ["I did not understand that. " + HELP_LINES[0], *HELP_LINES[1:]]
            await self.send(ctx, cards.help_card(lines), "How the safeguarding bot helps")

    async def _on_submit(self, ctx, pid, tenant, value: dict) -> None:
        act = ctx.activity
        if pid is None:
            reply = Reply(await to_thread(self._unknown_with_form, tenant, value))
        else:
            reply = await self.dispatch(value.get("action"), pid, value, self._where(act))
        c = reply.card or cards.message(reply.message or "Done", [], fallback=reply.message or "Done")
        if act.reply_to_id:  # replace the card the button was on
            from .client import update_activity

            ref = _InlineRef(act.conversation.id, act.service_url)
            try:
                await update_activity(self.app, ref, act.reply_to_id, cards.activity(c, c.fallback_text or "Update"))
                return
            except Exception as exc:  # the card is gone: say it in a new message instead
                log.info("teams: could not update the card in place (%s)", type(exc).__name__)
        await self.send(ctx, c, c.fallback_text or "Update")

    async def on_card_action(self, ctx):
        """adaptiveCard/action: always a typed invoke response (a card, or a message)."""
        from microsoft_teams.api import AdaptiveCardActionCardResponse, AdaptiveCardActionMessageResponse

        act = ctx.activity
        if not _personal(act):
            return AdaptiveCardActionMessageResponse(value=NOT_HERE)
        try:
            action = act.value.action
            data = dict(getattr(action, "data", None) or {})
            verb = data.get("action") or getattr(action, "verb", None)
            await self.known(act)
            reply = await to_thread(self.invoke_sync, act, verb, data)
        except Exception as exc:  # never "Unable to reach app": say something, log no content
            log.error("teams: card action failed (%s)", type(exc).__name__)
            return AdaptiveCardActionMessageResponse(
                value="Sorry, that did not work. Nothing was lost: please try again in a moment.")
        if reply.card is not None:
            return AdaptiveCardActionCardResponse(value=reply.card)
        return AdaptiveCardActionMessageResponse(value=reply.message or "Done.")

    async def on_card_search(self, ctx):
        """Teams' dynamic typeahead for the child picker (`application/search`, dataset "children"):
        pupils of the searcher's school whose name matches, and the typed name itself."""
        from microsoft_teams.api import SearchInvokeResponse, SearchInvokeResponseValue, SearchInvokeResult

        act = ctx.activity
        query = " ".join(str(getattr(act.value, "query_text", "") or "").split())[:100]
        dataset = getattr(act.value, "dataset", None)
        results: list = []
        try:
            pid, _ = await to_thread(self.identify, act)
            if pid is not None and dataset == cards.CHILD_SEARCH_DATASET and len(query) >= 2:
                found = await to_thread(self._children, pid, query)
                results = [SearchInvokeResult(title=label, value=value) for value, label in found]
                results.append(SearchInvokeResult(title=f"Not on the roll: “{query}”", value=query))
            elif pid is not None and dataset in (cards.STAFF_SEARCH_DATASET, cards.STAFF_ONLY_DATASET) \
                    and len(query) >= 2:
                found = await to_thread(report.search_staff, self.store, pid, query)
                results = [SearchInvokeResult(title=label, value=value) for value, label in found]
                if dataset == cards.STAFF_SEARCH_DATASET:
                    results.append(SearchInvokeResult(title=f"Not on the staff list: “{query}”", value=query))
        except Exception as exc:
            log.error("teams: child search failed (%s)", type(exc).__name__)
        return SearchInvokeResponse(value=SearchInvokeResponseValue(results=results))

    async def on_conversation_update(self, ctx) -> None:
        act = ctx.activity
        bot_id = act.recipient.id if act.recipient else None
        added = [m.id for m in (act.members_added or [])]
        if bot_id and bot_id in added:
            await self.greet(ctx)

    async def on_installation_update(self, ctx) -> None:
        act = ctx.activity
        action = (getattr(act, "action", None) or "").lower()
        if action.startswith("add"):
            await self.greet(ctx)
        elif action.startswith("remove"):
            pid, _ = await to_thread(self._who_only, act)
            if pid is not None:
                from .refs import mark_stale

                await to_thread(mark_stale, self.store, pid, "app_removed")

    def _who_only(self, act) -> tuple[int | None, str | None]:
        a = _dump(act)
        tenant = ((a.get("channelData") or {}).get("tenant") or {}).get("id") or \
            (a.get("conversation") or {}).get("tenantId")
        return self.directory.person_id((a.get("from") or {}).get("aadObjectId"), tenant), tenant

    async def greet(self, ctx) -> None:
        act = ctx.activity
        conv = act.conversation.id if act.conversation else "?"
        await self.known(act)
        pid, tenant = await to_thread(self.identify, act)
        from datetime import date

        # conversationUpdate and installationUpdate both arrive on install: greet once.
        if not await to_thread(self.claim, f"teams-greet:{conv}:{date.today().isoformat()}"):
            return
        lines = await to_thread(self.directory.greeting, pid, tenant)
        await self.send(ctx, cards.help_card(lines), "Hello: how the safeguarding bot helps")

    # ------------------------------------------------------------ helpers for actions

    @staticmethod
    def _where(act) -> str:
        """What a submission is keyed on: the card's own message (reply id), else this activity."""
        conv = act.conversation.id if act.conversation else ""
        return f"{conv}:{act.reply_to_id or act.id}"

    def _unknown_with_form(self, tenant: str | None, data: dict):
        """An unknown person pressed a button: tell them whom to ask; a report form comes back with
        what they typed, so nothing is lost."""
        note = None
        if data.get("action") == cards.REPORT_SUBMIT:
            form = report.report_form()
            c = cards.report_step2(form, [], str(data.get(cards.CHILD_QUERY) or ""), data)
            c.body.insert(1, cards.text(self.directory.whom_to_ask(tenant), color="Attention"))
            return c
        return self.unknown_card(tenant, note)

    def _school_of(self, pid: int) -> int | None:
        with self.store.session() as s:
            p = s.get(Person, pid)
            return p.school_id if p else None

    def _children(self, pid: int, query: str) -> list[tuple[str, str]]:
        from storage.people import search_children

        school = self._school_of(pid)
        if school is None or len(query.strip()) < 2:
            return []
        with self.store.session() as s:
            return [(report.child_value(c.id), f"{c.name} (Year {c.year_group})" if c.year_group else c.name)
                    for c in search_children(s, school, query, limit=10)]

    def _staff(self, pid: int) -> list[tuple[str, str]]:
        """The staff list a report card offers before anyone searches (Teams' typeahead covers the rest)."""
        from storage.people import search_staff

        school = self._school_of(pid)
        if school is None:
            return []
        with self.store.session() as s:
            found = search_staff(s, school, "@", limit=cards.STAFF_LISTED)  # every email has an @
            return sorted(((report.staff_value(p.id), label) for p, label in found), key=lambda x: x[1].lower())

    def _reference(self, pid: int, cid: int) -> str:
        with self.store.session() as s:
            _, concern = require_handler(s, pid, cid)
            return concern.reference

    @staticmethod
    def _cid(data: dict) -> int:
        try:
            return int(data.get("concern_id"))
        except (TypeError, ValueError):
            raise FormErrors({"concern_id": "This card does not name a concern any more."}) from None

    @staticmethod
    def _nonce() -> str:
        return uuid.uuid4().hex[:12]

    # ------------------------------------------------------------ report

    def help(self, pid, data, where) -> Reply:
        return Reply(cards.help_card(HELP_LINES))

    def my_reports(self, pid, data, where) -> Reply:
        return Reply(cards.my_reports_card(queries.my_reports(self.store, pid)))

    def report_start(self, pid, data, where) -> Reply:
        if self._school_of(pid) is None:
            raise FlowError("You are not attached to a school in the directory, so a concern cannot be routed. "
                            "Ask your school's safeguarding lead or IT admin to add you.")
        return Reply(cards.report_step1(report.report_form()))

    def report_restart(self, pid, data, where) -> Reply:
        return Reply(cards.report_step1(report.report_form(), data))

    def report_find_child(self, pid, data, where) -> Reply:
        form = report.report_form()
        errors = {}
        if str(data.get("immediate_danger") or "") not in ("yes", "no"):
            errors["immediate_danger"] = "Choose an answer: is the child in immediate danger right now?"
        query = " ".join(str(data.get(cards.CHILD_QUERY) or "").split())
        if len(query) < 2:
            errors["child"] = "Type at least two letters of the child's name."
        if errors:
            return Reply(cards.report_step1(form, data, errors))
        danger = report.DANGER_ADVICE if data.get("immediate_danger") == "yes" else None
        values = {"immediate_danger": data.get("immediate_danger"), "n": self._nonce()}
        c = cards.report_step2(form, self._children(pid, query), query, values, danger_advice=danger,
                               staff=self._staff(pid))
        _stamp_nonce(c, values["n"])
        return Reply(c)

    def report_submit(self, pid, data, where) -> Reply:
        form = report.report_form()
        raw = cards.read_values(form, data)
        typed = str(data.get(cards.CHILD_QUERY) or "")
        nonce = str(data.get("n") or "")
        danger = report.DANGER_ADVICE if raw.get("immediate_danger") == "yes" else None

        def again(errors=None, hints=None):
            c = cards.report_step2(form, self._children(pid, typed), typed, data, errors, danger_advice=danger,
                                   hints=hints, staff=self._staff(pid))
            _stamp_nonce(c, nonce)
            return Reply(c)

        key = f"teams:{where}:{nonce}"
        try:
            report.validate(self.store, pid, raw)
        except FormErrors as exc:
            existing = report.existing_receipt(self.store, key) if nonce else None  # a retry after the first went in
            if existing is None:
                return again(errors=exc.errors)
        else:
            hints = report.wording_hints(self.store, pid, raw)
            if hints and not data.get("wc"):
                return again(hints=hints)
        receipt = report.submit(self.store, pid, raw, submission_key=key)
        log.info("teams: concern submitted (concern id %s, duplicate=%s)", receipt.concern_id, receipt.duplicate)
        return Reply(cards.receipt(receipt.reference, receipt.lines, receipt.urgent, receipt.concern_id))

    # ------------------------------------------------------------ the DSL's side

    def acknowledge(self, pid, data, where) -> Reply:
        cid = self._cid(data)
        res = triage.acknowledge(self.store, pid, cid)
        return Reply(cards.acknowledged_card(res["reference"], cid, res["acknowledged_by"], res["at"]))

    def open_record(self, pid, data, where) -> Reply:
        rec = triage.open_record(self.store, pid, self._cid(data), via="teams")
        return Reply(cards.record_card(rec))

    def hide_record(self, pid, data, where) -> Reply:
        """Back to the short alert: no concern content left on screen."""
        cid = self._cid(data)
        with self.store.session() as s:
            _, concern = require_handler(s, pid, cid)
            ref, handler, at = concern.reference, concern.handler_id, concern.acknowledged_at
            who = None
            if handler:
                h = s.get(Person, handler)
                who = (h.name or h.email) if h else "someone"
        if handler:
            return Reply(cards.acknowledged_card(ref, cid, who, at))
        v = {"concern_id": cid}
        acts = [notices.Action(id=notices.ACKNOWLEDGE, label="Acknowledge", value=v, style="primary"),
                notices.Action(id=notices.OPEN_RECORD, label="Open record", value=v),
                notices.Action(id=notices.RECORD_DECISION, label="Record decision", value=v),
                notices.Action(id=notices.ASK_REFERRER, label="Ask the referrer", value=v)]
        if subject.may_identify(self.store, pid, cid):
            acts.insert(0, notices.Action(id=notices.IDENTIFY_SUBJECT, label="Identify the adult", value=v))
        return Reply(cards.message("Safeguarding concern", [f"Reference: {ref}", "Not acknowledged yet."],
                                   cards.notice_actions(acts), fallback=f"Safeguarding concern {ref}"))

    def _done(self, cid: int, title: str, line: str) -> Reply:
        acts = [cards.execute("Open record", notices.OPEN_RECORD, concern_id=cid),
                cards.execute("Record decision", notices.RECORD_DECISION, concern_id=cid),
                cards.execute("Share outcome", notices.SHARE_OUTCOME, concern_id=cid),
                cards.execute("Close", notices.CLOSE, concern_id=cid)]
        return Reply(cards.message(title, [line], acts, fallback=title))

    def decision_form(self, pid, data, where) -> Reply:
        cid = self._cid(data)
        c = cards.decision_card(triage.decision_form(), self._reference(pid, cid), cid)
        _stamp_nonce(c, self._nonce())
        return Reply(c)

    def decision_submit(self, pid, data, where) -> Reply:
        cid = self._cid(data)
        form = triage.decision_form()
        raw = cards.read_values(form, data)

        def call() -> Reply:
            try:
                out = triage.record_decision(self.store, pid, cid, raw)
            except FormErrors as exc:
                c = cards.decision_card(form, self._reference(pid, cid), cid, data, exc.errors)
                _stamp_nonce(c, str(data.get("n") or self._nonce()))
                raise _Rerender(Reply(c)) from None
            label = {c.value: c.label for c in triage.DECISIONS}.get(out["decision"], out["decision"])
            return self._done(cid, "Decision recorded", f"{out['reference']}: decision recorded ({label}). "
                                                        f"Review date {cards.when(out['review_date'])}.")

        return self._once_form(data, "decision", cid, call, "Decision recorded")

    def _once_form(self, data: dict, what: str, cid: int, call: Callable[[], Reply], title: str) -> Reply:
        key = f"teams-form:{what}:{data.get('n') or uuid.uuid4().hex}"
        try:
            return self.once(key, call, lambda: self._done(cid, title, "Already done: this form was sent once."))
        except _Rerender as r:
            return r.reply

    def _text_form(self, pid, data, *, title, lines, field, label, verb, submit) -> Reply:
        cid = self._cid(data)
        ref = self._reference(pid, cid)
        c = cards.text_card(title, [f"{ref}: {lines}"], field, label, verb, submit, fallback=f"{title}: {ref}",
                            concern_id=cid, n=self._nonce())
        return Reply(c)

    def _text_submit(self, pid, data, *, what, field, call, title, line, form_kw) -> Reply:
        cid = self._cid(data)
        value = str(data.get(field) or "")

        def run() -> Reply:
            try:
                call(cid, value)
            except FormErrors as exc:
                ref = self._reference(pid, cid) if form_kw.get("handler", True) else ""
                msg = " ".join(exc.errors.values())
                c = cards.text_card(form_kw["title"], [f"{ref}: {form_kw['lines']}" if ref else form_kw["lines"]],
                                    field, form_kw["label"], form_kw["verb"], form_kw["submit"],
                                    fallback=form_kw["title"], error=msg, value=value or None,
                                    cancel=form_kw.get("cancel", cards.HIDE_RECORD),
                                    concern_id=cid, n=data.get("n"), **form_kw.get("extra", {}))
                raise _Rerender(Reply(c)) from None
            if form_kw.get("handler", True):
                return self._done(cid, title, line)
            return Reply(cards.message(title, [line], fallback=title))

        return self._once_form(data, what, cid, run, title)

    ASK = dict(title="Ask the referrer", lines="the referrer gets your question in a private message and can "
               "answer it with one click.", label="Your question", verb=cards.ASK_SUBMIT, submit="Send question")
    SHARE = dict(title="Share an outcome", lines="only these words reach the referrer. Share what they need to "
                 "know, nothing more.", label="What the referrer should be told", verb=cards.SHARE_SUBMIT,
                 submit="Share with the referrer")
    CLOSE = dict(title="Close the concern", lines="how it was followed up and resolved. Closing needs a "
                 "recorded decision.", label="Outcome summary", verb=cards.CLOSE_SUBMIT, submit="Close concern")
    NOTE = dict(title="Add a note", lines="a note for the chronology (never edited; a correction is a new note).",
                label="Note", verb=cards.NOTE_SUBMIT, submit="Add note")

    def ask_form(self, pid, data, where) -> Reply:
        return self._text_form(pid, data, field="question", **self.ASK)

    def ask_submit(self, pid, data, where) -> Reply:
        return self._text_submit(pid, data, what="ask", field="question", title="Question sent",
                                 line="The referrer has been asked privately. You will be told when they answer.",
                                 call=lambda cid, v: triage.ask_referrer(self.store, pid, cid, v), form_kw=self.ASK)

    def share_form(self, pid, data, where) -> Reply:
        return self._text_form(pid, data, field="text", **self.SHARE)

    def share_submit(self, pid, data, where) -> Reply:
        return self._text_submit(pid, data, what="share", field="text", title="Outcome shared",
                                 line="The referrer will receive these words in a private message.",
                                 call=lambda cid, v: triage.share_outcome(self.store, pid, cid, v), form_kw=self.SHARE)

    def close_form(self, pid, data, where) -> Reply:
        return self._text_form(pid, data, field="summary", **self.CLOSE)

    def close_submit(self, pid, data, where) -> Reply:
        return self._text_submit(pid, data, what="close", field="summary", title="Concern closed",
                                 line="Closed with its outcome summary. The referrer can still say they are "
                                      "worried, which reopens it.",
                                 call=lambda cid, v: triage.close(self.store, pid, cid, v), form_kw=self.CLOSE)

    def note_form(self, pid, data, where) -> Reply:
        return self._text_form(pid, data, field="text", **self.NOTE)

    def note_submit(self, pid, data, where) -> Reply:
        return self._text_submit(pid, data, what="note", field="text", title="Note added",
                                 line="Added to the chronology.",
                                 call=lambda cid, v: triage.add_entry(self.store, pid, cid, "note", v),
                                 form_kw=self.NOTE)

    def identify_form(self, pid, data, where) -> Reply:
        """"Identify the adult": the routed recipient of a concern whose adult was typed, not picked."""
        p = subject.pending(self.store, pid, self._cid(data))
        c = cards.identify_card(subject.identify_form(), p["reference"], p["typed"], p["concern_id"], self._staff(pid))
        _stamp_nonce(c, self._nonce())
        return Reply(c)

    def identify_submit(self, pid, data, where) -> Reply:
        cid = self._cid(data)
        form = subject.identify_form()
        raw = cards.read_values(form, data)

        def call() -> Reply:
            try:
                out = subject.identify_from_form(self.store, pid, cid, raw)
            except FormErrors as exc:
                p = subject.pending(self.store, pid, cid)
                c = cards.identify_card(form, p["reference"], p["typed"], cid, self._staff(pid), data, exc.errors)
                _stamp_nonce(c, str(data.get("n") or self._nonce()))
                raise _Rerender(Reply(c)) from None
            line = subject.outcome_line(out)
            if not out["still_yours"]:
                return Reply(cards.message("Adult identified", [line], fallback="Adult identified"))
            return self._done(cid, "Adult identified", line)

        return self._once_form(data, "identify", cid, call, "Adult identified")

    # ------------------------------------------------------------ the referrer's side

    ANSWER = dict(title="Answer the safeguarding lead", label="Your answer", verb=cards.ANSWER_SUBMIT,
                  submit="Send answer", handler=False, cancel=None)

    def answer_form(self, pid, data, where) -> Reply:
        cid = self._cid(data)
        qs = triage.open_questions(self.store, pid, cid)
        if not qs:
            return Reply(cards.message("No open question", ["Every question on this concern has been answered. "
                                                            "Thank you."], fallback="No open question"))
        q = qs[-1]
        c = cards.text_card(self.ANSWER["title"], [f"The safeguarding lead asks: {q['question']}"], "answer",
                            self.ANSWER["label"], cards.ANSWER_SUBMIT, self.ANSWER["submit"],
                            fallback="Answer the safeguarding lead", cancel=None, concern_id=cid, seq=q["seq"],
                            n=self._nonce())
        return Reply(c)

    def answer_submit(self, pid, data, where) -> Reply:
        seq = data.get("seq")
        kw = dict(self.ANSWER, lines="Write your answer for the safeguarding lead.", extra={"seq": seq})
        return self._text_submit(pid, data, what="answer", field="answer", title="Answer sent",
                                 line="Thank you: your answer has gone to the safeguarding lead.",
                                 call=lambda cid, v: triage.answer_referrer_question(
                                     self.store, pid, cid, v, question_seq=int(seq) if seq is not None else None),
                                 form_kw=kw)

    def _click(self, pid: int, verb: str, data: dict, where: str, call, done: Callable[[Any], Reply]) -> Reply:
        key = f"teams-click:{pid}:{verb}:{json.dumps(data, sort_keys=True)}:{where}"
        with idempotency.once(self.store, key) as o:
            if o.done:
                return Reply(cards.message("Already done", ["You pressed this already: it was done once."],
                                           fallback="Already done"))
            return done(call())

    def checkin(self, pid, data, where) -> Reply:
        cid, answer = self._cid(data), str(data.get("answer") or "")

        def done(out) -> Reply:
            said = notices.CHECKIN_ANSWERS.get(answer, answer)
            lines = [f"{out['reference']}: you answered “{said}”. Thank you."]
            acts = []
            if out.get("reassess"):
                lines.append("The safeguarding team has been asked to look again. If you are still worried, say so.")
                acts = [cards.execute("I'm still worried", notices.STILL_WORRIED, style="danger", concern_id=cid)]
            return Reply(cards.message("Check-in answered", lines, acts, fallback="Check-in answered"))

        return self._click(pid, notices.CHECKIN, data, where,
                           lambda: followup.checkin(self.store, pid, cid, answer), done)

    def still_worried(self, pid, data, where) -> Reply:
        cid = self._cid(data)

        def done(out) -> Reply:
            return Reply(cards.message("You are still worried: the team has been told",
                                       [f"{out['reference']}: {out['told']} that you are still worried.",
                                        "If a child is in immediate danger, call 999."],
                                       fallback="The safeguarding team has been told"))

        return self._click(pid, notices.STILL_WORRIED, data, where,
                           lambda: followup.still_worried(self.store, pid, cid), done)

    def request_update(self, pid, data, where) -> Reply:
        cid = self._cid(data)
        return self._click(pid, notices.REQUEST_UPDATE, data, where,
                           lambda: followup.request_update(self.store, pid, cid),
                           lambda out: Reply(cards.message("Update requested", [
                               "The safeguarding lead has been asked for an update."], fallback="Update requested")))


class _Rerender(Exception):
    """A form came back with errors: show it again (and do not mark the submission as done)."""

    def __init__(self, reply: Reply):
        super().__init__("rerender")
        self.reply = reply


class _InlineRef:
    stale = False
    person_id = None

    def __init__(self, conversation_id: str, service_url: str):
        self.conversation_id, self.service_url = conversation_id, service_url


DIALOG_TEXT = "The safeguarding forms open in our chat: type “report a concern” there."
NOT_HERE = ("I only work in a private 1:1 chat, so that nothing about a child is seen by others. "
            "Open a chat with me (Safeguarding) and type “report a concern”.")


def _personal(act) -> bool:
    conv = getattr(act, "conversation", None)
    kind = getattr(conv, "conversation_type", None) if conv is not None else None
    return kind in (None, "personal")


def _stamp_nonce(c, nonce: str) -> None:
    """Every Action.Execute on a form card carries the form's nonce `n` (what a submission is keyed on)."""
    for a in c.actions or []:
        if isinstance(a.data, dict):
            a.data.setdefault("n", nonce)
        elif a.data is not None and getattr(a.data, "n", None) is None:
            setattr(a.data, "n", nonce)  # SubmitActionData keeps extra fields


def register_handlers(app, settings, store) -> None:
    h = TeamsHandlers(app, settings, store)
    app.safeguarding.handlers = h

    @app.on_message
    async def on_message(ctx):
        await h.on_message(ctx)

    @app.on_card_action
    async def on_card_action(ctx):
        return await h.on_card_action(ctx)

    @app.on_card_search
    async def on_card_search(ctx):
        return await h.on_card_search(ctx)

    @app.on_dialog_open
    async def on_dialog_open(ctx):  # task/fetch: the forms live in the chat (the Playground has no dialogs)
        from microsoft_teams.api import TaskModuleMessageResponse, TaskModuleResponse

        return TaskModuleResponse(task=TaskModuleMessageResponse(value=DIALOG_TEXT))

    @app.on_dialog_submit
    async def on_dialog_submit(ctx):
        from microsoft_teams.api import TaskModuleMessageResponse, TaskModuleResponse

        return TaskModuleResponse(task=TaskModuleMessageResponse(value=DIALOG_TEXT))

    @app.on_conversation_update
    async def on_conversation_update(ctx):
        await h.on_conversation_update(ctx)

    @app.on_installation_update
    async def on_installation_update(ctx):
        await h.on_installation_update(ctx)
