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
    assert body["pm25"][0]["observedAt"] == "2026-11-30T01:00:00.000000Z"
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
            [30.0, "2026-11-30T01:00:00.000000Z"],
            [40.0, "2026-11-30T01:05:00.000000Z"],
            [50.0, "2026-11-30T01:10:00.000000Z"],
            [20.0, "2026-11-30T01:20:00.000000Z"],
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
        [40.0, "2026-11-30T01:00:00.000000Z", "2026-11-30T01:15:00.000000Z"],
        [20.0, "2026-11-30T01:15:00.000000Z", "2026-11-30T01:30:00.000000Z"],
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
        {"timeproperty": "deletedAt"},
    ):
        r = client.get(url, params=params)
        assert r.status_code == 400, (params, r.text)
    assert client.get(f"{BASE}/temporal/entities/urn:ngsi-ld:X:none").status_code == 404
    assert client.get(f"{BASE}/temporal/entities").status_code == 400  # needs a filter
