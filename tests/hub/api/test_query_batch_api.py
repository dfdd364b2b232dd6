"""Request/response pairs for GET /entities, /entityOperations, /types, /attributes, OpenAPI."""

from __future__ import annotations

import json

BASE = "/ngsi-ld/v1"
CTX = {
    "speed": "https://example.org/speed",
    "Sensor": "https://example.org/Sensor",
    "Camera": "https://example.org/Camera",
    "owner": "https://example.org/owner",
}
LD = {"Content-Type": "application/ld+json"}


def sensor(
    n: int, speed: float, lon: float = 104.92, lat: float = 11.57, kind: str = "Sensor"
) -> dict:
    return {
        "id": f"urn:ngsi-ld:{kind}:{n}",
        "type": kind,
        "speed": {"type": "Property", "value": speed},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}},
        "@context": CTX,
    }


def upsert(client, entities: list[dict], **kw):
    return client.post(
        f"{BASE}/entityOperations/upsert", content=json.dumps(entities), headers=LD, **kw
    )


def q(client, **params):
    link = '<urn:x>; rel="http://www.w3.org/ns/json-ld#context"'
    del link
    return client.get(f"{BASE}/entities", params=params)


def ids(resp) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [e["id"] for e in resp.json()]


def test_batch_upsert_then_query(client) -> None:
    r = upsert(client, [sensor(n, n * 10, 104.92 + n * 0.001) for n in range(10)])
    assert r.status_code == 201, r.text
    assert len(r.json()) == 10
    # a second upsert of existing ids creates nothing: 204
    assert upsert(client, [sensor(1, 11)]).status_code == 204
    S = "https://example.org/Sensor"
    r = q(client, type=S, q="https://example.org/speed>=50", count="true", limit="2")
    assert r.headers["NGSILD-Results-Count"] == "5"
    assert ids(r) == ["urn:ngsi-ld:Sensor:5", "urn:ngsi-ld:Sensor:6"]
    r = q(client, type=S, q="https://example.org/speed>=50", limit="2", offset="4")
    assert ids(r) == ["urn:ngsi-ld:Sensor:9"]
    r = q(client, idPattern="urn:ngsi-ld:Sensor:[12]")
    assert ids(r) == ["urn:ngsi-ld:Sensor:1", "urn:ngsi-ld:Sensor:2"]
    r = q(client, type=S, id="urn:ngsi-ld:Sensor:3,urn:ngsi-ld:Sensor:4")  # ids narrow a type
    assert sorted(ids(r)) == ["urn:ngsi-ld:Sensor:3", "urn:ngsi-ld:Sensor:4"]
    r = q(
        client,
        type=S,
        georel="near;maxDistance==250",
        geometry="Point",
        coordinates="[104.92,11.57]",
    )
    assert sorted(ids(r)) == [
        "urn:ngsi-ld:Sensor:0",
        "urn:ngsi-ld:Sensor:1",
        "urn:ngsi-ld:Sensor:2",
    ]
    r = q(
        client,
        type=S,
        georel="within",
        geometry="Polygon",
        coordinates="[[[104.9245,11.56],[104.94,11.56],[104.94,11.58],[104.9245,11.58],[104.9245,11.56]]]",
        q="https://example.org/speed<90",
    )
    assert sorted(ids(r)) == [
        "urn:ngsi-ld:Sensor:5",
        "urn:ngsi-ld:Sensor:6",
        "urn:ngsi-ld:Sensor:7",
        "urn:ngsi-ld:Sensor:8",
    ]


def test_query_with_link_context_and_keyvalues(client) -> None:
    upsert(client, [sensor(1, 10), sensor(2, 20, kind="Camera")])
    r = client.post(f"{BASE}/jsonldContexts", content=json.dumps({"@context": CTX}), headers=LD)
    url = "http://127.0.0.1:1026" + r.headers["location"]
    link = f'<{url}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
    r = client.get(
        f"{BASE}/entities",
        params={"type": "Sensor,Camera", "options": "keyValues", "q": "speed>5"},
        headers={"Link": link},
    )
    assert r.status_code == 200, r.text
    assert sorted((e["id"], e["type"], e["speed"]) for e in r.json()) == [
        ("urn:ngsi-ld:Camera:2", "Camera", 20),
        ("urn:ngsi-ld:Sensor:1", "Sensor", 10),
    ]


def test_query_errors(client) -> None:
    upsert(client, [sensor(1, 10)])
    r = q(client)
    assert r.status_code == 400 and "type" in r.json()["detail"]
    r = q(client, type="https://example.org/Sensor", q="speed>>3")
    assert r.status_code == 400 and r.json()["type"].endswith("BadRequestData")
    r = q(
        client,
        type="https://example.org/Sensor",
        georel="near;maxDistance==10",
        geometry="Point",
        coordinates="[200,11]",
    )
    assert r.status_code == 400
    r = q(
        client,
        type="https://example.org/Sensor",
        georel="within",
        geometry="Polygon",
        coordinates="[[[0,0],[1,0],[1,1]]]",
    )
    assert r.status_code == 400
    r = q(client, type="https://example.org/Sensor", limit="100000")
    assert r.status_code == 403 and r.json()["type"].endswith("TooManyResults")
    r = q(client, type="https://example.org/Sensor", limit="abc")
    assert r.status_code == 400


