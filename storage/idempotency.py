"""Once-only keys (IdempotencyKey rows): a platform's retry or a person's double click must not
do a thing twice. The unique primary key is the lock, so this holds across replicas."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from .db import Store
from .models import IdempotencyKey

MAX = 200  # the column's length


def claim(store: Store, key: str) -> bool:
    """True the first time a key is seen, False ever after."""
    try:
        with store.session() as s:
            s.add(IdempotencyKey(key=key[:MAX]))
            s.flush()
    except IntegrityError:
        return False
    return True


def seen(store: Store, key: str) -> bool:
    with store.session() as s:
        return s.get(IdempotencyKey, key[:MAX]) is not None


def release(store: Store, key: str) -> None:
    """Forget a key whose work did not happen, so that it can be tried again."""
    with store.session() as s:
        row = s.get(IdempotencyKey, key[:MAX])
        if row is not None:
            s.delete(row)
