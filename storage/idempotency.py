"""Once-only keys (IdempotencyKey rows): a platform's retry, a person's double click or four
copies of one form arriving at once must not do a thing twice.

`once(store, key)` claims the key and applies the change in one transaction: the key's unique
primary key is the lock (a concurrent copy waits on it, then finds it taken), and a change that
fails rolls the claim back with it, so the same button can be pressed again. The first run's
result (a small dict, never concern content) is kept with the key, so a repeat is answered
exactly as the first was."""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass, field
from typing import Iterator

from sqlalchemy.exc import IntegrityError

from .db import Store
from .models import IdempotencyKey

MAX = 200  # the column's length


def _key(key: str) -> str:
    # A long key is hashed rather than cut, so two keys that share their first 200 characters
    # stay two keys.
    if len(key) <= MAX:
        return key
    return key[:MAX - 65] + "#" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class Once:
    done: bool                       # True: the first copy already applied it; `result` is its answer
    result: dict = field(default_factory=dict)


@contextlib.contextmanager
def once(store: Store, key: str) -> Iterator[Once]:
    """Claim `key` and run the block in the same transaction.

    ``with once(store, key) as o:`` then ``if o.done: answer with o.result``, else apply the change
    (flows called inside join this transaction) and set ``o.result`` to what a repeat should be
    told. An exception in the block rolls back the change and the claim together."""
    k = _key(key)
    with store.session() as s:
        try:
            with s.begin_nested():
                s.add(IdempotencyKey(key=k))
                s.flush()
        except IntegrityError:
            prior = s.get(IdempotencyKey, k)
            yield Once(done=True, result=dict(prior.result or {}) if prior else {})
            return
        o = Once(done=False)
        yield o
        row = s.get(IdempotencyKey, k)
        row.result = dict(o.result or {})
        s.add(row)


def claim(store: Store, key: str) -> bool:
    """True the first time a key is seen, False ever after (events that only need de-duplicating)."""
    with once(store, key) as o:
        return not o.done


def seen(store: Store, key: str) -> bool:
    with store.session() as s:
        return s.get(IdempotencyKey, _key(key)) is not None
