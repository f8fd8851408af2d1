"""Pupils from a CSV file as a school MIS (SIMS, Arbor, Bromcom) exports it.

Good rows are upserted by (school, MIS id) in one transaction; bad rows are skipped and
listed with their line number and reason, or, with ``strict``, nothing is imported.
Pupils no longer in the file are marked inactive ("left"), never deleted.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from sqlmodel import Session, select

from .chain import audit
from .db import Store
from .models import Child, School

# Header spellings seen in MIS exports, compared with case, spaces and punctuation removed.
# The first column found in each list wins (a UPN is preferred to an admission number).
COLUMNS: dict[str, tuple[str, ...]] = {
    "mis_id": ("upn", "uniquepupilnumber", "admissionno", "admissionnumber", "adno", "pupilid", "misid", "studentid"),
    "forename": ("legalforename", "forename", "firstname", "givenname"),
    "preferred": ("preferredforename", "preferredname", "preferredfirstname", "knownas"),
    "surname": ("legalsurname", "surname", "lastname", "familyname"),
    "dob": ("dateofbirth", "dob", "birthdate"),
    "year": ("year", "yeargroup", "ncyear", "nationalcurriculumyear", "yr"),
    "family": ("familyid", "siblinggroup", "householdid", "family", "siblingid"),
}
REQUIRED = ("mis_id", "surname")
HEADER_SEARCH_LINES = 10  # some exports put a report title above the header


class RosterError(Exception):
    """The file was refused as a whole; nothing was imported."""


@dataclass
class SkippedRow:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class RosterResult:
    school: str
    rows: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    left: int = 0
    skipped: list[SkippedRow] = field(default_factory=list)
    imported: bool = True  # False when strict mode refused the file because of bad rows

    def counts(self) -> dict[str, int]:
        return {"rows": self.rows, "added": self.added, "updated": self.updated, "unchanged": self.unchanged,
                "left": self.left, "skipped": len(self.skipped)}

    def summary(self) -> str:
        c = self.counts()
        if not self.imported:
            return f"roster {self.school}: nothing imported: {c['skipped']} of {c['rows']} rows are bad (--strict)"
        return (f"roster {self.school}: {c['rows']} rows; {c['added']} added, {c['updated']} updated, "
                f"{c['unchanged']} unchanged, {c['left']} left, {c['skipped']} skipped")


@dataclass
class _Pupil:
    line: int
    mis_id: str
    name: str
    dob: str | None
    year: str | None
    family: str | None


def _key(header: str) -> str:
    return re.sub(r"[^a-z0-9]", "", header.lower())


def _columns(header: list[str]) -> dict[str, int]:
    keys = [_key(h) for h in header]
    found = {}
    for field_name, spellings in COLUMNS.items():
        for spelling in spellings:
            if spelling in keys:
                found[field_name] = keys.index(spelling)
                break
    return found


def parse_date(text: str) -> date:
    """UK exports write DD/MM/YYYY (sometimes with a midnight time); others ISO YYYY-MM-DD."""
    text = re.sub(r"[ T]00:00(:00)?$", "", text.strip())
    for fmt in ("%d/%m/%Y", "%Y-%m-%d", "%d-%m-%Y", "%d.%m.%Y"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            pass
    raise ValueError(text)


def _year(text: str) -> str | None:
    """'Year 3', 'Y3' and '3' are the same year group; 'Reception' is 'R'."""
    text = text.strip()
    if not text:
        return None
    if m := re.fullmatch(r"(?i)(?:year|yr|y)?\s*(\d{1,2})", text):
        return str(int(m.group(1)))
    if re.fullmatch(r"(?i)r|rec|reception", text):
        return "R"
    return text


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")  # older SIMS exports are Windows-1252


def _rows(reader, path: Path):
    try:
        yield from reader
    except csv.Error as exc:  # e.g. a NUL byte from a spreadsheet saved in the wrong format
        raise RosterError(f"{path}: line {reader.line_num}: not readable as CSV ({exc})") from None


def parse_roster(path: Path, today: date | None = None) -> tuple[list[_Pupil], list[SkippedRow], set[str], int]:
    """Good pupils, skipped rows, every id seen (good or bad) and the number of data rows."""
    today = today or date.today()
    try:
        text = _read_text(Path(path))
    except OSError as exc:
        raise RosterError(f"{path}: cannot read: {exc.strerror}") from None
    reader = csv.reader(io.StringIO(text))
    rows_in = _rows(reader, path)
    cols: dict[str, int] = {}
    header: list[str] = []
    for row in rows_in:
        cols = _columns(row)
        if all(k in cols for k in REQUIRED) and ("forename" in cols or "preferred" in cols):
            header = row
            break
        if reader.line_num >= HEADER_SEARCH_LINES:
            break
    if not header:
        expected = ", ".join(f"{k}: {'/'.join(COLUMNS[k][:3])}" for k in ("mis_id", "forename", "surname"))
        raise RosterError(f"{path}: no recognisable header row in the first {HEADER_SEARCH_LINES} lines "
                          f"(need a pupil id, a forename and a surname column; e.g. {expected})")

    header_name = header[cols["mis_id"]].strip()
    pupils: list[_Pupil] = []
    skipped: list[SkippedRow] = []
    ids_seen: set[str] = set()
    rows = 0

    def cell(row: list[str], name: str) -> str:
        i = cols.get(name)
        return row[i].strip() if i is not None and i < len(row) else ""

    for row in rows_in:
        line = reader.line_num
        if not any(c.strip() for c in row):
            continue
        rows += 1
        mis_id = cell(row, "mis_id").upper()
        if mis_id:
            ids_seen.add(mis_id)
        forename = cell(row, "preferred") or cell(row, "forename")
        surname = cell(row, "surname")
        dob_text = cell(row, "dob")
        reason = None
        dob = None
        if not mis_id:
            reason = f"missing {header_name}"
        elif not forename or not surname:
            reason = f"missing name ({'forename' if not forename else 'surname'})"
        elif dob_text:
            try:
                dob = parse_date(dob_text)
            except ValueError:
                reason = f"date of birth {dob_text!r} is not a date (use DD/MM/YYYY or YYYY-MM-DD)"
            else:
                if dob > today:
                    reason = f"date of birth {dob_text!r} is in the future"
        if reason:
            skipped.append(SkippedRow(line, reason))
            continue
        pupils.append(_Pupil(line, mis_id, f"{forename} {surname}", dob.isoformat() if dob else None,
                             _year(cell(row, "year")), cell(row, "family") or None))

    # The same id twice: we cannot tell which row is right, so neither is imported.
    lines_of: dict[str, list[int]] = {}
    for p in pupils:
        lines_of.setdefault(p.mis_id, []).append(p.line)
    dupes = {k: v for k, v in lines_of.items() if len(v) > 1}
    for p in pupils:
        if p.mis_id in dupes:
            others = ", ".join(str(n) for n in dupes[p.mis_id] if n != p.line)
            skipped.append(SkippedRow(p.line, f"duplicate {header_name} {p.mis_id} (also on line {others})"))
    pupils = [p for p in pupils if p.mis_id not in dupes]
    skipped.sort(key=lambda r: r.line)
    return pupils, skipped, ids_seen, rows


def import_roster(store: Store, school_slug: str, path: Path, *, strict: bool = False,
                  today: date | None = None) -> RosterResult:
    """Import a pupil CSV for one school. Raises RosterError (nothing imported) on a refused file."""
    with store.session() as s:
        school = s.exec(select(School).where(School.slug == school_slug)).first()
        if school is None:
            known = ", ".join(s.exec(select(School.slug).order_by(School.slug))) or "none loaded"
            raise RosterError(f"unknown school {school_slug!r} (schools: {known})")
        return apply_roster(s, school, Path(path), strict=strict, today=today)


def apply_roster(s: Session, school: School, path: Path, *, strict: bool = False,
                 today: date | None = None) -> RosterResult:
    pupils, skipped, ids_seen, rows = parse_roster(path, today)
    result = RosterResult(school=school.slug, rows=rows, skipped=skipped)
    if skipped and strict:
        result.imported = False
        return result
    if not pupils:
        # Marking every pupil as left because a file was unreadable would be worse than refusing it.
        raise RosterError(f"{path}: no pupil rows could be imported" +
                          (f" ({len(skipped)} bad rows)" if skipped else ""))

    existing = {c.mis_id.upper(): c for c in s.exec(select(Child).where(Child.school_id == school.id))}
    for p in pupils:
        child = existing.get(p.mis_id)
        wanted = {"name": p.name, "date_of_birth": p.dob, "year_group": p.year, "family_group": p.family,
                  "active": True}
        if child is None:
            s.add(Child(school_id=school.id, mis_id=p.mis_id, **wanted))
            result.added += 1
            continue
        changed = False
        for k, v in wanted.items():
            if getattr(child, k) != v:  # compared decrypted; rewriting unchanged names would churn ciphertext
                setattr(child, k, v)
                changed = True
        if changed:
            result.updated += 1
        else:
            result.unchanged += 1
    # A pupil whose row was bad is still on roll: only ids absent from the file have left.
    for mis_id, child in existing.items():
        if child.active and mis_id not in ids_seen:
            child.active = False
            result.left += 1
    s.flush()
    audit(s, "roster.imported", school_id=school.id, details=result.counts())
    return result
