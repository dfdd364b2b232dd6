"""Attack detection, replayed through the real app with authentication on: a brute force, a
scan of ids, a token used on another tenant and a spoofed sensor each raise exactly their
FIWARE Alert (read back with GET /entities?type=Alert), while normal traffic and normal
sensor drift raise none. Then the parts alone: the request-rate model, de-duplication, the
district's own replay (no false alarms), the queue that never blocks, the agent's hook."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from cityos.config import Settings
from cityos.hub.client import HubClient
from cityos.hub.core import Hub
from cityos.security.detect import Detector, cause_of, parse_ranges, refused
from cityos.security.keys import create_key

BASE = "/ngsi-ld/v1"
CITY, OTHER = "phnompenh", "bangkok"
T0 = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
STATION = "urn:ngsi-ld:AirQualityObserved:aq-1"
WAT_PHNOM = {"type": "Point", "coordinates": [104.923, 11.5762]}


class City:
    """The app, served, with an operator key for the city and the default tenant."""

    def __init__(self, client: TestClient, hub: Hub) -> None:
        self.client, self.hub = client, hub
        self.detector: Detector = client.app.state.detector
        self.key, doc = create_key(hub.store, tenants=["", CITY], roles=["city-operator"])
        self.subject = f"key:{doc['id']}"
        admin, _ = create_key(hub.store, tenants=["*"], roles=["city-operator"])
        self.admin = {"Authorization": f"ApiKey {admin}"}

    def headers(self, tenant: str = CITY) -> dict[str, str]:
        out = {"Authorization": f"ApiKey {self.key}"}
        if tenant:
            out["NGSILD-Tenant"] = tenant
        return out

    def alerts(self, tenant: str) -> list[dict[str, Any]]:
        """The Alerts in a tenant, after the detector has processed what is queued."""
        self.detector.process()
        headers = {**self.admin, **({"NGSILD-Tenant": tenant} if tenant else {})}
        r = self.client.get(f"{BASE}/entities", params={"type": "Alert"}, headers=headers)
        if r.status_code == 404 and "NonexistentTenant" in r.text:
            return []  # nothing was ever written there
        assert r.status_code == 200, r.text
        return r.json()


def _settings(tmp_path, **extra: Any) -> Settings:
    return Settings(
        auth_required=True,
        token_key_path=str(tmp_path / "token.pem"),
        audit_key_path=str(tmp_path / "audit.pem"),
        rate_per_s=0,
        device_rate_per_s=0,
        **extra,
    )


@pytest.fixture(params=["sqlite"])
def city(request, tmp_path) -> Iterator[City]:
    yield from _city(request, tmp_path)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_city(request, tmp_path) -> Iterator[City]:
    """The same, on each engine."""
    yield from _city(request, tmp_path)


def _city(request, tmp_path) -> Iterator[City]:
    from cityos.web.app import create_app

    settings = _settings(tmp_path)
    if request.param == "sqlite":
        from cityos.hub.store.sqlite import SqliteStore

        store: Any = SqliteStore(tmp_path / "detect.db")
    else:
        from cityos.hub.store.postgres import PostgresStore

        url = request.getfixturevalue("postgres_url")
        store = PostgresStore(url, schema=f"cityos_test_{uuid.uuid4().hex[:10]}")
    hub = Hub(settings, store=store)
    with TestClient(create_app(settings, hub), raise_server_exceptions=False) as client:
        yield City(client, hub)
    if request.param == "postgresql":
        from cityos.hub.store.postgres import PostgresStore

        PostgresStore(url, schema=store.schema).drop_schema()


def _kv(alert: dict[str, Any], name: str) -> Any:
    return alert[name]["value"]


def _only(alerts: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    assert [_kv(a, "subCategory") for a in alerts] == [kind], alerts
    assert _kv(alerts[0], "category") == "security"
    for name in ("severity", "description", "dateIssued", "validFrom", "validTo", "alertSource"):
        assert _kv(alerts[0], name), name
    return alerts[0]


# -- the attacks, replayed ----------------------------------------------------------------
def test_brute_force_raises_one_alert_that_a_subscription_routes(any_city: City) -> None:
    city = any_city
    routed: list[dict[str, Any]] = []
    HubClient(city.hub).subscribe(routed.append, entity_type="Alert", q='category=="security"')
    for n in range(12):  # guessed keys, then guessed passwords, from one address
        forged = f"cok_{n:016x}_{uuid.uuid4().hex}"
        r = city.client.get(f"{BASE}/types", headers={"Authorization": f"ApiKey {forged}"})
        assert r.status_code == 401
    for n in range(2):
        form = {"grant_type": "password", "username": "admin", "password": f"guess-{n}"}
        assert city.client.post("/auth/token", data=form).status_code == 400
    alert = _only(city.alerts(""), "bruteForce")
    assert _kv(alert, "alertSource") == "ip:testclient"
    assert _kv(alert, "severity") == "high"
    data = _kv(alert, "data")
    assert data["rule"] == "bruteForce" and data["failures"] == 10
    assert data["occurrences"] == 12 + 2 - 10 + 1  # the refused passwords counted too
    assert city.alerts(CITY) == []
    deadline = time.monotonic() + 10  # the subscription is notified by the delivery worker
    while not routed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert routed and routed[0]["data"][0]["id"] == alert["id"]


def test_a_scan_of_ids_raises_one_alert(city: City) -> None:
    for n in range(25):
        r = city.client.get(
            f"{BASE}/entities/urn:ngsi-ld:Building:guess-{n}", headers=city.headers()
        )
        assert r.status_code == 404
    alert = _only(city.alerts(CITY), "idScan")
    assert _kv(alert, "alertSource") == city.subject
    assert _kv(alert, "data")["distinctIds"] >= 20
    assert "urn:ngsi-ld:Building:guess-" in _kv(alert, "description")
    assert city.alerts("") == []


def test_a_token_from_one_tenant_used_on_another_raises_one_alert(city: City) -> None:
    key, doc = create_key(city.hub.store, tenants=[CITY], roles=["traffic-engineer"])
    replayed = {"Authorization": f"Bearer {key}", "NGSILD-Tenant": OTHER}
    for _ in range(3):
        assert city.client.get(f"{BASE}/entities?type=Road", headers=replayed).status_code == 403
    alert = _only(city.alerts(CITY), "crossTenantToken")  # told to the key's own tenant
    assert _kv(alert, "alertSource") == f"key:{doc['id']}"
    assert _kv(alert, "data")["attemptedTenant"] == OTHER
    assert _kv(alert, "data")["occurrences"] == 3  # one alert, not one per request
    assert city.alerts(OTHER) == []  # nothing written (nor a tenant made) where it knocked
    assert city.alerts("") == []


def _provision(city: City, device_id: str, entity_id: str) -> None:
    service = {**city.headers(), "fiware-service": CITY}
    del service["NGSILD-Tenant"]
    group = {
        "apikey": "air-key",
        "entity_type": "AirQualityObserved",
        "resource": "/iot/json",
        "attributes": [
            {"object_id": "t", "name": "temperature", "type": "Number"},
            {"object_id": "p", "name": "pm25", "type": "Number"},
        ],
    }
    r = city.client.post("/iot/services", json={"services": [group]}, headers=service)
    assert r.status_code in (201, 409), r.text
    body = {"devices": [{"device_id": device_id, "entity_name": entity_id, "apikey": "air-key"}]}
    assert city.client.post("/iot/devices", json=body, headers=service).status_code == 201
    station = {"id": entity_id, "type": "AirQualityObserved"}
    station["location"] = {"type": "GeoProperty", "value": WAT_PHNOM}
    assert (
        city.client.post(f"{BASE}/entities", json=station, headers=city.headers()).status_code
        == 201
    )


def _send(city: City, device_id: str, minute: int, t: float, p: float) -> None:
    service = {"Authorization": f"ApiKey {city.key}", "fiware-service": CITY}
    body = {"t": t, "p": p, "TimeInstant": (T0 + timedelta(minutes=minute)).isoformat()}
    r = city.client.post(f"/iot/json?k=air-key&i={device_id}", json=body, headers=service)
    assert r.status_code == 200, r.text


def _drift(minute: int) -> tuple[float, float]:
    """Normal readings: a warm morning warming slowly, PM2.5 wandering."""
    return 27.0 + 0.02 * minute + 0.1 * math.sin(minute / 3), 40 + 3 * math.sin(minute / 5)


def test_a_spoofed_sensor_raises_an_impossible_value_and_a_jump(any_city: City) -> None:
    city = any_city
    _provision(city, "aq-1", STATION)
    for minute in range(30):
        _send(city, "aq-1", minute, *_drift(minute))
    _send(city, "aq-1", 30, 250.0, 41.0)  # no air in a city is 250 °C
    _send(city, "aq-1", 31, 61.0, 41.5)  # possible somewhere, not 34 °C up in two minutes
    _send(city, "aq-1", 32, *_drift(32))  # and back: the same alert, not another
    alerts = city.alerts(CITY)
    assert sorted(_kv(a, "subCategory") for a in alerts) == ["spoofedSensor"] * 2, alerts
    by_rule = {_kv(a, "data")["rule"]: a for a in alerts}
    impossible, jump = by_rule["implausibleValue"], by_rule["abnormalJump"]
    assert _kv(impossible, "data")["value"] == 250.0
    assert _kv(impossible, "severity") == "high"
    assert _kv(jump, "data")["previous"] < 28 and _kv(jump, "data")["value"] == 61.0
    assert _kv(jump, "data")["occurrences"] == 2
    for alert in alerts:
        assert _kv(alert, "alertSource") == "urn:ngsi-ld:Device:aq-1"
        assert _kv(alert, "data")["entity"] == STATION
        assert alert["location"]["value"] == WAT_PHNOM
    assert _kv(impossible, "validFrom").startswith("2026-11-30T01:30:00")  # the reading's time


def test_normal_traffic_raises_no_alert(city: City) -> None:
    client, own = city.client, city.headers()
    _provision(city, "aq-2", "urn:ngsi-ld:AirQualityObserved:aq-2")
    for n in range(30):
        flow = {
            "id": f"urn:ngsi-ld:TrafficFlowObserved:norodom-{n}",
            "type": "TrafficFlowObserved",
            "intensity": {"type": "Property", "value": 400 + n},
        }
        assert client.post(f"{BASE}/entities", json=flow, headers=own).status_code == 201
        assert client.get(f"{BASE}/entities/{flow['id']}", headers=own).status_code == 200
        patch = {"intensity": {"type": "Property", "value": 410 + n}}
        r = client.patch(f"{BASE}/entities/{flow['id']}/attrs", json=patch, headers=own)
        assert r.status_code == 204
        assert (
            client.get(f"{BASE}/entities?type=TrafficFlowObserved", headers=own).status_code == 200
        )
    for minute in range(45):  # normal drift
        _send(city, "aq-2", minute, *_drift(minute))
    for n in range(3):  # a few honest mistakes: stale links, a mistyped key, no key
        assert (
            client.get(f"{BASE}/entities/urn:ngsi-ld:Road:gone-{n}", headers=own).status_code == 404
        )
    assert (
        client.get(f"{BASE}/types", headers={"X-API-Key": city.key[:-2] + "xx"}).status_code == 401
    )
    assert client.get(f"{BASE}/types").status_code == 401
    traffic_engineer, _ = create_key(city.hub.store, tenants=[CITY], roles=["traffic-engineer"])
    denied = {"Authorization": f"ApiKey {traffic_engineer}", "NGSILD-Tenant": CITY}
    assert client.delete(f"{BASE}/entities/urn:ngsi-ld:Road:1", headers=denied).status_code == 403
    assert city.alerts(CITY) == [] and city.alerts("") == []
    assert city.detector.raised == 0


# -- the parts alone ------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def hub(tmp_path) -> Iterator[Hub]:
    from cityos.hub.store.sqlite import SqliteStore

    h = Hub(Settings(), store=SqliteStore(tmp_path / "unit.db"))
    yield h
    h.close()


def _alerts(hub: Hub, tenant: str = "") -> list[dict[str, Any]]:
    return HubClient(hub, tenant=tenant).query(type="Alert", fmt="keyValues")


def test_the_request_rate_model_learns_each_clients_usual_rate(hub: Hub) -> None:
    clock = Clock()
    detector = Detector(hub, clock=clock)
    window = hub.settings.detect_rate_window_s

    def burst(who: str, requests: int) -> None:
        for _ in range(requests):
            detector.observe_request("ip:10.0.0.9", who, CITY, "GET", f"{BASE}/types", 200)
        clock.now += window
        detector.process()

    for n in range(hub.settings.detect_rate_warmup + 10):  # the usual: 20–60 a window
        burst("key:dashboard", 20 + (n * 7) % 40)
        burst("key:ingest", 150 + (n * 13) % 60)
        burst("key:newcomer", 0)
    assert detector.raised == 0
    burst("key:ingest", 250)  # busier than usual, not abnormally
    burst("key:newcomer", 3000)  # no history yet: the rate limiter's business, not the model's
    assert detector.raised == 0
    burst("key:dashboard", 3000)  # a dashboard's key suddenly pulling everything
    [alert] = _alerts(hub)
    assert alert["subCategory"] == "abnormalRequestRate"
    assert alert["alertSource"] == "key:dashboard" and alert["data"]["requests"] == 3000


def test_alerts_are_deduplicated_then_reopened_after_a_quiet_window(hub: Hub) -> None:
    clock = Clock()
    detector = Detector(hub, clock=clock)

    def failures(n: int, client: str = "ip:203.0.113.5") -> None:
        for _ in range(n):
            detector.observe_request(
                client, None, "", "GET", f"{BASE}/types", 401, cause="credential"
            )
            clock.now += 1
        detector.process()

    failures(9)
    assert _alerts(hub) == []  # under the threshold
    failures(1)
    failures(40)  # the attack goes on: one alert, updated
    [alert] = _alerts(hub)
    assert alert["data"]["occurrences"] == 41
    failures(12, "ip:198.51.100.7")  # another source: its own alert
    assert len(_alerts(hub)) == 2
    clock.now += hub.settings.detect_alert_window_s + 1  # quiet long enough: closed
    failures(10)
    assert len(_alerts(hub)) == 3


def test_the_districts_own_replay_raises_nothing(hub: Hub) -> None:
    """Three hours of the sample district's sensors (traffic, air, meters): no false alarm."""
    from cityos.twin.district import DISTRICT_TIME, generate_district
    from cityos.twin.replay import sensor_updates

    detector = Detector(hub)
    for entity_id, fragment in sensor_updates(generate_district(seed=0), DISTRICT_TIME, 180):
        values = {k: v["value"] for k, v in fragment.items() if "value" in v}
        observed = next(v["observedAt"] for v in fragment.values() if "observedAt" in v)
        detector.observe_measures("", None, entity_id, values, observed)
    detector.process()
    assert detector.raised == 0 and len(detector._series) > 100


