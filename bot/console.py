"""The terminal chat: every flow, in a terminal, against the same database.

A thin transport like Slack and Teams: it renders flow forms as prompts, shows per-field
errors and the clear-language check, and calls the same flow functions."""

from __future__ import annotations

import textwrap
from datetime import date, datetime, timezone
from typing import Any, Callable

from sqlalchemy.exc import DBAPIError

from flows import followup, notices, queries, report, triage
from flows.errors import FlowError, FormErrors
from flows.forms import Field, Form, Kind
from storage.db import Store
from storage.models import Person
from storage.people import search_children

WIDTH = 78


class Quit(Exception):
    pass


class Console:
    def __init__(self, store: Store, person: Person, *, read: Callable[[str], str] = input,
                 write: Callable[[str], None] = print):
        self.store, self.person = store, person
        self._read, self._write = read, write

    # -- input/output -------------------------------------------------------------------
    def say(self, text: str = "", indent: str = "") -> None:
        if not text:
            self._write("")
            return
        for para in text.split("\n"):
            self._write(textwrap.fill(para, WIDTH, initial_indent=indent, subsequent_indent=indent) or "")

    def ask(self, prompt: str) -> str:
        try:
            answer = self._read(prompt)
        except EOFError:
            raise Quit() from None
        if answer.strip().lower() in ("quit", "exit"):
            raise Quit()
        return answer.strip()

    def choose(self, prompt: str, options: list[tuple[str, str]], *, allow_back: bool = True) -> str | None:
        """Numbered menu; returns the chosen key, or None for back."""
        for i, (_, label) in enumerate(options, 1):
            self.say(f"{i:>3}. {label}")
        if allow_back:
            self.say("  0. Back")
        while True:
            a = self.ask(f"{prompt} ")
            if allow_back and a in ("0", "b", "back", ""):
                return None
            if a.isdigit() and 1 <= int(a) <= len(options):
                return options[int(a) - 1][0]
            self.say(f"Type a number from 1 to {len(options)}" + (", or 0 to go back." if allow_back else "."))

    def heading(self, text: str) -> None:
        self.say()
        self.say(f"── {text} " + "─" * max(0, WIDTH - len(text) - 4))

    # -- main loop ----------------------------------------------------------------------
    def run(self) -> None:
        self.heading("safeguarding-bot")
        self.say(f"Signed in as {self.person.name} <{self.person.email}>. Type 'quit' at any prompt to leave.")
        self.show_inbox()
        try:
            while True:
                self.main_menu()
        except Quit:
            self.say("Goodbye.")

    def is_dsl(self) -> bool:
        return queries.is_dsl_team(self.store, self.person.id)

    def guarded(self, fn: Callable[[], None]) -> None:
        """A database that goes away mid-conversation: say so plainly; nothing half-saved."""
        try:
            fn()
        except DBAPIError:
            self.say("The database cannot be reached just now, so nothing was saved. Try again in a moment; "
                     "if a child is in danger, call 999 and find the DSL in person.")

    def main_menu(self) -> None:
        self.heading("What would you like to do?")
        options = [("report", "Report a safeguarding concern"), ("mine", "My reports (status, outcomes, follow up)"),
                   ("inbox", "My notices")]
        try:
            queue = queries.dsl_queue(self.store, self.person.id)
            dsl = self.is_dsl()
        except DBAPIError:
            queue, dsl = queries.Queue([], [], []), False
            self.say("(The database cannot be reached just now.)")
        if dsl or queue.awaiting_ack or queue.open:
            n = len(queue.awaiting_ack)
            options.insert(0, ("queue", f"Safeguarding queue ({n} awaiting acknowledgement, {len(queue.open)} open, "
                                        f"{len(queue.overdue)} overdue)"))
        if dsl:
            options.insert(1, ("file", "A child's file (whole chronology, recorded)"))
        options.append(("help", "Help"))
        choice = self.choose("Choose:", options, allow_back=False)
        self.guarded({"report": self.report_flow, "mine": self.my_reports, "inbox": lambda: self.show_inbox(all_=True),
         "queue": self.queue, "file": self.child_file, "help": self.help}[choice])

    def help(self) -> None:
        self.heading("Help")
        self.say("Report a concern whenever you are worried about a child: the safeguarding team is alerted "
                 "privately and you get a reference. If a child is in immediate danger, call 999 first, then find "
                 "the DSL in person. Use “My reports” to see what happened, answer questions from the DSL, check "
                 "in, or say you are still worried.")

    def show_inbox(self, all_: bool = False) -> None:
        items = queries.inbox(self.store, self.person.id, unread_only=not all_)
        if not items:
            if all_:
                self.say("No notices.")
            return
        self.heading(f"{len(items)} notice(s)")
        for n in items:
            self.say(("[URGENT] " if n.urgent else "") + n.title + (f" — {n.reference}" if n.reference else ""))
            for line in n.lines:
                self.say(line, indent="    ")

    # -- forms --------------------------------------------------------------------------
    def fill(self, form: Form, validate: Callable[[dict], Any], *, values: dict | None = None,
             on_answer: Callable[[Field, Any], None] | None = None) -> dict:
        """Ask every visible field, validate through the flow, re-ask only the fields in error."""
        values = dict(values or {})
        pending = [f.name for f in form.fields]
        while True:
            for f in form.fields:
                if f.name in pending and f.visible(values):
                    values[f.name] = self.ask_field(f)
                    if on_answer:
                        on_answer(f, values[f.name])
            try:
                validate(values)
                return values
            except FormErrors as exc:
                self.say()
                self.say("Please fix these:")
                for name, msg in exc.errors.items():
                    label = form.field(name).label if name in {f.name for f in form.fields} else name
                    self.say(f"• {label}: {msg}", indent="  ")
                pending = list(exc.errors)

    def ask_field(self, f: Field) -> Any:
        self.say()
        self.say(f.label + ("" if f.required else " (optional)"))
        if f.help:
            self.say(f.help, indent="  ")
        if f.kind == Kind.boolean:
            while True:
                a = self.ask("  [y/n] ").lower()
                if a in ("y", "yes", "n", "no"):
                    return "yes" if a.startswith("y") else "no"
                self.say("  Type y or n.")
        if f.kind == Kind.choice:
            return self.choose("  Choose:", [(c.value, c.label) for c in f.choices], allow_back=False)
        if f.kind == Kind.multichoice:
            for i, c in enumerate(f.choices, 1):
                self.say(f"{i:>5}. {c.label}")
            while True:
                a = self.ask("  Numbers, separated by commas: ")
                nums = [p.strip() for p in a.split(",") if p.strip()]
                if nums and all(n.isdigit() and 1 <= int(n) <= len(f.choices) for n in nums):
                    return [f.choices[int(n) - 1].value for n in nums]
                if not nums and not f.required:
                    return []
                self.say(f"  Type one or more numbers from 1 to {len(f.choices)}, e.g. 1,4")
        if f.kind == Kind.child:
            return self.pick_child()
        if f.kind == Kind.person:
            return self.pick_staff()
        if f.kind == Kind.longtext:
            return self.ask("  > ")
        if f.kind == Kind.datetime:
            a = self.ask("  (e.g. 25/11/2026 14:30, or 'now') > ")
            return datetime.now(timezone.utc).isoformat() if a.lower() == "now" else a
        if f.kind == Kind.date:
            return self.ask("  (e.g. 08/12/2026) > ")
        return self.ask("  > ")

    def pick_child(self) -> str:
        while True:
            q = self.ask("  Search by name: ")
            if len(q) < 2:
                self.say("  Type at least two letters of the child's name.")
                continue
            with self.store.session() as s:
                found = [(report.child_value(c.id), f"{c.name} ({year_label(c.year_group)})")
                         for c in search_children(s, self.person.school_id, q, limit=10)]
            if found:
                self.say("  Found on the school roll:")
                choice = self.choose("  Choose the child, or 0 if not listed:", found)
                if choice:
                    return choice
            else:
                self.say("  No pupil on the roll matches.")
            if self.ask("  Use the name as typed (the DSL will match it)? [y/n] ").lower().startswith("y"):
                return q

    def pick_staff(self) -> str:
        while True:
            q = self.ask("  Search the staff list by name: ")
            if len(q) < 2:
                self.say("  Type at least two letters of their name.")
                continue
            found = report.search_staff(self.store, self.person.id, q, limit=10)
            if found:
                self.say("  Found on the staff list:")
                choice = self.choose("  Choose the person, or 0 if not listed:", found)
                if choice:
                    return choice
            else:
                self.say("  Nobody on the staff list matches.")
            if self.ask("  Not on the staff list: use the name as typed? [y/n] ").lower().startswith("y"):
                return q

    # -- report ---------------------------------------------------------------------------
    def report_flow(self) -> None:
        form = report.report_form()
        self.heading(form.title)
        self.say(form.intro)

        def first_things_first(f: Field, value: Any) -> None:
            if f.name == "immediate_danger" and value == "yes":
                self.say()
                self.say("!! " + report.DANGER_ADVICE)

        values = self.fill(form, lambda v: report.validate(self.store, self.person.id, v), on_answer=first_things_first)
        values = self.clear_language(form, values)
        self.heading("Check and send")
        self.say("Your concern will go privately to the safeguarding team.")
        if not self.ask("Send it now? [y/n] ").lower().startswith("y"):
            self.say("Not sent. Nothing has been saved.")
            return
        try:
            receipt = report.submit(self.store, self.person.id, values)
        except FormErrors as exc:  # e.g. the roll changed meanwhile
            self.say("Not sent: " + str(exc))
            return
        except FlowError as exc:
            self.say("Not sent: " + str(exc))
            return
        self.heading(f"Sent — reference {receipt.reference}")
        for line in receipt.lines:
            self.say(line)

    def clear_language(self, form: Form, values: dict) -> dict:
        while True:
            hints = report.wording_hints(self.store, self.person.id, values)
            if not hints:
                return values
            self.heading("Clear-language check")
            self.say("Some words could be read in more than one way. Records are clearer with the specific facts: "
                     "who, what, when, where, and exact words. This is a suggestion: you can send as it is.")
            for field_name, items in hints.items():
                self.say(f"In “{form.field(field_name).label}”:")
                for h in items:
                    self.say(f"“{h.phrase}” — {h.prompt}", indent="   • ")
            choice = self.choose("Choose:", [("edit", "Rewrite these answers"), ("send", "Keep them as they are")],
                                 allow_back=False)
            if choice == "send":
                return values
            for field_name in hints:
                values[field_name] = self.ask_field(form.field(field_name))

    # -- referrer side ------------------------------------------------------------------
    def my_reports(self) -> None:
        mine = queries.my_reports(self.store, self.person.id)
        self.heading("My reports")
        if not mine:
            self.say("You have not reported any concerns.")
            return
        choice = self.choose("Choose a report:", [(str(r.concern_id), f"{r.reference}  {r.created_at:%d %b %Y}  "
                                                                       f"{r.status_words}") for r in mine])
        if choice is None:
            return
        r = next(r for r in mine if str(r.concern_id) == choice)
        self.heading(r.reference)
        self.say(f"Status: {r.status_words}")
        if r.shared_outcome:
            self.say(f"From the safeguarding lead: {r.shared_outcome}")
        questions = triage.open_questions(self.store, self.person.id, r.concern_id)
        options = []
        if questions:
            options.append(("answer", f"Answer the DSL's question ({len(questions)})"))
        options += [("checkin", "Has anything changed for the child? (check in)"),
                    ("update", "Ask the DSL for an update"), ("worried", "I'm still worried")]
        action = self.choose("Choose:", options)
        try:
            if action == "answer":
                for q in questions:
                    self.say(f"Question: {q['question']}")
                    triage.answer_referrer_question(self.store, self.person.id, r.concern_id,
                                                    self.ask("Your answer > "), question_seq=q["seq"])
                self.say("Thank you: your answer is in the record and the DSL has been told.")
            elif action == "checkin":
                ans = self.choose("Has anything changed for the child?", list(notices.CHECKIN_ANSWERS.items()))
                if ans:
                    out = followup.checkin(self.store, self.person.id, r.concern_id, ans,
                                           self.ask("Anything to add? (optional) > "))
                    self.say("Recorded.")
                    if out["reassess"]:
                        self.say("The safeguarding team has been asked to re-assess. If you stay worried, choose "
                                 "“I'm still worried” to escalate.")
            elif action == "update":
                followup.request_update(self.store, self.person.id, r.concern_id)
                self.say("The safeguarding lead has been asked for an update.")
            elif action == "worried":
                out = followup.still_worried(self.store, self.person.id, r.concern_id,
                                             self.ask("What worries you now? (optional) > "))
                self.say(f"Escalated: {out['told']}.")
        except FlowError as exc:
            self.say("Not recorded: " + str(exc))

    # -- DSL side -------------------------------------------------------------------------
    def child_file(self) -> None:
        from flows import chronology

        self.heading("A child's file")
        child = self.pick_child()
        if not child.startswith(report.CHILD_PREFIX):
            self.say("Only a pupil on the roll has a file. Match typed names from the concern first.")
            return
        try:
            cf = chronology.child_file(self.store, self.person.id, int(child[len(report.CHILD_PREFIX):]),
                                       via="terminal")
        except FlowError as exc:
            self.say(str(exc))
            return
        for line in cf.lines():
            self.say(line)

    def queue(self) -> None:
        q = queries.dsl_queue(self.store, self.person.id)
        self.heading("Safeguarding queue")
        items = [(str(i.concern_id), f"{i.reference}  {'URGENT ' if i.urgent else ''}"
                                     f"{'awaiting acknowledgement' if i.handler_id is None else i.status + ', handled by ' + (i.handler_name or '?')}"
                                     f"{'  OVERDUE' if i.overdue else ''}") for i in q.awaiting_ack + q.open]
        if not items:
            self.say("Nothing open.")
            return
        choice = self.choose("Choose a concern:", items)
        if choice:
            self.concern_menu(int(choice))

    def concern_menu(self, concern_id: int) -> None:
        actions = [("ack", "Acknowledge and take ownership"), ("open", "Open the record (recorded)"),
                   ("ask", "Ask the referrer for more information"), ("note", "Add a note, discussion or action"),
                   ("decide", "Record a decision (with reasons)"), ("step", "Record a social care step"),
                   ("share", "Share an outcome with the referrer"), ("challenge", "Record a professional challenge"),
                   ("close", "Close with an outcome summary")]
        while True:
            self.heading("Concern")
            action = self.choose("Choose:", actions)
            if action is None:
                return
            try:
                self.concern_action(concern_id, action)
            except FormErrors as exc:
                self.say("Not recorded:")
                for name, msg in exc.errors.items():
                    self.say(f"• {name}: {msg}", indent="  ")
            except FlowError as exc:
                self.say("Not recorded: " + str(exc))

    def concern_action(self, cid: int, action: str) -> None:
        st, me = self.store, self.person.id
        if action == "ack":
            r = triage.acknowledge(st, me, cid)
            self.say(f"Already acknowledged by {r['acknowledged_by']}." if r["already"]
                     else f"{r['reference']} is yours. The rest of the team can see that.")
        elif action == "open":
            self.show_record(triage.open_record(st, me, cid, via="terminal"))
        elif action == "ask":
            triage.ask_referrer(st, me, cid, self.ask("Question for the referrer > "))
            self.say("Sent privately to the referrer; the question is in the record.")
        elif action == "note":
            kind = self.choose("Which?", [("note", "Note"), ("discussion", "Discussion"), ("action", "Action")])
            if kind:
                text = self.ask("What was noted / discussed / done? > ")
                who = self.ask("Who took part? > ") if kind == "discussion" else None
                triage.add_entry(st, me, cid, kind, text, participants=who)
                self.say("Added to the record.")
        elif action == "decide":
            form = triage.decision_form()
            self.heading(form.title)
            self.say(form.intro)
            values = self.fill(form, lambda v: _validate_only(form, v))
            out = triage.record_decision(st, me, cid, values)
            self.say(f"Decision recorded. Review date: {out['review_date']:%d %b %Y}.")
        elif action == "step":
            step = self.choose("Which step?", list(triage.STEP_LABELS.items()))
            if step:
                when = self.ask("When? (e.g. 26/11/2026 10:00, or 'now') > ")
                from flows.forms import _parse_datetime
                at = datetime.now(timezone.utc) if when.lower() == "now" else _parse_datetime(when, timezone.utc)
                triage.record_social_care_step(st, me, cid, step, at, self.ask("Note (optional) > "))
                self.say("Recorded.")
        elif action == "share":
            triage.share_outcome(st, me, cid, self.ask("What should the referrer be told? > "))
            self.say("Shared with the referrer.")
        elif action == "challenge":
            stage = self.choose("Stage:", [(str(k), v) for k, v in followup.CHALLENGE_STAGES.items()])
            if stage:
                on = self.ask("Date (e.g. 01/12/2026) > ")
                from flows.forms import _parse_date
                followup.record_challenge(st, me, cid, stage=int(stage), on=_parse_date(on),
                                          with_whom=self.ask("Raised with (name and role) > "),
                                          note=self.ask("What was challenged and why? > "))
                self.say("Challenge recorded.")
        elif action == "close":
            triage.close(st, me, cid, self.ask("Outcome summary: how it was followed up and resolved > "))
            self.say("Closed.")

    def show_record(self, v: triage.RecordView) -> None:
        self.heading(f"{v.reference} — {'URGENT — ' if v.urgent else ''}{v.status}")
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
            rows.append(("About an adult", f"{d['about_adult']}: {d['subject_name']}"))
        for label, value in rows:
            if value:
                self.say(f"{label}: {value}")
        h = v.history
        self.heading("Wider history")
        for flag in h.flags:
            self.say(f"⚑ {flag}")
        for label, items in (("Earlier concerns", h.earlier), ("Siblings' concerns", h.siblings)):
            self.say(f"{label}: " + ("none" if not items else ""))
            for p in items:
                who = f" ({p.child_name})" if p.child_name else ""
                self.say(f"{p.reference}{who} {p.created_at:%d %b %Y} {', '.join(p.categories)} — "
                         f"{p.status}{', ' + p.decision if p.decision else ''}", indent="   ")
        self.heading("Chronology")
        for e in v.entries:
            summary = "; ".join(f"{k}: {val}" for k, val in e.body.items() if val not in (None, "", []))
            self.say(f"{e.at:%d %b %H:%M} {entry_label(e.kind, e.facts):<28} {e.actor}" +
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


def _validate_only(form: Form, values: dict) -> None:
    from flows.forms import clean

    clean(form, values)


def run_chat(store: Store, email: str, *, read=input, write=print) -> int:
    who = queries.who(store, email=email)
    if who is None:
        write(f"{email} is not in the school directory. Ask your designated safeguarding lead or IT admin to add "
              "you (safeguarding-bot directory load). If a child is in danger now, call 999 and find the DSL in person.")
        return 2
    Console(store, who, read=read, write=write).run()
    return 0
