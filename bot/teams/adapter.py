"""Our `HttpServerAdapter` for the Teams SDK: the SDK registers its messaging route here during
`await app.initialize()`, and our Starlette app (bot/server.py) serves it. The SDK never runs a
server of its own (`app.start()` is refused).

Every request to POST /api/messages goes: body must be a JSON object (else 400) -> Teams off?
(401) -> our token checks (bot/teams/auth.py; 401 with nothing processed) -> the SDK's handler
(its own checks, then the registered activity handlers).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.teams.auth import KeysUnavailable, TokenGuard, Unauthorized

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
MESSAGING_PATH = "/api/messages"


def _json_default(o: Any) -> Any:
    if hasattr(o, "model_dump"):
        return o.model_dump(by_alias=True, exclude_none=True, mode="json")
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


class StarletteAdapter:
    """Implements the SDK's `HttpServerAdapter` protocol (microsoft_teams.apps.http.adapter)."""

    def __init__(self, guard: TokenGuard | None = None, *, unauthenticated: bool = False):
        self.guard = guard
        self.unauthenticated = unauthenticated
        self._handlers: dict[str, Any] = {}

    # --- the SDK's HttpServerAdapter protocol ---
    def register_route(self, method: str, path: str, handler) -> None:
        if method != "POST":
            raise ValueError(f"unsupported method {method}")
        if path != MESSAGING_PATH:
            raise ValueError(f"only {MESSAGING_PATH} is served, not {path}")
        self._handlers[path] = handler

    def serve_static(self, path: str, directory: str) -> None:
        raise NotImplementedError("safeguarding-bot serves no static Teams pages")

    async def start(self, port: int) -> None:
        raise RuntimeError("never call app.start(): `safeguarding-bot serve` hosts the Teams route")

    async def stop(self) -> None:
        return None

    # --- the Starlette endpoint ---
    async def endpoint(self, request: Request) -> Response:
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            return JSONResponse({"error": "body too large"}, status_code=413)
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            return JSONResponse({"error": "body must be a JSON object"}, status_code=400)

        handler = self._handlers.get(request.url.path)
        if handler is None:
            return JSONResponse({"error": "Teams is not configured"}, status_code=401)

        headers = {k.lower(): v for k, v in request.headers.items()}
        if not self.unauthenticated:
            if self.guard is None:
                return JSONResponse({"error": "Unauthorized"}, status_code=401)
            try:
                await self.guard.check(headers, body)
            except Unauthorized as exc:
                log.warning("Teams request refused (401): %s", exc)
                return JSONResponse({"error": "Unauthorized"}, status_code=401)
            except KeysUnavailable as exc:
                log.warning("Teams request refused (503): %s", exc)
                return JSONResponse({"error": "signing keys unavailable"}, status_code=503)

        result = await handler({"body": body, "headers": headers})
        status = int(result.get("status") or 200)
        out = result.get("body")
        if out is None:
            return Response(status_code=status)
        return Response(json.dumps(out, default=_json_default), status_code=status, media_type="application/json")
