"""The Teams platform layer over real HTTP on loopback: hosting, inbound token checks, outbound
client (retries, blocked bot, token endpoint), references, modes. See tests/teams_support.py."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import threading
import time

import httpx
import pytest
from sqlmodel import select

from bot.settings import SettingsError, load_settings
from storage.models import AuditEvent, ConversationRef, Person, Trust
from tests.teams_support import (APP_ID, APP_PASSWORD, OTHER_TENANT_ID, TENANT_ID, FakeConnector, MicrosoftFake,
                                 ServeProcess, ServerThread, free_port, message_activity, wait_for)

TEAMS_ENV = ("TEAMS_APP_ID", "TEAMS_APP_PASSWORD", "TEAMS_TENANT_ID", "CLIENT_ID", "CLIENT_SECRET", "TENANT_ID",
             "MANAGED_IDENTITY_CLIENT_ID", "DANGEROUSLY_ALLOW_UNAUTHENTICATED_REQUESTS", "SERVICE_URL", "CLOUD")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in TEAMS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def teams_settings(store, **kw):
    values = dict(teams_app_id=APP_ID, teams_app_password=APP_PASSWORD, teams_tenant_id=TENANT_ID,
                  database_url=store.url)
    values.update(kw)
    return load_settings(**values)


@pytest.fixture
def ms(tmp_path, monkeypatch):
    with MicrosoftFake(tmp_path) as fake:
        fake.use_env(monkeypatch)
        fake.kid = fake.keys.add()
        yield fake


@pytest.fixture
def connector():
    with FakeConnector() as c:
        yield c


@pytest.fixture
def bare_handlers(monkeypatch):
    """These tests check the platform layer under a bare SDK handler: leave the conversation out."""
    monkeypatch.setattr("bot.teams.handlers.register_handlers", lambda app, settings, store: None)


@pytest.fixture
def bot(ms, store, bare_handlers):
    """Our server with Teams on, and an SDK message handler that answers "ok"."""
    from bot.server import create_app

    app = create_app(teams_settings(store), store)
    teams = app.state.teams
    received: list[str] = []

    @teams.on_message
    async def on_message(ctx):
        received.append(ctx.activity.id)
        await ctx.send("ok")

    with ServerThread(app) as srv:
        srv.teams = teams
        srv.received = received
        yield srv


def post(srv, body, token: str | None = None, raw: bytes | None = None, **headers) -> httpx.Response:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    with httpx.Client(trust_env=False, timeout=30) as c:
        if raw is not None:
            return c.post(srv.url + "/api/messages", content=raw, headers={"Content-Type": "application/json", **headers})
        return c.post(srv.url + "/api/messages", json=body, headers=headers)


# --- the whole inbound path --------------------------------------------------------------------

def test_valid_message_reaches_the_sdk_handler_and_the_reply_goes_out(bot, ms, connector):
    activity = message_activity(connector.service_url, "report a concern")
    r = post(bot, activity, ms.keys.mint(ms.kid, service_url=connector.service_url))
    assert r.status_code == 200, r.text
    assert bot.received == [activity["id"]]
    assert wait_for(lambda: connector.sends())
    reply = connector.sends()[0]
    assert reply["path"] == "/emea/v3/conversations/a:1personal-conversation-id/activities"  # prefix kept
    assert reply["body"]["text"] == "ok"
    assert reply["authorization"] == f"Bearer {ms.tokens_issued[0]}"  # msal through the proxy, test CA trusted
    assert ms.count("login.botframework.com", "/v1/.well-known/keys") == 1
    # the SDK's own validator now reads our verified cache, never the network on the event loop
    from bot.teams.auth import CachedJwks

    assert isinstance(bot.teams.server._token_validator._service_validator._jwks_client, CachedJwks)


def _fault_cases():
    """(name, builder(ms, connector, attacker) -> (activity, headers))"""

    def ok(ms, conn, **kw):
        return message_activity(conn.service_url, **kw)

    def tok(ms, conn, **kw):
        return ms.keys.mint(ms.kid, service_url=conn.service_url, **kw)

    cases = {
        "no authorization header": lambda ms, c, a: (ok(ms, c), {}),
        "not bearer": lambda ms, c, a: (ok(ms, c), {"Authorization": "Basic dXNlcjpwYXNz"}),
        "malformed token": lambda ms, c, a: (ok(ms, c), {"Authorization": "Bearer not.a.jwt"}),
        "garbage token": lambda ms, c, a: (ok(ms, c), {"Authorization": "Bearer %%%"}),
        "HS256 token": lambda ms, c, a: (ok(ms, c), {"Authorization": "Bearer " + tok(ms, c, alg="HS256")}),
        "alg none": lambda ms, c, a: (ok(ms, c), {"Authorization": "Bearer " + tok(ms, c, alg="none")}),
        "no kid": lambda ms, c, a: (ok(ms, c), {"Authorization": "Bearer " + tok(ms, c, omit_kid=True)}),
        "unknown kid": lambda ms, c, a: (ok(ms, c), {"Authorization": "Bearer " + ms.keys.mint(
            ms.keys.add(publish=False), service_url=c.service_url)}),
        "forged (published kid, other key)": lambda ms, c, a: (ok(ms, c), {"Authorization": "Bearer " + ms.keys.mint(
            ms.keys.add(publish=False), service_url=c.service_url, headers={"kid": ms.kid})}),
        "expired": lambda ms, c, a: (ok(ms, c), {"Authorization": "Bearer " + tok(
            ms, c, issued=time.time() - 7200, lifetime=600)}),
        "wrong audience": lambda ms, c, a: (ok(ms, c), {"Authorization": "Bearer " + tok(
            ms, c, aud="00000000-0000-4000-8000-000000000bad")}),
        "wrong issuer": lambda ms, c, a: (ok(ms, c), {"Authorization": "Bearer " + tok(
            ms, c, iss="https://api.botframework.example")}),
        "no serviceurl claim": lambda ms, c, a: (ok(ms, c), {"Authorization": "Bearer " + ms.keys.mint(
            ms.kid, service_url=None)}),
        "serviceUrl differs from the claim": lambda ms, c, a: (
            message_activity(a.service_url), {"Authorization": "Bearer " + tok(ms, c)}),
        "key not endorsed for msteams": lambda ms, c, a: (ok(ms, c), {"Authorization": "Bearer " + ms.keys.mint(
            ms.keys.add(endorsements=["skype", "webchat"]), service_url=c.service_url)}),
        "key without endorsements": lambda ms, c, a: (ok(ms, c), {"Authorization": "Bearer " + ms.keys.mint(
            ms.keys.add(endorsements=None), service_url=c.service_url)}),
        "channelId not msteams": lambda ms, c, a: (ok(ms, c, channel_id="webchat"), {
            "Authorization": "Bearer " + ms.keys.mint(ms.keys.add(endorsements=["msteams", "webchat"]),
                                                      service_url=c.service_url)}),
        "tenant not ours": lambda ms, c, a: (ok(ms, c, tenant_id=OTHER_TENANT_ID), {
            "Authorization": "Bearer " + tok(ms, c)}),
        "conversation tenant not ours": lambda ms, c, a: (dict(ok(ms, c), conversation={
            "conversationType": "personal", "tenantId": OTHER_TENANT_ID, "id": "a:1x"}), {
            "Authorization": "Bearer " + tok(ms, c)}),
        "Entra token of another tenant": lambda ms, c, a: (ok(ms, c), {"Authorization": "Bearer " + ms.entra_keys.mint(
            ms.entra_kid, service_url=c.service_url, iss=f"https://login.microsoftonline.com/{OTHER_TENANT_ID}/v2.0",
            tid=OTHER_TENANT_ID, azp="5a807f24-c9de-44ee-a3a7-329e88a00ffc")}),
        "Entra v1 token of another tenant": lambda ms, c, a: (ok(ms, c), {"Authorization": "Bearer " + ms.entra_keys.mint(
            ms.entra_kid, service_url=c.service_url, iss=f"https://sts.windows.net/{OTHER_TENANT_ID}/",
            tid=OTHER_TENANT_ID, appid="5a807f24-c9de-44ee-a3a7-329e88a00ffc")}),
        "Entra token of our tenant without serviceurl": lambda ms, c, a: (ok(ms, c), {
            "Authorization": "Bearer " + ms.entra_keys.mint(
                ms.entra_kid, service_url=None, iss=f"https://login.microsoftonline.com/{TENANT_ID}/v2.0",
                tid=TENANT_ID, azp="5a807f24-c9de-44ee-a3a7-329e88a00ffc")}),
        "Entra token of our tenant, serviceurl of another": lambda ms, c, a: (message_activity(a.service_url), {
            "Authorization": "Bearer " + ms.entra_keys.mint(
                ms.entra_kid, service_url=c.service_url, iss=f"https://sts.windows.net/{TENANT_ID}/",
                tid=TENANT_ID, appid="5a807f24-c9de-44ee-a3a7-329e88a00ffc")}),
    }
    return cases


FAULTS = _fault_cases()


REASONS = {  # the check that must catch each fault (our log line; no content in it)
    "no authorization header": "missing bearer token", "not bearer": "missing bearer token",
    "malformed token": "malformed token", "garbage token": "malformed token", "HS256 token": "not RS256",
    "alg none": "not RS256", "no kid": "without kid", "unknown kid": "unknown signing key",
    "forged (published kid, other key)": "InvalidSignatureError", "expired": "ExpiredSignatureError",
    "wrong audience": "InvalidAudienceError", "wrong issuer": "unknown issuer",
    "no serviceurl claim": "serviceurl claim", "serviceUrl differs from the claim": "serviceurl claim",
    "key not endorsed for msteams": "not endorsed", "key without endorsements": "not endorsed",
    "channelId not msteams": "channelId is not msteams", "tenant not ours": "tenant is not ours",
    "conversation tenant not ours": "tenant is not ours",
    "Entra token of another tenant": "Entra token for another tenant",
    "Entra v1 token of another tenant": "Entra token for another tenant",
    "Entra token of our tenant without serviceurl": "serviceurl claim",
    "Entra token of our tenant, serviceurl of another": "serviceurl claim",
}


def test_every_token_fault_is_refused_with_401_and_nothing_processed(bot, ms, connector, caplog):
    ms.entra_kid = ms.entra_keys.add(endorsements=None)
    caplog.set_level(logging.WARNING, logger="bot.teams.adapter")
    with FakeConnector(prefix="/attacker/") as attacker:
        prepared = [(name, *build(ms, connector, attacker)) for name, build in FAULTS.items()]  # keys published first
        assert set(REASONS) == {name for name, *_ in prepared}
        for name, activity, headers in prepared:
            caplog.clear()
            with httpx.Client(trust_env=False, timeout=30) as c:
                r = c.post(bot.url + "/api/messages", json=activity, headers=headers)
            assert r.status_code == 401, f"{name}: {r.status_code} {r.text}"
            assert r.json() == {"error": "Unauthorized"}, name
            refusals = [rec.getMessage() for rec in caplog.records if "refused" in rec.getMessage()]
            assert len(refusals) == 1 and REASONS[name] in refusals[0], f"{name}: {refusals}"
        # a good one still works afterwards, so the refusals were not an outage
        good = message_activity(connector.service_url)
        assert post(bot, good, ms.keys.mint(ms.kid, service_url=connector.service_url)).status_code == 200
        assert wait_for(lambda: len(connector.sends()) == 1)
        assert bot.received == [good["id"]]
        time.sleep(0.2)
        assert attacker.calls == [], "the bot's token must never go to a serviceUrl the token did not name"
        assert len(connector.calls) == 1


def test_unknown_kid_refreshes_the_key_set(bot, ms, connector, monkeypatch):
    from bot.teams import auth

    assert post(bot, message_activity(connector.service_url),
                ms.keys.mint(ms.kid, service_url=connector.service_url)).status_code == 200
    assert ms.count("login.botframework.com", "keys") == 1
    monkeypatch.setattr(auth, "UNKNOWN_KID_REFRESH_SECONDS", 0.0)
    rotated = ms.keys.add()  # Microsoft publishes a new key
    assert post(bot, message_activity(connector.service_url),
                ms.keys.mint(rotated, service_url=connector.service_url)).status_code == 200
    assert ms.count("login.botframework.com", "keys") == 2
    # known kids are served from the cache
    assert post(bot, message_activity(connector.service_url),
                ms.keys.mint(ms.kid, service_url=connector.service_url)).status_code == 200
    assert ms.count("login.botframework.com", "keys") == 2


def test_unknown_kid_refetch_is_rate_limited(bot, ms, connector):
    assert post(bot, message_activity(connector.service_url),
                ms.keys.mint(ms.kid, service_url=connector.service_url)).status_code == 200
    for _ in range(5):
        stray = ms.keys.mint(ms.keys.add(publish=False), service_url=connector.service_url)
        assert post(bot, message_activity(connector.service_url), stray).status_code == 401
    assert ms.count("login.botframework.com", "keys") == 1


def test_a_slow_key_endpoint_does_not_stall_other_requests(bot, ms, connector):
    ms.jwks_delay = 3.0
    result = {}

    def slow():
        result["r"] = post(bot, message_activity(connector.service_url),
                           ms.keys.mint(ms.kid, service_url=connector.service_url))

    t = threading.Thread(target=slow)
    t.start()
    assert wait_for(lambda: ms.count("login.botframework.com", "keys") == 1, timeout=5)
    with httpx.Client(trust_env=False) as c:
        started = time.monotonic()
        r = c.get(bot.url + "/healthz")
        elapsed = time.monotonic() - started
    assert r.status_code == 200
    assert elapsed < 1.0, f"/healthz took {elapsed:.2f}s while the key endpoint was slow"
    t.join(15)
    assert result["r"].status_code == 200


def test_non_json_bodies_get_400_before_anything_else(bot, ms):
    for raw in (b"not json", b"[1, 2]", b'"a string"', b"", b"\xff\xfe", b"null", b"{"):
        r = post(bot, None, raw=raw)
        assert r.status_code == 400, raw
    assert post(bot, None, raw=b'{"x": "' + b"a" * (2 * 1024 * 1024) + b'"}').status_code == 413
    assert ms.count("login.botframework.com") == 0


# --- modes ---------------------------------------------------------------------------------------

def test_teams_off_answers_401_and_says_so_once(store, caplog):
    from bot.server import create_app

    caplog.set_level(logging.INFO, logger="bot.teams")
    app = create_app(load_settings(database_url=store.url), store)
    assert app.state.teams is None
    lines = [r.getMessage() for r in caplog.records if r.name == "bot.teams"]
    assert len(lines) == 1 and "Teams is off" in lines[0]
    with ServerThread(app) as srv:
        assert post(srv, message_activity("https://smba.trafficmanager.net/emea/")).status_code == 401
        assert post(srv, None, raw=b"nope").status_code == 400
        with httpx.Client(trust_env=False) as c:
            assert c.get(srv.url + "/healthz").status_code == 200


@pytest.mark.parametrize("missing", [["TEAMS_APP_PASSWORD"], ["TEAMS_TENANT_ID"], ["TEAMS_APP_ID", "TEAMS_TENANT_ID"]])
def test_half_configured_teams_refuses_to_start_naming_what_is_missing(store, missing):
    from bot.server import create_app

    kw = {f"{n.lower()}": None for n in missing}
    with pytest.raises(SettingsError) as err:
        create_app(teams_settings(store, **kw), store)
    msg = str(err.value)
    assert "\n" not in msg
    for name in missing:
        assert name in msg


def test_serve_refuses_half_configured_teams(cli_env, tmp_path):
    env = {**cli_env, "TEAMS_APP_ID": APP_ID}
    r = subprocess.run(["safeguarding-bot", "serve", "--port", str(free_port())], env=env, cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "TEAMS_APP_PASSWORD" in r.stderr and "TEAMS_TENANT_ID" in r.stderr


@pytest.mark.parametrize("extra,args,expect", [
    ({"TEAMS_APP_ID": APP_ID, "TEAMS_APP_PASSWORD": "x", "TEAMS_TENANT_ID": TENANT_ID}, [], "credentials are set"),
    ({"TEAMS_APP_PASSWORD": "x"}, [], "TEAMS_APP_PASSWORD"),
    ({}, ["--host", "0.0.0.0"], "loopback"),
    ({"CLIENT_ID": APP_ID}, [], "CLIENT_ID"),
])
def test_playground_refusals(cli_env, tmp_path, extra, args, expect):
    env = {**cli_env, **extra}
    r = subprocess.run(["safeguarding-bot", "serve", "--teams-playground", "--port", str(free_port()), *args],
                       env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert expect in r.stderr


def test_playground_refuses_sdk_credentials_from_a_dotenv(store, tmp_path, monkeypatch):
    """The SDK loads a .env at import; CLIENT_ID/CLIENT_SECRET there would become credentials."""
    from bot.teams.app import build_teams_app

    monkeypatch.setenv("CLIENT_ID", APP_ID)  # what load_dotenv would have put into the environment
    monkeypatch.setenv("CLIENT_SECRET", "s")
    with pytest.raises(SettingsError, match="CLIENT_ID"):
        build_teams_app(load_settings(database_url=store.url), store, playground=True)


def test_playground_accepts_unauthenticated_and_talks_only_to_loopback(store, connector, caplog, bare_handlers):
    from bot.server import create_app
    from bot.teams.client import OutboundRefused, send_to_person

    caplog.set_level(logging.INFO, logger="bot.teams")
    app = create_app(load_settings(database_url=store.url), store, teams_playground=True)
    assert any("UNAUTHENTICATED" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    teams = app.state.teams

    @teams.on_message
    async def on_message(ctx):
        await ctx.send("ok")

    with ServerThread(app) as srv:
        r = post(srv, message_activity(connector.service_url))
        assert r.status_code == 200
        assert wait_for(lambda: connector.sends())
        assert connector.sends()[0]["authorization"] is None  # no credentials, no token anywhere
        assert connector.sends()[0]["body"]["text"] == "ok"

    class Ref:
        conversation_id, service_url, stale = "a:1", "https://smba.trafficmanager.net/emea/", False

    async def scenario():
        from bot.teams.app import start_teams_app, stop_teams_app

        from bot.teams.app import build_teams_app
        t = build_teams_app(load_settings(database_url=store.url), store, playground=True)
        await start_teams_app(t)
        try:
            with pytest.raises(OutboundRefused):
                await send_to_person(t, Ref(), "hello")
        finally:
            await stop_teams_app(t)

    asyncio.run(scenario())


@pytest.mark.parametrize("teams_on", [True, False])
def test_neither_env_var_nor_dotenv_can_switch_authentication_off(store, cli_env, tmp_path, teams_on):
    # (`store` migrates the test database the subprocess opens)
    (tmp_path / ".env").write_text("DANGEROUSLY_ALLOW_UNAUTHENTICATED_REQUESTS=true\nSKIP_AUTH=true\n")
    env = {**cli_env, "DANGEROUSLY_ALLOW_UNAUTHENTICATED_REQUESTS": "true"}
    if teams_on:
        env.update(TEAMS_APP_ID=APP_ID, TEAMS_APP_PASSWORD=APP_PASSWORD, TEAMS_TENANT_ID=TENANT_ID)
    with ServeProcess(env, tmp_path) as srv, httpx.Client(trust_env=False) as c:
        activity = message_activity("https://smba.trafficmanager.net/emea/")
        r = c.post(srv.url + "/api/messages", json=activity)
        assert r.status_code == 401
        r = c.post(srv.url + "/api/messages", json=activity, headers={"Authorization": "Bearer x.y.z"})
        assert r.status_code == 401


# --- outbound: proactive sends, retries, blocked bot, token endpoint ------------------------------

def _person(store) -> int:
    with store.session() as s:
        trust = Trust(slug="t-" + os.urandom(3).hex(), name="Test Trust")
        s.add(trust)
        s.flush()
        p = Person(trust_id=trust.id, email=f"teacher-{os.urandom(3).hex()}@school.test")
        s.add(p)
        s.flush()
        return p.id


def run_with_app(store, scenario, settings=None):
    """Build the Teams app (Teams on) and run `scenario(app)` on a fresh event loop."""
    from bot.teams.app import build_teams_app, start_teams_app, stop_teams_app

    async def main():
        app = build_teams_app(settings or teams_settings(store), store)
        await start_teams_app(app)
        try:
            return await scenario(app)
        finally:
            await stop_teams_app(app)

    return asyncio.run(main())


def test_proactive_send_update_and_create_conversation(store, ms, connector):
    from bot.teams import create_personal_conversation, get_ref, save_ref, send_to_person, update_activity

    person = _person(store)
    ref = save_ref(store, person, message_activity(connector.service_url))
    assert get_ref(store, person) == ref and not ref.stale

    async def scenario(app):
        conv = await create_personal_conversation(app, service_url=connector.service_url, tenant_id=TENANT_ID,
                                                  user_id="29:1other-user")
        first = await send_to_person(app, ref, "You have a new alert", store=store)
        again = await update_activity(app, ref, first, "Acknowledged by the DSL", store=store)
        card = AdaptiveCard(version="1.5", body=[TextBlock(text="A new concern", wrap=True)],
                            actions=[ExecuteAction(title="Acknowledge", verb="acknowledge",
                                                   data={"action": "acknowledge"})])
        await send_to_person(app, ref, card, store=store)
        return conv, first, again

    from microsoft_teams.cards import AdaptiveCard, ExecuteAction, TextBlock

    conv, first, again = run_with_app(store, scenario)
    assert conv.startswith("a:conv-")
    create, send, put, card_send = connector.calls
    attachment = card_send["body"]["attachments"][0]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["content"]["actions"][0]["verb"] == "acknowledge"
    assert create["method"] == "POST" and create["path"] == "/emea/v3/conversations"
    assert create["body"]["members"] == [{"id": "29:1other-user"}]
    assert create["body"]["tenantId"] == TENANT_ID and create["body"]["channelData"] == {"tenant": {"id": TENANT_ID}}
    assert send["path"] == "/emea/v3/conversations/a:1personal-conversation-id/activities"
    assert send["body"]["text"] == "You have a new alert"
    assert put["method"] == "PUT" and put["path"].endswith(f"/activities/{first}") and again == first
    assert put["body"]["text"] == "Acknowledged by the DSL"
    # one token for all three calls: msal caches it until expiry
    assert {c["authorization"] for c in connector.calls} == {f"Bearer {ms.tokens_issued[0]}"}
    assert len(ms.tokens_issued) == 1


def test_429_then_success_honours_retry_after(store, ms, connector):
    from bot.teams import save_ref, send_to_person

    ref = save_ref(store, _person(store), message_activity(connector.service_url))
    connector.script(429, retry_after="1")
    activity_id = run_with_app(store, lambda app: send_to_person(app, ref, "hello", store=store))
    assert activity_id.startswith("activity-")
    first, second = connector.sends()
    assert second["at"] - first["at"] >= 0.9


def test_503_retries_are_bounded(store, ms, connector):
    from bot.teams import TeamsSendError, save_ref, send_to_person
    from bot.teams.client import ATTEMPTS

    ref = save_ref(store, _person(store), message_activity(connector.service_url))
    connector.script(503, retry_after="0", times=10)
    with pytest.raises(TeamsSendError, match="503"):
        run_with_app(store, lambda app: send_to_person(app, ref, "hello", store=store))
    assert len(connector.sends()) == ATTEMPTS


@pytest.mark.parametrize("status", [403, 404])
def test_blocked_bot_raises_recipient_unreachable_and_marks_the_ref_stale(store, ms, connector, status):
    from bot.teams import RecipientUnreachable, StaleReference, get_ref, save_ref, send_to_person

    person = _person(store)
    ref = save_ref(store, person, message_activity(connector.service_url, "private words"))
    connector.script(status)
    with pytest.raises(RecipientUnreachable):
        run_with_app(store, lambda app: send_to_person(app, ref, "hello", store=store))
    assert get_ref(store, person).stale
    with store.session() as s:
        events = s.exec(select(AuditEvent).where(AuditEvent.action == "teams.ref_stale")).all()
        assert len(events) == 1
        assert events[0].actor_id is None and events[0].details["person_id"] == person
        assert "private words" not in str(events[0].details)
    # a stale reference is not used again until the person writes to the bot
    with pytest.raises(StaleReference):
        run_with_app(store, lambda app: send_to_person(app, get_ref(store, person), "hello"))
    assert len(connector.calls) == 1
    save_ref(store, person, message_activity(connector.service_url))
    assert not get_ref(store, person).stale


def test_token_endpoint_down_then_up(store, ms, connector):
    from bot.teams import TokenUnavailable, save_ref, send_to_person

    ref = save_ref(store, _person(store), message_activity(connector.service_url))

    async def scenario(app):
        ms.token_down = True
        with pytest.raises(TokenUnavailable):
            await send_to_person(app, ref, "hello")
        assert connector.calls == []  # nothing went out without a token
        ms.token_down = False
        return await send_to_person(app, ref, "hello")

    assert run_with_app(store, scenario).startswith("activity-")
    assert connector.sends()[0]["authorization"] == f"Bearer {ms.tokens_issued[0]}"


def test_sdk_loggers_stay_at_warning(store, ms, connector):
    from bot.context import configure_logging
    from bot.teams import save_ref, send_to_person

    configure_logging("DEBUG")
    try:
        ref = save_ref(store, _person(store), message_activity(connector.service_url))
        run_with_app(store, lambda app: send_to_person(app, ref, "hello"))
        for name in ("microsoft_teams", "microsoft_teams.apps", "microsoft_teams.common.http.client", "httpx", "msal"):
            assert logging.getLogger(name).getEffectiveLevel() >= logging.WARNING, name
    finally:
        logging.getLogger().setLevel(logging.WARNING)


def test_save_ref_updates_in_place(store):
    from bot.teams import save_ref

    person = _person(store)
    save_ref(store, person, message_activity("https://smba.trafficmanager.net/emea/"))
    save_ref(store, person, message_activity("https://smba.trafficmanager.net/uk/", conversation_id="a:2"))
    with store.session() as s:
        rows = s.exec(select(ConversationRef).where(ConversationRef.person_id == person)).all()
    assert len(rows) == 1
    assert rows[0].service_url == "https://smba.trafficmanager.net/uk/" and rows[0].conversation_id == "a:2"
    assert rows[0].tenant_id == TENANT_ID and rows[0].aad_object_id


def test_retry_after_parsing():
    from bot.teams.client import MAX_WAIT_SECONDS, retry_after_seconds

    def resp(value):
        return httpx.Response(429, headers={"Retry-After": value} if value is not None else {})

    assert retry_after_seconds(resp("2"), 1) == 2
    assert retry_after_seconds(resp("100000"), 1) == MAX_WAIT_SECONDS
    assert 0 <= retry_after_seconds(resp("Wed, 21 Oct 2015 07:28:00 GMT"), 1) <= 0.01
    assert 1 <= retry_after_seconds(resp(None), 1) < 1.5
    assert retry_after_seconds(resp(None), 10) <= MAX_WAIT_SECONDS


def test_sdk_client_secret_from_the_environment_cannot_replace_ours(store, monkeypatch):
    from bot.teams.app import build_teams_app

    monkeypatch.setenv("CLIENT_SECRET", "from-a-stray-dotenv")
    with pytest.raises(SettingsError, match="CLIENT_SECRET"):
        build_teams_app(teams_settings(store), store)


def test_key_endpoint_down_answers_503_and_processes_nothing(bot, ms, connector):
    ms.jwks_status = 500
    r = post(bot, message_activity(connector.service_url), ms.keys.mint(ms.kid, service_url=connector.service_url))
    assert r.status_code == 503
    assert bot.received == [] and connector.calls == []
    ms.jwks_status = 200  # back up: the next request fetches again
    r = post(bot, message_activity(connector.service_url), ms.keys.mint(ms.kid, service_url=connector.service_url))
    assert r.status_code == 200


def test_an_invoke_gets_the_handlers_typed_response_as_the_http_body(bot, ms, connector):
    from microsoft_teams.api import AdaptiveCardActionMessageResponse

    @bot.teams.on_card_action_execute("acknowledge")
    async def on_ack(ctx):
        return AdaptiveCardActionMessageResponse(value="Acknowledged")

    invoke = message_activity(connector.service_url, type="invoke", name="adaptiveCard/action",
                              value={"action": {"type": "Action.Execute", "verb": "acknowledge",
                                                "data": {"action": "acknowledge"}}, "trigger": "manual"})
    invoke.pop("text")
    r = post(bot, invoke, ms.keys.mint(ms.kid, service_url=connector.service_url))
    assert r.status_code == 200
    assert r.json() == {"statusCode": 200, "type": "application/vnd.microsoft.activity.message",
                        "value": "Acknowledged"}


def test_an_entra_token_of_our_tenant_bound_to_the_service_url_passes_our_checks_and_the_sdks(bot, ms, connector):
    """Agent 365 style: issuer login.microsoftonline.com/<our tenant>, serviceurl claim, and the SDK's
    own caller check (azp = the Agent 365 platform) all satisfied -> processed."""
    kid = ms.entra_keys.add(endorsements=None)
    token = ms.entra_keys.mint(kid, service_url=connector.service_url,
                               iss=f"https://login.microsoftonline.com/{TENANT_ID}/v2.0", tid=TENANT_ID,
                               azp="5a807f24-c9de-44ee-a3a7-329e88a00ffc")
    activity = message_activity(connector.service_url)
    assert post(bot, activity, token).status_code == 200
    assert bot.received == [activity["id"]]
    assert ms.count("login.microsoftonline.com", f"/{TENANT_ID}/discovery/v2.0/keys") == 1


def test_synchronous_outbound_for_the_worker(store, ms, connector):
    from bot.delivery import RecipientUnreachable as Unreachable
    from bot.delivery import TransientDeliveryError
    from bot.teams import get_ref, save_ref
    from bot.teams.client import RecipientUnreachable, TokenUnavailable
    from bot.teams.outbound import TeamsOutbound, delivery_error

    person = _person(store)
    ref = save_ref(store, person, message_activity(connector.service_url))
    with TeamsOutbound(teams_settings(store), store) as out:
        ms.token_down = True
        with pytest.raises(TokenUnavailable) as down:
            out.send(ref, "A concern needs your attention")
        assert isinstance(delivery_error(down.value), TransientDeliveryError)
        ms.token_down = False
        first = out.send(ref, "A concern needs your attention")
        assert out.update(ref, first, "Acknowledged") == first
        connector.script(403)
        with pytest.raises(RecipientUnreachable) as blocked:
            out.send(ref, "again")
        assert isinstance(delivery_error(blocked.value), Unreachable)
    assert get_ref(store, person).stale
    assert [c["method"] for c in connector.calls] == ["POST", "PUT", "POST"]
    with pytest.raises(ValueError):
        TeamsOutbound(load_settings(database_url=store.url), store)  # Teams off