def test_plausible_ranges_can_be_set(hub: Hub, tmp_path) -> None:
    assert parse_ranges(["temperature=-40..60", "level = 0..inf"]) == {
        "temperature": (-40.0, 60.0),
        "level": (0.0, math.inf),
    }
    for bad in ("temperature", "t=1..0", "t=a..b", "=0..1"):
        with pytest.raises(ValueError, match="detect_ranges"):
            parse_ranges([bad])
    hub.settings.detect_ranges = ["temperature=-40..60"]
    detector = Detector(hub)
    detector.observe_measures(CITY, "d1", STATION, {"temperature": 65.0, "name": "x"})
    detector.process()
    [alert] = _alerts(hub, CITY)
    assert alert["data"]["rule"] == "implausibleValue" and alert["data"]["plausible"] == [-40, 60]
    from cityos.web.app import create_app

    with pytest.raises(ValueError, match="detect_ranges"):
        create_app(_settings(tmp_path, detect_ranges=["temperature"]))


def test_feeding_is_an_append_and_a_full_queue_drops(hub: Hub) -> None:
    detector = Detector(hub)
    for _ in range(200):
        detector.observe_request("ip:10.0.0.1", "key:x", CITY, "GET", f"{BASE}/types", 200)
    # only queued: nothing is processed on the caller's path (its cost:
    # benchmarks/security_parts.py)
    assert len(detector._queue) == 200
    detector.max_pending = 10
    detector._queue.clear()
    for _ in range(15):
        detector.observe_measures(CITY, "d1", STATION, {"temperature": 20.0})
    assert len(detector._queue) == 10 and detector.dropped == 5


