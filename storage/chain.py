"""Hash-chained, append-only rows: the chronology and the audit trail.

Each row carries ``content_hash`` (over its stored content, ciphertext included) and
``hash = sha256(chain | seq | prev_hash | content_hash)``. The chain head row keeps the
last seq and hash, so deleting the newest row is caught as well as any edit, deletion or
reordering in the middle. Verification needs no key: it reads what is stored.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

from sqlmodel import Session, select

from .crypto import DataCipher
from .models import AuditEvent, ChainHead, ChronologyEntry, utcnow

GENESIS = "0" * 64
AUDIT = "audit"
CHRONOLOGY = "chronology"


def _canon(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _digest(payload: dict) -> str:
    text = json.dumps({k: _canon(v) for k, v in payload.items()}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chronology_content(row: ChronologyEntry) -> dict:
    return {"seq": row.seq, "concern_id": row.concern_id, "child_id": row.child_id, "kind": row.kind,
            "actor_id": row.actor_id, "at": row.at, "body": row.body, "facts": row.facts}


def audit_content(row: AuditEvent) -> dict:
    return {"seq": row.seq, "at": row.at, "actor_id": row.actor_id, "action": row.action,
            "school_id": row.school_id, "concern_id": row.concern_id, "child_id": row.child_id,
            "details": row.details}


def link_hash(chain: str, seq: int, prev_hash: str, content_hash: str) -> str:
    return hashlib.sha256(f"{chain}|{seq}|{prev_hash}|{content_hash}".encode()).hexdigest()


def _lock_head(session: Session, chain: str) -> ChainHead:
    head = session.exec(select(ChainHead).where(ChainHead.name == chain).with_for_update()).one()
    return head


def _seal(session: Session, chain: str, row, content_fn) -> None:
    head = _lock_head(session, chain)
    row.seq = head.seq + 1
    row.prev_hash = head.hash
    row.content_hash = _digest(content_fn(row))
    row.hash = link_hash(chain, row.seq, row.prev_hash, row.content_hash)
    head.seq, head.hash = row.seq, row.hash
    session.add(row)
    session.add(head)
    session.flush()


def append_entry(session: Session, cipher: DataCipher, *, concern_id: int, kind: str, actor_id: int | None,
                 body: dict | None = None, facts: dict | None = None, child_id: int | None = None,
                 at: datetime | None = None) -> ChronologyEntry:
    """Add one chronology entry. ``body`` is sensitive (encrypted); ``facts`` must not be."""
    row = ChronologyEntry(concern_id=concern_id, child_id=child_id, kind=str(kind), actor_id=actor_id,
                          at=at or utcnow(), body=cipher.encrypt(json.dumps(body or {}, sort_keys=True)),
                          facts=facts or {}, seq=0, prev_hash="", content_hash="", hash="")
    _seal(session, CHRONOLOGY, row, chronology_content)
    return row


def read_body(cipher: DataCipher, row: ChronologyEntry) -> dict:
    if row.redacted_at is not None:
        return {}
    return json.loads(cipher.decrypt(row.body))


def audit(session: Session, action: str, *, actor_id: int | None = None, school_id: int | None = None,
          concern_id: int | None = None, child_id: int | None = None, details: dict | None = None,
          at: datetime | None = None) -> AuditEvent:
    """Record who did what. ``details`` must never hold concern content."""
    row = AuditEvent(action=action, actor_id=actor_id, school_id=school_id, concern_id=concern_id,
                     child_id=child_id, details=details or {}, at=at or utcnow(),
                     seq=0, prev_hash="", content_hash="", hash="")
    _seal(session, AUDIT, row, audit_content)
    return row


@dataclass
class ChainProblem:
    chain: str
    seq: int | None
    row_id: int | None
    what: str

    def __str__(self) -> str:
        where = f"row seq {self.seq} (id {self.row_id})" if self.seq is not None else "chain head"
        return f"{self.chain}: {where}: {self.what}"


def _verify(chain: str, rows: Iterable, head: ChainHead, content_fn, redaction_ok) -> ChainProblem | None:
    prev, expected_seq = GENESIS, 1
    for row in rows:
        if row.seq != expected_seq:
            return ChainProblem(chain, expected_seq, None,
                                f"missing: expected seq {expected_seq}, found seq {row.seq} (id {row.id}) — a row was deleted or renumbered")
        if row.prev_hash != prev:
            return ChainProblem(chain, row.seq, row.id, "does not follow the row before it (reordered or a row removed)")
        redacted = getattr(row, "redacted_at", None) is not None
        if redacted and not redaction_ok(row):
            return ChainProblem(chain, row.seq, row.id, "marked redacted without a recorded retention run")
        if not redacted and _digest(content_fn(row)) != row.content_hash:
            return ChainProblem(chain, row.seq, row.id, "content altered")
        if link_hash(chain, row.seq, row.prev_hash, row.content_hash) != row.hash:
            return ChainProblem(chain, row.seq, row.id, "hash does not match")
        prev, expected_seq = row.hash, expected_seq + 1
    if head.seq != expected_seq - 1 or head.hash != prev:
        return ChainProblem(chain, None, None,
                            f"head says {head.seq} rows ending {head.hash[:12]}…, found {expected_seq - 1} ending {prev[:12]}… — newest row(s) deleted or altered")
    return None


def verify(session: Session) -> list[ChainProblem]:
    """Check both chains; returns the first problem of each (empty list: intact)."""
    problems = []
    heads = {h.name: h for h in session.exec(select(ChainHead))}
    redacted_ids = _redactions_recorded(session)
    checks = [
        (AUDIT, AuditEvent, audit_content, lambda row: False),
        (CHRONOLOGY, ChronologyEntry, chronology_content, lambda row: row.id in redacted_ids),
    ]
    for chain, model, content_fn, redaction_ok in checks:
        if chain not in heads:
            problems.append(ChainProblem(chain, None, None, "chain head missing"))
            continue
        rows = session.exec(select(model).order_by(model.seq)).yield_per(1000)
        problem = _verify(chain, rows, heads[chain], content_fn, redaction_ok)
        if problem:
            problems.append(problem)
    return problems


def _redactions_recorded(session: Session) -> set[int]:
    """Chronology rows a retention run says it redacted (the audit chain vouches for it)."""
    ids: set[int] = set()
    for ev in session.exec(select(AuditEvent).where(AuditEvent.action == "retention.redacted")):
        ids.update(int(i) for i in ev.details.get("chronology_ids", []))
    return ids
