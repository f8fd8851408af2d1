"""The Teams app manifest validates against Microsoft's own JSON schema (npm @microsoft/app-manifest,
offline), the icons are what Teams requires, and `safeguarding-bot teams package` writes the zip."""

from __future__ import annotations

import json
import subprocess
import zipfile

import pytest
from jsonschema import Draft4Validator
from PIL import Image

from bot.teams.package import MANIFEST_DIR, PLACEHOLDER, filled_manifest
from tests.teams_support import APP_ID, NODE_DIR, ensure_node_tools

SCHEMAS = NODE_DIR / "node_modules" / "@microsoft" / "app-manifest" / "build" / "json-schemas" / "teams"


def schema_for(manifest: dict) -> dict:
    ensure_node_tools()
    version = manifest["manifestVersion"]
    assert manifest["$schema"] == f"https://developer.microsoft.com/json-schemas/teams/v{version}/MicrosoftTeams.schema.json"
    return json.loads((SCHEMAS / f"v{version}" / "MicrosoftTeams.schema.json").read_text(encoding="utf-8"))


def errors(manifest: dict) -> list[str]:
    validator = Draft4Validator(schema_for(manifest), format_checker=Draft4Validator.FORMAT_CHECKER)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(manifest)]


def test_manifest_validates_against_microsofts_schema():
    manifest = filled_manifest(APP_ID)
    assert float(manifest["manifestVersion"]) >= 1.19
    assert errors(manifest) == []
    bot = manifest["bots"][0]
    assert manifest["id"] == bot["botId"] == APP_ID
    assert bot["scopes"] == ["personal"]
    assert [c["title"] for c in bot["commandLists"][0]["commands"]] == ["report a concern", "my reports", "help"]
    assert manifest["validDomains"]


def test_the_schema_check_is_not_vacuous():
    raw = json.loads((MANIFEST_DIR / "manifest.json").read_text(encoding="utf-8"))
    assert raw["id"] == PLACEHOLDER and any("id" in e for e in errors(raw))  # placeholder is not a GUID
    broken = filled_manifest(APP_ID)
    broken["accentColor"] = "blue"
    broken["bots"][0]["scopes"] = ["everywhere"]
    del broken["developer"]
    found = "\n".join(errors(broken))
    assert "accentColor" in found and "scopes" in found and "developer" in found


def test_icons():
    color = Image.open(MANIFEST_DIR / "color.png")
    outline = Image.open(MANIFEST_DIR / "outline.png").convert("RGBA")
    assert color.size == (192, 192)
    assert outline.size == (32, 32)
    pixels = list(outline.getdata())
    transparent = [p for p in pixels if p[3] == 0]
    white = [p for p in pixels if p[3] > 0]
    assert transparent and white
    assert all(p[:3] == (255, 255, 255) for p in white), "outline.png must be white on transparent only"


def test_teams_package_command(cli_env, tmp_path):
    out = tmp_path / "pkg" / "teams.zip"
    r = subprocess.run(["safeguarding-bot", "teams", "package", "--app-id", APP_ID.upper(), "--out", str(out)],
                       env=cli_env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    with zipfile.ZipFile(out) as z:
        assert sorted(z.namelist()) == ["color.png", "manifest.json", "outline.png"]
        manifest = json.loads(z.read("manifest.json"))
        assert z.read("color.png") == (MANIFEST_DIR / "color.png").read_bytes()
    assert manifest["id"] == manifest["bots"][0]["botId"] == APP_ID
    assert PLACEHOLDER not in json.dumps(manifest)
    assert errors(manifest) == []

    # from TEAMS_APP_ID when no --app-id
    r = subprocess.run(["safeguarding-bot", "teams", "package", "--out", str(tmp_path / "env.zip")],
                       env={**cli_env, "TEAMS_APP_ID": APP_ID}, cwd=tmp_path, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    with zipfile.ZipFile(tmp_path / "env.zip") as z:
        assert json.loads(z.read("manifest.json"))["id"] == APP_ID


@pytest.mark.parametrize("args,expect", [([], "TEAMS_APP_ID"), (["--app-id", "not-a-guid"], "GUID")])
def test_teams_package_refusals(cli_env, tmp_path, args, expect):
    r = subprocess.run(["safeguarding-bot", "teams", "package", *args, "--out", str(tmp_path / "x.zip")],
                       env=cli_env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert expect in r.stderr
    assert not (tmp_path / "x.zip").exists()
