"""The directory file: loading, idempotency, change reports and refusals."""

import copy
from pathlib import Path

import pytest
from sqlmodel import select

from storage.directory import DirectoryError, load_directory
from storage.models import AuditEvent, Person, RoleAssignment, School, Trust

from .conftest import run_cli

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "directory.toml"

BASE = {
    "trust": {"slug": "oak", "name": "Oak Trust",
              "people": [{"email": "tso@oak.example", "name": "Tess Osborne", "roles": ["trust_safeguarding_officer"]}]},
    "schools": [
        {"slug": "riverside", "name": "Riverside Primary", "closures": ["2026-12-21"],
         "policy": {"acknowledge_hours": 4},
         "people": [
             {"email": "DSL@Riverside.example", "name": "Dina Lowe", "roles": ["dsl"], "slack_user_id": "U1"},
             {"email": "old@riverside.example", "name": "Olga Dean", "roles": ["staff", "deputy_dsl"]},
         ]},
        {"slug": "hill", "name": "Hill School", "nation": "wales", "reference_prefix": "HS",
         "people": [{"email": "t@hill.example", "name": "Tam Hill", "roles": ["staff"]}]},
    ],
}


def _data():
    return copy.deepcopy(BASE)


def _snapshot(store):
    with store.session() as s:
        people = {p.email: (p.name, p.school_id, p.active, p.slack_user_id) for p in s.exec(select(Person))}
        roles = sorted((r.person_id, r.school_id, r.role) for r in s.exec(select(RoleAssignment)))
        schools = {x.slug: (x.name, x.nation, x.reference_prefix, x.closures, x.policy) for x in s.exec(select(School))}
        trusts = [(t.slug, t.name) for t in s.exec(select(Trust))]
    return people, roles, schools, trusts


def _lines(changes):
    return [str(c) for c in changes.changes]


def test_first_load_adds_everything_and_stores_it(store):
    changes = load_directory(store, _data())
    assert "added trust oak" in _lines(changes)
    assert "added person dsl@riverside.example" in _lines(changes)  # stored lower-case
    assert len(changes.added) == 1 + 2 + 4 and not changes.changed and not changes.removed
    with store.session() as s:
        sc = s.exec(select(School).where(School.slug == "riverside")).one()
        assert (sc.nation, sc.timezone, sc.reference_prefix) == ("england", "Europe/London", "SG")
        assert sc.closures == ["2026-12-21"] and sc.policy == {"acknowledge_hours": 4}
        hill = s.exec(select(School).where(School.slug == "hill")).one()
        assert (hill.nation, hill.reference_prefix) == ("wales", "HS")
        dsl = s.exec(select(Person).where(Person.email == "dsl@riverside.example")).one()
        assert dsl.name == "Dina Lowe" and dsl.school_id == sc.id and dsl.slack_user_id == "U1"
        tso = s.exec(select(Person).where(Person.email == "tso@oak.example")).one()
        assert tso.school_id is None
        (tso_role,) = s.exec(select(RoleAssignment).where(RoleAssignment.person_id == tso.id))
        assert (tso_role.role, tso_role.school_id) == ("trust_safeguarding_officer", None)


def test_loading_twice_changes_nothing(store):
    load_directory(store, _data())
    before = _snapshot(store)
    again = load_directory(store, _data())
    assert again.changes == []
    assert _snapshot(store) == before
    assert "0 added, 0 changed, 0 removed" in again.summary()


def test_changes_and_removals_are_reported(store):
    load_directory(store, _data())
    d = _data()
    d["schools"][0]["name"] = "Riverside Primary Academy"
    d["schools"][0]["people"][0]["email"] = "dsl@RIVERSIDE.example"  # same person, other case
    d["schools"][0]["people"][0]["roles"] = ["dsl", "staff"]
    del d["schools"][0]["people"][1]
    d["schools"][1]["people"].append({"email": "new@hill.example", "name": "Nia New", "roles": ["staff"]})
    d["schools"][1]["people"][0]["name"] = "Tamsin Hill"
    changes = load_directory(store, d)
    assert sorted(_lines(changes)) == sorted([
        "changed school riverside: name",
        "changed person dsl@riverside.example: roles (+staff)",
        "removed person old@riverside.example",
        "added person new@hill.example",
        "changed person t@hill.example: name",
    ])
    with store.session() as s:
        old = s.exec(select(Person).where(Person.email == "old@riverside.example")).one()  # kept, not deleted
        assert old.active is False
        assert list(s.exec(select(RoleAssignment).where(RoleAssignment.person_id == old.id))) == []
    # Removed once is reported once; coming back is a change.
    assert load_directory(store, d).changes == []
    back = load_directory(store, _data())
    assert "changed person old@riverside.example: active, roles (+deputy_dsl, +staff)" in _lines(back)


def test_a_school_missing_from_the_file_is_reported_not_deleted(store):
    load_directory(store, _data())
    d = _data()
    hill_people = d["schools"].pop()["people"]
    changes = load_directory(store, d)
    assert any(str(c).startswith("missing school hill") for c in changes.changes)
    assert [f"removed person {p['email']}" for p in hill_people] == [str(c) for c in changes.removed]
    with store.session() as s:
        assert s.exec(select(School).where(School.slug == "hill")).first() is not None


def test_moving_a_person_between_schools(store):
    load_directory(store, _data())
    d = _data()
    d["schools"][1]["people"].append(d["schools"][0]["people"].pop(1))
    changes = load_directory(store, d)
    assert _lines(changes) == ["changed person old@riverside.example: school"]
    with store.session() as s:
        hill = s.exec(select(School).where(School.slug == "hill")).one()
        p = s.exec(select(Person).where(Person.email == "old@riverside.example")).one()
        assert {r.school_id for r in s.exec(select(RoleAssignment).where(RoleAssignment.person_id == p.id))} == {hill.id}


