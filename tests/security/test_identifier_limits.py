"""Limits on identifiers (docs/api.md, "Limits"; issue 11, item 4), on both engines.

Ids and URIs hold at most 1,024 bytes of UTF-8, type and attribute names at most 1,024
bytes after expansion to IRIs. Longer ones were stored by SQLite (and a 100 kB id came back
in a ``Location`` header no client reads) and were a 500 on PostgreSQL (a btree index row
holds at most 2,704 bytes), failing a whole batch. Now each is a 400 ``BadRequestData``
naming the limit, the same on both engines, nothing is written, and a batch reports the one
entity in its errors and processes the others. The values are random letters and digits:
PostgreSQL compresses index rows, so a repeated character would hide the old failure.
"""

from __future__ import annotations

import random
import string
from typing import Any
from urllib.parse import unquote

import pytest
from starlette.testclient import TestClient

from cityos.hub.model import MAX_ID_BYTES, MAX_NAME_BYTES

BASE = "/ngsi-ld/v1"
BAD = "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"
SERVICE = {"fiware-service": "limits"}
_rng = random.Random(11)


def _random(n: int) -> str:
    return "".join(_rng.choices(string.ascii_letters + string.digits, k=n))


def sized(prefix: str, size: int, *, wide: bool = False) -> str:
    """``prefix`` and random text, ``size`` bytes of UTF-8 in all; ``wide`` makes most of it
    two-byte characters, so the length in characters is well under the length in bytes."""
    rest = size - len(prefix.encode())
    if not wide:
        return prefix + _random(rest)
    text = "".join(_rng.choices("éøßñçáĥŝ", k=rest // 2)) + _random(rest % 2)
    value = prefix + text
    assert len(value.encode()) == size
    return value


def eid(size: int, **kw: Any) -> str:
    return sized("urn:ngsi-ld:T:", size, **kw)


def iri(size: int) -> str:
    """An absolute IRI: a type or attribute name that expands to itself."""
    return sized("https://example.org/", size)


@pytest.fixture
def client(secured) -> TestClient:
    """An HTTP client on a fresh hub (authentication off), once per storage engine."""
    return secured(auth_required=False).client


def refused(r: Any, limit: int = 1024) -> None:
    """A 400 BadRequestData problem whose detail names the limit in bytes."""
    assert r.status_code == 400, r.text[:300]
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["type"] == BAD
    assert f"the limit is {limit:,} bytes" in problem["detail"], problem["detail"]
    assert len(problem["detail"]) < 400  # names the start of the id, never all of it


def count(client: TestClient, entity_type: str = "T") -> int:
    r = client.get(f"{BASE}/entities", params={"type": entity_type, "count": "true", "limit": 0})
    assert r.status_code == 200, r.text
    return int(r.headers["NGSILD-Results-Count"])


def test_the_limits_are_1024_bytes() -> None:
    assert MAX_ID_BYTES == 1024 and MAX_NAME_BYTES == 1024


# ----------------------------------------------------------------------------- entity ids


@pytest.mark.parametrize("wide", [False, True], ids=["ascii", "two-byte"])
def test_entity_id_at_the_limit_is_stored_and_read_back(client: TestClient, wide: bool) -> None:
    entity_id = eid(MAX_ID_BYTES, wide=wide)
    r = client.post(f"{BASE}/entities", json={"id": entity_id, "type": "T"})
    assert r.status_code == 201, r.text[:300]
    location = r.headers["location"]
    assert location.isascii() and len(location) < 8 * 1024  # what clients read
    assert unquote(location) == f"{BASE}/entities/{entity_id}"
    r = client.get(location)
    assert r.status_code == 200 and r.json()["id"] == entity_id


@pytest.mark.parametrize("wide", [False, True], ids=["ascii", "two-byte"])
def test_entity_id_over_the_limit_is_refused_and_nothing_is_written(
    client: TestClient, wide: bool
) -> None:
    entity_id = eid(MAX_ID_BYTES + 1, wide=wide)
    if wide:
        assert len(entity_id) < MAX_ID_BYTES  # bytes count, not characters
    for method, path, body in [
        ("POST", "/entities", {"id": entity_id, "type": "T"}),
        ("POST", "/temporal/entities", {"id": entity_id, "type": "T", "v": 1}),
    ]:
        refused(client.request(method, BASE + path, json=body))
    assert count(client) == 0


def test_a_100_kb_id_is_refused_the_same_way(client: TestClient) -> None:
    r = client.post(f"{BASE}/entities", json={"id": eid(100_000), "type": "T"})
    refused(r)
    assert "location" not in r.headers
    assert count(client) == 0


# ------------------------------------------------------------------ types and attribute names


def test_type_and_attribute_name_at_the_limit_with_an_id_at_the_limit(client: TestClient) -> None:
    """The widest index row there is: history(tenant, entity id, attribute, seq)."""
    entity_id, entity_type, attr = eid(MAX_ID_BYTES), iri(MAX_NAME_BYTES), iri(MAX_NAME_BYTES)
    at = "2026-11-30T01:00:00Z"
    body = {"id": entity_id, "type": entity_type, attr: {"value": 1, "observedAt": at}}
    headers = {"NGSILD-Tenant": sized("t", 64)}
    r = client.post(f"{BASE}/entities", json=body, headers=headers)
    assert r.status_code == 201, r.text[:300]
    r = client.patch(
        f"{BASE}/entities/{entity_id}/attrs",
        json={attr: {"value": 2, "observedAt": at}},
        headers=headers,
    )
    assert r.status_code == 204, r.text[:300]
    r = client.get(f"{BASE}/temporal/entities/{entity_id}", params={"attrs": attr}, headers=headers)
    assert r.status_code == 200, r.text[:300]
    assert [i["value"] for i in r.json()[attr]] == [1, 2]
    r = client.get(f"{BASE}/entities", params={"type": entity_type}, headers=headers)
    assert [e["id"] for e in r.json()] == [entity_id]


def test_type_over_the_limit_is_refused(client: TestClient) -> None:
    refused(client.post(f"{BASE}/entities", json={"id": eid(40), "type": iri(MAX_NAME_BYTES + 1)}))
    assert client.get(f"{BASE}/types").json()["typeList"] == []


def test_a_short_term_that_expands_over_the_limit_is_refused(client: TestClient) -> None:
    """The limit holds for the stored IRI: @vocab makes a 1,000-byte term longer."""
    term = _random(1000)
    assert len(term) <= MAX_NAME_BYTES
    refused(client.post(f"{BASE}/entities", json={"id": eid(40), "type": term}))
    refused(client.post(f"{BASE}/entities", json={"id": eid(40), "type": "T", term: 1}))
    assert count(client) == 0


def test_attribute_name_over_the_limit_is_refused_on_every_write(client: TestClient) -> None:
    entity_id = eid(40)
    assert client.post(f"{BASE}/entities", json={"id": entity_id, "type": "T"}).status_code == 201
    long_attr = iri(MAX_NAME_BYTES + 1)
    refused(client.post(f"{BASE}/entities", json={"id": eid(41), "type": "T", long_attr: 1}))
    refused(client.post(f"{BASE}/entities/{entity_id}/attrs", json={long_attr: 1}))
    refused(client.patch(f"{BASE}/entities/{entity_id}", json={long_attr: 1}))
    sub_attr = {"type": "Property", "value": 1, long_attr: {"value": 2}}
    refused(client.post(f"{BASE}/entities/{entity_id}/attrs", json={"v": sub_attr}))
    refused(client.put(f"{BASE}/entities/{entity_id}/attrs/{_random(2000)}", json={"value": 1}))
    assert client.get(f"{BASE}/entities/{entity_id}").json() == {"id": entity_id, "type": "T"}


def test_datasetid_and_relationship_objects_over_the_limit_are_refused(
    client: TestClient,
) -> None:
    for attr in (
        {"type": "Property", "value": 1, "datasetId": eid(MAX_ID_BYTES + 1)},
        {"type": "Relationship", "object": eid(MAX_ID_BYTES + 1)},
        {"type": "ListRelationship", "objectList": [eid(MAX_ID_BYTES + 1)]},
    ):
        refused(client.post(f"{BASE}/entities", json={"id": eid(40), "type": "T", "a": attr}))
    attr = {"type": "Relationship", "object": eid(MAX_ID_BYTES), "datasetId": eid(MAX_ID_BYTES)}
    r = client.post(f"{BASE}/entities", json={"id": eid(40), "type": "T", "a": attr})
    assert r.status_code == 201, r.text[:300]


# ------------------------------------------------------------------------------ batches

BATCH_OPS = ["create", "upsert", "update", "delete"]


@pytest.mark.parametrize("op", BATCH_OPS)
def test_a_batch_reports_the_one_oversized_id_and_processes_the_others(
    client: TestClient, op: str
) -> None:
    good = [eid(MAX_ID_BYTES), eid(40), eid(60)]
    bad = eid(MAX_ID_BYTES + 1)
    if op in ("update", "delete"):
        seed = [{"id": i, "type": "T", "v": 0} for i in good]
        assert client.post(f"{BASE}/entityOperations/create", json=seed).status_code == 201
    items: list[Any] = [{"id": i, "type": "T", "v": 1} for i in good]
    items.insert(1, {"id": bad, "type": "T", "v": 1})
    if op == "delete":
        items = [i["id"] for i in items]
    r = client.post(f"{BASE}/entityOperations/{op}", json=items)
    assert r.status_code == 207, r.text[:300]
    result = r.json()
    assert [e["entityId"] for e in result["errors"]] == [bad]
    problem = result["errors"][0]["error"]
    assert problem["type"] == BAD and problem["status"] == 400
    assert "the limit is 1,024 bytes" in problem["detail"]
    if op in ("create", "upsert"):
        assert sorted(result["success"]) == sorted(good)
    stored = {i: client.get(f"{BASE}/entities/{i}", params={"options": "keyValues"}) for i in good}
    if op == "delete":
        assert {i: r.status_code for i, r in stored.items()} == dict.fromkeys(good, 404)
    else:
        assert {i: r.json()["v"] for i, r in stored.items()} == dict.fromkeys(good, 1)
    assert client.get(f"{BASE}/entities/{bad[:MAX_ID_BYTES]}").status_code == 404


def test_a_batch_query_with_an_oversized_selector_is_refused(client: TestClient) -> None:
    query = {"type": "Query", "entities": [{"id": eid(MAX_ID_BYTES + 1), "type": "T"}]}
    refused(client.post(f"{BASE}/entityOperations/query", json=query))
    query = {"type": "Query", "entities": [{"type": iri(MAX_NAME_BYTES + 1)}]}
    refused(client.post(f"{BASE}/entityOperations/query", json=query))
    query = {"type": "Query", "entities": [{"type": "T"}], "attrs": [iri(MAX_NAME_BYTES + 1)]}
    refused(client.post(f"{BASE}/entityOperations/query", json=query))


# ---------------------------------------------------------------------------- subscriptions


def subscription(sid: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": sid,
        "type": "Subscription",
        "entities": [{"type": "T"}],
        "isActive": False,
        "notification": {"endpoint": {"uri": "http://127.0.0.1:9/notify"}},
        **extra,
    }


def test_subscription_ids_at_and_over_the_limit(client: TestClient) -> None:
    at = sized("urn:ngsi-ld:Subscription:", MAX_ID_BYTES)
    r = client.post(f"{BASE}/subscriptions", json=subscription(at))
    assert r.status_code == 201, r.text[:300]
    assert client.get(f"{BASE}/subscriptions/{at}").json()["id"] == at
    over = sized("urn:ngsi-ld:Subscription:", MAX_ID_BYTES + 1)
    refused(client.post(f"{BASE}/subscriptions", json=subscription(over)))
    selector = [{"type": "T", "id": eid(MAX_ID_BYTES + 1)}]
    refused(client.post(f"{BASE}/subscriptions", json=subscription(eid(50), entities=selector)))
    assert [s["id"] for s in client.get(f"{BASE}/subscriptions").json()] == [at]


# ---------------------------------------------------------------------------------- devices


def test_device_and_service_group_ids_at_and_over_the_limit(client: TestClient) -> None:
    group = {"apikey": sized("k", MAX_ID_BYTES), "entity_type": "AirQualityObserved"}
    r = client.post("/iot/services", json={"services": [group]}, headers=SERVICE)
    assert r.status_code == 201, r.text[:300]
    over_group = {**group, "apikey": sized("k", MAX_ID_BYTES + 1)}
    refused(client.post("/iot/services", json={"services": [over_group]}, headers=SERVICE))
    device_id = sized("d", MAX_ID_BYTES)
    device = {"device_id": device_id, "entity_name": eid(200), "entity_type": "T"}
    r = client.post("/iot/devices", json={"devices": [device]}, headers=SERVICE)
    assert r.status_code == 201, r.text[:300]
    assert client.get(f"/iot/devices/{device_id}", headers=SERVICE).status_code == 200
    for bad in (
        {**device, "device_id": sized("d", MAX_ID_BYTES + 1)},
        {**device, "device_id": "d2", "entity_name": eid(MAX_ID_BYTES + 1)},
        {**device, "device_id": "d3", "entity_type": iri(MAX_NAME_BYTES + 1)},
    ):
        refused(client.post("/iot/devices", json={"devices": [bad]}, headers=SERVICE))
    assert client.get("/iot/devices", headers=SERVICE).json()["count"] == 1
    assert client.get("/iot/services", headers=SERVICE).json()["count"] == 1
    refused(client.get(f"/iot/devices/{sized('d', MAX_ID_BYTES + 1)}", headers=SERVICE))


# ------------------------------------------------------------------ path and query parameters

PATHS = [
    "/entities/{id}",
    "/entities/{id}/attrs/v",
    "/temporal/entities/{id}",
    "/subscriptions/{id}",
    "/types/{name}",
    "/attributes/{name}",
]


@pytest.mark.parametrize("path", PATHS)
def test_path_parameters_over_the_limit_are_400_at_the_limit_404(
    client: TestClient, path: str
) -> None:
    at = path.format(id=eid(MAX_ID_BYTES), name=_random(MAX_NAME_BYTES))
    over = path.format(id=eid(MAX_ID_BYTES + 1), name=_random(MAX_NAME_BYTES + 1))
    method = "DELETE" if path.endswith("/v") else "GET"
    assert client.request(method, BASE + at).status_code == 404
    refused(client.request(method, BASE + over))


@pytest.mark.parametrize(
    ("name", "over", "at"),
    [
        ("id", eid(MAX_ID_BYTES + 1), eid(MAX_ID_BYTES)),
        ("type", iri(MAX_NAME_BYTES + 1), iri(MAX_NAME_BYTES)),
        ("attrs", iri(MAX_NAME_BYTES + 1), iri(MAX_NAME_BYTES)),
    ],
)
def test_query_parameters_over_the_limit_are_400(
    client: TestClient, name: str, over: str, at: str
) -> None:
    for path in ("/entities", "/temporal/entities"):
        r = client.get(BASE + path, params={"type": "T", name: at})
        assert r.status_code == 200 and r.json() == [], r.text[:300]
        refused(client.get(BASE + path, params={"type": "T", name: over}))
