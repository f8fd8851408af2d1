"""Pupil CSV import: header spellings, dates, siblings, skipped rows, strict mode, leavers."""

from datetime import date
from pathlib import Path

import pytest
from sqlmodel import select

from storage.directory import load_directory
from storage.models import AuditEvent, Child
from storage.roster import RosterError, import_roster

from .conftest import raw_dump, run_cli

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "roster.csv"
TODAY = date(2026, 11, 25)

DIRECTORY = {"trust": {"slug": "oak", "name": "Oak Trust"},
             "schools": [{"slug": "riverside", "name": "Riverside Primary"}, {"slug": "hill", "name": "Hill"}]}

SIMS = """UPN,Legal Surname,Legal Forename,Preferred Forename,Date of Birth,Year,Reg Group,Family ID
A100000000001,Quill,Josephine,Josie,03/09/2016,Year 6,6B,F1
A100000000002,Quill,Benedict,,12/01/2019,Year 3,3A,F1
A100000000003,Quill,Maud,,27/05/2020,Year 2,2A,F1
A100000000004,Tarrant,Wilf,,08/11/2017,Year 5,5B,F2
A100000000005,Tarrant,Edie,,2021-02-14,Year 1,1A,F2
A100000000006,Loxley,Pip,,31/12/2018,Y3,3A,
"""


@pytest.fixture
def school(store):
    load_directory(store, DIRECTORY)
    return "riverside"


def _csv(tmp_path, text: str, name="roster.csv", encoding="utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def _pupils(store, school_slug="riverside"):
    from storage.models import School
    with store.session() as s:
        sid = s.exec(select(School.id).where(School.slug == school_slug)).one()
        return {c.mis_id: c for c in s.exec(select(Child).where(Child.school_id == sid))}


def test_sims_export_imports_with_preferred_names_uk_dates_and_siblings(store, school, tmp_path):
    result = import_roster(store, school, _csv(tmp_path, SIMS), today=TODAY)
    assert (result.rows, result.added, result.skipped) == (6, 6, [])
    kids = _pupils(store)
    josie = kids["A100000000001"]
    assert josie.name == "Josie Quill" and josie.date_of_birth == "2016-09-03" and josie.year_group == "6"
    assert kids["A100000000005"].date_of_birth == "2021-02-14"  # ISO accepted too
    assert kids["A100000000006"].year_group == "3"
    families = {}
    for c in kids.values():
        families.setdefault(c.family_group, set()).add(c.mis_id)
    assert families["F1"] == {"A100000000001", "A100000000002", "A100000000003"}
    assert families["F2"] == {"A100000000004", "A100000000005"}
    assert kids["A100000000006"].family_group is None


def test_other_header_spellings_and_bom(store, school, tmp_path):
    text = ("\ufeffAdmission No,First Name,Last Name,DOB,NC Year,Form,Household ID\n"
            "001234,Ada,Crane,05/06/2017,5,5C,H9\n"
            "001235,Ben,Crane,1/2/2019,3,3C,H9\n"
            "001236,Cal,Reed,01/10/2021 00:00:00,Reception,RA,\n")
    result = import_roster(store, school, _csv(tmp_path, text), today=TODAY)
    assert result.added == 3 and not result.skipped, result.skipped
    assert (_pupils(store)["001236"].year_group, _pupils(store)["001236"].date_of_birth) == ("R", "2021-10-01")
    kids = _pupils(store)
    assert kids["001234"].name == "Ada Crane" and kids["001235"].date_of_birth == "2019-02-01"
    assert kids["001234"].family_group == kids["001235"].family_group == "H9"


def test_windows_1252_export(store, school, tmp_path):
    text = "Pupil ID,Forename,Surname,Date of Birth\nP1,Zoë,Brontë,01/01/2018\n"
    import_roster(store, school, _csv(tmp_path, text, encoding="cp1252"), today=TODAY)
    assert _pupils(store)["P1"].name == "Zoë Brontë"


def test_every_bad_row_is_skipped_with_line_and_reason(store, school, tmp_path):
    text = ("UPN,Surname,Forename,DOB,Year\n"
            "A1,Good,Gina,01/02/2018,4\n"          # line 2
            ",Nolan,Ned,01/02/2018,4\n"             # 3 missing UPN
            "A3,,Ned,01/02/2018,4\n"                # 4 missing surname
            "A4,Nash,,01/02/2018,4\n"               # 5 missing forename
            "A5,Date,Dan,31/02/2018,4\n"            # 6 not a date
            "A6,Date,Dot,2018/02/01,4\n"            # 7 not a recognised format
            "A7,Future,Fay,01/01/2027,R\n"          # 8 in the future
            "\n"                                    # 9 blank: ignored
            "A8,Twin,Tia,01/02/2018,4\n"            # 10 duplicate
            "A9,Fine,Finn,,4\n"                     # 11 no date of birth: allowed
            "a8,Twin,Tom,01/02/2018,4\n")           # 12 duplicate (ids ignore case)
    result = import_roster(store, school, _csv(tmp_path, text), today=TODAY)
    assert [(r.line, r.reason) for r in result.skipped] == [
        (3, "missing UPN"),
        (4, "missing name (surname)"),
        (5, "missing name (forename)"),
        (6, "date of birth '31/02/2018' is not a date (use DD/MM/YYYY or YYYY-MM-DD)"),
        (7, "date of birth '2018/02/01' is not a date (use DD/MM/YYYY or YYYY-MM-DD)"),
        (8, "date of birth '01/01/2027' is in the future"),
        (10, "duplicate UPN A8 (also on line 12)"),
        (12, "duplicate UPN A8 (also on line 10)"),
    ]
    assert (result.rows, result.added) == (10, 2)
    assert set(_pupils(store)) == {"A1", "A9"}
    assert _pupils(store)["A9"].date_of_birth is None


def test_strict_mode_imports_nothing_when_a_row_is_bad(store, school, tmp_path):
    bad = _csv(tmp_path, SIMS + ",Nobody,No,,01/01/2018,Year 4,4A,\n")
    result = import_roster(store, school, bad, strict=True, today=TODAY)
    assert result.imported is False and [r.line for r in result.skipped] == [8]
    assert _pupils(store) == {}
    with store.session() as s:
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "roster.imported")).first() is None
    good = import_roster(store, school, _csv(tmp_path, SIMS), strict=True, today=TODAY)
    assert good.imported and good.added == 6


