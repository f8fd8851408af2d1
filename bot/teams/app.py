"""Building the Teams SDK `App` and hosting it inside our Starlette app.

Every option that the SDK would otherwise take from the environment (or from the `.env` it loads
at import) is passed explicitly: authentication, credentials, cloud, service URL, OAuth URL.
"""

from __future__ import annotations

import logging
import sys
from types import SimpleNamespace

import httpx
import microsoft_teams.apps  # noqa: F401  (loads the SDK, and its .env side effect, before we check the environment)
from starlette.routing import Route

from bot.settings import Settings, SettingsError
from bot.teams.adapter import MESSAGING_PATH, StarletteAdapter
from bot.teams.auth import TokenGuard, attach_to_sdk
from bot.teams.client import MsalTokenSource, make_client
from bot.teams.config import TeamsConfig, teams_config

log = logging.getLogger("bot.teams")

DEFAULT_SERVICE_URL = "https://smba.trafficmanager.net/teams"
_QUIET = ("microsoft_teams", "microsoft_teams.common.http.client", "httpx", "httpcore", "msal")


def cap_sdk_loggers() -> None:
    """At DEBUG the SDK logs whole activities (concern text). The SDK's HTTP client also copies the
    level of its own logger onto "httpx" each time one is built, so pin that logger too."""
    for name in _QUIET:
        lg = logging.getLogger(name)
        if lg.level < logging.WARNING:  # NOTSET counts: it would inherit our (lower) root level
            lg.setLevel(logging.WARNING)


def build_teams_app(settings: Settings, store, *, playground: bool = False, host: str | None = None):
    """The Teams SDK app for these settings, or None when Teams is off.

    Raises `SettingsError` (one line) when Teams is half configured or the playground is unsafe.

    The app's HTTP route is served by `bot.server.create_app` (POST /api/messages) through our
    `StarletteAdapter`; `await app.initialize()` runs in the server's lifespan (never `app.start()`).

    Where handlers go: `bot.teams.handlers.register_handlers(app, settings, store)` is called here,
    before the server starts; register message / invoke / install handlers there with the SDK's
    decorators (`@app.on_message`, `@app.on_card_action_execute("action")`,
    `@app.on_conversation_update`, `@app.on_install_add`, `@app.on_dialog_open`, ...). A running
    server's app is `starlette_app.state.teams`. Proactive sends: `bot.teams.client.send_to_person`
    and `update_activity` with a reference from `bot.teams.refs`.
    """
    cfg = teams_config(settings, playground=playground, host=host)
    if cfg.mode == "off":
        return None
    app = _build(cfg)
    from bot.teams.handlers import register_handlers

    register_handlers(app, settings, store)
    return app


def _build(cfg: TeamsConfig):
    from microsoft_teams.api import ApiClientSettings
    from microsoft_teams.api.auth.cloud_environment import PUBLIC
    from microsoft_teams.apps import App

    playground = cfg.mode == "playground"
    keys_http = httpx.AsyncClient()  # default trust_env: HTTPS_PROXY / NO_PROXY / SSL_CERT_FILE
    guard = None if playground else TokenGuard(cfg.app_id, cfg.tenant_id, keys_http)
    adapter = StarletteAdapter(guard, unauthenticated=playground)
    common = dict(
        http_server_adapter=adapter,
        client=make_client(loopback_only=playground),
        dangerously_allow_unauthenticated_requests=playground,  # always explicit: never from env/.env
        cloud=PUBLIC,
        service_url=DEFAULT_SERVICE_URL,
        api_client_settings=ApiClientSettings(oauth_url=PUBLIC.token_service_url),
        fetch_user_token=False,
        state=False,
    )
    if playground:
        app = App(**common)
        if app.credentials is not None:  # CLIENT_ID & co. from the environment or a .env file
            raise SettingsError("configuration error: --teams-playground refuses to start: the Teams SDK found "
                                "credentials in CLIENT_ID / CLIENT_SECRET / TENANT_ID (environment or .env)")
    else:
        source = MsalTokenSource(cfg.app_id, cfg.app_password, cfg.tenant_id)
        app = App(client_id=cfg.app_id, tenant_id=cfg.tenant_id, token=source, **common)
        # The SDK prefers CLIENT_SECRET (environment or .env) over our token source: refuse that.
        if getattr(app.credentials, "token", None) is not source:
            raise SettingsError("configuration error: CLIENT_SECRET is set in the environment or a .env file and "
                                "would replace TEAMS_APP_PASSWORD in the Teams SDK; unset it")
    app.safeguarding = SimpleNamespace(config=cfg, guard=guard, adapter=adapter, keys_http=keys_http)
    cap_sdk_loggers()
    return app


async def start_teams_app(app) -> None:
    await app.initialize()
    if app.safeguarding.guard is not None:
        attach_to_sdk(app, app.safeguarding.guard)
    cap_sdk_loggers()


async def stop_teams_app(app) -> None:
    await app.safeguarding.keys_http.aclose()
    await app.http_client.http.aclose()


def install_teams(settings: Settings, store, routes: list, startups: list, shutdowns: list, *,
                  playground: bool = False):
    """Add POST /api/messages to the server (small hook for bot/server.py). Returns the SDK app or None."""
    app = build_teams_app(settings, store, playground=playground)
    if app is None:
        log.info("Teams is off (TEAMS_APP_ID, TEAMS_APP_PASSWORD, TEAMS_TENANT_ID not set): "
                 "POST /api/messages answers 401")
        routes.append(Route(MESSAGING_PATH, StarletteAdapter().endpoint, methods=["POST"]))
        return None
    if playground:
        if not log.isEnabledFor(logging.WARNING):  # loud whatever the log level
            print("TEAMS PLAYGROUND MODE: POST /api/messages accepts UNAUTHENTICATED requests (loopback only)",
                  file=sys.stderr)
        for line in ("!" * 78,
                     "!! TEAMS PLAYGROUND MODE: POST /api/messages accepts UNAUTHENTICATED requests.",
                     "!! For a local trial with Microsoft 365 Agents Playground only; loopback only,",
                     "!! no Teams credentials, outbound only to loopback. Never run this for real.",
                     "!" * 78):
            log.warning(line)
    else:
        log.info("Teams is on for app %s in tenant %s", app.id, app.safeguarding.config.tenant_id)
    routes.append(Route(MESSAGING_PATH, app.server.adapter.endpoint, methods=["POST"]))

    async def _start():
        await start_teams_app(app)
        if playground:  # the worker delivers through this app (bot.teams.delivery.ServerAppTransport)
            import asyncio

            from bot.teams.delivery import attach_server_app

            attach_server_app(app, asyncio.get_running_loop())

    async def _stop():
        if playground:
            from bot.teams.delivery import detach_server_app

            detach_server_app(app)
        await stop_teams_app(app)

    startups.append(_start)
    shutdowns.append(_stop)
    return app
