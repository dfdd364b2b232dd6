"""DELETE /entities (purge, clause 5.6.21) as request/response pairs on both engines."""

from __future__ import annotations

import json

BASE = "/ngsi-ld/v1"
JSON_CT = {"Content-Type": "application/json"}


def _make(client, eid: str, etype: str, **attrs) -> None:
    body = {"id": eid, "type": etype, **attrs}
    r = client.post(f"{BASE}/entities", content=json.dumps(body), headers=JSON_CT)
    assert r.status_code == 201


def _prop(value) -> dict:
    return {"type": "Property", "value": value}


def _ids(client) -> list[str]:
    r = client.get(f"{BASE}/entities", params={"local": "true", "limit": "100"})
    return sorted(e["id"] for e in r.json())


def _seed(client) -> None:
    _make(client, "urn:b:1", "Building", name=_prop("Eiffel"), height=_prop(300))
    _make(client, "urn:b:2", "Building", name=_prop("Pisa"), height=_prop(56))
    _make(client, "urn:v:1", "Vehicle", name=_prop("Car"))


def test_purge_by_type_and_by_q(client) -> None:
    _seed(client)
    assert client.delete(f"{BASE}/entities", params={"q": 'name=="Eiffel"'}).status_code == 204
    assert _ids(client) == ["urn:b:2", "urn:v:1"]
    assert client.delete(f"{BASE}/entities", params={"type": "Building"}).status_code == 204
    assert _ids(client) == ["urn:v:1"]
    r = client.delete(f"{BASE}/entities", params={"id": "urn:v:1", "type": "Building"})
    assert r.status_code == 204 and _ids(client) == ["urn:v:1"]  # both must match
    assert client.delete(f"{BASE}/entities", params={"local": "true"}).status_code == 204
    assert _ids(client) == []


def test_purge_keep_or_drop_attributes(client) -> None:
    _seed(client)
    r = client.delete(f"{BASE}/entities", params={"type": "Building", "drop": "height"})
    assert r.status_code == 204
    b1 = client.get(f"{BASE}/entities/urn:b:1").json()
    assert "height" not in b1 and b1["name"]["value"] == "Eiffel"
    r = client.delete(f"{BASE}/entities", params={"id": "urn:v:1", "keep": "height"})
    assert r.status_code == 204
    assert client.get(f"{BASE}/entities/urn:v:1").json() == {"id": "urn:v:1", "type": "Vehicle"}
    assert _ids(client) == ["urn:b:1", "urn:b:2", "urn:v:1"]


def test_purge_needs_a_filter_and_not_both_keep_and_drop(client) -> None:
    _seed(client)
    for params in ({}, {"type": "Building", "keep": "name", "drop": "height"}):
        r = client.delete(f"{BASE}/entities", params=params)
        assert r.status_code == 400 and r.json()["type"].endswith("BadRequestData")
    assert _ids(client) == ["urn:b:1", "urn:b:2", "urn:v:1"]
