"""Representation choices of retrieve and query (v1.8): the datasetId filter, GeoJSON's
@context member, the EntityTypeInfo type name; request/response pairs on both engines."""

from __future__ import annotations

import json

BASE = "/ngsi-ld/v1"
JSON_CT = {"Content-Type": "application/json"}
CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"


def _create(client) -> None:
    body = {
        "id": "urn:b:1",
        "type": "Building",
        "name": [
            {"type": "Property", "value": "Eiffel Tower"},
            {"type": "Property", "value": "Tour Eiffel", "datasetId": "urn:ds:fr"},
            {"type": "Property", "value": "Eiffelturm", "datasetId": "urn:ds:de"},
        ],
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [2, 48]}},
    }
    r = client.post(f"{BASE}/entities", content=json.dumps(body), headers=JSON_CT)
    assert r.status_code == 201


def _query(client, **params):
    r = client.get(f"{BASE}/entities", params={"type": "Building", **params})
    assert r.status_code == 200, r.text
    return r.json()


def test_dataset_id_filters_instances(client) -> None:
    _create(client)
    got = _query(client, datasetId="urn:ds:fr")[0]
    assert got["name"] == {"type": "Property", "value": "Tour Eiffel", "datasetId": "urn:ds:fr"}
    assert "location" not in got
    got = _query(client, datasetId="@none", attrs="name")[0]
    assert got == {
        "id": "urn:b:1",
        "type": "Building",
        "name": {"type": "Property", "value": "Eiffel Tower"},
    }
    got = _query(client, datasetId="urn:ds:fr,urn:ds:de")[0]
    assert {i["datasetId"] for i in got["name"]} == {"urn:ds:fr", "urn:ds:de"}
    got = _query(client, datasetId="urn:ds:none", attrs="name")[0]
    assert got == {"id": "urn:b:1", "type": "Building"}
    r = client.get(f"{BASE}/entities/urn:b:1", params={"datasetId": "urn:ds:de"})
    assert r.json()["name"]["value"] == "Eiffelturm"
    r = client.get(f"{BASE}/entities/urn:b:1", params={"datasetId": "not a uri"})
    assert r.status_code == 400


def test_geojson_carries_the_context(client) -> None:
    _create(client)
    geo = {"Accept": "application/geo+json"}
    r = client.get(f"{BASE}/entities/urn:b:1", headers=geo)
    assert r.status_code == 200
    assert r.json()["@context"] == CORE
    assert r.json()["geometry"] == {"type": "Point", "coordinates": [2, 48]}
    r = client.get(f"{BASE}/entities", params={"type": "Building"}, headers=geo)
    assert r.json()["type"] == "FeatureCollection" and r.json()["@context"] == CORE
    query = {"type": "Query", "entities": [{"type": "Building"}]}
    r = client.post(
        f"{BASE}/entityOperations/query", content=json.dumps(query), headers={**geo, **JSON_CT}
    )
    assert r.status_code == 200, r.text
    assert [f["id"] for f in r.json()["features"]] == ["urn:b:1"]


def test_type_details_are_entity_type_info(client) -> None:
    _create(client)
    r = client.get(f"{BASE}/types/Building")
    assert r.status_code == 200
    assert r.json()["type"] == "EntityTypeInfo"


def test_create_rejects_a_non_object_body_and_a_keyword_type(client) -> None:
    r = client.post(f"{BASE}/entities", content="[]", headers=JSON_CT)
    assert r.status_code == 400 and r.json()["type"].endswith("InvalidRequest")
    body = {"id": "urn:b:2", "type": "type"}  # "type" expands to @type in the core context
    r = client.post(f"{BASE}/entities", content=json.dumps(body), headers=JSON_CT)
    assert r.status_code == 400 and r.json()["type"].endswith("BadRequestData")
    assert client.get(f"{BASE}/entities/urn:b:2").status_code == 404


def test_attrs_naming_id_or_type_is_400(client) -> None:
    _create(client)
    r = client.get(f"{BASE}/entities", params={"attrs": "id,type"})
    assert r.status_code == 400 and r.json()["type"].endswith("BadRequestData")


def test_geo_query_with_a_self_intersecting_polygon_is_answered(client) -> None:
    _create(client)  # at [2, 48]: inside the left lobe of this bowtie
    bowtie = "[[[1,44],[9,52],[9,44],[1,52],[1,44]]]"
    params = {"type": "Building", "georel": "within", "geometry": "Polygon", "coordinates": bowtie}
    r = client.get(f"{BASE}/entities", params=params)
    assert r.status_code == 200, r.text
    assert [e["id"] for e in r.json()] == ["urn:b:1"]


def test_batch_create_context_placement(client) -> None:
    item = {"id": "urn:b:7", "type": "Building", "@context": {"x": "https://ex.org/x"}}
    r = client.post(f"{BASE}/entityOperations/create", content=json.dumps([item]), headers=JSON_CT)
    assert r.status_code == 207, r.text
    assert r.json()["errors"][0]["error"]["type"].endswith("BadRequestData")
    link = '<https://ex.org/ctx.jsonld>; rel="http://www.w3.org/ns/json-ld#context"'
    headers = {"Content-Type": "application/ld+json", "Link": link}
    r = client.post(f"{BASE}/entityOperations/create", content=json.dumps([item]), headers=headers)
    assert r.status_code == 400 and r.json()["type"].endswith("BadRequestData")
    assert client.get(f"{BASE}/entities/urn:b:7").status_code == 404


def test_batch_query_attrs_not_an_array_is_400(client) -> None:
    query = {"type": "Query", "entities": [{"type": "Building"}], "attrs": True}
    r = client.post(f"{BASE}/entityOperations/query", content=json.dumps(query), headers=JSON_CT)
    assert r.status_code == 400 and r.json()["type"].endswith("BadRequestData")


def test_query_by_ids_alone_is_400(client) -> None:
    _create(client)
    r = client.get(f"{BASE}/entities", params={"id": "urn:b:1"})
    assert r.status_code == 400 and r.json()["type"].endswith("BadRequestData")
    r = client.get(f"{BASE}/entities", params={"id": "urn:b:1", "type": "Building"})
    assert [e["id"] for e in r.json()] == ["urn:b:1"]
    r = client.get(f"{BASE}/entities", params={"id": "urn:b:1", "local": "true"})
    assert [e["id"] for e in r.json()] == ["urn:b:1"]