def test_relationship_target_query(client) -> None:
    a = sensor(1, 10)
    a["owner"] = {"type": "Relationship", "object": "urn:ngsi-ld:Person:alice"}
    b = sensor(2, 10)
    b["owner"] = {"type": "Relationship", "object": "urn:ngsi-ld:Person:bob"}
    upsert(client, [a, b])
    r = q(
        client,
        type="https://example.org/Sensor",
        q='https://example.org/owner=="urn:ngsi-ld:Person:bob"',
    )
    assert ids(r) == ["urn:ngsi-ld:Sensor:2"]


def test_batch_partial_failure_207_leaves_failed_untouched(client) -> None:
    assert (
        client.post(
            f"{BASE}/entityOperations/create", content=json.dumps([sensor(1, 10)]), headers=LD
        ).status_code
        == 201
    )
    bad = sensor(2, 20)
    del bad["speed"]["value"]
    r = client.post(
        f"{BASE}/entityOperations/create",
        content=json.dumps([sensor(1, 99), bad, sensor(3, 30)]),
        headers=LD,
    )
    assert r.status_code == 207, r.text
    body = r.json()
    assert body["success"] == ["urn:ngsi-ld:Sensor:3"]
    assert sorted(e["entityId"] for e in body["errors"]) == [
        "urn:ngsi-ld:Sensor:1",
        "urn:ngsi-ld:Sensor:2",
    ]
    kv = client.get(f"{BASE}/entities/urn:ngsi-ld:Sensor:1", params={"options": "keyValues"}).json()
    assert kv["https://example.org/speed"] == 10
    assert client.get(f"{BASE}/entities/urn:ngsi-ld:Sensor:2").status_code == 404
    # update with noOverwrite, merge, delete
    upd = [
        {"id": "urn:ngsi-ld:Sensor:1", "speed": {"type": "Property", "value": 5}, "@context": CTX}
    ]
    assert (
        client.post(
            f"{BASE}/entityOperations/update",
            params={"options": "noOverwrite"},
            content=json.dumps(upd),
            headers=LD,
        ).status_code
        == 207  # the attribute noOverwrite kept is reported (clause 5.6.9)
    )
    assert (
        client.get(f"{BASE}/entities/urn:ngsi-ld:Sensor:1", params={"options": "keyValues"}).json()[
            "https://example.org/speed"
        ]
        == 10
    )
    assert (
        client.post(
            f"{BASE}/entityOperations/merge", content=json.dumps(upd), headers=LD
        ).status_code
        == 204
    )
    assert (
        client.get(f"{BASE}/entities/urn:ngsi-ld:Sensor:1", params={"options": "keyValues"}).json()[
            "https://example.org/speed"
        ]
        == 5
    )
    r = client.post(
        f"{BASE}/entityOperations/delete",
        content=json.dumps(["urn:ngsi-ld:Sensor:1", "urn:ngsi-ld:Sensor:404"]),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 207 and r.json()["success"] == ["urn:ngsi-ld:Sensor:1"]


def test_post_query(client) -> None:
    upsert(client, [sensor(1, 10), sensor(2, 20)])
    body = {"type": "Query", "entities": [{"type": "Sensor"}], "q": "speed>15", "@context": CTX}
    r = client.post(f"{BASE}/entityOperations/query", content=json.dumps(body), headers=LD)
    assert r.status_code == 200, r.text
    assert [e["id"] for e in r.json()] == ["urn:ngsi-ld:Sensor:2"]


def test_types_and_attributes(client) -> None:
    upsert(client, [sensor(1, 10), sensor(2, 20), sensor(3, 1, kind="Camera")])
    r = client.get(f"{BASE}/types")
    assert r.status_code == 200
    assert sorted(r.json()["typeList"]) == [
        "https://example.org/Camera",
        "https://example.org/Sensor",
    ]
    r = client.get(f"{BASE}/types/https%3A%2F%2Fexample.org%2FSensor")
    info = r.json()
    assert info["entityCount"] == 2
    assert {a["attributeName"]: a["attributeTypes"] for a in info["attributeDetails"]} == {
        "https://example.org/speed": ["Property"],
        "location": ["GeoProperty"],
    }
    r = client.get(f"{BASE}/attributes")
    assert sorted(r.json()["attributeList"]) == ["https://example.org/speed", "location"]
    r = client.get(f"{BASE}/attributes", params={"details": "true"})
    assert {a["attributeName"] for a in r.json()} == {"https://example.org/speed", "location"}
    r = client.get(f"{BASE}/attributes/https%3A%2F%2Fexample.org%2Fspeed")
    assert r.json()["attributeCount"] == 3
    assert client.get(f"{BASE}/types/Nothing").status_code == 404


def test_openapi_lists_every_route(client) -> None:
    from cityos.hub.api import PREFIX, ROUTES

    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    documented = {(p, m.upper()) for p, ops in doc["paths"].items() for m in ops}
    served = {(PREFIX + p, m) for p, m, _, _ in ROUTES}
    assert served <= documented
    # and every documented NGSI-LD path answers (never a 404 for the route itself)
    for path, method in documented:
        if not path.startswith(PREFIX):
            continue
        concrete = (
            path.replace("{entity_id}", "urn:x:1")
            .replace("{attr}", "a")
            .replace("{instance_id}", "urn:ngsi-ld:attribute:instance:1")
            .replace("{type}", "T")
            .replace("{context_id}", "nope")
            .replace("{subscription_id}", "urn:ngsi-ld:Subscription:none")
        )
        r = client.request(
            method, concrete, content=b"{}", headers={"Content-Type": "application/json"}
        )
        assert r.status_code != 405, (method, path)
        assert r.status_code < 500, (method, path, r.text)