def test_audit_event_holds_counts_only(store):
    load_directory(store, _data())
    with store.session() as s:
        (ev,) = s.exec(select(AuditEvent).where(AuditEvent.action == "directory.loaded"))
    assert ev.details["added"] == 7 and ev.details["people"] == 4 and ev.details["schools"] == 2
    text = repr(ev.details)
    assert "@" not in text and "Dina" not in text


def _refused(store, data_or_path) -> str:
    before = _snapshot(store)
    with pytest.raises(DirectoryError) as info:
        load_directory(store, data_or_path)
    assert _snapshot(store) == before  # nothing written
    return str(info.value)


def _bad(mutate):
    d = _data()
    mutate(d)
    return d


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["schools"][1]["people"][0].update(roles=["dls"]), "schools[1].people[0].roles: unknown role 'dls'"),
    (lambda d: d["schools"][0].update(nation="france"), "schools[0].nation: 'france' is not one of"),
    (lambda d: d["schools"][1]["people"].append({"email": "dsl@riverside.EXAMPLE", "name": "X", "roles": ["staff"]}),
     "schools[1].people[1].email: duplicate email 'dsl@riverside.example' (also at schools[0].people[0])"),
    (lambda d: d["schools"][0].pop("name"), "schools[0].name: required key is missing"),
    (lambda d: d["schools"][0]["people"][0].update(role="dsl"), "schools[0].people[0].role: unknown key"),
    (lambda d: d["schools"][0].update(closures=["21/12/2026"]), "schools[0].closures[0]:"),
    (lambda d: d["schools"][0].update(timezone="Europe/Londn"), "schools[0].timezone: unknown time zone"),
    (lambda d: d["schools"][1].update(slug="riverside"), "schools[1].slug: duplicate school 'riverside'"),
    (lambda d: d["schools"][0]["people"][0].update(roles=["trust_safeguarding_officer"]),
     "schools[0].people[0].roles: 'trust_safeguarding_officer' is a trust role"),
    (lambda d: d["trust"]["people"][0].update(roles=["dsl"]), "trust.people[0].roles: 'dsl' is a school role"),
    (lambda d: d["schools"][0]["people"][0].update(email="not-an-email"), "schools[0].people[0].email: not an email"),
    (lambda d: d.pop("trust"), "trust: required key is missing"),
])
def test_bad_files_are_refused_whole_naming_the_place(store, mutate, message):
    load_directory(store, _data())
    d = _bad(mutate)
    d["schools"][1]["name"] = "Renamed"  # a valid change that must not land
    assert message in _refused(store, d)


def test_bad_file_on_empty_database_writes_nothing(store):
    _refused(store, _bad(lambda d: d["schools"][1]["people"][0].update(roles=["dls"])))
    with store.session() as s:
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "directory.loaded")).first() is None


def test_invalid_toml_is_refused(store, tmp_path):
    bad = tmp_path / "d.toml"
    bad.write_text('[trust]\nslug = "oak"\nname = Oak Trust\n')
    assert "not valid TOML" in _refused(store, bad) and "line 3" in _refused(store, bad)


def test_school_or_person_of_another_trust_is_refused(store):
    load_directory(store, _data())
    other = {"trust": {"slug": "elm", "name": "Elm"},
             "schools": [{"slug": "riverside", "name": "R", "people": [
                 {"email": "Tso@oak.example", "name": "T", "roles": ["staff"]}]}]}
    msg = _refused(store, other)
    assert "schools[0].slug: school 'riverside' belongs to another trust" in msg
    assert "schools[0].people[0].email: 'tso@oak.example' belongs to another trust" in msg


def test_example_file_loads(store):
    changes = load_directory(store, EXAMPLE)
    assert len([c for c in changes.added if c.what == "school"]) == 2
    assert load_directory(store, EXAMPLE).changes == []


def test_directory_commands(store, cli_env, tmp_path):
    f = tmp_path / "d.toml"
    f.write_text(EXAMPLE.read_text())
    first = run_cli(["directory", "load", str(f)], cli_env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "added school riverside" in first.stdout and "added person a.begum@riverside.example" in first.stdout
    lucy = '[[schools.people]]\nemail = "l.evans@riverside.example"\nname = "Lucy Evans"\nroles = ["staff"]\n'
    assert lucy in EXAMPLE.read_text()
    f.write_text(EXAMPLE.read_text().replace('name = "Riverside Primary School"', 'name = "Riverside Primary"')
                 .replace(lucy, ""))
    second = run_cli(["directory", "load", str(f)], cli_env, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "changed school riverside: name" in second.stdout
    assert "removed person l.evans@riverside.example" in second.stdout
    assert "0 added, 1 changed, 1 removed" in second.stdout

    f.write_text(EXAMPLE.read_text().replace('roles = ["dsl"]', 'roles = ["dls"]', 1))
    bad = run_cli(["directory", "load", str(f)], cli_env, cwd=tmp_path)
    assert bad.returncode == 2
    assert "schools[0].people[0].roles: unknown role 'dls'" in bad.stderr and "Traceback" not in bad.stderr

    shown = run_cli(["directory", "show"], cli_env, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "school riverside: Riverside Primary" in shown.stdout
    assert "a.begum@riverside.example  Aisha Begum  [dsl]" in shown.stdout
    assert "l.evans@riverside.example  Lucy Evans  []" in shown.stdout and "(inactive)" in shown.stdout
