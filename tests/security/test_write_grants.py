"""Writes stay inside the grant, on SQLite and PostgreSQL (issue 11, items 4 and 5): a change
needs the grant on every type of the entity, before and after it (so adding a writable type
opens nothing), and every edit of history (the temporal API) is checked like a write: the
entity's types, its id and the attribute; refused with nothing changed."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

BASE = "/ngsi-ld/v1"
TEMPORAL = f"{BASE}/temporal/entities"
FLOW = "urn:ngsi-ld:TrafficFlowObserved:1"
MIXED = "urn:ngsi-ld:TrafficFlowObserved:mixed"
RULES = {
    "roles": {
        "operator": [{"actions": ["read", "write", "delete", "subscribe", "administer"]}],
        # flows: its type, two attributes; secretNote is hidden from it
        "flows": [
            {
                "types": ["TrafficFlowObserved"],
                "attrs": ["intensity", "location"],
                "actions": ["read", "write", "delete"],
            }
        ],
        # air: reads flows (all of them) but may change only air quality
        "air": [
            {"types": ["AirQualityObserved"], "actions": ["read", "write", "delete"]},
            {"types": ["TrafficFlowObserved"], "actions": ["read"]},
        ],
        # outsider: may not even read flows
        "outsider": [{"types": ["AirQualityObserved"], "actions": ["read", "write", "delete"]}],
        # mixed: one attribute of flows, all of air quality
        "mixed": [
            {
                "types": ["TrafficFlowObserved"],
                "attrs": ["intensity"],
                "actions": ["read", "write"],
            },
            {"types": ["AirQualityObserved"], "actions": ["read", "write"]},
        ],
    }
}
AT = "2026-11-30T01:00:00Z"


def prop(value: object, at: str | None = None) -> dict:
    return {"type": "Property", "value": value, **({"observedAt": at} if at else {})}


@pytest.fixture
def hub_and_keys(secured) -> tuple[TestClient, dict[str, dict[str, str]]]:
    city = secured(RULES)
    client, keys = city.client, {role: city.key(role) for role in RULES["roles"]}
    op = keys["operator"]
    flow = {
        "id": FLOW,
        "type": "TrafficFlowObserved",
        "intensity": prop(100, AT),
        "secretNote": prop("plate ABC-123", AT),
    }
    assert client.post(f"{BASE}/entities", json=flow, headers=op).status_code == 201
    both = {
        "id": MIXED,
        "type": ["TrafficFlowObserved", "AirQualityObserved"],
        "intensity": prop(5),
        "pm25": prop(40),
    }
    assert client.post(f"{BASE}/entities", json=both, headers=op).status_code == 201
    return client, keys


def state(client: TestClient, op: dict[str, str], eid: str = FLOW) -> tuple[int, object, object]:
    """The entity and its whole history as the operator sees them (to show nothing changed)."""
    now = client.get(f"{BASE}/entities/{eid}", headers=op)
    history = client.get(f"{TEMPORAL}/{eid}", params={"timeproperty": "modifiedAt"}, headers=op)
    return now.status_code, now.json(), history.json()


# -- multi-typed entities ------------------------------------------------------------------
def test_an_entity_may_not_be_created_with_a_type_the_role_may_not_write(hub_and_keys) -> None:
    client, keys = hub_and_keys
    me, op = keys["flows"], keys["operator"]
    eid = "urn:ngsi-ld:TrafficFlowObserved:two-types"
    body = {"id": eid, "type": ["TrafficFlowObserved", "AirQualityObserved"]}
    body["intensity"] = prop(1)
    r = client.post(f"{BASE}/entities", json=body, headers=me)
    assert r.status_code == 403 and "AirQualityObserved" in r.json()["detail"]
    assert client.get(f"{BASE}/entities/{eid}", headers=op).status_code == 404
    batch = client.post(f"{BASE}/entityOperations/upsert", json=[body], headers=me)
    assert batch.status_code in (207, 403)
    assert client.get(f"{BASE}/entities/{eid}", headers=op).status_code == 404
    temporal = {**body, "intensity": prop(1, AT)}
    assert client.post(TEMPORAL, json=temporal, headers=me).status_code == 403
    assert client.get(f"{BASE}/entities/{eid}", headers=op).status_code == 404


def test_adding_a_writable_type_opens_nothing(hub_and_keys) -> None:
    """Before: air could add its type to a flow and then change and delete the flow."""
    client, keys = hub_and_keys
    me, op = keys["air"], keys["operator"]
    before = state(client, op)
    append = {"type": "AirQualityObserved", "pm25": prop(1)}
    r = client.post(f"{BASE}/entities/{FLOW}/attrs", json=append, headers=me)
    assert r.status_code == 403, r.text
    r = client.patch(f"{BASE}/entities/{FLOW}", json={"type": "AirQualityObserved"}, headers=me)
    assert r.status_code == 403, r.text
    upsert = [{"id": FLOW, "type": "AirQualityObserved", "pm25": prop(1)}]
    r = client.post(
        f"{BASE}/entityOperations/upsert", params={"options": "update"}, json=upsert, headers=me
    )
    assert r.status_code in (207, 403)
    assert state(client, op) == before  # still one type, untouched
    assert client.get(f"{BASE}/entities/{FLOW}", headers=op).json()["type"] == (
        "TrafficFlowObserved"
    )
    assert client.delete(f"{BASE}/entities/{FLOW}", headers=me).status_code == 403
    assert state(client, op) == before


def test_a_multi_typed_entity_changes_only_with_every_type_granted(hub_and_keys) -> None:
    client, keys = hub_and_keys
    op = keys["operator"]
    before = state(client, op, MIXED)
    url = f"{BASE}/entities/{MIXED}/attrs"
    # flows may write intensity of flows, but the entity is air quality too
    assert client.patch(url, json={"intensity": prop(6)}, headers=keys["flows"]).status_code == 403
    # air may write air quality, but the entity is a flow too
    assert client.patch(url, json={"pm25": prop(41)}, headers=keys["air"]).status_code == 403
    assert client.delete(f"{BASE}/entities/{MIXED}", headers=keys["air"]).status_code == 403
    # mixed: pm25 is allowed on air quality but not on flows, so not on this entity
    assert client.patch(url, json={"pm25": prop(42)}, headers=keys["mixed"]).status_code == 403
    assert state(client, op, MIXED) == before
    # an attribute allowed on every type is written
    assert client.patch(url, json={"intensity": prop(7)}, headers=keys["mixed"]).status_code == 204
    now = client.get(f"{BASE}/entities/{MIXED}", headers=op).json()
    assert now["intensity"]["value"] == 7 and now["pm25"]["value"] == 40


# -- history edits -------------------------------------------------------------------------
def instance_of(client: TestClient, op: dict[str, str], attr: str) -> str:
    history = client.get(f"{TEMPORAL}/{FLOW}", params={"attrs": attr}, headers=op).json()
    return history[attr][0]["instanceId"]


def history_edits(client: TestClient, op: dict[str, str], attr: str) -> list[tuple[str, ...]]:
    """Every route of the temporal API that changes history, aimed at ``attr`` of FLOW:
    (method, url, body as JSON or "")."""
    inst = instance_of(client, op, attr)
    older = {attr: [prop(1, "2026-11-29T00:00:00Z")]}
    return [
        ("PATCH", f"{TEMPORAL}/{FLOW}/attrs/{attr}/{inst}", json.dumps({"value": 1})),
        ("DELETE", f"{TEMPORAL}/{FLOW}/attrs/{attr}/{inst}", ""),
        ("DELETE", f"{TEMPORAL}/{FLOW}/attrs/{attr}", ""),
        ("DELETE", f"{TEMPORAL}/{FLOW}/attrs/{attr}?deleteAll=true", ""),
        ("DELETE", f"{TEMPORAL}/{FLOW}/attrs/{attr}?datasetId=urn:ngsi-ld:Dataset:x", ""),
        ("POST", f"{TEMPORAL}/{FLOW}/attrs", json.dumps(older)),
        (
            "POST",
            TEMPORAL,
            json.dumps({"id": FLOW, "type": "TrafficFlowObserved", **older}),
        ),
        ("DELETE", f"{TEMPORAL}/{FLOW}", ""),
    ]


def send(client: TestClient, method: str, url: str, body: str, who: dict[str, str]):  # type: ignore[no-untyped-def]
    headers = {**who, "Content-Type": "application/json"} if body else who
    return client.request(method, url, content=body or None, headers=headers)


def test_history_edits_are_refused_without_the_grant(hub_and_keys) -> None:
    """air reads flows but may change none: 403 on every route, nothing changed."""
    client, keys = hub_and_keys
    op = keys["operator"]
    before = state(client, op)
    for method, url, body in history_edits(client, op, "intensity"):
        r = send(client, method, url, body, keys["air"])
        assert r.status_code == 403, (method, url, r.status_code, r.text)
        assert state(client, op) == before, (method, url)


def test_history_edits_of_an_unreadable_entity_answer_as_if_missing(hub_and_keys) -> None:
    client, keys = hub_and_keys
    op = keys["operator"]
    before = state(client, op)
    for method, url, body in history_edits(client, op, "intensity"):
        r = send(client, method, url, body, keys["outsider"])
        expected = 403 if url == TEMPORAL else 404  # a create names no entity to hide
        assert r.status_code == expected, (method, url, r.status_code, r.text)
        assert state(client, op) == before, (method, url)


def test_history_edits_of_a_hidden_attribute_are_refused(hub_and_keys) -> None:
    client, keys = hub_and_keys
    op = keys["operator"]
    before = state(client, op)
    for method, url, body in history_edits(client, op, "secretNote"):
        if url == f"{TEMPORAL}/{FLOW}":
            continue  # deleting the entity: below
        r = send(client, method, url, body, keys["flows"])
        assert r.status_code == 403, (method, url, r.status_code, r.text)
        assert "secretNote" not in r.json()["detail"]  # a hidden name is never told
        assert state(client, op) == before, (method, url)
    # the entity's history holds secretNote, which flows may not delete
    r = client.delete(f"{TEMPORAL}/{FLOW}", headers=keys["flows"])
    assert r.status_code == 403, r.text
    assert "secretNote" not in r.json()["detail"]
    assert "1 attribute(s) it may not read" in r.json()["detail"]
    assert state(client, op) == before


def test_history_edits_within_the_grant_are_made(hub_and_keys) -> None:
    client, keys = hub_and_keys
    me, op = keys["flows"], keys["operator"]
    edits = history_edits(client, op, "intensity")
    patch, _, _, _, _, append, create, _ = edits
    for method, url, body in (patch, append, create):
        r = send(client, method, url, body, me)
        assert r.status_code == 204, (method, url, r.text)
    values = [
        i["value"]
        for i in client.get(f"{TEMPORAL}/{FLOW}", params={"attrs": "intensity"}, headers=op).json()[
            "intensity"
        ]
    ]
    # the patched instance and an older one added; the create's instance, observed at the
    # same time as that one, replaces it (an update, clause 5.6.11)
    assert sorted(values) == [1, 1]
    r = send(client, *edits[1], me)  # one instance
    assert r.status_code == 204, r.text
    r = send(client, *edits[2], me)  # the rest of the attribute's history
    assert r.status_code == 204, r.text
    history = client.get(f"{TEMPORAL}/{FLOW}", headers=op).json()
    assert "intensity" not in history and "secretNote" in history
    # an entity whose attributes flows may all delete goes with its history
    own = {"id": "urn:ngsi-ld:TrafficFlowObserved:own", "type": "TrafficFlowObserved"}
    own["intensity"] = prop(3, AT)
    assert client.post(TEMPORAL, json=own, headers=me).status_code == 201
    assert client.delete(f"{TEMPORAL}/{own['id']}", headers=me).status_code == 204
    assert client.get(f"{TEMPORAL}/{own['id']}", headers=op).status_code == 404
