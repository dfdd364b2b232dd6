"""The hub's access check (cityos.hub.access): defined by the hub, allow-all by default,
implemented by security, and asked in every write transaction whatever service was built."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cityos.hub import access
from cityos.hub.entities import EntityService
from cityos.hub.errors import BadRequestData, Forbidden
from cityos.hub.store import open_store
from cityos.hub.store.base import Store

EX = "https://example.org/"


def entity(n: int, **attrs: float) -> dict:
    return {
        "id": f"urn:ngsi-ld:Sensor:{n}",
        "type": [EX + "Sensor"],
        "attrs": {EX + k: [{"type": "Property", "value": v}] for k, v in attrs.items()},
    }


class Refuse(access.Access):
    """Refuses every write; records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str | None, str | None]] = []

    def check_write(self, old, new) -> None:
        self.asked.append(((old or {}).get("id"), (new or {}).get("id")))
        raise Forbidden("not allowed")


@pytest.fixture
def store(tmp_path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def refuse() -> Iterator[Refuse]:
    checker = Refuse()
    previous = access.install(checker)
    yield checker
    access.install(previous)


def test_the_default_allows_everything() -> None:
    allow = access.Access()
    e = entity(1, speed=3)
    assert allow.visible(e) is e
    assert allow.visible_all([e]) == [e]
    assert allow.readable_attrs([EX + "Sensor"]) is None
    assert allow.listed(EX + "Sensor", EX + "speed")
    assert allow.raw_history_allowed(e)
    assert allow.check_write(None, e) is None
    assert allow.may_manage_subscription({"id": "s"})
    assert allow.subscription_owner() is None
    assert allow.subscription_for_caller({"id": "s", access.OWNER_KEY: {"subject": "x"}}) == {
        "id": "s"
    }


@pytest.mark.parametrize("with_subscriptions", [False, True])
def test_every_write_path_asks_the_access_check(store, refuse, with_subscriptions) -> None:
    if with_subscriptions:
        from cityos.hub.ldcontext import ContextResolver
        from cityos.hub.subscriptions import SubscriptionIndex

        index = SubscriptionIndex(store, ContextResolver(load=lambda url: None))
        svc = EntityService(store, index)
    else:
        svc = EntityService(store)  # no subscription index: the path that skipped the check
    with pytest.raises(Forbidden):
        svc.create("", entity(1, speed=3))
    assert refuse.asked == [(None, "urn:ngsi-ld:Sensor:1")]
    assert store.get_entity("", "urn:ngsi-ld:Sensor:1") is None  # nothing written
    with pytest.raises(Forbidden):  # a refusal aborts the whole batch
        svc.batch_create("", [entity(2, speed=1), entity(3, speed=1)])
    assert store.get_entity("", "urn:ngsi-ld:Sensor:2") is None


def test_changes_and_deletes_are_asked_too(store) -> None:
    svc = EntityService(store)
    svc.create("", entity(1, speed=3))
    checker = Refuse()
    previous = access.install(checker)
    try:
        with pytest.raises(Forbidden):
            svc.merge("", "urn:ngsi-ld:Sensor:1", {"attrs": entity(1, speed=9)["attrs"]})
        with pytest.raises(Forbidden):
            svc.delete("", "urn:ngsi-ld:Sensor:1")
    finally:
        access.install(previous)
    kept = store.get_entity("", "urn:ngsi-ld:Sensor:1")
    assert kept is not None and kept["attrs"][EX + "speed"][0]["value"] == 3
    assert checker.asked == [
        ("urn:ngsi-ld:Sensor:1", "urn:ngsi-ld:Sensor:1"),
        ("urn:ngsi-ld:Sensor:1", None),
    ]


def test_the_attribute_limit_holds_without_a_subscription_index(store) -> None:
    svc = EntityService(store, max_attributes=2)
    with pytest.raises(BadRequestData):
        svc.create("", entity(1, a=1, b=2, c=3))
    assert store.get_entity("", "urn:ngsi-ld:Sensor:1") is None


def test_security_installs_its_rules_when_a_caller_is_set() -> None:
    from cityos.security import scope

    previous = access.install(None)
    token = scope.as_caller(object(), "", object())  # type: ignore[arg-type]
    try:
        assert access.current() is scope.SCOPE
    finally:
        scope.CALLER.reset(token)
        access.install(previous)
