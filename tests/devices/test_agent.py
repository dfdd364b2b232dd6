"""The IoT agent: FIWARE provisioning bodies, UltraLight and JSON over HTTP, bad input counted."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from cityos.config import Settings
from cityos.devices import ultralight
from cityos.hub.core import Hub

SERVICE = {"fiware-service": "phnompenh", "fiware-servicepath": "/"}


@pytest.fixture(params=["sqlite", "postgresql"])
def client(request, tmp_path) -> Iterator[TestClient]:
    from cityos.web.app import create_app

    settings = Settings()
    if request.param == "sqlite":
        from cityos.hub.store.sqlite import SqliteStore

        store = SqliteStore(tmp_path / "d.db")
    else:
        from cityos.hub.store.postgres import PostgresStore

        url = request.getfixturevalue("postgres_url")
        store = PostgresStore(url, schema=f"cityos_test_{uuid.uuid4().hex[:10]}")
    with TestClient(create_app(settings, Hub(settings, store=store))) as c:
        yield c
    if request.param == "postgresql":
        from cityos.hub.store.postgres import PostgresStore

        PostgresStore(url, schema=store.schema).drop_schema()


def provision(client) -> None:
    group = {
        "services": [
            {
                "apikey": "air-key",
                "cbroker": "http://ignored:1026",
                "entity_type": "AirQualityObserved",
                "resource": "/iot/d",
                "attributes": [
                    {"object_id": "p", "name": "pm25", "type": "Number"},
                    {"object_id": "n", "name": "no2", "type": "Number"},
                ],
                "static_attributes": [{"name": "district", "type": "Text", "value": "Daun Penh"}],
            }
        ]
    }
    assert client.post("/iot/services", json=group, headers=SERVICE).status_code == 201
    devices = {
        "devices": [
            {
                "device_id": "aq-wat-phnom",
                "entity_name": "urn:ngsi-ld:AirQualityObserved:wat-phnom",
                "entity_type": "AirQualityObserved",
                "protocol": "PDI-IoTA-UltraLight",
            },
            # FIWARE's passthrough, asked for: undeclared measures keep their own names
            {"device_id": "aq-market", "protocol": "IoTA-JSON", "explicitAttrs": False},
        ]
    }
    assert client.post("/iot/devices", json=devices, headers=SERVICE).status_code == 201


def test_ultralight_parser() -> None:
    assert ultralight.parse("p|41.5|n|20") == [ultralight.MeasureGroup({"p": "41.5", "n": "20"})]
    groups = ultralight.parse("2026-11-30T01:00:00Z|p|40#2026-11-30T01:01:00Z|p|41")
    assert [(g.timestamp, g.measures) for g in groups] == [
        ("2026-11-30T01:00:00Z", {"p": "40"}),
        ("2026-11-30T01:01:00Z", {"p": "41"}),
    ]
    for bad in ("", "p|1|n", "|1"):
        with pytest.raises(ultralight.UltraLightError):
            ultralight.parse(bad)


def test_provision_then_ingest_ultralight_and_json(client) -> None:
    provision(client)
    assert client.get("/iot/devices", headers=SERVICE).json()["count"] == 2
    assert client.get("/iot/services", headers=SERVICE).json()["services"][0]["apikey"] == "air-key"
    r = client.post(
        "/iot/d",
        params={"k": "air-key", "i": "aq-wat-phnom"},
        content=b"2026-11-30T01:00:00Z|p|41.5|n|20",
        headers={**SERVICE, "Content-Type": "text/plain"},
    )
    assert r.status_code == 200, r.text
    r = client.post(
        "/iot/d",
        params={"k": "air-key", "i": "aq-wat-phnom"},
        content=b"2026-11-30T01:01:00Z|p|43",
        headers={**SERVICE, "Content-Type": "text/plain"},
    )
    assert r.status_code == 200
    ngsi = {"NGSILD-Tenant": "phnompenh"}
    kv = client.get(
        "/ngsi-ld/v1/entities/urn:ngsi-ld:AirQualityObserved:wat-phnom",
        params={"options": "keyValues"},
        headers=ngsi,
    ).json()
    assert kv["pm25"] == 43 and kv["no2"] == 20 and kv["district"] == "Daun Penh"
    hist = client.get(
        "/ngsi-ld/v1/temporal/entities/urn:ngsi-ld:AirQualityObserved:wat-phnom",
        params={"attrs": "pm25", "options": "temporalValues"},
        headers=ngsi,
    ).json()
    assert [v for v, _ in hist["pm25"]["values"]] == [41.5, 43]
    assert hist["pm25"]["values"][0][1] == "2026-11-30T01:00:00Z"
    r = client.post(
        "/iot/json",
        params={"k": "air-key", "i": "aq-market"},
        json={"p": 38.0, "humidity": 80},
        headers=SERVICE,
    )
    assert r.status_code == 200, r.text
    kv = client.get(
        "/ngsi-ld/v1/entities/urn:ngsi-ld:AirQualityObserved:aq-market",
        params={"options": "keyValues"},
        headers=ngsi,
    ).json()
    assert kv["pm25"] == 38.0 and kv["humidity"] == 80
    dev = client.get("/iot/devices/aq-wat-phnom", headers=SERVICE).json()
    assert dev["stats"]["accepted"] == 2 and dev["stats"]["rejected"] == 0


def test_bad_device_input_is_rejected_counted_and_isolated(client) -> None:
    provision(client)
    ul = {**SERVICE, "Content-Type": "text/plain"}
    cases = [
        ({"k": "wrong-key", "i": "aq-wat-phnom"}, b"p|1", 404),
        ({"k": "air-key", "i": "unknown-device"}, b"p|1", 404),
        ({"k": "air-key", "i": "aq-wat-phnom"}, b"p|1|n", 400),  # malformed line
        ({"k": "air-key", "i": "aq-wat-phnom"}, b"p|not-a-number", 400),  # wrong type
        ({"k": "air-key", "i": "aq-wat-phnom"}, b"p|" + b"9" * 70_000, 413),  # oversized
        ({"k": "air-key"}, b"p|1", 400),
    ]
    for params, body, status in cases:
        r = client.post("/iot/d", params=params, content=body, headers=ul)
        assert r.status_code == status, (params, body[:20], r.text)
    # the device's counters say what happened; other devices ingest as before
    stats = client.get("/iot/devices/aq-wat-phnom", headers=SERVICE).json()["stats"]
    assert stats["rejected"] == 4 and stats["accepted"] == 0
    assert stats["reasons"] == {
        "ResourceNotFound": 1,  # a wrong API key
        "MalformedPayload": 1,
        "BadRequestData": 1,  # a value of the wrong type
        "PayloadTooLarge": 1,
    }
    assert "over the limit" in stats["lastError"]  # the last rejection: the oversized message
    assert (
        client.post(
            "/iot/d", params={"k": "air-key", "i": "aq-market"}, content=b"p|12", headers=ul
        ).status_code
        == 200
    )
    # nothing was written for the rejected measures
    r = client.get(
        "/ngsi-ld/v1/entities/urn:ngsi-ld:AirQualityObserved:wat-phnom",
        headers={"NGSILD-Tenant": "phnompenh"},
    )
    assert r.status_code == 404


def test_provisioning_errors(client) -> None:
    assert (
        client.post(
            "/iot/services", json={"services": [{"entity_type": "X"}]}, headers=SERVICE
        ).status_code
        == 400
    )
    assert (
        client.post(
            "/iot/devices",
            json={"devices": [{"device_id": "d", "entity_name": "not a uri"}]},
            headers=SERVICE,
        ).status_code
        == 400
    )
    assert client.post("/iot/devices", json={"devices": []}, headers=SERVICE).status_code == 400
    provision(client)
    again = {"devices": [{"device_id": "aq-market"}]}
    assert client.post("/iot/devices", json=again, headers=SERVICE).status_code == 409
    assert client.delete("/iot/devices/aq-market", headers=SERVICE).status_code == 204
    assert client.get("/iot/devices/aq-market", headers=SERVICE).status_code == 404
    assert (
        client.delete("/iot/services", params={"apikey": "air-key"}, headers=SERVICE).status_code
        == 204
    )
    assert client.get("/iot/services", headers=SERVICE).json()["count"] == 0


def test_geo_point_measures_become_geo_properties_that_geo_queries_find(client) -> None:
    """FIWARE's geo:point: "lat,lon" from UltraLight, [lon, lat] from JSON devices."""
    group = {
        "services": [
            {
                "apikey": "bus-key",
                "entity_type": "Vehicle",
                "attributes": [{"object_id": "l", "name": "location", "type": "geo:point"}],
            }
        ]
    }
    assert client.post("/iot/services", json=group, headers=SERVICE).status_code == 201
    devices = {"devices": [{"device_id": "bus-1"}, {"device_id": "bus-2", "protocol": "IoTA-JSON"}]}
    assert client.post("/iot/devices", json=devices, headers=SERVICE).status_code == 201
    ul = {**SERVICE, "Content-Type": "text/plain"}
    r = client.post(
        "/iot/d", params={"k": "bus-key", "i": "bus-1"}, content=b"l|11.57,104.92", headers=ul
    )
    assert r.status_code == 200, r.text
    r = client.post(
        "/iot/json",
        params={"k": "bus-key", "i": "bus-2"},
        json={"l": [104.95, 11.60]},
        headers=SERVICE,
    )
    assert r.status_code == 200, r.text
    ngsi = {"NGSILD-Tenant": "phnompenh"}
    bus = client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Vehicle:bus-1", headers=ngsi).json()
    assert bus["location"]["type"] == "GeoProperty"
    assert bus["location"]["value"] == {"type": "Point", "coordinates": [104.92, 11.57]}
    near = client.get(
        "/ngsi-ld/v1/entities",
        params={
            "type": "Vehicle",
            "georel": "near;maxDistance==1000",
            "geometry": "Point",
            "coordinates": "[104.921,11.571]",
        },
        headers=ngsi,
    )
    assert [e["id"] for e in near.json()] == ["urn:ngsi-ld:Vehicle:bus-1"]
    for bad in (b"l|91,104", b"l|north", b"l|1,2,3"):
        r = client.post("/iot/d", params={"k": "bus-key", "i": "bus-1"}, content=bad, headers=ul)
        assert r.status_code == 400, (bad, r.text)
    bus = client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Vehicle:bus-1", headers=ngsi).json()
    assert bus["location"]["value"]["coordinates"] == [104.92, 11.57]  # nothing written


