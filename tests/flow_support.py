"""A small school built directly in the database, for flow tests (independent of the demo data)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from storage.models import Child, Person, RoleAssignment, School, Trust


@dataclass
class World:
    trust: int
    school: int
    dsl: int
    deputy: int
    head: int
    chair: int
    teacher: int
    ta: int
    tso: int
    child: int
    sibling: int
    other_child: int
    people: dict


PEOPLE = [  # email, name, roles
    ("dsl@s.test", "Dana Shah", ["dsl"]),
    ("deputy@s.test", "Dev Patel", ["deputy_dsl", "staff"]),
    ("head@s.test", "Helen Brooks", ["headteacher"]),
    ("chair@s.test", "Colin Ward", ["chair_of_governors"]),
    ("teacher@s.test", "Tom Reed", ["staff"]),
    ("ta@s.test", "Amy Clarke", ["staff"]),
]


def build_world(store, *, slug: str = "s", trust_slug: str = "t") -> World:
    with store.session() as s:
        t = Trust(slug=trust_slug, name="Test Trust")
        s.add(t); s.flush()
        sc = School(trust_id=t.id, slug=slug, name="Test Primary", slack_team_id=f"T{slug.upper()}")
        s.add(sc); s.flush()
        ids = {}
        for email, name, roles in PEOPLE:
            email = email.replace("@s.test", f"@{slug}.test")
            p = Person(trust_id=t.id, school_id=sc.id, email=email, name=name,
                       slack_user_id="U" + email.split("@")[0].upper() + slug.upper())
            s.add(p); s.flush()
            for r in roles:
                s.add(RoleAssignment(person_id=p.id, school_id=sc.id, role=r))
            ids[email.split("@")[0]] = p.id
        tso = Person(trust_id=t.id, email=f"tso@{trust_slug}.test", name="Tariq Osei")
        s.add(tso); s.flush()
        s.add(RoleAssignment(person_id=tso.id, school_id=None, role="trust_safeguarding_officer"))
        kids = []
        for mis, name, dob, fam in [("A100", "Amira Zed", "2016-03-04", "F1"), ("A101", "Zak Zed", "2018-07-01", "F1"),
                                    ("A102", "Ben Oak", "2015-01-20", None)]:
            c = Child(school_id=sc.id, mis_id=mis, name=name, date_of_birth=dob, year_group="5", family_group=fam)
            s.add(c); s.flush()
            kids.append(c.id)
        return World(trust=t.id, school=sc.id, dsl=ids["dsl"], deputy=ids["deputy"], head=ids["head"],
                     chair=ids["chair"], teacher=ids["teacher"], ta=ids["ta"], tso=tso.id, child=kids[0],
                     sibling=kids[1], other_child=kids[2], people=ids)


def report_values(world: World, **over) -> dict:
    values = {
        "immediate_danger": "no",
        "child": f"child:{world.child}",
        "occurred_at": "2026-11-24T10:15",
        "location": "Year 5 classroom",
        "categories": ["physical_abuse"],
        "account": "At 10:15 Amira had a bruise on her left forearm about 3cm across and flinched when I touched her shoulder.",
        "child_words": "Dad grabbed me because I spilt the milk",
        "child_views": "She does not want to go home tonight",
        "worry_history": "Since September she has arrived late and hungry most Mondays",
        "others_involved": "Her brother Zak, Year 3",
        "action_taken": "Nobody else told yet",
        "about_adult": "no",
    }
    values.update(over)
    return values


NOW = datetime(2026, 11, 24, 11, 0, tzinfo=timezone.utc)
