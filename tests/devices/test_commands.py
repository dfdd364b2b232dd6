"""Device commands through the hub: provisioning, the subscription, PENDING/OK/ERROR, expiry.

The MQTT publish is replaced by a recorder here (the real broker round trip is in
test_mqtt.py); everything else is the real path: PATCH on the entity, the outbox, the
Deliverer, the in-process receiver, the device's answer over HTTP.
"""

from __future__ import annotations

import time

import pytest
from starlette.testclient import TestClient

from cityos.config import Settings
from cityos.devices.commands import (
    encode_command,
    is_json_device,
    parse_subscription_id,
    parse_ul_result,
    subscription_id,
)
from cityos.devices.ultralight import UltraLightError

SERVICE = {"fiware-service": "phnompenh"}
UL = {**SERVICE, "Content-Type": "text/plain"}
NGSI = {"NGSILD-Tenant": "phnompenh"}
LAMP1 = "urn:ngsi-ld:Streetlight:lamp-1"
LAMP2 = "urn:ngsi-ld:Streetlight:lamp-2"


def served(hub_factory, **overrides) -> TestClient:
    from cityos.web.app import create_app

    settings = Settings(notify_poll_s=0.02, **overrides)
    hub = hub_factory(settings)
    return TestClient(create_app(settings, hub))


def provision(client: TestClient, apikey: str = "lamp-key") -> None:
    group = {
        "services": [
            {
                "apikey": apikey,
                "entity_type": "Streetlight",
                "resource": "/iot/d",
                "attributes": [{"object_id": "lux", "name": "lux", "type": "Number"}],
                "commands": [{"name": "dim", "type": "command"}],
            }
        ]
    }
    assert client.post("/iot/services", json=group, headers=SERVICE).status_code == 201
    devices = {
        "devices": [
            {
                "device_id": "lamp-1",
                "protocol": "PDI-IoTA-UltraLight",
                "commands": [{"name": "switch", "type": "command"}],
                "static_attributes": [{"name": "street", "type": "Text", "value": "Sisowath"}],
            },
            {"device_id": "lamp-2", "protocol": "PDI-IoTA-JSON"},
        ]
    }
    r = client.post("/iot/devices", json=devices, headers=SERVICE)
    assert r.status_code == 201, r.text


def entity(client: TestClient, eid: str) -> dict:
    r = client.get(f"/ngsi-ld/v1/entities/{eid}", params={"options": "keyValues"}, headers=NGSI)
    assert r.status_code == 200, r.text
    return r.json()


def recorder(client: TestClient, ok: bool = True, error: str | None = None) -> list:
    sent: list[tuple[str, bytes]] = []

    def publish(topic: str, payload: bytes) -> tuple[bool, str | None]:
        sent.append((topic, payload))
        return ok, error

    client.app.state.agent.commands.publish = publish
    return sent


def test_command_payloads_follow_the_fiware_agents() -> None:
    assert encode_command("lamp-1", "switch", "on", json_payload=False) == b"lamp-1@switch|on"
    assert encode_command("l", "dim", {"level": 40, "ramp": 2}, json_payload=False) == (
        b"l@dim|level=40|ramp=2"
    )
    assert encode_command("l", "reset", None, json_payload=False) == b"l@reset|"
    assert encode_command("l", "dim", {"level": 40}, json_payload=True) == b'{"dim":{"level":40}}'
    assert encode_command("l", "on", True, json_payload=True) == b'{"on":true}'
    assert parse_ul_result("lamp-1", "lamp-1@switch|switched on|at 3") == {
        "switch": "switched on|at 3"
    }
    for bad in ("switch|on", "lamp-2@switch|on", "lamp-1@|x"):
        with pytest.raises(UltraLightError):
            parse_ul_result("lamp-1", bad)
    assert is_json_device({"protocol": "PDI-IoTA-JSON"}, None)
    assert is_json_device({}, {"protocol": "IoTA-JSON"})
    assert is_json_device({}, {"payloadType": "iotagentjson"})
    assert not is_json_device({"protocol": "PDI-IoTA-UltraLight"}, {"protocol": "IoTA-JSON"})
    assert not is_json_device({}, None)
    for tenant, kind in (("", "Streetlight"), ("phnompenh", "https://x.org/a:b/c d")):
        sid = subscription_id(tenant, "switch", kind)
        assert parse_subscription_id(sid) == (tenant, "switch", kind)


