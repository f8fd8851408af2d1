"""When a record leaves without a concern its maker may not see (flows/access.py), the people
who hold that concern are told, so that nothing is lost and nothing shows the maker it exists."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Session

from storage import chain
from storage.models import Concern, Person

from . import notices
from .access import may_handle, told


def tell_holders(s: Session, withheld: list[Concern], *, actor_id: int, what: str, now: datetime) -> list[int]:
    """Tell whoever handles each withheld concern (its owner, else its routed recipients, never
    the adult it is about) that something left without it: ``what`` says what, e.g. "sent the
    child protection file of the child it is about to Hill School", so they can send it on."""
    who = s.get(Person, actor_id)
    by = (who.name or who.email) if who else "Someone"
    out = []
    for c in withheld:
        holders = [p for p in told(s, c, [c.handler_id] if c.handler_id else c.routed_to)
                   if p != actor_id and may_handle(s, p, c)]
        for pid in holders:
            notices.enqueue(s, at=now, kind="left_without", recipient_id=pid,
                            dedupe_key=f"left-without:{c.id}:{pid}:{uuid.uuid4().hex}",  # each export is news
                            payload={"concern_id": c.id, "reference": c.reference,
                                     "title": "An export left out a concern you hold",
                                     "text": f"An export left out {c.reference}",
                                     "lines": [f"Reference: {c.reference}",
                                               f"On {now:%d/%m/%Y} {by} {what}. It went without this concern, "
                                               "which they may not see.",
                                               "If it should go too, send its record on yourself; once the adult "
                                               "is identified, the safeguarding team can handle it."]})
            out.append(pid)
    if out:
        chain.audit(s, "export.left_out", actor_id=actor_id, school_id=withheld[0].school_id, at=now,
                    details={"what": what.split(" ", 1)[0], "concern_ids": [c.id for c in withheld], "told": out})
    return out
