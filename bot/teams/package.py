"""`safeguarding-bot teams package`: the Teams app package (zip) an admin uploads."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import typer

MANIFEST_DIR = Path(__file__).resolve().parents[2] / "manifests" / "teams"
PLACEHOLDER = "{{TEAMS_APP_ID}}"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class PackageError(Exception):
    pass


def filled_manifest(app_id: str, manifest_dir: Path = MANIFEST_DIR) -> dict:
    """manifest.json with the app id filled in (the Teams app id and the bot id are the same)."""
    if not _GUID.match(app_id or ""):
        raise PackageError(f"the app id must be the bot's Microsoft App ID, a GUID; got {app_id!r}")
    text = (manifest_dir / "manifest.json").read_text(encoding="utf-8")
    return json.loads(text.replace(PLACEHOLDER, app_id.lower()))


def write_package(app_id: str, out: Path, manifest_dir: Path = MANIFEST_DIR) -> Path:
    manifest = filled_manifest(app_id, manifest_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False))
        for icon in ("color.png", "outline.png"):
            z.write(manifest_dir / icon, icon)  # at the root of the zip, as Teams requires
    return out


teams_app = typer.Typer(help="Microsoft Teams: the app package.", no_args_is_help=True)


@teams_app.command("package")
def package(app_id: str = typer.Option(None, "--app-id", help="The bot's Microsoft App ID (default: TEAMS_APP_ID)."),
            out: Path = typer.Option(Path("safeguarding-teams-app.zip"), "--out", help="Zip file to write.")) -> None:
    """Fill the app id into manifests/teams/manifest.json and write the zip an admin uploads."""
    if not app_id:
        from bot.settings import load_settings

        app_id = load_settings().teams_app_id
    if not app_id:
        typer.echo("no app id: pass --app-id or set TEAMS_APP_ID", err=True)
        raise typer.Exit(2)
    try:
        path = write_package(app_id.strip(), out)
    except PackageError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2)
    typer.echo(f"wrote {path} (upload it in Teams admin center > Teams apps > Manage apps)")
