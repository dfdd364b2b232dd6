"""HttpHubClient against a real `cityos serve`: the same behaviour as the in-process HubClient.

One behaviour body runs against both clients, so a service's code is shown to work the same
in the hub's process and in its own.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from cityos.config import Settings
from cityos.hub.client import HubClient
from cityos.hub.core import Hub
from cityos.hub.errors import (
    AlreadyExists,
    BadRequestData,
    InvalidRequest,
    NgsiLdError,
    PayloadTooLarge,
    ResourceNotFound,
    UnsupportedMediaType,
)
from cityos.hub.remote import HttpHubClient, error_from_problem
from cityos.hub.store.sqlite import SqliteStore
from cityos.web.app import create_app

CTX = {"Bus": "https://example.org/Bus", "delay": "https://example.org/delay"}
BUS7, BUS8, BUS9 = (f"urn:ngsi-ld:Bus:{n}" for n in (7, 8, 9))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, serve_hub: Any) -> Iterator[str]:
    """A `cityos serve` process on a free port with its own SQLite database; its URL."""
    db = tmp_path_factory.mktemp("served") / "remote.db"
    env = {"CITYOS_DATABASE_URL": f"sqlite:///{db}", "CITYOS_NOTIFY_POLL_S": "0.05"}
    with serve_hub(env) as base:
        yield base


@pytest.fixture(params=["in-process", "http"])
def client(request: pytest.FixtureRequest, tmp_path) -> Iterator[Any]:
    """A HubClient on a fresh hub whose delivery worker runs, or an HttpHubClient on a
    served hub (with pages of 2, so that query pages)."""
    if request.param == "in-process":
        settings = Settings(notify_poll_s=0.05)
        hub = Hub(settings, store=SqliteStore(tmp_path / "c.db"))
        with TestClient(create_app(settings, hub)):  # runs the delivery worker
            yield HubClient(hub, context=CTX)
    else:
        with HttpHubClient(request.getfixturevalue("served"), context=CTX, page_size=2) as c:
            yield c


def bus(eid: str, **attrs: Any) -> dict[str, Any]:
    return {
        "id": eid,
        "type": "Bus",
        **{k: {"type": "Property", "value": v} for k, v in attrs.items()},
    }


def wait_until(done: Callable[[], bool], what: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_both_clients_behave_the_same(client: Any) -> None:
    client.create(bus(BUS7, delay=30))
    with pytest.raises(AlreadyExists):
        client.create(bus(BUS7, delay=30))
    with pytest.raises(BadRequestData):
        client.create({"id": "not a uri", "type": "Bus"})
    assert client.get(BUS7, fmt="keyValues") == {"id": BUS7, "type": "Bus", "delay": 30}
    assert client.get(BUS7)["delay"] == {"type": "Property", "value": 30}
    with pytest.raises(ResourceNotFound):
        client.get("urn:ngsi-ld:Bus:404")
    with pytest.raises(ResourceNotFound):
        client.update_attrs("urn:ngsi-ld:Bus:404", {"delay": {"type": "Property", "value": 1}})

    # upsert: the ids created; update keeps the other attributes, replace drops them
    assert client.upsert([bus(BUS8, delay=5), bus(BUS7, line="L1")], replace=False) == [BUS8]
    assert client.get(BUS7, fmt="keyValues") == {
        "id": BUS7,
        "type": "Bus",
        "delay": 30,
        "line": "L1",
    }
    assert client.upsert([bus(BUS7, delay=31), bus(BUS9, delay=90)]) == [BUS9]
    assert client.upsert([]) == []
    assert client.get(BUS7, fmt="keyValues") == {"id": BUS7, "type": "Bus", "delay": 31}

    # query: type, q, limit and offset (over HTTP in pages of 2)
    assert sorted(e["id"] for e in client.query(type="Bus", q="delay>10")) == [BUS7, BUS9]
    every = client.query(type="Bus", fmt="keyValues")
    assert sorted(e["id"] for e in every) == [BUS7, BUS8, BUS9]
    assert client.query(type="Bus", limit=3, fmt="keyValues") == every
    assert client.query(type="Bus", offset=1, fmt="keyValues") == every[1:]
    assert client.query(type="Bus", limit=1, offset=2, fmt="keyValues") == every[2:]
    assert client.query(q="delay==5", fmt="keyValues") == [{"id": BUS8, "type": "Bus", "delay": 5}]
    assert client.count(type="Bus") == 3
    assert client.count(type="Bus", q="delay>10") == 2
    assert client.count(type="Car") == 0
    # attrs: only the entities with one of them, only those attributes
    client.update_attrs(BUS8, {"line": {"type": "Property", "value": "L2"}})
    assert client.query(type="Bus", attrs=["line"], fmt="keyValues") == [
        {"id": BUS8, "type": "Bus", "line": "L2"}
    ]
    # another @context: the same entity with other terms
    plain = client.for_context(None)
    assert plain.get(BUS7, fmt="keyValues")["https://example.org/delay"] == 31
    assert plain.query(type="https://example.org/Bus", q="https://example.org/delay==5") != []

    # tenants are kept apart
    other = client.for_tenant("other")
    assert other.query(type="Bus") == []
    assert other.count(type="Bus") == 0
    with pytest.raises(ResourceNotFound):
        other.get(BUS7)
    other.create(bus(BUS7, delay=99))
    assert other.get(BUS7, fmt="keyValues")["delay"] == 99
    assert client.get(BUS7, fmt="keyValues")["delay"] == 31

    # a subscription's receiver is called with the notification; unsubscribe stops it
    got: list[dict[str, Any]] = []
    sid = client.subscribe(
        got.append, entity_type="Bus", watched_attributes=["delay"], q="delay>60", fmt="keyValues"
    )
    other.update_attrs(BUS7, {"delay": {"type": "Property", "value": 200}})  # another tenant
    client.update_attrs(BUS7, {"delay": {"type": "Property", "value": 120}})
    wait_until(lambda: bool(got), "no notification")
    assert got[0]["subscriptionId"] == sid
    assert got[0]["data"] == [{"id": BUS7, "type": "Bus", "delay": 120}]
    client.unsubscribe(sid)
    client.update_attrs(BUS7, {"delay": {"type": "Property", "value": 130}})
    time.sleep(1)
    assert len(got) == 1  # neither the other tenant's change nor one after unsubscribe
    with pytest.raises(ResourceNotFound):
        client.unsubscribe(sid)
    with pytest.raises(BadRequestData):
        client.subscribe(got.append, entity_type="Bus", q="delay>>1")
    with pytest.raises(ValueError):
        client.get(BUS7, fmt="flat")


def _public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(fn)
        for name, fn in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


def test_http_client_has_every_method_of_the_in_process_one() -> None:
    """A method added to one client and not the other fails here."""
    local, remote = _public_methods(HubClient), _public_methods(HttpHubClient)
    assert set(local) <= set(remote), f"HttpHubClient lacks {sorted(set(local) - set(remote))}"
    assert set(remote) - set(local) <= {"close"}, "HubClient lacks these"
    for name, sig in local.items():
        mine = remote[name]
        assert list(mine.parameters.values()) == list(sig.parameters.values()), name
        own = {"HttpHubClient": "HubClient"}.get(mine.return_annotation, mine.return_annotation)
        assert own == sig.return_annotation, name


def test_a_context_url_goes_in_a_link_header(served: str) -> None:
    """A hosted @context named by URL: bodies are plain JSON, reads GET /entities/{id}."""
    r = httpx.post(f"{served}/ngsi-ld/v1/jsonldContexts", json={"@context": CTX})
    assert r.status_code == 201
    url = served + r.headers["Location"]
    with HttpHubClient(served, context=url, tenant="linked") as c:
        c.create(bus(BUS7, delay=12))
        assert c.get(BUS7, fmt="keyValues") == {"id": BUS7, "type": "Bus", "delay": 12}
        assert [e["id"] for e in c.query(type="Bus", q="delay<20")] == [BUS7]
        with pytest.raises(ResourceNotFound):
            c.for_tenant("nobody").get(BUS7)
    # without the context the same entity reads with full IRIs
    with HttpHubClient(served, tenant="linked") as plain:
        assert plain.get(BUS7, fmt="keyValues")["https://example.org/delay"] == 12


def test_close_deletes_its_subscriptions_and_stops_the_endpoint(served: str) -> None:
    c = HttpHubClient(served, context=CTX, tenant="closing")
    sids = [
        c.subscribe(print, entity_type="Bus"),
        c.for_tenant("closing2").subscribe(print, entity_type="Bus"),
    ]
    endpoint = c._shared.endpoint
    assert endpoint is not None
    c.close()
    for tenant, sid in zip(["closing", "closing2"], sids, strict=True):
        r = httpx.get(f"{served}/ngsi-ld/v1/subscriptions/{sid}", headers={"NGSILD-Tenant": tenant})
        assert r.status_code == 404, r.text
    with pytest.raises(httpx.TransportError):
        httpx.post(f"http://127.0.0.1:{endpoint.port}/notify/x", json={}, timeout=1)


@pytest.mark.parametrize(
    ("status", "problem", "expected"),
    [
        (400, {"type": "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"}, BadRequestData),
        (413, {"type": "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"}, PayloadTooLarge),
        (409, {"type": "https://uri.etsi.org/ngsi-ld/errors/AlreadyExists"}, AlreadyExists),
        (400, {"type": "https://uri.etsi.org/ngsi-ld/errors/InvalidRequest"}, InvalidRequest),
        (415, {"type": "https://uri.etsi.org/ngsi-ld/errors/InvalidRequest"}, UnsupportedMediaType),
        (502, "Bad Gateway", NgsiLdError),
    ],
)
def test_problem_details_become_the_hubs_exceptions(status, problem, expected) -> None:
    err = error_from_problem(status, problem)
    assert type(err) is expected and err.status == status


def test_history_and_delete_behave_the_same(client: Any) -> None:
    """An attribute's past values, oldest first, in a window; a delete with history takes
    the past too (what retention and erasure need)."""
    eid = "urn:ngsi-ld:Bus:history-1"
    client.create(bus(eid))
    for minute, delay in ((1, 10), (2, 20), (3, 30), (4, 40)):
        at = f"2026-01-01T00:0{minute}:00Z"
        client.update_attrs(eid, {"delay": {"type": "Property", "value": delay, "observedAt": at}})
    points = client.history(eid, "delay")
    assert [v for _, v in points] == [10, 20, 30, 40]
    window = client.history(
        eid, "delay", after="2026-01-01T00:02:00Z", before="2026-01-01T00:04:00Z"
    )
    assert [v for _, v in window] == [20, 30]
    client.delete(eid, history=True)
    with pytest.raises(ResourceNotFound):
        client.get(eid)
    with pytest.raises(ResourceNotFound):
        client.history(eid, "delay")
