"""The tables. Sensitive text uses EncryptedText; chained tables encrypt explicitly (chain.py)
so that their hashes cover exactly what is stored and can be checked without the key."""

from __future__ import annotations

from datetime import date, datetime, timezone
from enum import StrEnum
from typing import Any, Optional

from sqlalchemy import JSON, Column, Index, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from .types import EncryptedText, UTCDateTime


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _enc(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(EncryptedText, nullable=nullable))


def _when(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime, nullable=nullable, index=index))


def _json(default_factory=dict) -> Any:
    return Field(default_factory=default_factory, sa_column=Column(JSON, nullable=False))


class Role(StrEnum):
    staff = "staff"
    dsl = "dsl"
    deputy_dsl = "deputy_dsl"
    headteacher = "headteacher"
    chair_of_governors = "chair_of_governors"
    trust_safeguarding_officer = "trust_safeguarding_officer"


DSL_TEAM = (Role.dsl, Role.deputy_dsl)


class ConcernStatus(StrEnum):
    raised = "raised"              # submitted, nobody has taken it yet
    acknowledged = "acknowledged"  # a handler owns it
    decided = "decided"            # a decision with reasons is recorded
    closed = "closed"


class EntryKind(StrEnum):
    raised = "raised"
    viewed = "viewed"
    acknowledged = "acknowledged"
    note = "note"
    discussion = "discussion"
    action = "action"
    decision = "decision"
    referral = "referral"
    outcome = "outcome"
    follow_up = "follow_up"
    escalation = "escalation"
    closed = "closed"