def test_command_sent_answered_and_never_looped(hub_factory, wait_for) -> None:
    with served(hub_factory) as client:
        sent = recorder(client)
        provision(client)
        kv = entity(client, LAMP1)  # provisioning created the entity with its commands
        assert kv["switch_status"] == "UNKNOWN" and kv["dim_status"] == "UNKNOWN"
        assert kv["street"] == "Sisowath" and kv["switch"] == ""
        r = client.patch(
            f"/ngsi-ld/v1/entities/{LAMP1}/attrs/switch",
            json={"type": "Property", "value": "on"},
            headers=NGSI,
        )
        assert r.status_code == 204, r.text
        wait_for(lambda: sent, what="the command to be published")
        assert sent == [("/lamp-key/lamp-1/cmd", b"lamp-1@switch|on")]
        wait_for(lambda: entity(client, LAMP1)["switch_status"] == "PENDING", what="PENDING")
        # the device answers over HTTP, as the FIWARE UltraLight agent's devices do
        r = client.post(
            "/iot/d",
            params={"k": "lamp-key", "i": "lamp-1"},
            content=b"lamp-1@switch|switched on",
            headers=UL,
        )
        assert r.status_code == 200, r.text
        kv = entity(client, LAMP1)
        assert kv["switch_status"] == "OK" and kv["switch_info"] == "switched on"
        assert kv["switch"] == "on"

        # a JSON device, a command of its service group, an object value
        r = client.patch(
            f"/ngsi-ld/v1/entities/{LAMP2}/attrs/dim", json={"value": {"level": 40}}, headers=NGSI
        )
        assert r.status_code == 204, r.text
        wait_for(lambda: len(sent) == 2, what="the JSON command")
        assert sent[1] == ("/lamp-key/lamp-2/cmd", b'{"dim":{"level":40}}')
        r = client.post(
            "/iot/json/commands",
            params={"k": "lamp-key", "i": "lamp-2"},
            json={"dim": {"level": 40, "done": True}},
            headers=SERVICE,
        )
        assert r.status_code == 200, r.text
        kv = entity(client, LAMP2)
        assert kv["dim_status"] == "OK" and kv["dim_info"] == {"level": 40, "done": True}
        # devices answer without fiware-service too: the API key names the service
        r = client.post(
            "/iot/json/commands",
            params={"k": "lamp-key", "i": "lamp-2"},
            json={"dim": {"level": 41}},
        )
        assert r.status_code == 200, r.text
        assert entity(client, LAMP2)["dim_info"] == {"level": 41}

        # measures and status writes never trigger a command; the same value again does
        r = client.post(
            "/iot/d", params={"k": "lamp-key", "i": "lamp-1"}, content=b"lux|20", headers=UL
        )
        assert r.status_code == 200
        time.sleep(0.4)
        assert len(sent) == 2
        r = client.patch(
            f"/ngsi-ld/v1/entities/{LAMP1}/attrs/switch", json={"value": "on"}, headers=NGSI
        )
        assert r.status_code == 204
        wait_for(lambda: len(sent) == 3, what="the repeated command")
        time.sleep(0.3)
        assert len(sent) == 3

        hist = client.get(
            f"/ngsi-ld/v1/temporal/entities/{LAMP1}",
            params={"attrs": "switch_status", "options": "temporalValues"},
            headers=NGSI,
        ).json()
        # (by observedAt: the provisioned UNKNOWN has none)
        assert [v for v, _ in hist["switch_status"]["values"]] == ["PENDING", "OK", "PENDING"]
        # answers count as the device's messages; a wrong answer is counted as rejected
        r = client.post(
            "/iot/d",
            params={"k": "lamp-key", "i": "lamp-1"},
            content=b"lamp-1@fly|now",
            headers=UL,
        )
        assert r.status_code == 400 and "no command 'fly'" in r.json()["detail"]
        stats = client.get("/iot/devices/lamp-1", headers=SERVICE).json()["stats"]
        assert stats["accepted"] == 2 and stats["rejected"] == 1
        assert stats["reasons"] == {"BadRequestData": 1}


