"""Devices over MQTT through a real Mosquitto: measures on /<apikey>/<id>/attrs, commands on
/cmd and /cmdexe, flood and size limits, and a shared subscription split between workers."""

from __future__ import annotations

import json
import threading
import time
import uuid

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


def _unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


class FakeDevices:
    """Devices on the broker: they receive on /<apikey>/+/cmd and answer on .../cmdexe."""

    def __init__(self, host: str, port: int, apikey: str) -> None:
        import paho.mqtt.client as mqtt

        self.received: list[tuple[str, bytes]] = []
        self.ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, *a: c.subscribe(f"/{apikey}/+/cmd", qos=1)
        self.client.on_subscribe = lambda *a: self.ready.set()
        self.client.on_message = self._answer
        self.client.connect(host, port)
        self.client.loop_start()
        assert self.ready.wait(5), "the fake devices never subscribed"

    def _answer(self, client, userdata, msg) -> None:
        self.received.append((msg.topic, msg.payload))
        text = msg.payload.decode()
        if text.startswith("{"):  # JSON: {"<command>": <value>} -> {"<command>": <result>}
            answer = json.dumps({k: f"done {v}" for k, v in json.loads(text).items()})
        else:  # UltraLight: <device>@<command>|<value> -> <device>@<command>|<result>
            head, _, value = text.partition("|")
            answer = f"{head}|done {value}"
        client.publish(msg.topic + "exe", answer.encode(), qos=1)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_command_round_trip_over_mqtt(tmp_path, mosquitto) -> None:
    """PATCH on the hub -> /cmd to the device -> its answer on /cmdexe -> _status OK, _info."""
    from cityos.web.app import create_app

    host, port = mosquitto
    apikey = _unique("lamp")
    settings = Settings(mqtt_url=f"mqtt://{host}:{port}", notify_poll_s=0.02)
    hub = Hub(settings, store=SqliteStore(tmp_path / "c.db"))
    devices = FakeDevices(host, port, apikey)
    try:
        with TestClient(create_app(settings, hub)) as client:
            group = {"services": [{"apikey": apikey, "entity_type": "Streetlight"}]}
            assert client.post("/iot/services", json=group, headers=SERVICE).status_code == 201
            cmd = [{"name": "switch", "type": "command"}]
            body = {
                "devices": [
                    {"device_id": "lamp-ul", "protocol": "PDI-IoTA-UltraLight", "commands": cmd},
                    {"device_id": "lamp-json", "protocol": "PDI-IoTA-JSON", "commands": cmd},
                ]
            }
            assert client.post("/iot/devices", json=body, headers=SERVICE).status_code == 201
            time.sleep(0.5)  # let the hub's subscription to /+/+/cmdexe settle

            def entity(eid: str):
                r = client.get(
                    f"/ngsi-ld/v1/entities/{eid}", params={"options": "keyValues"}, headers=NGSI
                )
                return r.json()

            for device, value, sent, info in (
                ("lamp-ul", "on", b"lamp-ul@switch|on", "done on"),
                ("lamp-json", 75, b'{"switch":75}', "done 75"),
            ):
                eid = f"urn:ngsi-ld:Streetlight:{device}"
                r = client.patch(
                    f"/ngsi-ld/v1/entities/{eid}/attrs/switch", json={"value": value}, headers=NGSI
                )
                assert r.status_code == 204, r.text
                kv = wait_for(lambda eid=eid: (e := entity(eid))["switch_status"] == "OK" and e)
                assert kv["switch_info"] == info and kv["switch"] == value
                assert (f"/{apikey}/{device}/cmd", sent) in devices.received
                hist = client.get(
                    f"/ngsi-ld/v1/temporal/entities/{eid}",
                    params={"attrs": "switch_status", "options": "temporalValues"},
                    headers=NGSI,
                ).json()
                assert [v for v, _ in hist["switch_status"]["values"]] == ["PENDING", "OK"]
            time.sleep(0.5)  # the _status/_info writes triggered nothing more
            assert len(devices.received) == 2
            stats = client.get("/iot/devices/lamp-ul", headers=SERVICE).json()["stats"]
            assert stats["accepted"] == 1 and stats["rejected"] == 0  # the answer
    finally:
        devices.close()


