"""Attribute provision edge cases as request/response pairs on both engines: a partial
update whose ld+json body carries its @context, and ``urn:ngsi-ld:null`` deletions."""

from __future__ import annotations

import json

BASE = "/ngsi-ld/v1"
CTX = {"speed": "https://ex.org/speed", "providedBy": "https://ex.org/providedBy"}
LD = {"Content-Type": "application/ld+json"}
JSON_CT = {"Content-Type": "application/json"}
NULL = "urn:ngsi-ld:null"


def _create(client) -> None:
    body = {
        "id": "urn:v:1",
        "type": "V",
        "speed": [
            {"type": "Property", "value": 1},
            {"type": "Property", "value": 2, "datasetId": "urn:ds:1"},
        ],
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [1, 2]}},
        "street": {"type": "LanguageProperty", "languageMap": {"fr": "rue", "en": "street"}},
        "@context": CTX,
    }
    assert client.post(f"{BASE}/entities", content=json.dumps(body), headers=LD).status_code == 201


def _entity(client) -> dict:
    r = client.get(f"{BASE}/entities/urn:v:1", headers={"Accept": "application/json"})
    assert r.status_code == 200
    return r.json()


def _patch(client, attr: str, body: dict):
    body = {**body, "@context": CTX}
    return client.patch(
        f"{BASE}/entities/urn:v:1/attrs/{attr}", content=json.dumps(body), headers=LD
    )


def test_partial_update_takes_the_bodys_context(client) -> None:
    _create(client)
    sub = {"type": "Relationship", "object": "urn:p:1"}
    r = _patch(
        client, "speed", {"value": 56, "datasetId": "urn:ds:1", "providedBy": sub, "@context": CTX}
    )
    assert r.status_code == 204, r.text
    speed = {i.get("datasetId"): i for i in _entity(client)["https://ex.org/speed"]}
    assert speed["urn:ds:1"]["value"] == 56
    assert speed["urn:ds:1"]["https://ex.org/providedBy"] == sub
    assert speed[None]["value"] == 1


def test_partial_update_404s(client) -> None:
    _create(client)
    assert (
        _patch(
            client, "speed", {"value": 3, "datasetId": "urn:ds:none", "@context": CTX}
        ).status_code
        == 404
    )
    assert _patch(client, "nothing", {"value": 3, "@context": CTX}).status_code == 404
    r = client.patch(
        f"{BASE}/entities/urn:v:none/attrs/speed",
        content=json.dumps({"value": 3, "@context": CTX}),
        headers=LD,
    )
    assert r.status_code == 404


def test_partial_update_with_null_deletes_the_instance(client) -> None:
    _create(client)
    assert _patch(client, "location", {"type": "GeoProperty", "value": NULL}).status_code == 204
    assert _patch(client, "street", {"languageMap": {"@none": NULL}}).status_code == 204
    r = _patch(client, "speed", {"value": NULL, "datasetId": "urn:ds:1", "@context": CTX})
    assert r.status_code == 204
    got = _entity(client)
    assert "location" not in got and "street" not in got
    assert got["https://ex.org/speed"] == {"type": "Property", "value": 1}


def test_update_attrs_with_null_geoproperty_and_language_map(client) -> None:
    _create(client)
    body = {
        "location": {"type": "GeoProperty", "value": NULL},
        "street": {"type": "LanguageProperty", "languageMap": {"@none": NULL}},
    }
    r = client.patch(
        f"{BASE}/entities/urn:v:1/attrs",
        content=json.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 204, r.text
    got = _entity(client)
    assert "location" not in got and "street" not in got


def test_merge_with_null_geoproperty_deletes_it(client) -> None:
    _create(client)
    body = {"location": {"type": "GeoProperty", "value": NULL}}
    r = client.patch(
        f"{BASE}/entities/urn:v:1",
        content=json.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 204, r.text
    assert "location" not in _entity(client)


def _scoped(client, scope) -> None:
    body = {"id": "urn:s:1", "type": "Building"}
    if scope:
        body["scope"] = scope
    r = client.post(f"{BASE}/entities", content=json.dumps(body), headers=JSON_CT)
    assert r.status_code == 201


def _get_plain(client, eid: str) -> dict:
    return client.get(f"{BASE}/entities/{eid}").json()


def _send(client, method: str, path: str, body: dict):
    return client.request(method, f"{BASE}{path}", content=json.dumps(body), headers=JSON_CT)


def test_append_scope_overwrites_or_adds(client) -> None:
    _scoped(client, "/Paris")
    assert _send(client, "POST", "/entities/urn:s:1/attrs", {"scope": "/Lyon"}).status_code == 204
    assert _get_plain(client, "urn:s:1")["scope"] == "/Lyon"
    r = client.post(
        f"{BASE}/entities/urn:s:1/attrs",
        params={"options": "noOverwrite"},
        content=json.dumps({"scope": "/Nice"}),
        headers=JSON_CT,
    )
    assert r.status_code == 204
    assert _get_plain(client, "urn:s:1")["scope"] == ["/Lyon", "/Nice"]


def test_update_scope_only_where_there_is_one(client) -> None:
    _scoped(client, None)
    r = _send(client, "PATCH", "/entities/urn:s:1/attrs", {"scope": "/Lyon"})
    assert r.status_code == 207
    assert r.json()["notUpdated"][0]["attributeName"] == "scope"
    assert "scope" not in _get_plain(client, "urn:s:1")
    assert client.delete(f"{BASE}/entities/urn:s:1/attrs/scope").status_code == 404
    _send(client, "POST", "/entities/urn:s:1/attrs", {"scope": "/Paris"})
    assert _send(client, "PATCH", "/entities/urn:s:1/attrs", {"scope": "/Lyon"}).status_code == 204
    assert _get_plain(client, "urn:s:1")["scope"] == "/Lyon"
    assert client.delete(f"{BASE}/entities/urn:s:1/attrs/scope").status_code == 204
    assert "scope" not in _get_plain(client, "urn:s:1")


def test_update_attrs_adds_types_and_put_scope_is_400(client) -> None:
    _scoped(client, "/Paris")
    r = _send(client, "PATCH", "/entities/urn:s:1/attrs", {"type": ["Vehicle", "Building"]})
    assert r.status_code == 204
    assert _get_plain(client, "urn:s:1")["type"] == ["Building", "Vehicle"]
    r = _send(client, "PUT", "/entities/urn:s:1/attrs/scope", {"scope": "/x"})
    assert r.status_code == 400
    assert _get_plain(client, "urn:s:1")["scope"] == "/Paris"


def test_batch_update_no_overwrite_reports_kept_attributes_and_adds_types(client) -> None:
    _scoped(client, None)
    _send(client, "POST", "/entities/urn:s:1/attrs", {"name": {"type": "Property", "value": "a"}})
    batch = [
        {
            "id": "urn:s:1",
            "type": "Vehicle",
            "name": {"type": "Property", "value": "b"},
            "size": {"type": "Property", "value": 3},
        }
    ]
    r = client.post(
        f"{BASE}/entityOperations/update",
        params={"options": "noOverwrite"},
        content=json.dumps(batch),
        headers=JSON_CT,
    )
    assert r.status_code == 207, r.text
    assert r.json()["errors"][0]["entityId"] == "urn:s:1"
    got = _get_plain(client, "urn:s:1")
    assert got["type"] == ["Building", "Vehicle"]
    assert got["name"]["value"] == "a" and got["size"]["value"] == 3
    batch[0].pop("name")
    r = _send(client, "POST", "/entityOperations/update", batch)
    assert r.status_code == 204, r.text
