"""Flood and size limits per device, and counters kept as Device entities across restarts."""

from __future__ import annotations

import json

import httpx
from starlette.testclient import TestClient
from typer.testing import CliRunner

from cityos.cli import app as cli
from cityos.config import Settings
from cityos.devices.limits import RateLimiter

SERVICE = {"fiware-service": "phnompenh"}
UL = {**SERVICE, "Content-Type": "text/plain"}
NGSI = {"NGSILD-Tenant": "phnompenh"}


def test_token_bucket() -> None:
    now = [100.0]
    bucket = RateLimiter(2, 3, clock=lambda: now[0])
    assert [bucket.allow("a") for _ in range(5)] == [True, True, True, False, False]
    assert bucket.allow("b")  # every device has its own bucket
    now[0] += 0.5  # one token back at 2/s
    assert [bucket.allow("a") for _ in range(2)] == [True, False]
    now[0] += 10
    assert bucket.prune() == 2 and len(bucket) == 0  # refilled buckets are forgotten
    assert all(RateLimiter(0, 1).allow("x") for _ in range(1000))  # 0: no limit


def served(hub_factory, **overrides) -> TestClient:
    from cityos.web.app import create_app

    settings = Settings(**overrides)
    return TestClient(create_app(settings, hub_factory(settings)))


def provision(client: TestClient) -> None:
    group = {
        "services": [
            {
                "apikey": "tfo-key",
                "entity_type": "TrafficFlowObserved",
                "attributes": [{"object_id": "i", "name": "intensity", "type": "Integer"}],
            }
        ]
    }
    assert client.post("/iot/services", json=group, headers=SERVICE).status_code == 201
    devices = {"devices": [{"device_id": d} for d in ("flood", "calm", "big")]}
    assert client.post("/iot/devices", json=devices, headers=SERVICE).status_code == 201


def send(client: TestClient, device: str, body: bytes) -> int:
    params = {"k": "tfo-key", "i": device}
    return client.post("/iot/d", params=params, content=body, headers=UL).status_code


def test_limits_counted_persisted_and_kept_across_restart(hub_factory, monkeypatch) -> None:
    limits = {
        "device_rate_per_s": 0.05,  # no token comes back during the test
        "device_burst": 4,
        "device_max_message_bytes": 100,
        "device_stats_flush_s": 3600,  # only explicit flushes (and the one at shutdown)
    }
    with served(hub_factory, **limits) as client:
        provision(client)
        statuses = [send(client, "flood", b"i|%d" % n) for n in range(10)]
        assert statuses == [200] * 4 + [429] * 6
        # the flood took nothing from another device
        assert [send(client, "calm", b"i|%d" % n) for n in range(4)] == [200] * 4
        assert send(client, "big", b"i|" + b"9" * 200) == 413
        assert send(client, "big", b"i|7") == 200
        r = client.post(
            "/iot/json",
            params={"k": "tfo-key", "i": "big"},
            content=json.dumps({"i": 1, "pad": "x" * 200}),
            headers={**SERVICE, "Content-Type": "application/json"},
        )
        assert r.status_code == 413

        stats = client.get("/iot/devices/flood", headers=SERVICE).json()["stats"]
        assert stats == {
            **stats,
            "accepted": 4,
            "rejected": 6,
            "received": 10,
            "reasons": {"RateLimited": 6},
            "lastRejectReason": "RateLimited",
        }
        assert "messages/s" in stats["lastError"] and stats["dateLastValueReported"]
        # nothing in the hub yet: counting is in memory until a flush
        dev = client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Device:flood", headers=NGSI)
        assert dev.status_code == 404
        agent = client.app.state.agent
        assert agent.flush_stats() == 3
        kv = client.get(
            "/ngsi-ld/v1/entities/urn:ngsi-ld:Device:flood",
            params={"options": "keyValues"},
            headers=NGSI,
        ).json()
        assert kv["type"] == "Device" and kv["name"] == "flood"
        assert kv["messagesReceived"] == 10 and kv["messagesAccepted"] == 4
        assert kv["messagesRejected"] == 6 and kv["rejectReasons"] == {"RateLimited": 6}
        assert kv["lastRejectReason"] == "RateLimited"
        assert kv["dateLastValueReported"] == stats["dateLastValueReported"]
        assert kv["controlledAsset"] == "urn:ngsi-ld:TrafficFlowObserved:flood"
        found = client.get(
            "/ngsi-ld/v1/entities",
            params={"type": "Device", "q": "messagesRejected>0", "options": "keyValues"},
            headers=NGSI,
        ).json()
        assert sorted(e["id"] for e in found) == [
            "urn:ngsi-ld:Device:big",
            "urn:ngsi-ld:Device:flood",
        ]
        # counts after a flush add to the entity's; the same view before and after
        assert send(client, "big", b"i|8") == 200
        before = client.get("/iot/devices/big", headers=SERVICE).json()["stats"]
        assert before["accepted"] == 2 and before["rejected"] == 2
        assert before["reasons"] == {"PayloadTooLarge": 2}
        assert agent.flush_stats() == 1
        assert agent.flush_stats() == 0  # nothing new
        assert client.get("/iot/devices/big", headers=SERVICE).json()["stats"] == before
        assert send(client, "calm", b"i|9") == 429  # its burst of 4 is spent
        # unknown devices are counted in memory only: no Device entity for them
        assert send(client, "ghost", b"i|1") == 404
        agent.flush_stats()
        ghost = client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Device:ghost", headers=NGSI)
        assert ghost.status_code == 404

    # a restart: the counters are read back from the Device entities (the last ones were
    # written by the flush at shutdown)
    with served(hub_factory, **limits) as client:
        got = {
            d: client.get(f"/iot/devices/{d}", headers=SERVICE).json()["stats"]
            for d in ("flood", "calm", "big")
        }
        assert got["flood"]["accepted"] == 4 and got["flood"]["rejected"] == 6
        assert got["calm"] == {**got["calm"], "accepted": 4, "rejected": 1}
        assert got["calm"]["reasons"] == {"RateLimited": 1}
        assert got["big"] == before
        # ... and by `cityos devices stats`, which reads them through the hub's API
        monkeypatch.setattr(
            httpx,
            "get",
            lambda url, headers=None, timeout=None: client.get(
                url.removeprefix("http://hub.test"), headers=headers
            ),
        )
        runner = CliRunner()
        args = ["devices", "stats", "--url", "http://hub.test", "--service", "phnompenh"]
        r = runner.invoke(cli, [*args, "--json"])
        assert r.exit_code == 0, r.output
        rows = {row["device_id"]: row for row in json.loads(r.stdout)}
        assert rows["flood"]["accepted"] == 4 and rows["flood"]["rejected"] == 6
        assert rows["flood"]["reasons"] == {"RateLimited": 6}
        assert rows["big"]["lastRejectReason"] == "PayloadTooLarge"
        r = runner.invoke(cli, args, env={"COLUMNS": "200"})
        assert r.exit_code == 0, r.output
        assert "RateLimited" in r.stdout and "flood" in r.stdout
