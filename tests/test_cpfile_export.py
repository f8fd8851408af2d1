"""Export of a child's file as printable HTML and as a PDF whose text shows the chronology."""

import io
import json

import pytest
from pypdf import PdfReader
from sqlmodel import select

from bot import cpfile_render
from flows.chronology import child_file
from storage.models import AuditEvent

from .conftest import run_cli
from .cpfile_support import build_world, full_history


@pytest.fixture
def world(store):
    w = build_world(store)
    full_history(store, w)
    return w


def _pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


def test_html_is_printable_and_shows_the_whole_file(store, world):
    f = child_file(store, world.dsl, world.child)
    html = cpfile_render.child_file_html(f)
    assert "@media print" in html and "@page" in html and "RESTRICTED" in html
    assert html.index("SG-2026-0001") < html.index("SG-2026-0002")
    for text in ("Amira Zed", "Zak Zed", "Northshire MASH", "threshold for a referral", "Dad grabbed me because I spilt the milk",
                 "Record opened", "check-in: worse"):
        assert text in html, text
    # text is escaped, never markup
    f.entries[0].body["account"] = "<script>alert(1)</script>"
    assert "<script>alert" not in cpfile_render.child_file_html(f)


def test_pdf_opens_and_shows_the_chronology(store, world):
    f = child_file(store, world.dsl, world.child)
    data = cpfile_render.child_file_pdf(f)
    assert data.startswith(b"%PDF")
    text = " ".join(_pdf_text(data).split())
    for expected in ("Child protection file: Amira Zed", "Chronology", "SG-2026-0001", "SG-2026-0002",
                     "Concern raised", "Decision", "Referral", "Northshire MASH", "Closed", "Zak Zed",
                     "Dana Shah", "Dev Patel", "check-in: worse"):
        assert expected in text, expected
    # time order survives into the PDF
    assert text.index("Concern raised") < text.index("Acknowledged") < text.index("Closed")


def test_export_commands_write_each_format_and_are_audited(store, world, cli_env, tmp_path):
    for fmt in ("html", "pdf", "json"):
        out = tmp_path / f"file.{fmt}"
        r = run_cli(["export", "child", "A100", "--as", "dsl@s.test", "--format", fmt, "--out", str(out)],
                    cli_env, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert oct(out.stat().st_mode)[-3:] == "600"
    assert "Dad grabbed me" in (tmp_path / "file.html").read_text()
    assert "Northshire MASH" in " ".join(_pdf_text((tmp_path / "file.pdf").read_bytes()).split())
    pack = json.loads((tmp_path / "file.json").read_text())
    assert pack["child"]["mis_id"] == "A100"
    with store.session() as s:
        evs = s.exec(select(AuditEvent).where(AuditEvent.action == "child.exported").order_by(AuditEvent.seq)).all()
        assert [e.details["format"] for e in evs] == ["html", "pdf", "json"]
        opened = s.exec(select(AuditEvent).where(AuditEvent.action == "chronology.opened")).all()
        assert [e.details["via"] for e in opened] == ["export-html", "export-pdf"]
    r = run_cli(["export", "child", "A100", "--as", "ta@s.test", "--format", "pdf", "--out", str(tmp_path / "x.pdf")],
                cli_env, cwd=tmp_path)
    assert r.returncode == 2 and not (tmp_path / "x.pdf").exists()
