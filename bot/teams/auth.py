"""Inbound token checks for POST /api/messages, on top of the Teams SDK's own.

The SDK (2.1.1) checks the signature, issuer, audience, expiry and the `serviceurl` claim, but
it does not check a signing key's `endorsements`, does not bind Entra ID tokens to our tenant
(nor to the serviceUrl), and fetches keys synchronously on the event loop. `TokenGuard.check`
runs before the SDK sees a request and refuses (401, nothing processed) when:

- the Authorization header is missing, the token is malformed, not RS256, or has no `kid`;
- the signature, issuer, audience, expiry or `serviceurl` claim is wrong;
- a Bot Framework key's `endorsements` do not include the activity's `channelId`;
- `channelId` is not `msteams`; `channelData.tenant.id` is not our tenant;
- an Entra ID token (issuer login.microsoftonline.com or sts.windows.net) is for another tenant.

Keys are fetched with httpx's async client (honouring HTTPS_PROXY / NO_PROXY / SSL_CERT_FILE),
cached, and refreshed when a token names an unknown key id. The key URLs are Microsoft's and no
setting redirects them: tests intercept them with a test proxy and a test CA instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Mapping

import httpx
import jwt

log = logging.getLogger(__name__)

BOT_FRAMEWORK_ISSUER = "https://api.botframework.com"
BOT_FRAMEWORK_KEYS_URL = "https://login.botframework.com/v1/.well-known/keys"
ENTRA_KEYS_URL = "https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys"
ENTRA_ISSUERS = ("https://login.microsoftonline.com/{tenant}/v2.0", "https://sts.windows.net/{tenant}/")
ENTRA_ISSUER_PREFIXES = ("https://login.microsoftonline.com/", "https://sts.windows.net/")
TEAMS_CHANNEL = "msteams"
CLOCK_SKEW_SECONDS = 300
KEY_CACHE_SECONDS = 24 * 3600
# A token naming an unknown key id triggers a refetch, at most this often per key set.
UNKNOWN_KID_REFRESH_SECONDS = 10.0
FETCH_TIMEOUT_SECONDS = 10.0


class Unauthorized(Exception):
    """The request is refused with 401. The message is for our log, never the caller."""


class KeysUnavailable(Exception):
    """The key set could not be fetched (the request is refused with 503)."""


class KeySet:
    """One JWKS URL: fetched off the event loop, cached, refreshed on an unknown `kid`."""

    def __init__(self, url: str, client: httpx.AsyncClient):
        self.url = url
        self._client = client
        self._keys: dict[str, dict] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    def cached(self, kid: str) -> dict | None:
        """The cached JWK for `kid`, without any network access."""
        return self._keys.get(kid)

    async def get(self, kid: str) -> dict | None:
        now = time.monotonic()
        stale = self._fetched_at is None or now - self._fetched_at > KEY_CACHE_SECONDS
        if not stale and kid in self._keys:
            return self._keys[kid]
        async with self._lock:  # one fetch at a time; waiters reuse its result
            now = time.monotonic()
            stale = self._fetched_at is None or now - self._fetched_at > KEY_CACHE_SECONDS
            if kid in self._keys and not stale:
                return self._keys[kid]
            may_refresh = self._fetched_at is None or stale or now - self._fetched_at >= UNKNOWN_KID_REFRESH_SECONDS
            if may_refresh:
                await self._fetch()
        return self._keys.get(kid)

    async def _fetch(self) -> None:
        self.fetches += 1
        try:
            resp = await self._client.get(self.url, timeout=FETCH_TIMEOUT_SECONDS)
            resp.raise_for_status()
            keys = resp.json().get("keys")
            if not isinstance(keys, list):
                raise ValueError("no 'keys' list")
        except Exception as exc:
            if self._keys:  # keep serving the last good set
                log.warning("Teams key set refresh failed (%s); keeping the cached keys", type(exc).__name__)
                self._fetched_at = time.monotonic()
                return
            raise KeysUnavailable(f"cannot fetch the Teams signing keys: {type(exc).__name__}") from None
        self._keys = {k["kid"]: k for k in keys if isinstance(k, dict) and isinstance(k.get("kid"), str)}
        self._fetched_at = time.monotonic()


@dataclass(frozen=True)
class Verified:
    kind: str  # "botframework" | "entra"
    claims: dict


def _channel_data_tenant(body: Mapping[str, Any]) -> str | None:
    cd = body.get("channelData")
    if not isinstance(cd, dict):
        return None
    tenant = cd.get("tenant")
    if not isinstance(tenant, dict):
        return None
    tid = tenant.get("id")
    return tid if isinstance(tid, str) else None


class TokenGuard:
    """Our checks for one single-tenant bot (app id + tenant id)."""

    def __init__(self, app_id: str, tenant_id: str, client: httpx.AsyncClient):
        self.app_id = app_id
        self.tenant_id = tenant_id
        self.bot_framework_keys = KeySet(BOT_FRAMEWORK_KEYS_URL, client)
        self.entra_keys = KeySet(ENTRA_KEYS_URL.format(tenant=tenant_id), client)

    async def check(self, headers: Mapping[str, str], body: Mapping[str, Any]) -> Verified:
        auth = headers.get("authorization") or ""
        if not auth.startswith("Bearer "):
            raise Unauthorized("missing bearer token")
        token = auth.removeprefix("Bearer ").strip()
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except (jwt.InvalidTokenError, ValueError, TypeError, json.JSONDecodeError):
            raise Unauthorized("malformed token") from None
        if header.get("alg") != "RS256":
            raise Unauthorized("token not RS256")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("token without kid")

        # The activity itself: only Teams, only our tenant.
        if body.get("channelId") != TEAMS_CHANNEL:
            raise Unauthorized("channelId is not msteams")
        if _channel_data_tenant(body) != self.tenant_id:
            raise Unauthorized("activity tenant is not ours")
        conversation = body.get("conversation")
        if isinstance(conversation, dict) and conversation.get("tenantId") not in (None, self.tenant_id):
            raise Unauthorized("activity tenant is not ours")
        service_url = body.get("serviceUrl")
        if not isinstance(service_url, str) or not service_url:
            raise Unauthorized("activity without serviceUrl")

        issuer = unverified.get("iss")
        if issuer == BOT_FRAMEWORK_ISSUER:
            kind, keyset = "botframework", self.bot_framework_keys
            issuers = [BOT_FRAMEWORK_ISSUER]
            audiences = [self.app_id]
        elif isinstance(issuer, str) and issuer.startswith(ENTRA_ISSUER_PREFIXES):
            if unverified.get("tid") != self.tenant_id:
                raise Unauthorized("Entra token for another tenant")
            kind, keyset = "entra", self.entra_keys
            issuers = [i.format(tenant=self.tenant_id) for i in ENTRA_ISSUERS]
            audiences = [self.app_id, f"api://{self.app_id}", f"api://botid-{self.app_id}"]
        else:
            raise Unauthorized("unknown issuer")

        jwk = await keyset.get(kid)
        if jwk is None:
            raise Unauthorized("unknown signing key")
        try:
            key = jwt.PyJWK(jwk, algorithm="RS256").key
            claims = jwt.decode(token, key, algorithms=["RS256"], audience=audiences, issuer=issuers,
                                leeway=CLOCK_SKEW_SECONDS, options={"require": ["exp", "iss", "aud"]})
        except (jwt.InvalidTokenError, jwt.PyJWKError, ValueError, TypeError) as exc:
            raise Unauthorized(f"token rejected: {type(exc).__name__}") from None

        claimed = claims.get("serviceurl")
        if not isinstance(claimed, str) or claimed.rstrip("/") != service_url.rstrip("/"):
            raise Unauthorized("serviceurl claim does not match the activity")
        if kind == "entra" and claims.get("tid") != self.tenant_id:
            raise Unauthorized("Entra token for another tenant")
        if kind == "botframework":
            endorsements = jwk.get("endorsements")
            if not isinstance(endorsements, list) or body.get("channelId") not in endorsements:
                raise Unauthorized("signing key not endorsed for this channel")
        return Verified(kind=kind, claims=claims)


class CachedJwks:
    """Stands in for the SDK's `PyJWKClient`: serves keys our guard already fetched, never the
    network, so the SDK's own (synchronous) validation cannot block the event loop."""

    def __init__(self, keyset: KeySet):
        self.keyset = keyset

    def get_signing_key_from_jwt(self, token: str) -> jwt.PyJWK:
        kid = jwt.get_unverified_header(token).get("kid")
        jwk = self.keyset.cached(kid) if isinstance(kid, str) else None
        if jwk is None:
            raise jwt.PyJWKClientError("signing key not in the verified cache")
        return jwt.PyJWK(jwk, algorithm="RS256")


def attach_to_sdk(sdk_app, guard: TokenGuard) -> None:
    """After `await app.initialize()`: point the SDK's validators at our key cache.

    Relies on microsoft-teams-apps 2.1.1 internals (pinned); fails loudly if they move, rather
    than silently letting the SDK fetch keys on the event loop.
    """
    from microsoft_teams.apps.auth.token_validator import TokenValidator

    validator = getattr(sdk_app.server, "_token_validator", None)
    service = getattr(validator, "_service_validator", None)
    entra = getattr(validator, "_entra_validators_by_tenant", None)
    if service is None or not hasattr(service, "_jwks_client") or not isinstance(entra, dict):
        raise RuntimeError("the Teams SDK's token validator is not where microsoft-teams-apps 2.1.1 keeps it")
    service._jwks_client = CachedJwks(guard.bot_framework_keys)
    ours = TokenValidator.for_entra(guard.app_id, guard.tenant_id)
    ours._jwks_client = CachedJwks(guard.entra_keys)
    entra.clear()
    entra[guard.tenant_id] = ours
