"""The terminal chat: every flow, in a terminal, against the same database.

A thin transport like Slack and Teams: it renders flow forms as prompts, shows per-field
errors and the clear-language check, and calls the same flow functions."""

from __future__ import annotations

import textwrap
from datetime import date, datetime, timezone
from typing import Any, Callable

from sqlalchemy.exc import DBAPIError

from flows import followup, notices, queries, report, triage

from . import console_desk
from .console_desk import year_label
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
             on_answer: Callable[[Field, Any], None] | None = None, staff_only: bool = False) -> dict:
        """Ask every visible field, validate through the flow, re-ask only the fields in error.
        ``staff_only``: a person must be chosen from the staff list (no name as typed)."""
        values = dict(values or {})
        pending = [f.name for f in form.fields]
        while True:
            for f in form.fields:
                if f.name in pending and f.visible(values):
                    values[f.name] = self.ask_field(f, staff_only=staff_only)
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

    def ask_field(self, f: Field, *, staff_only: bool = False) -> Any:
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
            return self.pick_staff(typed_ok=not staff_only)
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

    def pick_staff(self, *, typed_ok: bool = True) -> str:
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
            if typed_ok and self.ask("  Not on the staff list: use the name as typed? [y/n] ").lower().startswith("y"):
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
        typed_adult = values.get("about_adult") not in (None, "no") and \
            not str(values.get("subject") or "").startswith(report.STAFF_PREFIX)
        self.say("Your concern will go privately to the headteacher, who decides who it is about (you typed the "
                 "adult's name)." if typed_adult else "Your concern will go privately to the safeguarding team.")
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

    # -- the handler's side (bot/console_desk.py) -----------------------------------------
    def child_file(self) -> None:
        console_desk.child_file(self)

    def queue(self) -> None:
        console_desk.queue(self)


def run_chat(store: Store, email: str, *, read=input, write=print) -> int:
    who = queries.who(store, email=email)
    if who is None:
        write(f"{email} is not in the school directory. Ask your designated safeguarding lead or IT admin to add "
              "you (safeguarding-bot directory load). If a child is in danger now, call 999 and find the DSL in person.")
        return 2
    Console(store, who, read=read, write=write).run()
    return 0