def test_a_device_writes_only_what_its_provisioning_declares(client) -> None:
    """A measure its provisioning does not declare is refused whole and counted: a device
    provisioned onto an entity cannot write the entity's other attributes."""
    provision(client)
    ul = {**SERVICE, "Content-Type": "text/plain"}
    ngsi = {"NGSILD-Tenant": "phnompenh"}
    eid = "urn:ngsi-ld:AirQualityObserved:wat-phnom"
    assert client.post("/iot/d", params={"k": "air-key", "i": "aq-wat-phnom"}, content=b"p|40",
                       headers=ul).status_code == 200  # fmt: skip
    for body in (b"p|41|district|Elsewhere", b"location|1", b"p|42|alarm|1"):
        r = client.post("/iot/d", params={"k": "air-key", "i": "aq-wat-phnom"}, content=body,
                        headers=ul)  # fmt: skip
        assert r.status_code == 400 and "not provisioned" in r.json()["detail"], body
    kv = client.get(f"/ngsi-ld/v1/entities/{eid}", params={"options": "keyValues"},
                    headers=ngsi).json()  # fmt: skip
    assert kv["pm25"] == 40 and kv["district"] == "Daun Penh" and "alarm" not in kv
    stats = client.get("/iot/devices/aq-wat-phnom", headers=SERVICE).json()["stats"]
    assert stats["accepted"] == 1 and stats["rejected"] == 3
    bad = {"devices": [{"device_id": "x", "explicitAttrs": "yes"}]}
    assert client.post("/iot/devices", json=bad, headers=SERVICE).status_code == 400