def test_failed_publish_and_expired_commands_are_errors(hub_factory, wait_for) -> None:
    with served(hub_factory, device_command_timeout_s=0.3, device_stats_flush_s=0.05) as client:
        sent = recorder(client, ok=False, error="MQTT OSError: connection refused")
        provision(client)
        r = client.patch(
            f"/ngsi-ld/v1/entities/{LAMP1}/attrs/switch", json={"value": "on"}, headers=NGSI
        )
        assert r.status_code == 204
        kv = wait_for(
            lambda: (e := entity(client, LAMP1))["switch_status"] == "ERROR" and e,
            what="ERROR after a failed publish",
        )
        assert kv["switch_info"] == "MQTT OSError: connection refused"
        assert len(sent) == 1

        # published, never answered: ERROR, EXPIRED after device_command_timeout_s
        recorder(client)
        r = client.patch(
            f"/ngsi-ld/v1/entities/{LAMP2}/attrs/dim", json={"value": 10}, headers=NGSI
        )
        assert r.status_code == 204
        wait_for(lambda: entity(client, LAMP2)["dim_status"] == "PENDING", what="PENDING")
        kv = wait_for(
            lambda: (e := entity(client, LAMP2))["dim_status"] == "ERROR" and e,
            what="the command to expire",
        )
        assert kv["dim_info"] == "EXPIRED"


def test_command_provisioning(hub_factory, wait_for) -> None:
    with served(hub_factory) as client:
        sent = recorder(client)
        hub = client.app.state.hub
        for key in ("key-a", "key-b"):
            lux = [{"object_id": "lux", "name": "lux", "type": "Number"}]
            group = {"services": [{"apikey": key, "entity_type": "Streetlight", "attributes": lux}]}
            assert client.post("/iot/services", json=group, headers=SERVICE).status_code == 201
        cmd = [{"name": "switch", "type": "command"}]
        # two service groups: a device with commands must say which API key addresses it
        r = client.post(
            "/iot/devices",
            json={"devices": [{"device_id": "l1", "commands": cmd}]},
            headers=SERVICE,
        )
        assert r.status_code == 400 and "apikey" in r.json()["detail"]
        assert client.get("/iot/devices/l1", headers=SERVICE).status_code == 404
        bad = {"devices": [{"device_id": "l1", "apikey": "key-a", "commands": [{"name": "a|b"}]}]}
        assert client.post("/iot/devices", json=bad, headers=SERVICE).status_code == 400

        # the entity already exists (the device reported before): commands are added to it
        plain = {"devices": [{"device_id": "l1", "apikey": "key-a"}]}
        assert client.post("/iot/devices", json=plain, headers=SERVICE).status_code == 201
        r = client.post("/iot/d", params={"k": "key-a", "i": "l1"}, content=b"lux|3", headers=UL)
        assert r.status_code == 200
        assert client.delete("/iot/devices/l1", headers=SERVICE).status_code == 204
        with_cmd = {"devices": [{"device_id": "l1", "apikey": "key-a", "commands": cmd}]}
        assert client.post("/iot/devices", json=with_cmd, headers=SERVICE).status_code == 201
        kv = entity(client, "urn:ngsi-ld:Streetlight:l1")
        assert kv["lux"] == 3 and kv["switch_status"] == "UNKNOWN"
        sid = subscription_id("phnompenh", "switch", "Streetlight")
        sub = hub.store.get_subscription("phnompenh", sid)
        assert sub["watchedAttributes"] == ["switch"]
        assert sub["entities"] == [{"type": "Streetlight"}]
        assert sub["notification"]["endpoint"]["uri"] == "local://cityos-device-commands"
        # one subscription per command and entity type, however many devices
        more = {
            "devices": [
                {"device_id": f"m{n}", "apikey": "key-a", "commands": cmd} for n in range(5)
            ]
        }
        assert client.post("/iot/devices", json=more, headers=SERVICE).status_code == 201
        subs = [s for _, s in hub.store.list_subscriptions("phnompenh")]
        assert [s["id"] for s in subs] == [sid]
        # a deleted device's entity takes no more commands; nothing was sent so far
        assert client.delete("/iot/devices/l1", headers=SERVICE).status_code == 204
        eid = "urn:ngsi-ld:Streetlight:l1"
        r = client.patch(
            f"/ngsi-ld/v1/entities/{eid}/attrs/switch", json={"value": 1}, headers=NGSI
        )
        assert r.status_code == 204
        # ... while another device of the type still does
        r = client.patch(
            "/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:m3/attrs/switch",
            json={"value": 2},
            headers=NGSI,
        )
        assert r.status_code == 204
        wait_for(lambda: sent, what="m3's command")
        time.sleep(0.2)
        assert sent == [("/key-a/m3/cmd", b"m3@switch|2")]