class Trust(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    slug: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    name: str
    policy: dict = _json()  # overrides of flows/data/policy.toml for every school in the trust


class School(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    trust_id: int = Field(foreign_key="trust.id", index=True)
    slug: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    name: str
    nation: str = "england"  # england | wales | scotland | northern_ireland (bank holidays)
    timezone: str = "Europe/London"
    reference_prefix: str = "SG"
    slack_team_id: Optional[str] = Field(default=None, index=True)
    teams_tenant_id: Optional[str] = Field(default=None, index=True)
    policy: dict = _json()  # per-school overrides (timescales, working hours, routing)
    closures: list = _json(list)  # ISO dates the school is closed beyond bank holidays


class Person(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    trust_id: int = Field(foreign_key="trust.id", index=True)
    school_id: Optional[int] = Field(default=None, foreign_key="school.id", index=True)
    email: str = Field(sa_column=Column(String(320), unique=True, nullable=False))
    name: Optional[str] = _enc()
    slack_user_id: Optional[str] = Field(default=None, index=True)
    teams_aad_object_id: Optional[str] = Field(default=None, index=True)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


class RoleAssignment(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("person_id", "school_id", "role", name="uq_role_assignment"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    school_id: Optional[int] = Field(default=None, foreign_key="school.id", index=True)
    role: str


class Child(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("school_id", "mis_id", name="uq_child_mis_id"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    mis_id: str  # UPN or the MIS's own pupil id
    name: Optional[str] = _enc(nullable=False)
    date_of_birth: Optional[str] = _enc()  # ISO date, encrypted
    year_group: Optional[str] = None
    family_group: Optional[str] = Field(default=None, index=True)  # siblings share it
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


class Concern(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("school_id", "reference", name="uq_concern_reference"),
        Index("ix_concern_school_status", "school_id", "status"),
        Index("ix_concern_school_created", "school_id", "created_at"),  # reports by school and period
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    reference: str
    child_id: Optional[int] = Field(default=None, foreign_key="child.id", index=True)
    child_name_given: Optional[str] = _enc()  # free text when the child was not in the roster
    needs_child_match: bool = False
    referrer_id: int = Field(foreign_key="person.id", index=True)
    status: str = ConcernStatus.raised.value
    urgent: bool = False
    immediate_danger: bool = False
    about_adult: bool = False
    subject_role: Optional[str] = None  # staff | volunteer | headteacher | other_adult
    subject_person_id: Optional[int] = Field(default=None, foreign_key="person.id")
    subject_name: Optional[str] = _enc()
    # How the subject is known (flows/access.py): picked | unresolved (a typed name: only the
    # routed recipient may see it until they decide) | identified | not_listed.
    subject_status: Optional[str] = Field(default=None, sa_column=Column(String(20), nullable=True))
    taxonomy_version: str
    categories: list = _json(list)
    occurred_at: Optional[datetime] = _when()
    location: Optional[str] = _enc()
    account: Optional[str] = _enc()
    child_words: Optional[str] = _enc()
    child_views: Optional[str] = _enc()
    worry_history: Optional[str] = _enc()
    action_taken: Optional[str] = _enc()
    others_involved: Optional[str] = _enc()
    source_link: Optional[str] = _enc()  # e.g. the permalink of a Slack message it started from
    routed_to: list = _json(list)  # person ids alerted
    handler_id: Optional[int] = Field(default=None, foreign_key="person.id")
    acknowledged_at: Optional[datetime] = _when()
    decided_at: Optional[datetime] = _when()
    decision_kind: Optional[str] = None
    review_date: Optional[date] = None
    outcome_shared_at: Optional[datetime] = _when()
    closed_at: Optional[datetime] = _when()
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False, index=True))
    last_activity_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    submission_key: Optional[str] = Field(default=None, sa_column=Column(String(200), unique=True, nullable=True))
    # Set on concerns imported from another school's transfer pack: {"school": {...}, "reference": ...}.
    origin: Optional[dict] = Field(default=None, sa_column=Column(JSON, nullable=True))
    redacted_at: Optional[datetime] = _when()  # content deleted under the retention policy


class ReferenceCounter(SQLModel, table=True):
    school_id: int = Field(foreign_key="school.id", primary_key=True)
    year: int = Field(primary_key=True)
    last: int = 0


class ChronologyEntry(SQLModel, table=True):
    __table_args__ = (Index("ix_chronology_concern_seq", "concern_id", "seq"),
                      Index("ix_chronology_kind_concern", "kind", "concern_id"))
    id: Optional[int] = Field(default=None, primary_key=True)
    seq: int = Field(unique=True)
    concern_id: int = Field(foreign_key="concern.id")
    child_id: Optional[int] = Field(default=None, foreign_key="child.id", index=True)
    kind: str
    actor_id: Optional[int] = Field(default=None, foreign_key="person.id")
    at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    body: str = Field(sa_column=Column(Text, nullable=False))  # encrypted JSON (explicitly, see chain.py)
    facts: dict = _json()  # non-sensitive structured facts (decision kind, dates) for reports
    prev_hash: str
    content_hash: str
    hash: str
    redacted_at: Optional[datetime] = _when()


class AuditEvent(SQLModel, table=True):
    __table_args__ = (Index("ix_auditevent_child_action", "child_id", "action"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    seq: int = Field(unique=True)
    at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False, index=True))
    actor_id: Optional[int] = Field(default=None, foreign_key="person.id")
    action: str = Field(index=True)
    school_id: Optional[int] = Field(default=None, foreign_key="school.id")
    concern_id: Optional[int] = Field(default=None, foreign_key="concern.id", index=True)
    child_id: Optional[int] = Field(default=None, foreign_key="child.id")
    details: dict = _json()  # never concern content
    prev_hash: str
    content_hash: str
    hash: str


class ChainHead(SQLModel, table=True):
    name: str = Field(primary_key=True)
    seq: int = 0
    hash: str


class Nudge(SQLModel, table=True):
    __table_args__ = (Index("ix_nudge_state_due", "state", "due_at"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    kind: str
    concern_id: Optional[int] = Field(default=None, foreign_key="concern.id", index=True)
    recipient_id: Optional[int] = Field(default=None, foreign_key="person.id")
    due_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    urgent: bool = False
    state: str = "pending"  # pending | done | cancelled
    step: int = 0
    payload: dict = _json()
    dedupe_key: Optional[str] = Field(default=None, sa_column=Column(String(200), unique=True, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    fired_at: Optional[datetime] = _when()


class OutboxMessage(SQLModel, table=True):
    __table_args__ = (Index("ix_outbox_state_next", "state", "next_attempt_at"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    dedupe_key: str = Field(sa_column=Column(String(200), unique=True, nullable=False))
    recipient_id: int = Field(foreign_key="person.id", index=True)
    kind: str
    payload: dict = _json()  # references and ids only: transports render the words
    urgent: bool = False
    state: str = "pending"  # pending | sent | dead
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    last_error: Optional[str] = None
    transport: Optional[str] = None
    platform_ref: dict = _json()  # where it landed (channel + ts, conversation + activity id)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    sent_at: Optional[datetime] = _when()
    # The worker holding a delivery attempt (bot/worker.py). A claim moves next_attempt_at
    # forward by the lease, so a crashed worker's claims come back when it passes.
    claimed_by: Optional[str] = Field(default=None, sa_column=Column(String(100), nullable=True))
    claimed_at: Optional[datetime] = _when()


class IdempotencyKey(SQLModel, table=True):
    key: str = Field(sa_column=Column(String(200), primary_key=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    result: dict = _json()


class ConversationRef(SQLModel, table=True):
    """Where to reach a person proactively in Teams."""

    person_id: int = Field(foreign_key="person.id", primary_key=True)
    conversation_id: str
    service_url: str
    tenant_id: str
    teams_user_id: str
    aad_object_id: Optional[str] = None
    stale: bool = False
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


class Transfer(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    child_id: int = Field(foreign_key="child.id", index=True)
    from_school_id: int = Field(foreign_key="school.id")
    to_school: str
    pack_hash: str
    exported_by: int = Field(foreign_key="person.id")
    exported_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    sent_at: Optional[datetime] = _when()
    confirmed_at: Optional[datetime] = _when()
    confirmed_by: Optional[str] = None
    state: str = "exported"  # exported | sent | confirmed


class QaReview(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    concern_id: int = Field(foreign_key="concern.id", index=True)
    sampled_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    scores: dict = _json()
    total: Optional[int] = None
    reviewer_id: Optional[int] = Field(default=None, foreign_key="person.id")
    scored_at: Optional[datetime] = _when()
    notes: Optional[str] = _enc()


class Meta(SQLModel, table=True):
    key: str = Field(primary_key=True)
    value: str
