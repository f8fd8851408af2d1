"""Which Teams mode the server runs in, decided once at start-up from the settings.

- all of TEAMS_APP_ID, TEAMS_APP_PASSWORD, TEAMS_TENANT_ID set: Teams on (single-tenant bot);
- none set: Teams off, POST /api/messages answers 401;
- some set: refuse to start, naming what is missing;
- `--teams-playground`: the local trial with Microsoft 365 Agents Playground, which sends no
  token. Only then are unauthenticated requests accepted, only on a loopback address, and
  never while any Teams credential is configured.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import Literal

from bot.settings import Settings, SettingsError

Mode = Literal["on", "off", "playground"]

_OURS = (("TEAMS_APP_ID", "teams_app_id"), ("TEAMS_APP_PASSWORD", "teams_app_password"),
         ("TEAMS_TENANT_ID", "teams_tenant_id"))
# Variables the Teams SDK itself reads (from the environment, or from a `.env` it loads at import)
# and would turn into outbound credentials. In playground mode they must be absent, or the SDK
# would fetch a real token and hand it to whatever serviceUrl a local request names.
SDK_CREDENTIAL_VARS = ("CLIENT_ID", "CLIENT_SECRET", "TENANT_ID", "MANAGED_IDENTITY_CLIENT_ID")


@dataclass(frozen=True)
class TeamsConfig:
    mode: Mode
    app_id: str | None = None
    app_password: str | None = None
    tenant_id: str | None = None

    @property
    def on(self) -> bool:
        return self.mode == "on"


def _value(settings: Settings, field: str) -> str | None:
    v = getattr(settings, field)
    if v is not None and hasattr(v, "get_secret_value"):
        v = v.get_secret_value()
    v = (v or "").strip()
    return v or None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def teams_config(settings: Settings, *, playground: bool = False, host: str | None = None) -> TeamsConfig:
    """Decide the mode; raise SettingsError (one line) when the combination is unsafe or incomplete."""
    values = {env: _value(settings, field) for env, field in _OURS}
    present = [env for env, v in values.items() if v]
    missing = [env for env, v in values.items() if not v]

    if playground:
        if present:
            raise SettingsError(
                f"configuration error: --teams-playground accepts unauthenticated requests, so it refuses to "
                f"start while Teams credentials are set ({', '.join(present)}); unset them for the local trial")
        sdk_vars = [name for name in SDK_CREDENTIAL_VARS if os.environ.get(name)]
        if sdk_vars:
            raise SettingsError(
                f"configuration error: --teams-playground refuses to start while {', '.join(sdk_vars)} "
                f"is set (the Teams SDK would use it as a credential); unset it for the local trial")
        if host is not None and not is_loopback(host):
            raise SettingsError(
                f"configuration error: --teams-playground only listens on a loopback address "
                f"(127.0.0.1 or ::1), not {host}")
        return TeamsConfig(mode="playground")

    if not present:
        return TeamsConfig(mode="off")
    if missing:
        raise SettingsError(
            f"configuration error: Teams is half configured: {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing (set all of TEAMS_APP_ID, TEAMS_APP_PASSWORD "
            f"and TEAMS_TENANT_ID, or none)")
    return TeamsConfig(mode="on", app_id=values["TEAMS_APP_ID"], app_password=values["TEAMS_APP_PASSWORD"],
                       tenant_id=values["TEAMS_TENANT_ID"])
