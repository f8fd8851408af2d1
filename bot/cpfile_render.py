"""Rendering the child protection file: printable HTML, and PDF made from that HTML with
fpdf2 (pure Python; the font is the DejaVu Sans that ships inside matplotlib, so any text a
record holds prints, with no download)."""

from __future__ import annotations

from datetime import date, datetime
from html import escape
from pathlib import Path

from flows.chronology import ALLEGATIONS_NOTE, ChildFile, FileEntry, decision_label, summarise

DETAIL_LABELS = (
    ("occurred_at", "When it happened"), ("location", "Where"), ("account", "What happened"),
    ("child_words", "The child's own words"), ("child_views", "The child's views and wishes"),
    ("worry_history", "How long the worry, and why"), ("others_involved", "Others involved, siblings"),
    ("action_taken", "Action already taken"), ("subject_role", "About an adult"), ("review_date", "Review date"),
)

PRINT_CSS = """
body { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 11pt; color: #111; margin: 2em; }
h1 { font-size: 18pt; margin-bottom: 0.2em; } h2 { font-size: 14pt; border-bottom: 1px solid #999; margin-top: 1.5em; }
table { border-collapse: collapse; width: 100%; } th, td { border: 1px solid #bbb; padding: 4px 6px; vertical-align: top; text-align: left; }
th { background: #eee; } .meta { color: #444; } .restricted { font-weight: bold; color: #8a0000; }
.redacted { color: #777; font-style: italic; } dl { margin: 0.5em 0; } dt { font-weight: bold; margin-top: 0.4em; } dd { margin-left: 1em; white-space: pre-wrap; }
@page { size: A4; margin: 15mm; }
@media print {
  body { margin: 0; font-size: 10pt; } h2 { page-break-after: avoid; } tr, dl { page-break-inside: avoid; }
  thead { display: table-header-group; } a { color: inherit; text-decoration: none; } .noprint { display: none; }
}
"""


def _t(v, tz=None) -> str:
    if v is None or v == "":
        return "—"
    if isinstance(v, datetime):
        if tz is not None and v.tzinfo is not None:
            v = v.astimezone(tz)
        return v.strftime("%d/%m/%Y %H:%M")
    if isinstance(v, date):
        return v.strftime("%d/%m/%Y")
    return str(v)


def _e(v, tz=None) -> str:
    return escape(_t(v, tz))


def _entry_text(e: FileEntry) -> str:
    return summarise(e)


