"""Slack transport: slack-bolt's AsyncApp served at POST /slack/events inside our one ASGI
app (its async Starlette adapter), or over Socket Mode; the outbox transport in delivery.py.

- `install_slack(settings, store, routes, startups, shutdowns, socket_mode=False)` adds the
  route (and the Socket Mode connection) and returns the AsyncApp, or None when Slack is off.
- `slack_config(settings, socket_mode)` refuses a half-configured Slack, naming what is missing.
"""

from __future__ import annotations

import logging

from bot.settings import SettingsError

log = logging.getLogger(__name__)


def slack_config(settings, *, socket_mode: bool = False) -> bool:
    """True when Slack is on. Raises SettingsError naming the missing variables."""
    have = {"SLACK_BOT_TOKEN": settings.slack_bot_token, "SLACK_SIGNING_SECRET": settings.slack_signing_secret,
            "SLACK_APP_TOKEN": settings.slack_app_token}
    if socket_mode:
        missing = [k for k in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN") if not have[k]]
        if missing:
            raise SettingsError(f"configuration error: --socket-mode needs {' and '.join(missing)} "
                                "(an app-level token xapp-… with connections:write)")
        return True
    if not have["SLACK_BOT_TOKEN"] and not have["SLACK_SIGNING_SECRET"]:
        return False
    missing = [k for k in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET") if not have[k]]
    if missing:
        raise SettingsError(f"configuration error: Slack is half configured: set {' and '.join(missing)} "
                            "(or neither, to run without Slack)")
    return True


def install_slack(settings, store, routes: list, startups: list, shutdowns: list, *, socket_mode: bool = False):
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    if not slack_config(settings, socket_mode=socket_mode):
        log.info("Slack is off: SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET are not set (POST /slack/events answers 401)")

        async def off(request: Request) -> JSONResponse:
            return JSONResponse({"error": "slack is not configured"}, status_code=401)

        routes.append(Route("/slack/events", off, methods=["POST"]))
        return None

    from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler

    from .app import build_app

    app = build_app(settings, store)
    handler = AsyncSlackRequestHandler(app)

    async def open_session():
        # One keep-alive HTTP session for every Web API call (slack_sdk otherwise opens a new
        # aiohttp session, and connection, per call).
        import aiohttp

        app.client.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30),
                                                   trust_env=True)  # HTTPS_PROXY / NO_PROXY, as school networks need

    async def close_session():
        if app.client.session is not None:
            await app.client.session.close()

    startups.append(open_session)
    shutdowns.append(close_session)

    async def events(request: Request):
        return await handler.handle(request)

    if settings.slack_signing_secret:
        routes.append(Route("/slack/events", events, methods=["POST"]))
    else:  # Socket Mode without a signing secret: nothing is accepted over HTTP
        async def refuse(request: Request) -> JSONResponse:
            return JSONResponse({"error": "this server takes Slack over Socket Mode"}, status_code=401)

        routes.append(Route("/slack/events", refuse, methods=["POST"]))

    if socket_mode:
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        holder: dict = {}

        async def connect():  # made inside the running loop (its aiohttp session needs one)
            sm = holder["sm"] = AsyncSocketModeHandler(app, settings.slack_app_token.get_secret_value())
            await sm.connect_async()
            log.info("Slack: connected over Socket Mode")

        async def disconnect():
            if "sm" in holder:
                await holder["sm"].close_async()

        startups.append(connect)
        shutdowns.append(disconnect)
    log.info("Slack is on: POST /slack/events%s", " and Socket Mode" if socket_mode else "")
    return app
