"""The temporal representation, pagination, the POST query and temporal provision, as
request/response pairs (GS CIM 009 v1.8 clauses 4.5.9-4.5.10, 5.6.11-5.6.13, 5.7.3-5.7.4,
6.3.10) on both engines."""

from __future__ import annotations

from typing import Any

BASE = "/ngsi-ld/v1"
CTX = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
EID = "urn:ngsi-ld:Vehicle:T1"


def _prop(value: Any, at: str, **more: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value, "observedAt": at, **more}


def _create(client, body: dict[str, Any]) -> None:
    r = client.post(f"{BASE}/temporal/entities", json=body)
    assert r.status_code == 201, r.text


def _vehicle(client, eid: str = EID, **attrs: Any) -> None:
    _create(client, {"id": eid, "type": "Vehicle", **attrs})


def _get(client, params: dict[str, str] | None = None, eid: str = EID):  # type: ignore[no-untyped-def]
    return client.get(f"{BASE}/temporal/entities/{eid}", params=params or {})


SPEEDS = [
    _prop(120, "2020-08-01T12:03:00Z"),
    _prop(80, "2020-08-01T12:05:00.500Z"),
    _prop(60, "2020-08-01T12:05:00Z", datasetId="urn:ngsi-ld:Dataset:Speed"),
]


def test_instances_are_written_as_sent_with_system_times_only_on_request(client) -> None:
    _vehicle(client, speed=SPEEDS[:2])
    r = _get(client)
    assert r.status_code == 200, r.text
    speed = r.json()["speed"]
    assert [(i["value"], i["observedAt"]) for i in speed] == [
        (120, "2020-08-01T12:03:00Z"),
        (80, "2020-08-01T12:05:00.5Z"),
    ]
    assert all(i["instanceId"].startswith("urn:ngsi-ld:attribute:instance:") for i in speed)
    assert not any("createdAt" in i or "modifiedAt" in i for i in speed)
    with_sys = _get(client, {"options": "sysAttrs"}).json()
    assert all("createdAt" in i and "modifiedAt" in i for i in with_sys["speed"])
    assert "createdAt" in with_sys and "modifiedAt" in with_sys


def test_simplified_form_keeps_each_dataset_and_the_type_of_each_attribute(client) -> None:
    _vehicle(
        client,
        speed=SPEEDS,
        spec=[{"type": "JsonProperty", "json": {"v": 1}, "observedAt": "2020-08-01T12:03:00Z"}],
        kind=[{"type": "VocabProperty", "vocab": "monument", "observedAt": "2020-08-01T12:03:00Z"}],
        street=[
            {
                "type": "LanguageProperty",
                "languageMap": {"fr": "Grand Place"},
                "observedAt": "2020-08-01T12:03:00Z",
            }
        ],
        parkedIn=[
            {
                "type": "Relationship",
                "object": "urn:ngsi-ld:P:1",
                "observedAt": "2020-08-01T12:03:00Z",
            }
        ],
    )
    body = _get(client, {"options": "temporalValues"}).json()
    assert body["speed"] == [
        {
            "type": "Property",
            "values": [[120, "2020-08-01T12:03:00Z"], [80, "2020-08-01T12:05:00.5Z"]],
        },
        {
            "type": "Property",
            "datasetId": "urn:ngsi-ld:Dataset:Speed",
            "values": [[60, "2020-08-01T12:05:00Z"]],
        },
    ]
    assert body["spec"] == {
        "type": "JsonProperty",
        "jsons": [[{"json": {"v": 1}}, "2020-08-01T12:03:00Z"]],
    }
    assert body["kind"] == {
        "type": "VocabProperty",
        "vocabs": [[{"vocab": "monument"}, "2020-08-01T12:03:00Z"]],
    }
    assert body["street"] == {
        "type": "LanguageProperty",
        "languageMaps": [[{"languageMap": {"fr": "Grand Place"}}, "2020-08-01T12:03:00Z"]],
    }
    assert body["parkedIn"] == {
        "type": "Relationship",
        "objects": [["urn:ngsi-ld:P:1", "2020-08-01T12:03:00Z"]],
    }
    # the normalized form compacts the vocab too
    assert _get(client).json()["kind"][0]["vocab"] == "monument"
    # datasetId selects instances (@none: the default one)
    one = _get(client, {"options": "temporalValues", "datasetId": "urn:ngsi-ld:Dataset:Speed"})
    assert one.json()["speed"] == body["speed"][1] and "spec" not in one.json()
    default = _get(client, {"options": "temporalValues", "datasetId": "@none", "attrs": "speed"})
    assert default.json()["speed"] == body["speed"][0]
    assert _get(client, {"datasetId": "not a uri"}).status_code == 400


