"""The Slack manifest and the code agree both ways: every command, shortcut and event the code
registers is declared in manifests/slack/manifest.yaml, and everything declared there is
handled (proved over real HTTP against the running app)."""

from __future__ import annotations

import ast
import time
from pathlib import Path

import pytest
import yaml

from bot.slack import app as slack_app
from bot.slack import ids
from tests.slack_support import close_env, make_env

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = yaml.safe_load((ROOT / "manifests/slack/manifest.yaml").read_text())


def declared():
    f = MANIFEST["features"]
    return {
        "command": {c["command"] for c in f["slash_commands"]},
        "global": {s["callback_id"] for s in f["shortcuts"] if s["type"] == "global"},
        "message": {s["callback_id"] for s in f["shortcuts"] if s["type"] == "message"},
        "event": set(MANIFEST["settings"]["event_subscriptions"]["bot_events"]),
    }


def registered():
    """What bot/slack/app.py registers with Bolt, read from its source (decorator arguments)."""
    tree = ast.parse(Path(slack_app.__file__).read_text())
    out = {"command": set(), "shortcut": set(), "event": set()}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "app"
                and node.func.attr in out and node.args):
            arg = node.args[0]
            if isinstance(arg, ast.Attribute) and isinstance(arg.value, ast.Name) and arg.value.id == "ids":
                value = getattr(ids, arg.attr)
            elif isinstance(arg, ast.Constant):
                value = arg.value
            else:
                raise AssertionError(f"cannot read listener argument at line {node.lineno}")
            out[node.func.attr].add(value)
    # our "message" listener answers direct messages only (channel_type im)
    out["event"] = {"message.im" if e == "message" else e for e in out["event"]}
    return out


def test_code_and_manifest_agree_both_ways():
    d, r = declared(), registered()
    assert r["command"] == d["command"] == set(ids.COMMANDS)
    assert r["shortcut"] == d["global"] | d["message"]
    assert d["global"] == set(ids.GLOBAL_SHORTCUTS) and d["message"] == set(ids.MESSAGE_SHORTCUTS)
    assert r["event"] == d["event"] == set(ids.EVENTS)


def test_manifest_is_complete_and_within_slack_limits():
    m = MANIFEST
    di = m["display_information"]
    assert len(di["name"]) <= 35 and len(di["description"]) <= 140 and 174 <= len(di["long_description"]) <= 4000
    f = m["features"]
    assert f["app_home"]["home_tab_enabled"] and f["app_home"]["messages_tab_enabled"]
    assert not f["app_home"]["messages_tab_read_only_enabled"]
    for sc in f["shortcuts"]:
        assert len(sc["name"]) <= 24 and len(sc["description"]) <= 150 and len(sc["callback_id"]) <= 255
    for c in f["slash_commands"]:
        assert c["command"].startswith("/") and len(c["description"]) <= 2000
    urls = [c["url"] for c in f["slash_commands"]] + [m["settings"]["event_subscriptions"]["request_url"],
                                                      m["settings"]["interactivity"]["request_url"],
                                                      m["settings"]["interactivity"]["message_menu_options_url"]]
    assert all(u.startswith("https://") and u.endswith("/slack/events") for u in urls)  # one Request URL
    assert m["settings"]["interactivity"]["is_enabled"]
    # the fewest bot scopes that work, each used by the code
    assert set(m["oauth_config"]["scopes"]["bot"]) == {"commands", "chat:write", "im:write", "im:history",
                                                       "users:read", "users:read.email"}
    assert "user" not in m["oauth_config"]["scopes"]


def test_help_names_the_shortcuts_as_the_manifest_does():
    names = {s["type"]: s["name"] for s in MANIFEST["features"]["shortcuts"]}
    assert f"“{names['global']}”" in slack_app.HELP and f"“{names['message']}”" in slack_app.HELP


@pytest.fixture
def env(store):
    e = make_env(store)
    yield e
    close_env(e)


def test_everything_declared_is_handled(env):
    d = declared()
    teacher = env.user("teacher")
    for command in d["command"]:
        assert env.slack.command(teacher, command=command).status_code == 200
    for cb in d["global"]:
        assert env.slack.shortcut(teacher, cb).status_code == 200
    for cb in d["message"]:
        assert env.slack.message_action(teacher, cb, "C1", "1.000001", "text").status_code == 200
    n = len(d["command"]) + len(d["global"]) + len(d["message"])
    env.fake.wait(lambda f: len(f.of("views.open")) == n)
    for i, ev in enumerate(sorted(d["event"])):
        event = ({"type": "app_home_opened", "user": teacher, "tab": "home"} if ev == "app_home_opened" else
                 {"type": "message", "channel_type": "im", "channel": "D" + teacher, "user": teacher, "text": "help",
                  "ts": "5.5"})
        assert env.slack.post_event(event, f"EvM{i}").status_code == 200
    env.fake.wait(lambda f: f.of("views.publish") and f.of("chat.postMessage"))
    # and what is not declared is not handled: Bolt answers 404
    assert env.slack.command(teacher, command="/something-else").status_code == 404
    assert env.slack.shortcut(teacher, "not_declared").status_code == 404
    time.sleep(0.1)