def _body(f: ChildFile, *, for_pdf: bool = False) -> list[str]:
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(f.timezone)  # times in the school's own time (BST/GMT)

    def _e(v) -> str:
        return escape(_t(v, tz))

    def _tl(v) -> str:
        return _t(v, tz)
    out = [f"<h1>Child protection file: {_e(f.name)}</h1>",
           f"<p class=\"restricted\">RESTRICTED: child protection record. Keep separately from the main pupil file. "
           f"Share only with those who need it to safeguard the child.</p>",
           f"<p class=\"meta\">Pupil id {_e(f.mis_id)} · date of birth {_e(f.date_of_birth)} · year {_e(f.year_group)} · "
           f"{_e(f.school)}</p>"]
    out.append(f"<p class=\"meta\">{escape(ALLEGATIONS_NOTE)}</p>")
    out.append("<h2>Concerns</h2>")
    if not f.concerns:
        out.append("<p>No concerns on file.</p>")
    else:
        out.append("<table><thead><tr><th>Reference</th><th>Raised</th><th>Categories</th><th>Status</th>"
                   "<th>Decision</th></tr></thead><tbody>")
        for c in f.concerns:
            ref = c.reference if for_pdf else f'<a href="#c{c.concern_id}">{escape(c.reference)}</a>'
            out.append(f"<tr><td>{ref if not for_pdf else escape(ref)}</td><td>{_e(c.created_at)}</td>"
                       f"<td>{escape(', '.join(c.categories))}</td><td>{_e(c.status)}</td><td>{_e(decision_label(c.decision) or None)}</td></tr>")
        out.append("</tbody></table>")
    if f.siblings:
        out.append("<h2>Siblings</h2><table><thead><tr><th>Name</th><th>Year</th><th>Their concerns</th></tr></thead><tbody>")
        for s in f.siblings:
            refs = ", ".join(r for _, r, _, _ in s.concerns) or "none"
            out.append(f"<tr><td>{_e(s.name)} (child id {s.child_id})</td><td>{_e(s.year_group)}</td><td>{escape(refs)}</td></tr>")
        out.append("</tbody></table>")
    if f.transfers:
        out.append("<h2>Transfers</h2><table><thead><tr><th>#</th><th>To</th><th>Sent</th><th>By</th>"
                   "<th>Confirmed</th></tr></thead><tbody>")
        for t in f.transfers:
            conf = f"{_tl(t['confirmed_at'])} by {t['confirmed_by']}" if t["confirmed_at"] else "not yet"
            out.append(f"<tr><td>{t['id']}</td><td>{_e(t['to_school'])}</td><td>{_e(t['sent_at'])}</td>"
                       f"<td>{_e(t['exported_by'])}</td><td>{escape(conf)}</td></tr>")
        out.append("</tbody></table>")
    out.append("<h2>Chronology</h2>")
    widths = ('width="13%"', 'width="14%"', 'width="15%"', 'width="12%"', 'width="46%"') if for_pdf else ("",) * 5
    heads = ("When", "Concern", "Entry", "By", "What")
    out.append("<table><thead><tr>" + "".join(f"<th {w}>{h}</th>" for w, h in zip(widths, heads))
               + "</tr></thead><tbody>")
    for e in f.entries:
        what = _entry_text(e)
        cls = ' class="redacted"' if e.redacted else ""
        out.append(f"<tr><td>{_e(e.at)}</td><td>{_e(e.reference)}</td><td>{escape(e.label)}</td>"
                   f"<td>{_e(e.actor)}</td><td{cls}>{escape(what) or '&nbsp;'}</td></tr>")
    out.append("</tbody></table>")
    out.append("<h2>Concern details</h2>")
    for c in f.concerns:
        anchor = "" if for_pdf else f' id="c{c.concern_id}"'
        out.append(f"<h3{anchor}>{escape(c.reference)} — raised {_e(c.created_at)}</h3><dl>")
        for key, label in DETAIL_LABELS:
            v = c.details.get(key)
            if v not in (None, ""):
                out.append(f"<dt>{escape(label)}</dt><dd>{_e(v)}</dd>")
        out.append("</dl>")
    return out


def child_file_html(f: ChildFile, *, generated: datetime | None = None) -> str:
    when = _t(generated or datetime.now())
    return ("<!doctype html>\n<html lang=\"en-GB\"><head><meta charset=\"utf-8\">"
            f"<title>Child protection file — {escape(f.mis_id)}</title><style>{PRINT_CSS}</style></head><body>"
            + "\n".join(_body(f)) + f"<p class=\"meta\">Printed {escape(when)}.</p></body></html>\n")


def _font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def child_file_pdf(f: ChildFile) -> bytes:
    """A PDF of the same content as the HTML (fpdf2's HTML renderer; text stays extractable)."""
    from fpdf import FPDF

    pdf = FPDF(orientation="P", unit="mm", format="A4")
    fonts = _font_dir()
    pdf.add_font("DejaVu", "", str(fonts / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(fonts / "DejaVuSans-Bold.ttf"))
    pdf.add_font("DejaVu", "I", str(fonts / "DejaVuSans-Oblique.ttf"))
    pdf.add_font("DejaVu", "BI", str(fonts / "DejaVuSans-BoldOblique.ttf"))
    pdf.set_title(f"Child protection file {f.mis_id}")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.set_margins(12, 12, 12)
    pdf.add_page()
    pdf.set_font("DejaVu", size=9)
    html = "\n".join(_body(f, for_pdf=True))
    html = html.replace('<p class="restricted">', "<p><b>").replace("file. Share only with those who need it to "
                                                                    "safeguard the child.</p>",
                                                                    "file. Share only with those who need it to "
                                                                    "safeguard the child.</b></p>")
    pdf.write_html(html, font_family="DejaVu", table_line_separators=True)
    return bytes(pdf.output())
