"""Request/response pairs for /temporal/entities over the history the hub keeps (both engines)."""

from __future__ import annotations

import json

import pytest

BASE = "/ngsi-ld/v1"
JSONCT = {"Content-Type": "application/json"}


def sensor_with_readings(client, n: int, readings: list[tuple[str, float]]) -> str:
    eid = f"urn:ngsi-ld:AirQualityObserved:{n}"
    t0, v0 = readings[0]
    body = {
        "id": eid,
        "type": "AirQualityObserved",
        "pm25": {"type": "Property", "value": v0, "observedAt": t0},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [104.92, 11.57]},
        },
    }
    assert client.post(f"{BASE}/entities", json=body).status_code == 201
    for t, v in readings[1:]:
        r = client.patch(
            f"{BASE}/entities/{eid}/attrs",
            content=json.dumps({"pm25": {"type": "Property", "value": v, "observedAt": t}}),
            headers=JSONCT,
        )
        assert r.status_code == 204, r.text
    return eid


READINGS = [
    ("2026-11-30T01:00:00Z", 30.0),
    ("2026-11-30T01:05:00Z", 40.0),
    ("2026-11-30T01:10:00Z", 50.0),
    ("2026-11-30T01:20:00Z", 20.0),
]


def test_normalized_history_with_time_window(client) -> None:
    eid = sensor_with_readings(client, 1, READINGS)
    r = client.get(f"{BASE}/temporal/entities/{eid}", params={"attrs": "pm25"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == eid and body["type"] == "AirQualityObserved"
    assert [i["value"] for i in body["pm25"]] == [30.0, 40.0, 50.0, 20.0]
    assert body["pm25"][0]["observedAt"] == "2026-11-30T01:00:00Z"
    assert "location" not in body
    r = client.get(
        f"{BASE}/temporal/entities/{eid}",
        params={
            "timerel": "between",
            "timeAt": "2026-11-30T01:05:00Z",
            "endTimeAt": "2026-11-30T01:20:00Z",
        },
    )
    assert [i["value"] for i in r.json()["pm25"]] == [40.0, 50.0]
    r = client.get(
        f"{BASE}/temporal/entities/{eid}",
        params={"timerel": "before", "timeAt": "2026-11-30T01:05:00Z"},
    )
    assert [i["value"] for i in r.json()["pm25"]] == [30.0]
    r = client.get(f"{BASE}/temporal/entities/{eid}", params={"attrs": "pm25", "lastN": "2"})
    assert [i["value"] for i in r.json()["pm25"]] == [50.0, 20.0]


def test_temporal_values_and_aggregations(client) -> None:
    eid = sensor_with_readings(client, 1, READINGS)
    r = client.get(
        f"{BASE}/temporal/entities/{eid}", params={"attrs": "pm25", "options": "temporalValues"}
    )
    assert r.json()["pm25"] == {
        "type": "Property",
        "values": [
            [30.0, "2026-11-30T01:00:00Z"],
            [40.0, "2026-11-30T01:05:00Z"],
            [50.0, "2026-11-30T01:10:00Z"],
            [20.0, "2026-11-30T01:20:00Z"],
        ],
    }
    r = client.get(
        f"{BASE}/temporal/entities/{eid}",
        params={
            "attrs": "pm25",
            "options": "aggregatedValues",
            "aggrMethods": "avg,max,totalCount,stddev",
            "aggrPeriodDuration": "PT15M",
            "timerel": "between",
            "timeAt": "2026-11-30T01:00:00Z",
            "endTimeAt": "2026-11-30T01:30:00Z",
        },
    )
    assert r.status_code == 200, r.text
    agg = r.json()["pm25"]
    assert agg["avg"] == [
        [40.0, "2026-11-30T01:00:00Z", "2026-11-30T01:15:00Z"],
        [20.0, "2026-11-30T01:15:00Z", "2026-11-30T01:30:00Z"],
    ]
    assert [v for v, _, _ in agg["max"]] == [50.0, 20.0]
    assert [v for v, _, _ in agg["totalCount"]] == [3, 1]
    assert agg["stddev"][0][0] == pytest.approx((200 / 3) ** 0.5)


def test_temporal_query_by_type(client) -> None:
    a = sensor_with_readings(client, 1, READINGS[:2])
    b = sensor_with_readings(client, 2, READINGS[2:])
    r = client.get(
        f"{BASE}/temporal/entities",
        params={
            "type": "AirQualityObserved",
            "attrs": "pm25",
            "options": "temporalValues",
            "count": "true",
        },
    )
    assert r.status_code == 200, r.text
    assert r.headers["NGSILD-Results-Count"] == "2"
    got = {e["id"]: [v for v, _ in e["pm25"]["values"]] for e in r.json()}
    assert got == {a: [30.0, 40.0], b: [50.0, 20.0]}


def test_temporal_errors(client) -> None:
    eid = sensor_with_readings(client, 1, READINGS[:1])
    url = f"{BASE}/temporal/entities/{eid}"
    for params in (
        {"timerel": "between", "timeAt": "2026-11-30T01:00:00Z"},
        {"timerel": "sometime", "timeAt": "2026-11-30T01:00:00Z"},
        {"timerel": "after"},
        {"timerel": "after", "timeAt": "yesterday"},
        {"aggrMethods": "median", "options": "aggregatedValues"},
        {"options": "aggregatedValues"},
        {"aggrMethods": "avg", "aggrPeriodDuration": "P1M"},
        {"lastN": "0"},
        {"timeproperty": "validAt"},
    ):
        r = client.get(url, params=params)
        assert r.status_code == 400, (params, r.text)
    assert client.get(f"{BASE}/temporal/entities/urn:ngsi-ld:X:none").status_code == 404
    assert client.get(f"{BASE}/temporal/entities").status_code == 400  # needs a filter


def test_create_temporal_entity_then_add_and_edit_instances(client) -> None:
    body = {
        "id": "urn:ngsi-ld:TrafficFlowObserved:norodom-1",
        "type": "TrafficFlowObserved",
        "intensity": [
            {"type": "Property", "value": 900, "observedAt": "2026-11-30T01:10:00Z"},
            {"type": "Property", "value": 700, "observedAt": "2026-11-30T01:00:00Z"},
        ],
    }
    r = client.post(f"{BASE}/temporal/entities", json=body)
    assert r.status_code == 201, r.text
    eid = body["id"]
    # the newest instance became the current value
    kv = client.get(f"{BASE}/entities/{eid}", params={"options": "keyValues"}).json()
    assert kv["intensity"] == 900
    # posting again adds to the history: 204; an older instance does not replace the current
    more = {
        "id": eid,
        "type": "TrafficFlowObserved",
        "intensity": {"type": "Property", "value": 100, "observedAt": "2026-11-30T00:50:00Z"},
    }
    assert client.post(f"{BASE}/temporal/entities", json=more).status_code == 204
    assert (
        client.get(f"{BASE}/entities/{eid}", params={"options": "keyValues"}).json()["intensity"]
        == 900
    )
    r = client.post(
        f"{BASE}/temporal/entities/{eid}/attrs",
        json={
            "intensity": [{"type": "Property", "value": 950, "observedAt": "2026-11-30T01:20:00Z"}]
        },
    )
    assert r.status_code == 204, r.text
    hist = client.get(f"{BASE}/temporal/entities/{eid}", params={"attrs": "intensity"}).json()[
        "intensity"
    ]
    assert [i["value"] for i in hist] == [100, 700, 900, 950]
    assert all(i["instanceId"].startswith("urn:ngsi-ld:attribute:instance:") for i in hist)
    # edit one instance in place, then delete another
    target = hist[1]["instanceId"]
    r = client.patch(
        f"{BASE}/temporal/entities/{eid}/attrs/intensity/{target}", json={"value": 710}
    )
    assert r.status_code == 204, r.text
    r = client.delete(f"{BASE}/temporal/entities/{eid}/attrs/intensity/{hist[0]['instanceId']}")
    assert r.status_code == 204
    hist = client.get(f"{BASE}/temporal/entities/{eid}", params={"attrs": "intensity"}).json()[
        "intensity"
    ]
    assert [i["value"] for i in hist] == [710, 900, 950]
    # delete the whole entity with its history
    assert client.delete(f"{BASE}/temporal/entities/{eid}").status_code == 204
    assert client.get(f"{BASE}/temporal/entities/{eid}").status_code == 404


def test_temporal_write_errors_write_nothing(client) -> None:
    url = f"{BASE}/temporal/entities"
    no_time = {"id": "urn:ngsi-ld:T:1", "type": "T", "v": [{"type": "Property", "value": 1}]}
    assert client.post(url, json=no_time).status_code == 400
    no_type = {
        "id": "urn:ngsi-ld:T:1",
        "v": [{"type": "Property", "value": 1, "observedAt": "2026-11-30T01:00:00Z"}],
    }
    assert client.post(url, json=no_type).status_code == 400
    bad_id = {
        "id": "nope",
        "type": "T",
        "v": [{"type": "Property", "value": 1, "observedAt": "2026-11-30T01:00:00Z"}],
    }
    assert client.post(url, json=bad_id).status_code == 400
    assert client.get(f"{BASE}/entities/urn:ngsi-ld:T:1").status_code == 404
    r = client.post(
        f"{BASE}/temporal/entities/urn:ngsi-ld:T:404/attrs",
        json={"v": [{"type": "Property", "value": 1, "observedAt": "2026-11-30T01:00:00Z"}]},
    )
    assert r.status_code == 404
    r = client.patch(
        f"{BASE}/temporal/entities/urn:ngsi-ld:T:1/attrs/v/not-an-instance", json={"value": 1}
    )
    assert r.status_code == 400
