"""Request/response pairs for /entities and its attributes, errors included (both engines)."""

from __future__ import annotations

import json

import pytest

BASE = "/ngsi-ld/v1"
CTX = {
    "speed": "https://example.org/speed",
    "Sensor": "https://example.org/Sensor",
    "name": "https://example.org/name",
}
LD = {"Content-Type": "application/ld+json"}


def sensor(n: int, speed: float = 30, lon: float = 104.92, lat: float = 11.57) -> dict:
    return {
        "id": f"urn:ngsi-ld:Sensor:{n}",
        "type": "Sensor",
        "speed": {
            "type": "Property",
            "value": speed,
            "unitCode": "KMH",
            "observedAt": "2026-11-28T10:00:00Z",
        },
        "name": {"type": "Property", "value": f"sensor {n}"},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}},
        "@context": CTX,
    }


def create(client, body: dict, **kw):
    return client.post(f"{BASE}/entities", content=json.dumps(body), headers=LD, **kw)


def get(client, eid: str, params=None, headers=None):
    h = {"Accept": "application/ld+json"}
    h.update(headers or {})
    return client.get(f"{BASE}/entities/{eid}", params=params, headers=h)


def problem_type(resp) -> str:
    assert resp.headers["content-type"].startswith("application/problem+json"), resp.text
    return resp.json()["type"].rsplit("/", 1)[-1]


def test_create_then_retrieve_normalized(client) -> None:
    r = create(client, sensor(1))
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"{BASE}/entities/urn:ngsi-ld:Sensor:1"
    # no context on the way out: terms come back as full IRIs except the core ones
    r = client.get(f"{BASE}/entities/urn:ngsi-ld:Sensor:1")
    assert r.status_code == 200
    body = r.json()
    assert body["type"] == "https://example.org/Sensor"
    assert body["https://example.org/speed"]["value"] == 30
    assert body["location"]["value"]["coordinates"] == [104.92, 11.57]
    assert "Link" in r.headers or "link" in r.headers


def test_retrieve_with_context_in_ld_json(client) -> None:
    create(client, sensor(1))
    ctx_body = {"@context": CTX}
    # host the context so the client can refer to it by URL in a Link header
    r = client.post(f"{BASE}/jsonldContexts", content=json.dumps(ctx_body), headers=LD)
    assert r.status_code == 201
    url = "http://127.0.0.1:1026" + r.headers["location"]
    link = f'<{url}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
    r = client.get(f"{BASE}/entities/urn:ngsi-ld:Sensor:1", headers={"Link": link})
    assert r.status_code == 200
    body = r.json()
    assert body["type"] == "Sensor" and body["speed"]["value"] == 30
    assert body["speed"]["unitCode"] == "KMH"
    assert body["speed"]["observedAt"] == "2026-11-28T10:00:00Z"
    assert url in r.headers["link"]


def test_retrieve_options(client) -> None:
    create(client, sensor(1))
    link = None
    r = client.get(f"{BASE}/entities/urn:ngsi-ld:Sensor:1", params={"options": "keyValues"})
    kv = r.json()
    assert kv["https://example.org/speed"] == 30
    assert kv["location"] == {"type": "Point", "coordinates": [104.92, 11.57]}
    r = client.get(f"{BASE}/entities/urn:ngsi-ld:Sensor:1", params={"options": "sysAttrs"})
    body = r.json()
    assert body["createdAt"].endswith("Z") and "modifiedAt" in body["https://example.org/speed"]
    r = client.get(f"{BASE}/entities/urn:ngsi-ld:Sensor:1", params={"options": "concise"})
    assert r.json()["https://example.org/name"] in ("sensor 1", {"value": "sensor 1"})
    r = client.get(f"{BASE}/entities/urn:ngsi-ld:Sensor:1", params={"pick": "id,location"})
    assert set(r.json()) == {"id", "location"}
    r = client.get(f"{BASE}/entities/urn:ngsi-ld:Sensor:1", params={"attrs": "location"})
    assert set(r.json()) == {"id", "type", "location"}
    assert link is None


