"""Devices over MQTT through a real Mosquitto: UltraLight and JSON on /<apikey>/<id>/attrs."""

from __future__ import annotations

import time

from starlette.testclient import TestClient

from cityos.config import Settings
from cityos.hub.core import Hub
from cityos.hub.store.sqlite import SqliteStore

SERVICE = {"fiware-service": "phnompenh"}
NGSI = {"NGSILD-Tenant": "phnompenh"}


def wait_for(fn, timeout: float = 10):
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_mqtt_measures_update_entities(tmp_path, mosquitto) -> None:
    import paho.mqtt.client as mqtt

    from cityos.web.app import create_app

    host, port = mosquitto
    apikey = f"key{int(time.time() * 1000)}"
    settings = Settings(mqtt_url=f"mqtt://{host}:{port}")
    hub = Hub(settings, store=SqliteStore(tmp_path / "m.db"))
    with TestClient(create_app(settings, hub)) as client:
        group = {
            "services": [
                {
                    "apikey": apikey,
                    "entity_type": "TrafficFlowObserved",
                    "attributes": [{"object_id": "i", "name": "intensity", "type": "Integer"}],
                }
            ]
        }
        assert client.post("/iot/services", json=group, headers=SERVICE).status_code == 201
        devices = {"devices": [{"device_id": "tfo-1"}, {"device_id": "tfo-2"}]}
        assert client.post("/iot/devices", json=devices, headers=SERVICE).status_code == 201
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        pub.connect(host, port)
        pub.loop_start()
        try:
            time.sleep(0.5)  # let the hub's subscription settle
            pub.publish(
                f"/{apikey}/tfo-1/attrs", b"2026-11-30T01:00:00Z|i|640", qos=1
            ).wait_for_publish(5)
            pub.publish(
                f"/{apikey}/tfo-2/attrs", b"this is not ultralight", qos=1
            ).wait_for_publish(5)
            pub.publish(f"/{apikey}/tfo-2/attrs", b'{"i": 75}', qos=1).wait_for_publish(5)
        finally:
            pub.loop_stop()
            pub.disconnect()

        def entity(eid: str):
            r = client.get(
                f"/ngsi-ld/v1/entities/{eid}", params={"options": "keyValues"}, headers=NGSI
            )
            return r.json() if r.status_code == 200 else None

        assert wait_for(lambda: entity("urn:ngsi-ld:TrafficFlowObserved:tfo-1"))["intensity"] == 640
        assert wait_for(lambda: entity("urn:ngsi-ld:TrafficFlowObserved:tfo-2"))["intensity"] == 75
        stats = client.get("/iot/devices/tfo-2", headers=SERVICE).json()["stats"]
        assert stats == {**stats, "accepted": 1, "rejected": 1}
        assert stats["reasons"] == {"MalformedPayload": 1}
