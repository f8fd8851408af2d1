"""Once-only keys, shared by the Slack and Teams transports."""

import threading

from storage import idempotency


def test_a_key_is_claimed_once_and_can_be_released(store):
    assert idempotency.claim(store, "slack-event:Ev1")
    assert not idempotency.claim(store, "slack-event:Ev1")
    assert idempotency.seen(store, "slack-event:Ev1")
    idempotency.release(store, "slack-event:Ev1")
    assert not idempotency.seen(store, "slack-event:Ev1") and idempotency.claim(store, "slack-event:Ev1")


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


def test_long_keys_are_cut_to_the_column_consistently(store):
    key = "x" * 500
    assert idempotency.claim(store, key) and not idempotency.claim(store, key) and idempotency.seen(store, key)