def test_reimport_updates_marks_leavers_and_keeps_pupils_with_bad_rows(store, school, tmp_path):
    import_roster(store, school, _csv(tmp_path, SIMS), today=TODAY)
    lines = SIMS.splitlines()
    lines[1] = lines[1].replace("Year 6", "Year 7")           # changed
    lines[2] = lines[2].replace("12/01/2019", "12/13/2019")   # bad row: Benedict is still on roll
    del lines[6]                                              # Pip has left
    again = import_roster(store, school, _csv(tmp_path, "\n".join(lines) + "\n"), today=TODAY)
    assert (again.added, again.updated, again.unchanged, again.left) == (0, 1, 3, 1)
    assert [r.line for r in again.skipped] == [3]
    kids = _pupils(store)
    assert kids["A100000000006"].active is False and kids["A100000000002"].active is True
    assert kids["A100000000001"].year_group == "7"
    same = import_roster(store, school, _csv(tmp_path, "\n".join(lines) + "\n"), today=TODAY)
    assert (same.added, same.updated, same.left) == (0, 0, 0)
    back = import_roster(store, school, _csv(tmp_path, SIMS), today=TODAY)  # Pip returns
    assert back.updated == 2 and _pupils(store)["A100000000006"].active is True


def test_pupils_belong_to_their_school(store, school, tmp_path):
    import_roster(store, "riverside", _csv(tmp_path, SIMS), today=TODAY)
    import_roster(store, "hill", _csv(tmp_path, "UPN,Surname,Forename\nA100000000001,Other,Olly\n"), today=TODAY)
    assert _pupils(store)["A100000000001"].name == "Josie Quill"
    assert _pupils(store, "hill")["A100000000001"].name == "Olly Other"


