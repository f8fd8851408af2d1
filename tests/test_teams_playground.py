"""The journey through Microsoft 365 Agents Playground (npm @microsoft/m365agentsplayground, pinned
in tests/node/package.json): `safeguarding-bot serve --teams-playground` as a subprocess, and two
Playground processes (Microsoft's local Teams client and connector), one for the referrer and one
for the DSL, each configured with its own current user (`.m365agentsplayground.yml`). The test
drives the Playground's local HTTP API (`/_conversation/v1/...`) and reads what its client shows
from its WebSocket stream: Microsoft's client receiving our real cards, pressing our real buttons
(it sends the invoke and replaces the card with our answer), and the outbox worker inside `serve`
reaching the DSL proactively through the stored reference."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from storage.models import Concern, Person, School
from tests.flow_support import build_world
from tests.teams_journey_support import find_action, inputs_of, texts
from tests.teams_support import NODE_DIR, ServeProcess, assert_valid_card, ensure_node_tools, free_port

PLAYGROUND = NODE_DIR / "node_modules" / "@microsoft" / "m365agentsplayground" / "cli.js"
PG_TENANT = "00000000-0000-0000-0000-0000000000001"
TEACHER_AAD = "00000000-0000-0000-0000-0000000000020"
DSL_AAD = "00000000-0000-0000-0000-0000000000021"

CONFIG = """version: "0.1.1"
tenantId: {tenant}
bot:
  id: 00000000-0000-0000-0000-00000000000011
  name: Safeguarding
currentUser:
  id: {user_id}
  name: {name}
  userPrincipleName: {email}
  aadObjectId: {aad}
  givenName: {given}
  surname: {surname}
  email: {email}
users:
{users}personalChat:
  id: {chat}
groupChat:
  id: group-{chat}
  name: Staff room
team:
  id: team-{chat}
  name: Staff
  aadGroupId: 00000000-0000-0000-0000-000000000031
  channels:
    - id: channel-{chat}
      name: Announcements
"""
# The Playground's schema wants exactly five other users (people the bot does not know).
OTHERS = "".join(f"""  - id: other-{i}
    name: Other Person{i}
    userPrincipleName: other{i}@example.com
    aadObjectId: 00000000-0000-0000-0000-00000000009{i}
    givenName: Other
    surname: Person{i}
    email: other{i}@example.com
