"""Linked entities (join=inline|flat, joinLevel) and pick/omit expressions (v1.8 4.5.23,
4.21), as request/response pairs on both engines."""

from __future__ import annotations

import json

import pytest

BASE = "/ngsi-ld/v1"
LD = {"Content-Type": "application/ld+json"}
JSON_ACCEPT = {"Accept": "application/json"}


def _make(client, eid: str, etype: str, **attrs) -> None:
    body = {"id": eid, "type": etype, **attrs}
    r = client.post(
        f"{BASE}/entities", content=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 201, r.text


def rel(obj: str) -> dict:
    return {"type": "Relationship", "object": obj}


def prop(value) -> dict:
    return {"type": "Property", "value": value}


@pytest.fixture
def town(client):
    """Building -> City -> Country, each with a name."""
    _make(client, "urn:b:1", "Building", name=prop("Tower"), locatedAt=rel("urn:c:1"))
    _make(client, "urn:c:1", "City", name=prop("Paris"), isIn=rel("urn:k:1"))
    _make(client, "urn:k:1", "Country", name=prop("France"), size=prop(5))
    return client


def _get(client, path: str, **params):
    return client.get(f"{BASE}{path}", params=params, headers=JSON_ACCEPT)


def test_retrieve_inline_one_level(town) -> None:
    r = _get(town, "/entities/urn:b:1", join="inline", joinLevel="1", pick="id,locatedAt")
    assert r.status_code == 200
    assert r.json() == {
        "id": "urn:b:1",
        "locatedAt": {
            "type": "Relationship",
            "object": "urn:c:1",
            "entity": {
                "id": "urn:c:1",
                "type": "City",
                "name": prop("Paris"),
                "isIn": rel("urn:k:1"),
            },
        },
    }


def test_retrieve_inline_two_levels_with_nested_pick(town) -> None:
    r = _get(
        town,
        "/entities/urn:b:1",
        join="inline",
        joinLevel="2",
        pick="id,locatedAt{name,isIn{size}}",
    )
    assert r.status_code == 200
    city = r.json()["locatedAt"]["entity"]
    assert city == {
        "name": prop("Paris"),
        "isIn": {**rel("urn:k:1"), "entity": {"size": prop(5)}},
    }


def test_retrieve_inline_keyvalues_replaces_the_object(town) -> None:
    r = _get(
        town, "/entities/urn:b:1", join="inline", options="keyValues", omit="name,locatedAt{isIn}"
    )
    assert r.json() == {
        "id": "urn:b:1",
        "type": "Building",
        "locatedAt": {"id": "urn:c:1", "type": "City", "name": "Paris"},
    }


def test_retrieve_flat_two_levels_each_entity_once(town) -> None:
    _make(town, "urn:b:2", "Building", locatedAt=rel("urn:c:1"))
    r = _get(town, "/entities", type="Building", join="flat", joinLevel="2", pick="id,locatedAt")
    assert r.status_code == 200
    ids = [e["id"] for e in r.json()]
    assert sorted(ids[:2]) == ["urn:b:1", "urn:b:2"]
    assert ids[2:] == ["urn:c:1", "urn:k:1"]


def test_missing_target_is_left_out(client) -> None:
    _make(client, "urn:b:9", "Building", locatedAt=rel("urn:c:nowhere"))
    r = _get(client, "/entities/urn:b:9", join="flat")  # nothing linked: the entity alone
    assert r.json() == {"id": "urn:b:9", "type": "Building", "locatedAt": rel("urn:c:nowhere")}
    r = _get(client, "/entities/urn:b:9", join="inline")
    assert "entity" not in r.json()["locatedAt"]


def test_flat_retrieve_is_an_array(town) -> None:
    r = _get(town, "/entities/urn:b:1", join="flat", pick="id,locatedAt{id}")
    assert r.json() == [{"id": "urn:b:1", "locatedAt": rel("urn:c:1")}, {"id": "urn:c:1"}]


def test_batch_query_join_in_the_body(town) -> None:
    body = {"type": "Query", "entities": [{"type": "Building"}], "join": "inline"}
    r = town.post(
        f"{BASE}/entityOperations/query",
        params={"options": "keyValues"},
        content=json.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text
    assert r.json()[0]["locatedAt"]["id"] == "urn:c:1"
    body = {**body, "joinLevel": 0}
    r = town.post(
        f"{BASE}/entityOperations/query",
        content=json.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400


def test_join_stops_at_join_level(town) -> None:
    r = _get(town, "/entities/urn:b:1", join="inline", joinLevel="1")
    assert "entity" not in r.json()["locatedAt"]["entity"]["isIn"]


@pytest.mark.parametrize(
    "params",
    [
        {"join": "sideways"},
        {"join": "inline", "joinLevel": "0"},
        {"pick": "id;name"},
        {"pick": "id,locatedAt{name"},
        {"pick": "id,locatedAt{{name}"},
        {"pick": "id,,name"},
        {"pick": "id,locatedAt{,name}"},
        {"pick": "id,locatedAt{}"},
        {"pick": "name}"},
        {"omit": "name", "attrs": "name"},
        {"pick": "name", "omit": "name"},
        {"pick": "name", "omit": "type"},
    ],
)
def test_malformed_join_pick_omit_400(town, params) -> None:
    r = _get(town, "/entities/urn:b:1", **params)
    assert r.status_code == 400, params
    assert r.json()["type"].endswith("BadRequestData")


def test_retrieve_nothing_left_is_404(town) -> None:
    assert _get(town, "/entities/urn:b:1", pick="unknown").status_code == 404
    assert _get(town, "/entities/urn:b:1", omit="id,type,name,locatedAt").status_code == 404
    assert _get(town, "/entities/urn:b:1", attrs="unknown").status_code == 404


def test_query_drops_entities_pick_leaves_empty(town) -> None:
    r = _get(town, "/entities", type="Building,Country", pick="size")
    assert r.json() == [{"size": prop(5)}]


def test_unknown_option_or_format_is_invalid_request(town) -> None:
    for params in ({"format": "nope"}, {"options": "keyValues,nope"}):
        r = _get(town, "/entities/urn:b:1", **params)
        assert r.status_code == 400
        assert r.json()["type"].endswith("InvalidRequest")
    r = _get(town, "/entities/urn:b:1", format="keyValues", options="normalized")
    assert r.json()["name"] == "Tower"