def test_geojson_representation(client) -> None:
    create(client, sensor(1))
    r = client.get(
        f"{BASE}/entities/urn:ngsi-ld:Sensor:1", headers={"Accept": "application/geo+json"}
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/geo+json")
    f = r.json()
    assert f["type"] == "Feature" and f["geometry"]["type"] == "Point"
    r = client.get(
        f"{BASE}/entities",
        params={"type": "https://example.org/Sensor"},
        headers={"Accept": "application/geo+json"},
    )
    assert r.json()["type"] == "FeatureCollection" and len(r.json()["features"]) == 1


def test_duplicate_create_409(client) -> None:
    assert create(client, sensor(1)).status_code == 201
    r = create(client, sensor(1, speed=99))
    assert r.status_code == 409 and problem_type(r) == "AlreadyExists"


@pytest.mark.parametrize(
    ("mutate", "status", "kind"),
    [
        (lambda b: b.update(id="not a uri"), 400, "BadRequestData"),
        (lambda b: b.pop("type"), 400, "BadRequestData"),
        (lambda b: b["speed"].pop("value"), 400, "BadRequestData"),
        (
            lambda b: b.update(owner={"type": "Relationship", "object": "nope"}),
            400,
            "BadRequestData",
        ),
        (lambda b: b["location"]["value"].update(coordinates=[104.9, 95.0]), 400, "BadRequestData"),
        (
            lambda b: b.update(
                area={
                    "type": "GeoProperty",
                    "value": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]},
                }
            ),
            400,
            "BadRequestData",
        ),
    ],
)
def test_invalid_entities_are_rejected_and_nothing_written(client, mutate, status, kind) -> None:
    body = sensor(1)
    mutate(body)
    r = create(client, body)
    assert r.status_code == status, r.text
    assert problem_type(r) == kind
    assert r.json()["detail"]
    assert client.get(f"{BASE}/entities/urn:ngsi-ld:Sensor:1").status_code == 404


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b'{"id": "urn:a:1", "type": "T",', "InvalidRequest"),
        (b'{"id": "urn:a:1", "type": "T", "x": NaN}', "InvalidRequest"),
        (b'{"id": "urn:a:1", "type": "T", "x": Infinity}', "InvalidRequest"),
        (b'{"id": "urn:a:1", "type": "T", "id": "urn:a:2"}', "InvalidRequest"),
        (
            b'{"id": "urn:a:1", "type": "T", "x": ' + b"[" * 100 + b"]" * 100 + b"}",
            "BadRequestData",
        ),
        (b"\xff\xfe", "InvalidRequest"),
    ],
)
def test_malformed_bodies(client, raw, kind) -> None:
    r = client.post(f"{BASE}/entities", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert problem_type(r) == kind
    assert client.get(f"{BASE}/entities", params={"type": "T"}).json() == []


def test_wrong_content_type_415_and_too_large_413(client) -> None:
    r = client.post(f"{BASE}/entities", content=b"{}", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    big = sensor(1)
    big["blob"] = {"type": "Property", "value": "x" * 70_000}
    r = create(client, big)
    assert r.status_code == 413
    assert client.get(f"{BASE}/entities/urn:ngsi-ld:Sensor:1").status_code == 404


def test_trailing_slash_is_accepted(client) -> None:
    r = client.post(f"{BASE}/entities/", content=json.dumps(sensor(1)), headers=LD)
    assert r.status_code == 201
    assert client.get(f"{BASE}/entities/urn:ngsi-ld:Sensor:1/").status_code == 200


def test_replace_merge_and_delete(client) -> None:
    create(client, sensor(1))
    new = {"type": "Sensor", "speed": {"type": "Property", "value": 5}, "@context": CTX}
    r = client.put(f"{BASE}/entities/urn:ngsi-ld:Sensor:1", content=json.dumps(new), headers=LD)
    assert r.status_code == 204, r.text
    body = get(client, "urn:ngsi-ld:Sensor:1").json()
    assert "location" not in body
    patch = {"speed": {"value": 7}, "colour": "red", "@context": CTX}
    r = client.patch(f"{BASE}/entities/urn:ngsi-ld:Sensor:1", content=json.dumps(patch), headers=LD)
    assert r.status_code == 204, r.text
    body = client.get(
        f"{BASE}/entities/urn:ngsi-ld:Sensor:1", params={"options": "keyValues"}
    ).json()
    assert body["https://example.org/speed"] == 7
    assert body["colour"] == "red"
    # merge-patch null removes an attribute
    r = client.patch(
        f"{BASE}/entities/urn:ngsi-ld:Sensor:1",
        content=json.dumps({"colour": "urn:ngsi-ld:null"}),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 204
    body = client.get(
        f"{BASE}/entities/urn:ngsi-ld:Sensor:1", params={"options": "keyValues"}
    ).json()
    assert "colour" not in body
    assert client.delete(f"{BASE}/entities/urn:ngsi-ld:Sensor:1").status_code == 204
    r = client.delete(f"{BASE}/entities/urn:ngsi-ld:Sensor:1")
    assert r.status_code == 404 and problem_type(r) == "ResourceNotFound"


def test_attribute_operations(client) -> None:
    create(client, sensor(1))
    url = f"{BASE}/entities/urn:ngsi-ld:Sensor:1/attrs"
    # append with noOverwrite: the existing attribute is reported, the new one added
    body = {
        "speed": {"type": "Property", "value": 1},
        "lanes": {"type": "Property", "value": 2},
        "@context": CTX,
    }
    r = client.post(url, params={"options": "noOverwrite"}, content=json.dumps(body), headers=LD)
    assert r.status_code == 207, r.text
    assert r.json()["notUpdated"][0]["attributeName"] == "speed"
    kv = client.get(f"{BASE}/entities/urn:ngsi-ld:Sensor:1", params={"options": "keyValues"}).json()
    assert kv["https://example.org/speed"] == 30 and kv["lanes"] == 2
    # update: existing attributes change, those the entity lacks are appended (ETSI 011_01_03)
    body = {
        "speed": {"type": "Property", "value": 40},
        "ghost": {"type": "Property", "value": 1},
        "@context": CTX,
    }
    r = client.patch(url, content=json.dumps(body), headers=LD)
    assert r.status_code == 204, r.text
    kv = client.get(f"{BASE}/entities/urn:ngsi-ld:Sensor:1", params={"options": "keyValues"}).json()
    assert kv["https://example.org/speed"] == 40 and kv["ghost"] == 1
    # ... but deleting (NGSI-LD Null) what is not there is reported, and nothing is added
    body = {"phantom": {"type": "Property", "value": "urn:ngsi-ld:null"}, "@context": CTX}
    r = client.patch(url, content=json.dumps(body), headers=LD)
    assert r.status_code == 207 and [n["attributeName"] for n in r.json()["notUpdated"]] == [
        "phantom"
    ]
    assert "phantom" not in client.get(f"{BASE}/entities/urn:ngsi-ld:Sensor:1").json()
    # partial attribute update keeps the other members
    r = client.patch(
        f"{url}/https%3A%2F%2Fexample.org%2Fspeed",
        content=json.dumps({"value": 41}),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 204, r.text
    full = client.get(f"{BASE}/entities/urn:ngsi-ld:Sensor:1").json()
    assert full["https://example.org/speed"]["value"] == 41
    # multi-attribute by datasetId, then delete one instance and then all
    body = {
        "speed": {"type": "Property", "value": 50, "datasetId": "urn:ngsi-ld:Dataset:radar"},
        "@context": CTX,
    }
    assert client.post(url, content=json.dumps(body), headers=LD).status_code == 204
    full = client.get(f"{BASE}/entities/urn:ngsi-ld:Sensor:1").json()
    assert len(full["https://example.org/speed"]) == 2
    r = client.delete(
        f"{url}/https%3A%2F%2Fexample.org%2Fspeed",
        params={"datasetId": "urn:ngsi-ld:Dataset:radar"},
    )
    assert r.status_code == 204
    assert isinstance(
        client.get(f"{BASE}/entities/urn:ngsi-ld:Sensor:1").json()["https://example.org/speed"],
        dict,
    )
    r = client.delete(f"{url}/https%3A%2F%2Fexample.org%2Fspeed", params={"deleteAll": "true"})
    assert r.status_code == 204
    assert (
        "https://example.org/speed"
        not in client.get(f"{BASE}/entities/urn:ngsi-ld:Sensor:1").json()
    )
    r = client.delete(f"{url}/https%3A%2F%2Fexample.org%2Fspeed")
    assert r.status_code == 404


def test_tenants(client) -> None:
    r = create(
        client,
        sensor(1),
    )
    r = client.post(
        f"{BASE}/entities",
        content=json.dumps(sensor(2)),
        headers={**LD, "NGSILD-Tenant": "bangkok"},
    )
    assert r.status_code == 201
    assert client.get(f"{BASE}/entities/urn:ngsi-ld:Sensor:2").status_code == 404
    assert (
        client.get(
            f"{BASE}/entities/urn:ngsi-ld:Sensor:2", headers={"NGSILD-Tenant": "bangkok"}
        ).status_code
        == 200
    )
    r = client.get(f"{BASE}/entities", params={"type": "T"}, headers={"NGSILD-Tenant": "manila"})
    assert r.status_code == 404 and problem_type(r) == "NonexistentTenant"


def test_unknown_remote_context_is_503_and_writes_nothing(client) -> None:
    body = sensor(1)
    body["@context"] = "http://10.0.0.1/context.jsonld"
    r = create(client, body)
    assert r.status_code == 503 and problem_type(r) == "LdContextNotAvailable"
    assert client.get(f"{BASE}/entities/urn:ngsi-ld:Sensor:1").status_code == 404


def test_unknown_route_and_method(client) -> None:
    r = client.get(f"{BASE}/nothing")
    assert r.status_code == 404 and problem_type(r) == "ResourceNotFound"
    r = client.put(f"{BASE}/entities")
    assert r.status_code == 405