""" for i in range(1, 6))


class Playground:
    """One Agents Playground process (the Teams client + connector of one user) and its stream."""

    def __init__(self, tmp: Path, bot_port: int, *, user_id: str, name: str, email: str, aad: str):
        self.dir = tmp
        self.dir.mkdir(parents=True, exist_ok=True)
        given, surname = name.split(" ", 1)
        (self.dir / ".m365agentsplayground.yml").write_text(CONFIG.format(
            tenant=PG_TENANT, user_id=user_id, name=name, email=email, aad=aad, given=given, surname=surname,
            chat=f"personal-{user_id}", users=OTHERS))
        self.user_id, self.chat = user_id, f"personal-{user_id}"
        env = {**os.environ, "APPLICATION_INSIGHTS_NO_STATSBEAT": "true", "TEAMSAPPTESTER_BROWSER": "none",
               "BOT_ENDPOINT": f"http://127.0.0.1:{bot_port}/api/messages"}
        for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
            env.pop(k, None)
        self.proc = subprocess.Popen(["node", str(PLAYGROUND), "--disable-telemetry", "-p", str(free_port()),
                                      "-c", "msteams"], cwd=self.dir, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.port = self._read_port()
        self.messages: dict[str, dict] = {}  # messageId -> latest message as the client holds it
        self.order: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._stream()), daemon=True)
        self._thread.start()
        assert self._connected.wait(20), "the Playground's stream did not open"

    def _read_port(self) -> int:
        deadline = time.monotonic() + 60
        seen = []
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                if self.proc.poll() is not None:
                    raise RuntimeError("the Playground exited: " + "".join(seen))
                continue
            seen.append(line)
            m = re.search(r"Listening on (\d+)", line)  # a taken port silently becomes another
            if m:
                threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
                return int(m.group(1))
        raise RuntimeError("the Playground did not say where it listens: " + "".join(seen))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _stream(self):
        import aiohttp

        async with aiohttp.ClientSession() as s:
            for _ in range(100):  # "Listening on" can come just before the socket accepts
                try:
                    ws_cm = await s.ws_connect(self.url + "/_ws_conversation/v1/conversations/stream")
                    break
                except aiohttp.ClientConnectorError:
                    await asyncio.sleep(0.2)
            else:
                return
            async with ws_cm as ws:
                self._connected.set()
                while not self._stop.is_set():
                    try:
                        m = await asyncio.wait_for(ws.receive(), 0.5)
                    except asyncio.TimeoutError:
                        continue
                    if m.type != aiohttp.WSMsgType.TEXT:
                        if m.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                            return
                        continue
                    event = json.loads(m.data)
                    msg = event.get("message")
                    if isinstance(msg, dict) and msg.get("messageId"):
                        with self._lock:
                            if msg["messageId"] not in self.messages:
                                self.order.append(msg["messageId"])
                            self.messages[msg["messageId"]] = {**self.messages.get(msg["messageId"], {}), **msg}

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    # --- what the user does

    def say(self, text: str) -> None:
        with httpx.Client(trust_env=False, timeout=30) as c:
            r = c.post(f"{self.url}/_conversation/v1/conversations/{self.chat}/messages",
                       json={"from": {"id": self.user_id}, "text": text, "textFormat": "plain"})
        assert r.status_code == 200, r.text

    def press(self, message_id: str, title: str, inputs: dict | None = None) -> dict:
        """Press an Action.Execute on a card the client shows; returns the card it shows afterwards."""
        card = self.card(message_id)
        action = find_action(card, title)
        data = {**action["data"], **(inputs or {})}
        with httpx.Client(trust_env=False, timeout=60) as c:
            r = c.post(f"{self.url}/_conversation/v1/invoke", json={
                "name": "adaptiveCard/action", "from": {"id": self.user_id}, "conversation": {"id": self.chat},
                "replyToId": message_id,
                "value": {"action": {"type": "Action.Execute", "verb": action["verb"], "data": data},
                          "trigger": "manual"}})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["type"] == "application/vnd.microsoft.card.adaptive", body
        with self._lock:  # the client replaces the card with our answer
            self.messages[message_id]["attachments"][0]["content"] = body["value"]
        return body["value"]

    # --- what the client shows

    def cards(self) -> list[tuple[str, dict]]:
        with self._lock:
            out = []
            for mid in self.order:
                m = self.messages[mid]
                if m.get("from", {}).get("id") == self.user_id:
                    continue
                for a in m.get("attachments") or []:
                    if a.get("contentType") == "application/vnd.microsoft.card.adaptive":
                        out.append((mid, a["content"]))
            return out

    def card(self, message_id: str) -> dict:
        with self._lock:
            return self.messages[message_id]["attachments"][0]["content"]

    def wait_card(self, pred, timeout: float = 30.0) -> tuple[str, dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for mid, card in reversed(self.cards()):
                if pred(card):
                    return mid, card
            time.sleep(0.1)
        raise AssertionError(f"no such card; the client shows: {[c['body'][0].get('text') for _, c in self.cards()]}")


def title(text: str):
    return lambda card: (card.get("body") or [{}])[0].get("text") == text


@pytest.fixture
def node_ready():
    if shutil.which("node") is None:
        pytest.fail("node is needed for the Agents Playground test (see README)")
    ensure_node_tools()
    if not PLAYGROUND.exists():
        subprocess.run(["npm", "ci", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund", "--ignore-scripts"],
                       check=True, capture_output=True, timeout=300)


def test_journey_in_the_agents_playground(store, cli_env, tmp_path, node_ready):
    w = build_world(store)
    with store.session() as s:
        school = s.get(School, w.school)
        school.teams_tenant_id = PG_TENANT
        s.add(school)
        for key, aad in (("teacher", TEACHER_AAD), ("dsl", DSL_AAD)):
            p = s.get(Person, w.people[key])
            p.teams_aad_object_id = aad
            s.add(p)
    env = {k: v for k, v in cli_env.items() if k not in ("HTTPS_PROXY", "https_proxy", "CLIENT_ID", "CLIENT_SECRET",
                                                          "TENANT_ID")}
    shown: list[dict] = []
    with ServeProcess(env, tmp_path, "--teams-playground") as bot:
        teacher = Playground(tmp_path / "pg-teacher", bot.port, user_id="user-teacher", name="Tom Reed",
                             email="teacher@s.test", aad=TEACHER_AAD)
        dsl = Playground(tmp_path / "pg-dsl", bot.port, user_id="user-dsl", name="Dana Shah", email="dsl@s.test",
                         aad=DSL_AAD)
        try:
            # The DSL has opened the bot once (a 1:1 chat, so a stored reference).
            dsl.say("help")
            dsl.wait_card(title("Safeguarding concerns"))

            # The referrer types the command; the report card appears in Microsoft's client.
            teacher.say("Report a concern")
            mid, step1 = teacher.wait_card(title("Report a concern"))
            step2 = teacher.press(mid, "Find the child", {"immediate_danger": "no", "child_query": "amira"})
            assert [c["title"] for c in inputs_of(step2)["child"]["choices"]][0] == "Amira Zed (Year 5)"
            errors = teacher.press(mid, "Send to the DSL", {"immediate_danger": "no", "child": f"child:{w.child}"})
            assert "Fill in “What happened — the facts”." in texts(errors)
            full = {"immediate_danger": "no", "child": f"child:{w.child}", "occurred_at.date": "2026-11-04",
                    "occurred_at.time": "10:15", "location": "Year 5 classroom", "categories": "physical_abuse",
                    "account": "At 10:15 Amira had a bruise on her left forearm about 3cm across.",
                    "about_adult": "no"}
            out = teacher.press(mid, "Send to the DSL", full)
            while out["body"][0]["text"] == "Report a concern":
                out = teacher.press(mid, "Send to the DSL", full)
            # the client now shows the receipt where the form was: no concern content left in the chat
            shown_now = teacher.card(mid)
            assert shown_now["body"][0]["text"] == "Concern sent"
            assert "Amira" not in json.dumps(shown_now) and "bruise" not in json.dumps(shown_now)
            with store.session() as s:
                concern = s.exec(select(Concern)).one()
            assert concern.reference in texts(shown_now)

            # The worker inside serve delivers the alert to the DSL's Teams (the Playground) proactively.
            amid, alert = dsl.wait_card(title("New safeguarding concern"), timeout=40)
            assert concern.reference in texts(alert) and "Amira" not in json.dumps(alert)
            acked = dsl.press(amid, "Acknowledge")
            assert "Acknowledged by Dana Shah at" in texts(acked)
            rec = dsl.press(amid, "Open record")
            assert "Amira Zed" in texts(rec)
            dec = dsl.press(amid, "Record decision")
            decided = dsl.press(amid, "Record decision", {
                "decision": "monitor", "reasons": "Monitor attendance and presentation daily for four weeks.",
                "participants": "Dana Shah (DSL)"})
            assert "decision recorded (Monitor in school)" in texts(decided)
            share = dsl.press(amid, "Share outcome")
            dsl.press(amid, "Share with the referrer", {"text": "Thank you: we are supporting the family."})

            # The referrer hears the outcome, and says they are still worried.
            omid, outcome = teacher.wait_card(title("Update from the safeguarding lead"), timeout=40)
            assert "we are supporting the family" in texts(outcome)
            worried = teacher.press(omid, "I'm still worried")
            assert worried["body"][0]["text"] == "You are still worried: the team has been told"
            dsl.wait_card(title("The referrer is still worried"), timeout=40)

            # The DSL closes it (the outbox has meanwhile updated this alert card in place to say who
            # acknowledged it; the record has the Close button).
            assert "Acknowledged by Dana Shah at" in texts(dsl.card(amid))
            dsl.press(amid, "Open record")
            close = dsl.press(amid, "Close")
            closed = dsl.press(amid, "Close concern", {"summary": "Monitored for four weeks; the family is supported."})
            assert closed["body"][0]["text"] == "Concern closed"
            with store.session() as s:
                assert s.get(Concern, concern.id).status == "closed"
            shown = [c for _, c in teacher.cards() + dsl.cards()] + [step1, step2, errors, acked, rec, dec, share,
                                                                      close]
        finally:
            teacher.close()
            dsl.close()
    for card in shown:
        assert_valid_card(card)