def test_provisioning_is_all_or_nothing(client) -> None:
    """A refused provisioning request keeps none of its groups or devices."""
    provision(client)
    good = {"device_id": "fresh-1", "protocol": "IoTA-JSON"}
    for bad, status in (
        ({"device_id": "x" * 2000}, 400),  # over the id limit
        ({"device_id": "fresh-2", "entity_name": "not a uri"}, 400),
        ({"device_id": "aq-market"}, 409),  # exists already
        (dict(good), 409),  # the same id twice in one request
    ):
        r = client.post("/iot/devices", json={"devices": [good, bad]}, headers=SERVICE)
        assert r.status_code == status, (bad, r.text)
        assert client.get("/iot/devices/fresh-1", headers=SERVICE).status_code == 404, bad
    groups = {"services": [{"apikey": "g-ok", "entity_type": "T"}, {"apikey": "g-bad"}]}
    assert client.post("/iot/services", json=groups, headers=SERVICE).status_code == 400
    listed = client.get("/iot/services", headers=SERVICE).json()["services"]
    assert "g-ok" not in [g["apikey"] for g in listed]


def test_devices_send_without_fiware_service_the_api_key_names_the_service(client) -> None:
    """Real UltraLight/JSON devices send no fiware-service header: the API key's service
    group names the tenant, as FIWARE's IoT Agents (and MQTT here) do."""
    provision(client)
    text = {"Content-Type": "text/plain"}
    r = client.post(
        "/iot/d", params={"k": "air-key", "i": "aq-wat-phnom"}, content=b"p|12", headers=text
    )
    assert r.status_code == 200, r.text
    r = client.post("/iot/json", params={"k": "air-key", "i": "aq-market"}, json={"p": 7})
    assert r.status_code == 200, r.text
    ngsi = {"NGSILD-Tenant": "phnompenh"}
    for eid, pm in (("wat-phnom", 12), ("aq-market", 7)):
        kv = client.get(
            f"/ngsi-ld/v1/entities/urn:ngsi-ld:AirQualityObserved:{eid}",
            params={"options": "keyValues"},
            headers=ngsi,
        ).json()
        assert kv["pm25"] == pm
    # nothing leaked into the default tenant
    r = client.get("/ngsi-ld/v1/entities", params={"type": "AirQualityObserved"})
    assert r.status_code in (200, 404) and (r.status_code == 404 or r.json() == [])
    r = client.post("/iot/d", params={"k": "nobody", "i": "x"}, content=b"p|1", headers=text)
    assert r.status_code == 404 and "unknown API key" in r.json()["detail"]
    r = client.post("/iot/d", params={"k": "k" * 2000, "i": "x"}, content=b"p|1", headers=text)
    assert r.status_code == 400 and "1024" in r.json()["detail"].replace(",", "")


def test_an_api_key_of_two_services_needs_the_header(client) -> None:
    provision(client)
    other = {"fiware-service": "siemreap"}
    group = {"services": [{"apikey": "air-key", "entity_type": "AirQualityObserved"}]}
    assert client.post("/iot/services", json=group, headers=other).status_code == 201
    r = client.post(
        "/iot/d",
        params={"k": "air-key", "i": "aq-wat-phnom"},
        content=b"p|12",
        headers={"Content-Type": "text/plain"},
    )
    assert r.status_code == 400 and "fiware-service" in r.json()["detail"]
    r = client.post(
        "/iot/d",
        params={"k": "air-key", "i": "aq-wat-phnom"},
        content=b"p|12",
        headers={**SERVICE, "Content-Type": "text/plain"},
    )
    assert r.status_code == 200, r.text