def test_format_wins_over_options_and_unknown_ones_are_refused(client) -> None:
    _vehicle(client, speed=SPEEDS[:2])
    r = _get(
        client, {"format": "temporalValues", "options": "aggregatedValues", "aggrMethods": "sum"}
    )
    assert r.status_code == 200, r.text
    assert "values" in r.json()["speed"] and "sum" not in r.json()["speed"]
    r = _get(
        client, {"options": "aggregatedValues", "aggrMethods": "sum", "aggrPeriodDuration": "P1D"}
    )
    assert r.json()["speed"]["sum"] == [[200.0, "2020-08-01T12:03:00Z", "2020-08-02T12:03:00Z"]]
    for params in ({"format": "keyValues"}, {"options": "bogus"}):
        r = _get(client, params)
        assert r.status_code == 400 and r.json()["type"].endswith("InvalidRequest"), r.text


def test_a_response_over_the_instance_limit_is_cut_to_a_complete_range(client) -> None:
    client.app.state.hub.settings.temporal_instance_limit = 5
    speed = [_prop(i, f"2020-01-01T01:{i:02d}:00Z") for i in range(1, 5)]
    fuel = [_prop(i, f"2020-01-01T01:{i:02d}:30Z") for i in range(1, 5)]
    _vehicle(client, speed=speed, fuelLevel=fuel)
    r = _get(client)
    assert r.status_code == 206, r.text
    assert r.headers["Content-Range"] == "date-time 2020-01-01T01:01:00Z-2020-01-01T01:03:00Z/*"
    body = r.json()
    assert [i["value"] for i in body["speed"]] == [1, 2, 3]
    assert [i["value"] for i in body["fuelLevel"]] == [1, 2]
    r = _get(client, {"lastN": "3", "timerel": "before", "timeAt": "2021-01-01T00:00:00Z"})
    assert r.status_code == 206
    assert r.headers["Content-Range"] == "date-time 2021-01-01T00:00:00Z-2020-01-01T01:02:30Z/3"
    assert [i["value"] for i in r.json()["speed"]] == [3, 4]
    assert [i["value"] for i in r.json()["fuelLevel"]] == [2, 3, 4]
    # a cut attribute stays, empty; within the limit the answer is whole (200)
    r = _get(client, {"timerel": "before", "timeAt": "2020-01-01T01:04:00Z", "attrs": "speed"})
    assert r.status_code == 200 and "Content-Range" not in r.headers
    client.app.state.hub.settings.temporal_instance_limit = 1
    r = _get(client, {"lastN": "2"})
    assert r.json()["speed"] == [] and [i["value"] for i in r.json()["fuelLevel"]] == [4]


def test_a_deleted_attribute_shows_as_a_deletion_instance(client) -> None:
    _vehicle(client, speed=SPEEDS[:1], fuelLevel=[_prop(50, "2020-08-01T12:03:00Z")])
    assert client.delete(f"{BASE}/entities/{EID}/attrs/fuelLevel").status_code == 204
    body = _get(client, {"timeproperty": "deletedAt"}).json()
    assert "speed" not in body
    [gone] = body["fuelLevel"]
    assert gone["type"] == "Property" and gone["value"] == "urn:ngsi-ld:null"
    assert gone["deletedAt"].endswith("Z") and "observedAt" not in gone
    simple = _get(client, {"timeproperty": "deletedAt", "options": "temporalValues"}).json()
    assert simple["fuelLevel"]["values"][0][0] == "urn:ngsi-ld:null"
    assert [i["value"] for i in _get(client).json()["fuelLevel"]] == [50]  # history stays


def test_a_deleted_scope_shows_as_a_deletion_instance(client) -> None:
    """Clause 4.18: the scope's deletion is part of the temporal evolution (deletedAt)."""
    _vehicle(client, scope=["/KH/PhnomPenh", "/A/B"], speed=SPEEDS[:1])
    assert client.delete(f"{BASE}/entities/{EID}/attrs/scope").status_code == 204
    body = _get(client, {"timeproperty": "deletedAt"}).json()
    [gone] = body["scope"]
    assert gone["type"] == "Property" and gone["value"] == []  # no scope any more
    assert gone["deletedAt"].endswith("Z") and "speed" not in body
    simple = _get(client, {"timeproperty": "deletedAt", "options": "temporalValues"}).json()
    assert simple["scope"] == {"type": "Property", "values": [[[], gone["deletedAt"]]]}
    # not an observation: the observedAt history is the attributes' alone
    assert "scope" not in _get(client).json()
    assert client.delete(f"{BASE}/entities/{EID}/attrs/scope").status_code == 404


def test_pick_and_omit_select_members(client) -> None:
    _vehicle(client, speed=SPEEDS[:1], fuelLevel=[_prop(50, "2020-08-01T12:03:00Z")])
    assert set(_get(client, {"pick": "speed"}).json()) == {"speed"}
    assert set(_get(client, {"pick": "id,fuelLevel"}).json()) == {"id", "fuelLevel"}
    assert set(_get(client, {"omit": "type,speed"}).json()) == {"id", "fuelLevel"}
    for params, status in (
        ({"pick": "speed", "omit": "speed"}, 400),
        ({"pick": "speed", "attrs": "speed"}, 400),
        ({"pick": "nothing"}, 404),
        ({"omit": "id,type,speed,fuelLevel"}, 404),
        ({"attrs": "nothing"}, 404),
    ):
        assert _get(client, params).status_code == status, params