def test_flood_and_oversized_messages_over_mqtt(tmp_path, mosquitto) -> None:
    """One device floods: its excess is dropped and counted; another device loses nothing."""
    import paho.mqtt.client as mqtt

    from cityos.web.app import create_app

    host, port = mosquitto
    apikey = _unique("flood")
    settings = Settings(
        mqtt_url=f"mqtt://{host}:{port}",
        device_rate_per_s=20,
        device_burst=40,
        device_max_message_bytes=2048,
        device_stats_flush_s=3600,
    )
    hub = Hub(settings, store=SqliteStore(tmp_path / "f.db"))
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
        body = {"devices": [{"device_id": d} for d in ("noisy", "quiet", "big")]}
        assert client.post("/iot/devices", json=body, headers=SERVICE).status_code == 201
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        pub.connect(host, port)
        pub.loop_start()
        flood, calm = 500, 30
        try:
            time.sleep(0.5)
            started = time.monotonic()
            infos = []
            for n in range(flood):
                infos.append(pub.publish(f"/{apikey}/noisy/attrs", b"i|%d" % n, qos=1))
                if n % (flood // calm) == 0 and n // (flood // calm) < calm:
                    infos.append(pub.publish(f"/{apikey}/quiet/attrs", b"i|%d" % n, qos=1))
            infos.append(pub.publish(f"/{apikey}/big/attrs", b"i|" + b"9" * 4000, qos=1))
            infos.append(pub.publish(f"/{apikey}/big/attrs", b"i|5", qos=1))
            # a key no tenant has: charged to no device (the quiet one's counts stay exact)
            infos.append(pub.publish(f"/{_unique('nokey')}/quiet/attrs", b"i|1", qos=1))
            for info in infos:
                info.wait_for_publish(10)
        finally:
            pub.loop_stop()
            pub.disconnect()

        def stats(device: str) -> dict:
            return client.get(f"/iot/devices/{device}", headers=SERVICE).json()["stats"]

        noisy = wait_for(lambda: (s := stats("noisy"))["received"] == flood and s, timeout=30)
        elapsed = time.monotonic() - started
        quiet = wait_for(lambda: (s := stats("quiet"))["received"] == calm and s)
        assert quiet["accepted"] == calm and quiet["rejected"] == 0
        assert 40 <= noisy["accepted"] <= 40 + 20 * elapsed + 1
        assert noisy["rejected"] == flood - noisy["accepted"]
        assert noisy["reasons"] == {"RateLimited": noisy["rejected"]}
        assert wait_for(lambda: client.app.state.agent.unknown_key_messages >= 1)
        assert stats("quiet")["received"] == calm
        big = wait_for(lambda: (s := stats("big"))["received"] == 2 and s)
        assert big["accepted"] == 1 and big["reasons"] == {"PayloadTooLarge": 1}
        # what was rejected wrote nothing; every one of the quiet device's measures got in
        rows = hub.store.history("phnompenh", "urn:ngsi-ld:TrafficFlowObserved:quiet")
        assert len([r for r in rows if r.attr.endswith("intensity")]) == calm
        rows = hub.store.history("phnompenh", "urn:ngsi-ld:TrafficFlowObserved:noisy", limit=9999)
        assert len([r for r in rows if r.attr.endswith("intensity")]) == noisy["accepted"]
        # the counters as the Device entity's attributes
        assert client.app.state.agent.flush_stats() == 3
        kv = client.get(
            "/ngsi-ld/v1/entities/urn:ngsi-ld:Device:noisy",
            params={"options": "keyValues"},
            headers=NGSI,
        ).json()
        assert kv["messagesReceived"] == flood
        assert kv["messagesRejected"] == noisy["rejected"]
        assert kv["lastRejectReason"] == "RateLimited"


def test_shared_subscription_splits_the_stream(tmp_path, mosquitto) -> None:
    """Two ingest workers in one MQTT 5 shared group: each message is ingested exactly once
    in total (and both take a share); two workers outside a group would each ingest all."""
    import paho.mqtt.client as mqtt

    from cityos.devices.agent import Agent
    from cityos.devices.mqtt import MqttIngest

    host, port = mosquitto
    url = f"mqtt://{host}:{port}"
    settings = Settings(device_rate_per_s=0)
    hub = Hub(settings, store=SqliteStore(tmp_path / "s.db"))
    apikey = _unique("shared")
    agents = [Agent(hub), Agent(hub)]
    agents[0].add_group(
        "",
        {
            "apikey": apikey,
            "entity_type": "TrafficFlowObserved",
            "attributes": [{"object_id": "i", "name": "intensity", "type": "Integer"}],
        },
    )
    agents[0].add_device("", {"device_id": "tfo-shared"})
    eid = "urn:ngsi-ld:TrafficFlowObserved:tfo-shared"

    def accepted(agent: Agent) -> int:
        return agent.book.local("", "tfo-shared").accepted

    def publish(n: int, start: int) -> None:
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        pub.connect(host, port)
        pub.loop_start()
        try:
            for k in range(start, start + n):
                pub.publish(f"/{apikey}/tfo-shared/attrs", b"i|%d" % k, qos=1).wait_for_publish(5)
        finally:
            pub.loop_stop()
            pub.disconnect()

    group = _unique("cityos-")
    workers = [MqttIngest(a, url, shared_group=group) for a in agents]
    for w in workers:
        w.start()
    try:
        wait_for(lambda: all(w.subscribed for w in workers))
        assert workers[0].topics[0] == f"$share/{group}//+/+/attrs"
        publish(40, 0)
        wait_for(lambda: accepted(agents[0]) + accepted(agents[1]) >= 40)
        time.sleep(0.5)  # nothing arrives twice, late
        assert accepted(agents[0]) + accepted(agents[1]) == 40
        assert accepted(agents[0]) > 0 and accepted(agents[1]) > 0  # both took a share
        rows = [r for r in hub.store.history("", eid) if r.attr.endswith("intensity")]
        assert sorted(r.instance["value"] for r in rows) == list(range(40))
    finally:
        for w in workers:
            w.stop()

    # the contrast: the same two workers without a group each ingest every message
    separate = [Agent(hub), Agent(hub)]
    workers = [MqttIngest(a, url) for a in separate]
    for w in workers:
        w.start()
    try:
        wait_for(lambda: all(w.subscribed for w in workers))
        publish(5, 100)
        wait_for(lambda: accepted(separate[0]) == 5 and accepted(separate[1]) == 5)
    finally:
        for w in workers:
            w.stop()
    hub.close()
