"""`cityos devices simulate` into a served hub over Mosquitto, and `cityos devices stats`."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest
from typer.testing import CliRunner

from cityos.cli import app
from cityos.devices.simulate import simulate


def test_simulator_paces_and_addresses_devices() -> None:
    sent: list[tuple[str, bytes]] = []
    result = simulate(
        lambda t, p: sent.append((t, p)), apikey="k", devices=3, rate=200, seconds=0.25
    )
    assert result.messages == 50 and len(sent) == 50
    assert {t for t, _ in sent} == {"/k/sim-0/attrs", "/k/sim-1/attrs", "/k/sim-2/attrs"}
    assert all(p.startswith(b"i|") and b"|s|" in p for _, p in sent)
    assert result.seconds >= 0.2  # paced, not a burst
    with pytest.raises(ValueError):
        simulate(lambda t, p: None, apikey="k", devices=0, rate=1, seconds=1)


def test_simulate_into_a_served_hub(tmp_path, mosquitto, serve_hub) -> None:
    host, mport = mosquitto
    env = {
        "CITYOS_DATABASE_URL": f"sqlite:///{tmp_path}/sim.db",
        "CITYOS_MQTT_URL": f"mqtt://{host}:{mport}",
    }
    apikey = f"sim{int(time.time() * 1000)}"
    with serve_hub(env) as url:
        group = {
            "services": [
                {
                    "apikey": apikey,
                    "entity_type": "TrafficFlowObserved",
                    "attributes": [
                        {"object_id": "i", "name": "intensity", "type": "Integer"},
                        {"object_id": "s", "name": "averageVehicleSpeed", "type": "Number"},
                    ],
                }
            ]
        }
        provisioning = tmp_path / "provision.json"  # as a FIWARE provisioning file holds it
        provisioning.write_text(
            json.dumps({**group, "devices": [{"device_id": f"sim-{i}"} for i in range(4)]})
        )
        runner = CliRunner()
        simulate_args = [
            "devices", "simulate", "--apikey", apikey, "--devices", "4", "--rate", "40",
            "--seconds", "1", "--mqtt-url", f"mqtt://{host}:{mport}", "--url", url, "--json",
        ]  # fmt: skip
        # nothing provisioned yet: the broker takes the messages, the hub drops them — said
        quarter = [("0.25" if a == "1" else a) for a in simulate_args]  # --seconds 0.25
        r = runner.invoke(app, quarter)
        assert r.exit_code == 0, r.output
        unprovisioned = json.loads(r.stdout)
        assert unprovisioned["acknowledged"] == unprovisioned["messages"] == 10
        assert len(unprovisioned["warnings"]) == 1
        assert f"no service group with API key {apikey!r}" in unprovisioned["warnings"][0]
        assert "warning:" in r.stderr and "no service group" in r.stderr
        r = runner.invoke(app, ["devices", "provision", str(provisioning), "--url", url])
        assert r.exit_code == 0 and "1 service group(s) and 4 device(s)" in r.output, r.output
        r = runner.invoke(app, ["devices", "provision", str(provisioning), "--url", url])
        assert r.exit_code == 1 and "409" in r.output  # the hub's refusal, said plainly
        r = runner.invoke(app, ["devices", "list", "--url", url, "--json"])
        listed = json.loads(r.stdout)
        assert [d["device_id"] for d in listed["devices"]] == [f"sim-{i}" for i in range(4)]
        assert [g["apikey"] for g in listed["services"]] == [apikey]
        time.sleep(0.5)
        r = runner.invoke(app, simulate_args)
        assert r.exit_code == 0, r.output
        done = json.loads(r.stdout)
        assert done["messages"] == done["acknowledged"] == 40  # QoS 1: the broker's PUBACKs
        assert done["warnings"] == []  # the hub has the group and every device
        deadline = time.monotonic() + 15
        while True:
            r = runner.invoke(app, ["devices", "stats", "--url", url, "--json"])
            assert r.exit_code == 0, r.output
            stats = {d["device_id"]: d for d in json.loads(r.stdout)}
            if sum(d["accepted"] for d in stats.values()) == 40:
                break
            assert time.monotonic() < deadline, stats
            time.sleep(0.2)
        assert all(d["rejected"] == 0 for d in stats.values()), stats
        kv = httpx.get(
            f"{url}/ngsi-ld/v1/entities/urn:ngsi-ld:TrafficFlowObserved:sim-0",
            params={"options": "keyValues"},
        ).json()
        assert isinstance(kv["intensity"], int) and kv["averageVehicleSpeed"] > 0
        r = runner.invoke(app, ["devices", "delete", "sim-3", "--url", url])
        assert r.exit_code == 0, r.output
        r = runner.invoke(app, ["devices", "list", "--url", url, "--json"])
        assert "sim-3" not in {d["device_id"] for d in json.loads(r.stdout)["devices"]}


def test_missing_at_hub_names_the_group_then_the_devices() -> None:
    from cityos.devices.simulate import missing_at_hub

    (no_group,) = missing_at_hub([{"apikey": "other"}], [], "k", 3)
    assert "no service group with API key 'k'" in no_group
    devices = [{"device_id": "sim-0", "apikey": "k"}, {"device_id": "sim-1"}]
    (some,) = missing_at_hub([{"apikey": "k"}], devices, "k", 3)
    assert "1 of the 3 simulated devices are not provisioned" in some and "sim-2" in some
    wrong_key = [{"device_id": f"sim-{i}", "apikey": "other"} for i in range(3)]
    assert "3 of the 3" in missing_at_hub([{"apikey": "k"}], wrong_key, "k", 3)[0]
    assert (
        missing_at_hub([{"apikey": "k"}], [{"device_id": f"sim-{i}"} for i in range(3)], "k", 3)
        == []
    )


def test_simulate_with_no_hub_to_ask_warns_and_claims_no_delivery(mosquitto) -> None:
    host, mport = mosquitto
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nothing = s.getsockname()[1]  # closed again: nothing listens there
    args = [
        "devices", "simulate", "--apikey", "k", "--devices", "2", "--rate", "40",
        "--seconds", "0.25", "--mqtt-url", f"mqtt://{host}:{mport}",
        "--url", f"http://127.0.0.1:{nothing}",
    ]  # fmt: skip
    r = CliRunner().invoke(app, [*args, "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["messages"] == out["acknowledged"] == 10
    assert len(out["warnings"]) == 1 and "could not check the hub" in out["warnings"][0]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    said = " ".join(r.stdout.split())
    assert "the broker acknowledged 10" in said and "not a delivery to the hub" in said
    assert "could not check the hub" in " ".join(r.stderr.split())