def test_query_by_url_and_by_post(client) -> None:
    _vehicle(client, speed=SPEEDS[:2])
    _vehicle(client, "urn:ngsi-ld:Vehicle:T2", speed=[_prop(10, "2020-07-01T00:00:00Z")])
    after = {"timerel": "after", "timeAt": "2020-08-01T00:00:00Z"}
    r = client.get(f"{BASE}/temporal/entities", params={"type": "Vehicle", **after})
    assert r.status_code == 200, r.text
    assert [e["id"] for e in r.json()] == [EID]  # T2 has nothing in the window
    query = {"type": "Query", "entities": [{"type": "Vehicle"}], "temporalQ": after}
    r = client.post(f"{BASE}/temporal/entityOperations/query", json=query)
    assert r.status_code == 200, r.text
    assert [e["id"] for e in r.json()] == [EID]
    assert [i["value"] for i in r.json()[0]["speed"]] == [120, 80]
    query = {**query, "temporalQ": {**after, "lastN": 1}, "attrs": ["speed"]}
    r = client.post(
        f"{BASE}/temporal/entityOperations/query", json=query, params={"options": "temporalValues"}
    )
    assert r.json()[0]["speed"]["values"] == [[80, "2020-08-01T12:05:00.5Z"]]
    # ids alone do not make a temporal query; local=true needs no filter
    r = client.get(f"{BASE}/temporal/entities", params={"id": EID, **after})
    assert r.status_code == 400
    r = client.get(f"{BASE}/temporal/entities", params={"local": "true", **after})
    assert r.status_code == 200 and [e["id"] for e in r.json()] == [EID]
    for bad in (
        {"entities": [{"type": "Vehicle"}]},
        {"type": "Query", "entities": [{"type": "Vehicle"}], "temporalQ": "after"},
        {"type": "Query", "entities": [{"type": "Vehicle"}], "temporalQ": {"timerel": "after"}},
        {"type": "Query", "attrs": "speed", "temporalQ": after},
        {"type": "Query", "temporalQ": after},
    ):
        r = client.post(f"{BASE}/temporal/entityOperations/query", json=bad)
        assert r.status_code == 400, (bad, r.text)


def test_an_update_replaces_the_instance_observed_at_the_same_time(client) -> None:
    _vehicle(client, speed=SPEEDS)
    again = [_prop(121, "2020-08-01T12:03:00Z"), _prop(100, "2020-08-01T12:07:00Z")]
    r = client.post(
        f"{BASE}/temporal/entities", json={"id": EID, "type": "Vehicle", "speed": again}
    )
    assert r.status_code == 204, r.text
    speed = _get(client).json()["speed"]
    assert sorted((i["value"], i.get("datasetId")) for i in speed) == [
        (60, "urn:ngsi-ld:Dataset:Speed"),
        (80, None),
        (100, None),
        (121, None),
    ]


def test_deleting_an_attribute_history_takes_one_dataset_unless_all(client) -> None:
    _vehicle(client, speed=SPEEDS)
    url = f"{BASE}/temporal/entities/{EID}/attrs/speed"
    assert client.delete(url).status_code == 204
    assert [i["value"] for i in _get(client).json()["speed"]] == [60]
    assert client.delete(url).status_code == 404  # no default instance left
    assert client.delete(url, params={"datasetId": "urn:ngsi-ld:Dataset:Speed"}).status_code == 204
    assert "speed" not in _get(client).json()
    _vehicle(client, "urn:ngsi-ld:Vehicle:T3", speed=SPEEDS)
    url = f"{BASE}/temporal/entities/urn:ngsi-ld:Vehicle:T3/attrs/speed"
    assert client.delete(url, params={"deleteAll": "true"}).status_code == 204
    assert "speed" not in _get(client, eid="urn:ngsi-ld:Vehicle:T3").json()


def test_instance_and_attribute_paths_are_checked(client) -> None:
    _vehicle(client, speed=SPEEDS[:1])
    url = f"{BASE}/temporal/entities/{EID}/attrs"
    inst = _get(client).json()["speed"][0]["instanceId"]
    patch = {"value": 1}
    assert client.delete(f"{url}/speed/urn:ngsi-ld:0123").status_code == 404  # not one of ours
    assert client.patch(f"{url}/speed/urn:ngsi-ld:0123", json=patch).status_code == 404
    assert client.delete(f"{url}/speed/notAUri").status_code == 400
    assert client.delete(f"{url}/bad(name/{inst}").status_code == 400
    assert client.patch(f"{url}/bad(name/{inst}", json=patch).status_code == 400
    assert client.delete(f"{url}/bad(name").status_code == 400
    assert [i["value"] for i in _get(client).json()["speed"]] == [120]  # nothing written
