"""Histories for the child protection file tests: real concerns taken through the real flows."""

from __future__ import annotations

import contextlib
import uuid
from datetime import datetime, timedelta, timezone

from sqlalchemy import create_engine, text

from flows import followup, report, triage
from storage.crypto import generate_key
from storage.db import Store

from .conftest import _pg_base
from .flow_support import NOW, build_world, report_values

T0 = datetime(2026, 9, 14, 9, 0, tzinfo=timezone.utc)  # a Monday


def referral(world, **over) -> dict:
    values = {"decision": "social_care_referral",
              "reasons": "Injury with the child's account of how it happened: threshold for a referral is met.",
              "participants": "Dana Shah (DSL), Helen Brooks (Head)", "agency": "Northshire MASH",
              "referred_at": "2026-09-14T14:00", "method": "phone", "agency_reference": "MASH-77",
              "parents_informed": "no", "parents_not_informed_reason": "Telling them could place the child at greater risk."}
    values.update(over)
    return values


def full_history(store, world) -> list[int]:
    """Two concerns about the child (one referred to social care and closed, one open with a
    'worse' check-in) and one about the sibling."""
    ids = []
    r1 = report.submit(store, world.teacher, report_values(world, occurred_at="2026-09-14T08:30"), now=T0)
    ids.append(r1.concern_id)
    triage.acknowledge(store, world.dsl, r1.concern_id, now=T0 + timedelta(hours=1))
    triage.open_record(store, world.dsl, r1.concern_id, now=T0 + timedelta(hours=1, minutes=5))
    triage.add_entry(store, world.dsl, r1.concern_id, "discussion", "Spoke with Amira with her class teacher present.",
                     participants="Dana Shah, Tom Reed", now=T0 + timedelta(hours=2))
    triage.record_decision(store, world.dsl, r1.concern_id, referral(world), now=T0 + timedelta(hours=5))
    triage.record_social_care_step(store, world.dsl, r1.concern_id, "sc_decision", T0 + timedelta(days=1, hours=3),
                                   "Strategy discussion to be held", now=T0 + timedelta(days=1, hours=4))
    followup.checkin(store, world.teacher, r1.concern_id, "improved", "Arriving on time now",
                     now=T0 + timedelta(days=10))
    triage.share_outcome(store, world.dsl, r1.concern_id, "Social care are involved and supporting the family.",
                         now=T0 + timedelta(days=11))
    triage.close(store, world.dsl, r1.concern_id, "Referred; social care lead the plan; school monitors attendance.",
                 now=T0 + timedelta(days=12))
    r2 = report.submit(store, world.ta, report_values(world, categories=["neglect"], occurred_at="2026-10-05T09:00",
                                                     account="Amira came in without a coat in the rain and said she had not eaten since lunch yesterday."),
                       now=T0 + timedelta(days=21))
    ids.append(r2.concern_id)
    triage.acknowledge(store, world.deputy, r2.concern_id, now=T0 + timedelta(days=21, hours=3))
    triage.record_decision(store, world.deputy, r2.concern_id,
                           {"decision": "monitor", "reasons": "Second sign of neglect; monitor daily and re-assess in two weeks.",
                            "participants": "Dev Patel (deputy DSL)"}, now=T0 + timedelta(days=22))
    followup.checkin(store, world.ta, r2.concern_id, "worse", "Still hungry most mornings", now=T0 + timedelta(days=30))
    r3 = report.submit(store, world.teacher, report_values(world, child=f"child:{world.sibling}", categories=["neglect"],
                                                         occurred_at="2026-10-06T09:00"),
                       now=T0 + timedelta(days=22))
    ids.append(r3.concern_id)
    return ids


@contextlib.contextmanager
def second_store(tmp_path):
    """A second, empty database (another school's system) with its own key."""
    base = _pg_base()
    if base is None:
        st = Store(f"sqlite:///{tmp_path / 'second.sqlite3'}", generate_key(), upgrade=True)
        try:
            yield st
        finally:
            st.dispose()
        return
    schema = "t_" + uuid.uuid4().hex[:16]
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    st = Store(f"{base}{sep}options=-csearch_path%3D{schema}", generate_key(), upgrade=True)
    try:
        yield st
    finally:
        st.dispose()
        with admin.connect() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


__all__ = ["NOW", "T0", "build_world", "full_history", "referral", "report_values", "second_store"]
