"""A Teams world for conversation tests: the test school with Teams identities, our server with
Teams on (real HTTP, real token checks against the MicrosoftFake keys), the FakeConnector, and
helpers that post activities shaped as Teams sends them and drive the real outbox worker."""

from __future__ import annotations

import copy
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from bot.settings import load_settings
from storage.models import Person, School
from tests.flow_support import World, build_world
from tests.teams_support import APP_ID, APP_PASSWORD, TENANT_ID, FakeConnector, message_activity

AAD = {  # directory key -> AAD object id
    "teacher": "a0a0a0a0-0000-4000-8000-0000000000a1", "dsl": "a0a0a0a0-0000-4000-8000-0000000000a2",
    "deputy": "a0a0a0a0-0000-4000-8000-0000000000a3", "head": "a0a0a0a0-0000-4000-8000-0000000000a4",
    "ta": "a0a0a0a0-0000-4000-8000-0000000000a5", "chair": "a0a0a0a0-0000-4000-8000-0000000000a6",
}
UNKNOWN_AAD = "a0a0a0a0-0000-4000-8000-0000000000ff"


def teams_world(store) -> World:
    w = build_world(store)
    with store.session() as s:
        school = s.get(School, w.school)
        school.teams_tenant_id = TENANT_ID
        s.add(school)
        for key, aad in AAD.items():
            p = s.get(Person, w.people[key])
            p.teams_aad_object_id = aad
            s.add(p)
    return w


def teams_settings(store, **kw):
    values = dict(teams_app_id=APP_ID, teams_app_password=APP_PASSWORD, teams_tenant_id=TENANT_ID,
                  database_url=store.url)
    values.update(kw)
    return load_settings(**values)


def user_ids(key: str, conversation_id: str | None = None) -> dict:
    aad = AAD.get(key, UNKNOWN_AAD)
    return dict(user_id=f"29:1teams-{key}", aad_object_id=aad, conversation_id=conversation_id or f"a:1personal-{key}")


class RecordingConnector(FakeConnector):
    """The FakeConnector, also keeping what it answered (the activity id it gave each POST)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self._rec_lock = threading.Lock()
        self.members = {}

    members: dict = {}  # Teams user id -> the member JSON a GET .../members/{id} answers

    def record(self, method, path, headers, body):
        with self._rec_lock:
            out = super().record(method, path, headers, body)
            member = path.rsplit("/members/", 1)[-1] if "/members/" in path else None
            if method == "GET" and member in self.members and out[0] == 200:
                out = (200, self.members[member], None)
            self.calls[-1]["answer"] = out[1]
        return out


@dataclass
class Teams:
    """Posts to our /api/messages as Teams would, with a channel token from the fake's key."""

    url: str
    ms: Any
    connector: Any
    responses: list = field(default_factory=list)  # every invoke response body (cards checked later)
    conversation_of: Any = None  # key -> the person's 1:1 conversation id (as stored), or None

    def ids(self, who: str) -> dict:
        return user_ids(who, self.conversation_of(who) if self.conversation_of else None)

    def post(self, activity: dict) -> httpx.Response:
        token = self.ms.keys.mint(self.ms.kid, service_url=self.connector.service_url)
        with httpx.Client(trust_env=False, timeout=30) as c:
            return c.post(self.url + "/api/messages", json=activity, headers={"Authorization": f"Bearer {token}"})

    def say(self, who: str, text: str, **extra) -> httpx.Response:
        r = self.post(message_activity(self.connector.service_url, text, **self.ids(who), **extra))
        assert r.status_code == 200, r.text
        return r

    def submit(self, who: str, value: dict, reply_to_id: str) -> httpx.Response:
        """Action.Submit: a message with `value` and no text."""
        act = message_activity(self.connector.service_url, **self.ids(who), value=value, replyToId=reply_to_id)
        act.pop("text")
        r = self.post(act)
        assert r.status_code == 200, r.text
        return r

    def invoke(self, who: str, data: dict, reply_to_id: str, verb: str | None = None) -> dict:
        """Action.Execute: an adaptiveCard/action invoke; returns the invoke response body."""
        act = message_activity(self.connector.service_url, **self.ids(who), type="invoke", name="adaptiveCard/action",
                               replyToId=reply_to_id,
                               value={"action": {"type": "Action.Execute", "verb": verb or data["action"],
                                                 "data": data}, "trigger": "manual"})
        act.pop("text")
        r = self.post(act)
        assert r.status_code == 200, r.text
        body = r.json()
        self.responses.append(body)
        return body

    def press(self, who: str, card: dict, title: str, reply_to_id: str, inputs: dict | None = None) -> dict:
        """Press the Action.Execute titled `title` on `card`, with these input values (as Teams merges
        the card's inputs into the action's data)."""
        action = find_action(card, title)
        data = {**copy.deepcopy(action["data"]), **(inputs or {})}
        return self.invoke(who, data, reply_to_id, verb=action["verb"])


def actions_of(card: dict) -> list[dict]:
    """Every Action.Execute on the card, top-level and in ActionSets, in order."""
    found = []

    def walk(n):
        if isinstance(n, dict):
            if n.get("type") == "Action.Execute":
                found.append(n)
            for v in n.values():
                walk(v)
        elif isinstance(n, list):
            for v in n:
                walk(v)

    walk(card.get("body") or [])
    walk(card.get("actions") or [])
    return found


def find_action(card: dict, title: str) -> dict:
    for a in actions_of(card):
        if a.get("title") == title:
            return a
    raise AssertionError(f"no action {title!r} in card: {[a.get('title') for a in actions_of(card)]}")


def card_of(activity_body: dict) -> dict:
    atts = activity_body.get("attachments") or []
    assert atts and atts[0]["contentType"] == "application/vnd.microsoft.card.adaptive", activity_body
    return atts[0]["content"]


def texts(card: dict) -> str:
    """All text a person sees on the card (text blocks, facts, labels, choice titles, buttons)."""
    out = []

    def walk(n):
        if isinstance(n, dict):
            for k in ("text", "title", "label", "value", "placeholder", "fallbackText"):
                if isinstance(n.get(k), str):
                    out.append(n[k])
            for v in n.values():
                walk(v)
        elif isinstance(n, list):
            for v in n:
                walk(v)

    walk(card)
    return "\n".join(out)


def inputs_of(card: dict) -> dict:
    found = {}

    def walk(n):
        if isinstance(n, dict):
            if str(n.get("type", "")).startswith("Input.") and n.get("id"):
                found[n["id"]] = n
            for v in n.values():
                walk(v)
        elif isinstance(n, list):
            for v in n:
                walk(v)

    walk(card)
    return found


def new_id() -> str:
    return "1700000000" + uuid.uuid4().hex[:8]