@pytest.mark.parametrize("text, message", [
    ("Name,Class\nJo,3A\n", "no recognisable header"),
    ("", "no recognisable header"),
    ("UPN,Surname,Forename\n,X,Y\n", "no pupil rows could be imported (1 bad rows)"),
    ("UPN,Surname,Forename\nA1,X,Y\nA2,X,Y" + "z" * 200_000 + "\n", "line 3: not readable as CSV"),
])
def test_refused_files_import_nothing(store, school, tmp_path, text, message):
    import_roster(store, school, _csv(tmp_path, SIMS, name="first.csv"), today=TODAY)
    with pytest.raises(RosterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        import_roster(store, school, _csv(tmp_path, text), today=TODAY)
    assert all(c.active for c in _pupils(store).values())  # nobody marked as left


def test_unknown_school_is_refused(store, school, tmp_path):
    with pytest.raises(RosterError, match="unknown school 'nope' \\(schools: hill, riverside\\)"):
        import_roster(store, "nope", _csv(tmp_path, SIMS))


def test_title_lines_above_the_header_are_skipped(store, school, tmp_path):
    result = import_roster(store, school, _csv(tmp_path, "Student List,,\nPrinted 01/11/2026,,\n" + SIMS), today=TODAY)
    assert result.added == 6


def test_no_pupil_name_or_birth_date_in_audit_or_plaintext(store, school, tmp_path, db_url):
    import_roster(store, school, _csv(tmp_path, SIMS), today=TODAY)
    with store.session() as s:
        events = list(s.exec(select(AuditEvent)))
        (ev,) = [e for e in events if e.action == "roster.imported"]
    assert ev.details == {"rows": 6, "added": 6, "updated": 0, "unchanged": 0, "left": 0, "skipped": 0}
    details = " ".join(repr(e.details) for e in events)
    dump = raw_dump(db_url)
    assert "A100000000001" in dump  # the dump is real
    for secret in ("Josie", "Josephine", "Quill", "Tarrant", "2016-09-03"):
        assert secret not in details and secret not in dump


def test_example_roster_imports(store, tmp_path):
    load_directory(store, Path(__file__).resolve().parents[1] / "examples" / "directory.toml")
    result = import_roster(store, "riverside", EXAMPLE, today=TODAY)
    assert result.added == 4 and not result.skipped


def test_roster_import_command_exit_codes(store, school, cli_env, tmp_path):
    good = _csv(tmp_path, SIMS, name="good.csv")
    ok = run_cli(["roster", "import", str(good), "--school", school], cli_env, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "6 rows; 6 added, 0 updated, 0 unchanged, 0 left, 0 skipped" in ok.stdout

    some_bad = _csv(tmp_path, SIMS + "A100000000009,Later,Lou,,01/01/2099,Year 1,1A,\n", name="some.csv")
    partial = run_cli(["roster", "import", str(some_bad), "--school", school], cli_env, cwd=tmp_path)
    assert partial.returncode == 1, partial.stderr
    assert "skipped line 8: date of birth '01/01/2099' is in the future" in partial.stdout

    strict = run_cli(["roster", "import", str(some_bad), "--school", school, "--strict"], cli_env, cwd=tmp_path)
    assert strict.returncode == 2
    assert "skipped line 8" in strict.stdout and "nothing imported" in strict.stdout

    unknown = run_cli(["roster", "import", str(good), "--school", "nope"], cli_env, cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown school 'nope'" in unknown.stderr
    headerless = run_cli(["roster", "import", str(_csv(tmp_path, "a,b\n1,2\n", name="h.csv")), "--school", school],
                         cli_env, cwd=tmp_path)
    assert headerless.returncode == 2 and "no recognisable header" in headerless.stderr
    assert "Traceback" not in unknown.stderr + headerless.stderr