def test_the_door_says_why_it_refused() -> None:
    from cityos.security.principal import AuthError
    from cityos.security.scope import Forbidden

    assert cause_of(AuthError("bad signature")) == "credential"
    assert cause_of(AuthError("credentials required", error=None)) == "anonymous"
    assert cause_of(refused(Forbidden("not yours"), None, "tenant")) == "tenant"
    assert cause_of(Forbidden("no rule")) == "policy"
    assert cause_of(ValueError("x")) is None


def test_the_agent_reports_each_batch_once(hub: Hub) -> None:
    from cityos.devices.agent import Agent, Measure

    calls: list[list[Any]] = []

    class Recorder:
        def observe_applied(self, batch: list[Any]) -> None:
            calls.append(batch)

    agent = Agent(hub)
    agent.detector = Recorder()
    temperature = [{"object_id": "temperature", "name": "temperature"}]
    group = {"apikey": "k", "entity_type": "AirQualityObserved", "attributes": temperature}
    agent.add_group(CITY, group)
    for n in range(3):
        agent.add_device(CITY, {"device_id": f"d{n}", "apikey": "k"})
    stamp = T0.isoformat()
    batch = [Measure(CITY, "k", f"d{n}", {"temperature": "21.5"}, stamp) for n in range(3)]
    batch.append(Measure(CITY, "k", "unknown", {"temperature": "20"}, stamp))  # refused
    agent.ingest_many(batch)
    [applied] = calls
    assert [(t, d, e) for t, d, e, _ in applied] == [
        (CITY, f"d{n}", f"urn:ngsi-ld:AirQualityObserved:d{n}") for n in range(3)
    ]
    detector = Detector(hub)
    detector.observe_applied(applied)  # the stored form: expanded names, observedAt
    detector.process()
    assert {k[2] for k in detector._series} == {"temperature"}
