"""Once-only keys, shared by the Slack and Teams transports: the key and the change it guards
are one transaction."""

import threading

import pytest
from sqlmodel import select

from flows import report, triage
from storage import idempotency
from storage.models import ChronologyEntry, IdempotencyKey

from .flow_support import build_world, report_values


def test_a_key_is_claimed_once(store):
    assert idempotency.claim(store, "slack-event:Ev1")
    assert not idempotency.claim(store, "slack-event:Ev1")
    assert idempotency.seen(store, "slack-event:Ev1")


def test_concurrent_claims_have_exactly_one_winner(store):
    wins = []
    barrier = threading.Barrier(8)

    def go():
        barrier.wait()
        wins.append(idempotency.claim(store, "teams-click:1:acknowledge"))

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 7 + [True]


def test_long_keys_stay_distinct_and_fit_the_column(store):
    a, b = "x" * 300 + "a", "x" * 300 + "b"
    assert idempotency.claim(store, a) and idempotency.claim(store, b)
    assert not idempotency.claim(store, a) and idempotency.seen(store, b)
    with store.session() as s:
        assert all(len(k.key) <= idempotency.MAX for k in s.exec(select(IdempotencyKey)))


def _notes(store, concern_id):
    with store.session() as s:
        return len(list(s.exec(select(ChronologyEntry).where(ChronologyEntry.concern_id == concern_id,
                                                             ChronologyEntry.kind == "note"))))


def test_four_copies_of_ten_forms_at_once_apply_ten_times(store):
    w = build_world(store)
    cid = report.submit(store, w.teacher, report_values(w)).concern_id
    results = []
    barrier = threading.Barrier(40)

    def copy(form: int):
        barrier.wait()
        with idempotency.once(store, f"form:{form}") as o:
            if o.done:
                results.append(("repeat", o.result))
                return
            triage.add_entry(store, w.dsl, cid, "note", f"Note from form {form}")
            o.result = {"form": form}
            results.append(("first", o.result))

    threads = [threading.Thread(target=copy, args=(f,)) for f in range(10) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _notes(store, cid) == 10
    assert sorted(r[1]["form"] for r in results if r[0] == "first") == list(range(10))
    # every repeat is told what the first copy was told
    assert sorted(r[1]["form"] for r in results if r[0] == "repeat") == sorted(list(range(10)) * 3)


def test_a_change_that_fails_leaves_no_key_and_no_change(store):
    w = build_world(store)
    cid = report.submit(store, w.teacher, report_values(w)).concern_id
    with pytest.raises(RuntimeError):
        with idempotency.once(store, "form:x") as o:
            assert not o.done
            triage.add_entry(store, w.dsl, cid, "note", "Half a change")
            raise RuntimeError("the platform call after it failed")
    assert _notes(store, cid) == 0 and not idempotency.seen(store, "form:x")
    with idempotency.once(store, "form:x") as o:  # pressed again: it runs
        assert not o.done
        triage.add_entry(store, w.dsl, cid, "note", "The whole change")
    assert _notes(store, cid) == 1


def test_a_nested_session_joins_the_outer_transaction(store):
    w = build_world(store)
    cid = report.submit(store, w.teacher, report_values(w)).concern_id
    with pytest.raises(RuntimeError):
        with store.session():
            assert store.in_transaction()
            triage.add_entry(store, w.dsl, cid, "note", "Rolled back with the outer block")
            raise RuntimeError
    assert not store.in_transaction() and _notes(store, cid) == 0
