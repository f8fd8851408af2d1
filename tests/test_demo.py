"""The built-in demo trust and school."""

from datetime import date

from sqlmodel import select

from storage.demo import DEMO_ROSTER, ensure_directory
from storage.directory import load_directory
from storage.models import AuditEvent, Child, Person, RoleAssignment, School
from storage.roster import parse_roster

PEOPLE = {
    "tso@demo.trust": ("Tariq Osei", None, "trust_safeguarding_officer"),
    "dsl@demo.school": ("Dana Shah", "demo", "dsl"),
    "deputy@demo.school": ("Dev Patel", "demo", "deputy_dsl"),
    "deputy2@demo.school": ("Grace Lin", "demo", "deputy_dsl"),
    "head@demo.school": ("Helen Brooks", "demo", "headteacher"),
    "chair@demo.school": ("Colin Ward", "demo", "chair_of_governors"),
    "teacher@demo.school": ("Tom Reed", "demo", "staff"),
    "ta@demo.school": ("Amy Clarke", "demo", "staff"),
    "office@demo.school": ("Sam Ellis", "demo", "staff"),
}


def test_demo_loads_once_with_the_agreed_people(store):
    assert ensure_directory(store) is True
    assert ensure_directory(store) is False
    with store.session() as s:
        (school,) = s.exec(select(School))
        assert (school.slug, school.name, school.nation, school.reference_prefix) == (
            "demo", "Demo Primary School", "england", "SG")
        slugs = {school.id: school.slug, None: None}
        found = {}
        for p in s.exec(select(Person)):
            (role,) = s.exec(select(RoleAssignment).where(RoleAssignment.person_id == p.id))
            found[p.email] = (p.name, slugs[p.school_id], role.role)
        assert found == PEOPLE
        assert len(list(s.exec(select(AuditEvent).where(AuditEvent.action == "directory.loaded")))) == 1


def test_demo_pupils_ages_years_and_siblings(store):
    ensure_directory(store)
    with store.session() as s:
        kids = list(s.exec(select(Child)))
    assert 10 <= len(kids) <= 14 and all(k.active for k in kids)
    assert {k.year_group for k in kids} == {"1", "2", "3", "4", "5", "6"}
    late_2026 = date(2026, 11, 30)
    for k in kids:
        born = date.fromisoformat(k.date_of_birth)
        age = late_2026.year - born.year - ((late_2026.month, late_2026.day) < (born.month, born.day))
        assert 5 <= age <= 11, (k.mis_id, age)
    sizes = sorted(sum(1 for k in kids if k.family_group == f) for f in {k.family_group for k in kids} - {None})
    assert sizes == [2, 3]
    _, skipped, _, _ = parse_roster(DEMO_ROSTER, today=late_2026)
    assert skipped == []


def test_demo_is_not_loaded_when_a_directory_exists(store):
    load_directory(store, {"trust": {"slug": "oak", "name": "Oak"}, "schools": [{"slug": "riverside", "name": "R"}]})
    assert ensure_directory(store) is False
    with store.session() as s:
        assert [x.slug for x in s.exec(select(School))] == ["riverside"]


def test_two_processes_starting_at_once_load_the_demo_once(store):
    # Several replicas may start together on one PostgreSQL database.
    import threading

    barrier = threading.Barrier(2)
    results = []

    def start():
        barrier.wait()
        results.append(ensure_directory(store))

    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == [False, True]
    with store.session() as s:
        assert len(list(s.exec(select(School)))) == 1 and len(list(s.exec(select(Child)))) == 12
