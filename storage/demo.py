"""The built-in demo trust and school, so that the product can be tried before any
directory is loaded. Loaded through the same code as a real directory and roster."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from .db import Store
from .directory import apply_directory, parse
from .models import School
from .roster import apply_roster

DATA = Path(__file__).parent / "data"
DEMO_DIRECTORY = DATA / "demo_directory.toml"
DEMO_ROSTER = DATA / "demo_roster.csv"
DEMO_SCHOOL = "demo"


def ensure_directory(store: Store) -> bool:
    """Load the demo when the database has no school at all. True if this call loaded it."""
    directory = parse(DEMO_DIRECTORY)
    try:
        # One transaction: nobody ever sees the demo school without its pupils.
        with store.session() as s:
            if s.exec(select(School.id).limit(1)).first() is not None:
                return False
            apply_directory(s, directory)
            school = s.exec(select(School).where(School.slug == DEMO_SCHOOL)).one()
            apply_roster(s, school, DEMO_ROSTER)
            return True
    except IntegrityError:
        # Another process (PostgreSQL, several replicas) loaded it at the same moment.
        return False
