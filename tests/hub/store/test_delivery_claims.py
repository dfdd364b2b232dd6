"""Delivery claims on both engines: several workers split the outbox, each subscription has
one sender at a time, a dead worker's claims lapse, and retries hold back newer notifications."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from cityos.hub.store.base import Store

T0, T1, T2, T3 = (f"2026-01-01T00:00:0{s}.000000Z" for s in range(4))


@pytest.fixture
def second(store: Store, tmp_path) -> Iterator[Store]:
    """Another worker's connection to the same database."""
    if store.engine == "sqlite":
        from cityos.hub.store.sqlite import SqliteStore

        other: Store = SqliteStore(tmp_path / "city.db")
    else:
        from cityos.hub.store.postgres import PostgresStore

        other = PostgresStore(store.url, schema=store.schema)  # type: ignore[attr-defined]
    yield other
    other.close()


def queue(store: Store, sub_id: str, n: int, at: str = T0) -> None:
    with store.transaction("") as tx:
        tx.add_notifications([(sub_id, {"n": i, "sub": sub_id}) for i in range(n)], at)


def test_one_owner_per_subscription_until_released(store, second) -> None:
    queue(store, "urn:s:a", 2)
    queue(store, "urn:s:b", 1)
    mine = store.claim_deliveries("w1", T1, T3)
    assert [(n.subscription_id, n.payload["n"]) for n in mine.notifications] == [
        ("urn:s:a", 0),
        ("urn:s:a", 1),
        ("urn:s:b", 0),
    ]
    assert second.claim_deliveries("w2", T1, T3).notifications == []  # held by w1
    store.release_deliveries("w1")
    assert len(second.claim_deliveries("w2", T1, T3).notifications) == 3


def test_a_dead_workers_claim_lapses(store, second) -> None:
    queue(store, "urn:s:a", 1)
    assert len(store.claim_deliveries("w1", T1, T2).notifications) == 1  # then w1 dies
    assert second.claim_deliveries("w2", T1, T3).notifications == []
    assert len(second.claim_deliveries("w2", T2, T3).notifications) == 1  # at T2 it lapsed


def test_a_retry_holds_back_newer_notifications_of_its_subscription(store) -> None:
    queue(store, "urn:s:a", 3)
    queue(store, "urn:s:b", 1)
    first = store.claim_deliveries("w1", T1, T3).notifications[0]
    store.finish_notification(first.id, delivered=False, next_at=T2)  # retry at T2
    later = store.claim_deliveries("w1", T1, T3).notifications
    assert [n.subscription_id for n in later] == ["urn:s:b"]  # a's 2nd and 3rd wait
    at_t2 = store.claim_deliveries("w1", T2, T3).notifications
    assert [(n.subscription_id, n.payload["n"]) for n in at_t2][:3] == [
        ("urn:s:a", 0),
        ("urn:s:a", 1),
        ("urn:s:a", 2),
    ]


def test_periodic_subscriptions_fall_due_and_are_rescheduled(store) -> None:
    sub = {"id": "urn:s:p", "type": "Subscription", "timeInterval": 60, "isActive": True}
    store.put_subscription("", sub)
    claimed = store.claim_deliveries("w1", "2999-01-01T00:00:00.000000Z", "2999-01-01T00:01:00Z")
    assert claimed.periodic == [("", "urn:s:p")]
    store.add_periodic_notification("", "urn:s:p", {"n": 0}, T0, "2999-01-01T00:00:30.000000Z")
    again = store.claim_deliveries("w1", "2999-01-01T00:00:01.000000Z", "2999-01-01T00:01:00Z")
    assert again.periodic == [] and [n.payload for n in again.notifications] == [{"n": 0}]
    store.put_subscription("", {**sub, "isActive": False})  # paused: no schedule
    late = store.claim_deliveries("w1", "2999-12-31T00:00:00.000000Z", "2999-12-31T00:01:00Z")
    assert late.periodic == []


def test_version_moves_with_subscriptions_not_with_their_status(store) -> None:
    v0 = store.subscriptions_version()
    store.put_subscription("", {"id": "urn:s:v", "type": "Subscription"})
    v1 = store.subscriptions_version()
    store.put_subscription_status("", "urn:s:v", {"timesSent": 3})
    assert store.subscriptions_version() == v1 > v0
    assert store.get_subscription("", "urn:s:v")["timesSent"] == 3
    store.delete_subscription("", "urn:s:v")
    assert store.subscriptions_version() > v1
    with store.transaction("") as tx:
        assert tx.subscriptions_version() == store.subscriptions_version()


def test_two_racing_workers_send_each_notification_once(store, second) -> None:
    for k in range(20):
        queue(store, f"urn:s:{k}", 5)
    sent: dict[str, list[tuple[str, int]]] = {"w1": [], "w2": []}

    def work(s: Store, owner: str) -> None:
        for _ in range(200):
            claimed = s.claim_deliveries(owner, T1, T3, 7)
            for n in claimed.notifications:
                sent[owner].append((n.subscription_id, n.payload["n"]))
                s.finish_notification(n.id, delivered=True, next_at=None)
            s.release_deliveries(owner)
            if not claimed.notifications and len(sent["w1"]) + len(sent["w2"]) >= 100:
                return

    threads = [
        threading.Thread(target=work, args=(store, "w1")),
        threading.Thread(target=work, args=(second, "w2")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    everything = sent["w1"] + sent["w2"]
    assert sorted(everything) == sorted((f"urn:s:{k}", i) for k in range(20) for i in range(5))
    for owner in sent:  # each subscription's notifications in order, whoever sent them
        by_sub: dict[str, list[int]] = {}
        for sid, i in sent[owner]:
            by_sub.setdefault(sid, []).append(i)
        assert all(v == sorted(v) for v in by_sub.values())
