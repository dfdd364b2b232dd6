"""Tenant isolation, whatever the headers say: one decision of a request's tenant
(:mod:`cityos.hub.tenancy`) used by the door, the NGSI-LD handlers, the IoT Agent routes,
the audit log and attack detection, on SQLite and PostgreSQL.

A key for tenant ``alpha`` is sent with every combination of ``NGSILD-Tenant`` and
``fiware-service`` to NGSI-LD and IoT routes. Where the headers name ``alpha`` alone the
request acts in ``alpha``; where they name another tenant it is refused (403); where they
disagree it is refused (400). Afterwards ``beta`` and the default tenant hold exactly what
they held, and everything written landed in ``alpha``.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from cityos.config import Settings
from cityos.hub.core import Hub
from cityos.hub.query.model import EntityQuery
from cityos.security.keys import create_key

BASE = "/ngsi-ld/v1"
ALPHA, BETA = "alpha", "beta"
N, F = "NGSILD-Tenant", "fiware-service"
SEEDED = "urn:ngsi-ld:Building:seeded"

# (headers as a list of pairs, the outcome): a tenant name where it acts, or a status
COMBINATIONS: list[tuple[list[tuple[str, str]], str | int]] = [
    ([(N, ALPHA)], ALPHA),
    ([(F, ALPHA)], ALPHA),
    ([(N, ALPHA), (F, ALPHA)], ALPHA),
    ([(N, ALPHA), (N, ALPHA)], ALPHA),
    ([(N, f" {ALPHA} ")], ALPHA),  # surrounding spaces are not part of a name
    ([], 403),  # the default tenant: not the key's
    ([(N, BETA)], 403),
    ([(F, BETA)], 403),
    ([(F, "Alpha")], 403),  # names are exact: another tenant, not a spelling of alpha
    ([(N, ALPHA), (F, BETA)], 400),  # the critical case: the door read one, a handler another
    ([(F, ALPHA), (N, BETA)], 400),
    ([(N, BETA), (F, ALPHA)], 400),
    ([(N, ALPHA), (N, BETA)], 400),
    ([(F, ALPHA), (F, BETA)], 400),
    ([(N, ALPHA), (F, "")], 400),  # alpha and the default tenant
    ([(N, "al pha")], 400),  # not a tenant name
]


@pytest.fixture
def served(secured) -> tuple[TestClient, Hub, str]:
    city = secured(detect_idscan_ids=10_000, detect_denied_requests=10_000)
    key = city.key("city-operator", ALPHA)["Authorization"].removeprefix("ApiKey ")
    return city.client, city.hub, key


def _seed(client: TestClient, admin: dict[str, str], tenant: str) -> None:
    """What each tenant holds before the probe: an entity, a service group, a subscription."""
    headers = {**admin, N: tenant} if tenant else admin
    building = {"id": SEEDED, "type": "Building", "name": {"type": "Property", "value": tenant}}
    assert client.post(f"{BASE}/entities", json=building, headers=headers).status_code == 201
    group = {"services": [{"apikey": f"key-{tenant or 'default'}", "entity_type": "Building"}]}
    assert client.post("/iot/services", json=group, headers=headers).status_code == 201


def _snapshot(hub: Hub, tenant: str) -> tuple[Any, ...]:
    """Everything a request could have changed in a tenant."""
    entities = hub.store.query(tenant, EntityQuery(limit=1000)).entities
    return (
        sorted(orjson.dumps(e, option=orjson.OPT_SORT_KEYS) for e in entities),
        sorted(orjson.dumps(d, option=orjson.OPT_SORT_KEYS) for d in _docs(hub, tenant)),
        sorted(d["id"] for _, d in hub.store.list_subscriptions(tenant)),
    )


def _docs(hub: Hub, tenant: str) -> list[dict[str, Any]]:
    from cityos.devices.agent import DEVICE, GROUP

    return hub.store.list_docs(GROUP, tenant) + hub.store.list_docs(DEVICE, tenant)


def _probes(n: int) -> list[tuple[str, str, dict[str, Any] | None, str]]:
    """(method, path, body, kind) of each route probed; ``kind`` says what it does."""
    eid = f"urn:ngsi-ld:Building:probe-{n}"
    return [
        ("POST", f"{BASE}/entities", {"id": eid, "type": "Building"}, "write"),
        ("GET", f"{BASE}/entities/{SEEDED}", None, "read"),
        ("GET", f"{BASE}/entities?type=Building", None, "read"),
        ("PATCH", f"{BASE}/entities/{SEEDED}/attrs", {"name": {"value": "x"}}, "write"),
        ("GET", "/iot/services", None, "read"),
        ("POST", "/iot/devices", {"devices": [{"device_id": f"d{n}", "apikey": "k"}]}, "write"),
        (
            "POST",
            f"{BASE}/subscriptions",
            {
                "type": "Subscription",
                "id": f"urn:ngsi-ld:Subscription:probe-{n}",
                "entities": [{"type": "Building"}],
                "notification": {"endpoint": {"uri": "http://127.0.0.1:9/n"}},
                "isActive": False,
            },
            "write",
        ),
        ("DELETE", f"{BASE}/entities/{SEEDED}", None, "delete"),
    ]


def test_every_header_combination_acts_in_one_checked_tenant(served) -> None:
    client, hub, key = served
    admin_key, _ = create_key(hub.store, tenants=["*"], roles=["city-operator"])
    admin = {"Authorization": f"ApiKey {admin_key}"}
    for tenant in (ALPHA, BETA, ""):
        _seed(client, admin, tenant)
    before = {t: _snapshot(hub, t) for t in (BETA, "")}
    acted = 0
    for n, (pairs, outcome) in enumerate(COMBINATIONS):
        for method, path, body, kind in _probes(n):
            headers = [("Authorization", f"ApiKey {key}"), *pairs]
            r = client.request(method, path, headers=headers, json=body)
            what = (pairs, method, path, r.text)
            if outcome == ALPHA:
                assert r.status_code < 400, what
                acted += 1
                if method == "DELETE":  # put back for the next combination
                    building = {"id": SEEDED, "type": "Building"}
                    r = client.post(f"{BASE}/entities", json=building, headers={**admin, N: ALPHA})
                    assert r.status_code == 201
                if kind == "read" and path.startswith(BASE):
                    found = r.json() if isinstance(r.json(), list) else [r.json()]
                    assert all(e.get("name", {}).get("value") in (None, ALPHA, "x")
                               for e in found), what  # fmt: skip
            else:
                assert r.status_code == outcome, what
                problem = r.json()
                assert problem["status"] == outcome and problem["detail"], what
                if outcome == 400 and len({v.strip() for _, v in pairs}) > 1:
                    assert "more than one tenant" in problem["detail"], what
    assert acted == 5 * len(_probes(0))
    # nothing changed anywhere but alpha: the seeded data, groups and subscriptions intact
    assert {t: _snapshot(hub, t) for t in (BETA, "")} == before
    entities = hub.store.query(ALPHA, EntityQuery(limit=1000)).entities
    probes = sorted(e["id"] for e in entities if ":probe-" in e["id"])
    assert len(probes) == 5  # one per combination that acts in alpha
    subs = [d["id"] for _, d in hub.store.list_subscriptions(ALPHA)]
    assert len([s for s in subs if ":probe-" in s]) == 5


def test_the_audit_log_and_detection_name_the_tenant_the_request_acted_in(served) -> None:
    client, hub, key = served
    auth = ("Authorization", f"ApiKey {key}")
    ok = client.post(f"{BASE}/entities", json={"id": "urn:ngsi-ld:Building:a1", "type": "Building"},
                     headers=[auth, (F, ALPHA)])  # fmt: skip
    assert ok.status_code == 201
    smuggled = client.post(f"{BASE}/entities",
                           json={"id": "urn:ngsi-ld:Building:b1", "type": "Building"},
                           headers=[auth, (F, ALPHA), (N, BETA)])  # fmt: skip
    assert smuggled.status_code == 400
    audit = client.app.state.audit
    deadline = time.monotonic() + 10
    records: list[dict[str, Any]] = []
    while time.monotonic() < deadline and len(records) < 2:
        time.sleep(0.1)  # the recorder appends every 0.2 s
        records = [orjson.loads(e.record) for e in audit.entries(0, audit.size())]
    created = [r for r in records if r["target"] == f"POST {BASE}/entities"]
    assert [(r["tenant"], r["outcome"], r["status"]) for r in created] == [
        (ALPHA, "ok", 201),
        (BETA, "denied", 400),  # the foreign tenant it tried, not the one it is bound to
    ]
    detector = client.app.state.detector
    detector.process()
    admin_key, _ = create_key(hub.store, tenants=["*"], roles=["city-operator"])
    r = client.get(f"{BASE}/entities", params={"type": "Alert"},
                   headers={"Authorization": f"ApiKey {admin_key}", N: ALPHA})  # fmt: skip
    alerts = [a for a in r.json() if a["subCategory"]["value"] == "crossTenantToken"]
    assert len(alerts) == 1 and alerts[0]["data"]["value"]["attemptedTenant"] == BETA
    assert hub.store.query(BETA, EntityQuery(limit=10)).entities == []


def test_without_authentication_the_handlers_decide_the_same_way(tmp_path) -> None:
    """With authentication off there is no door: the handlers' own decision refuses the
    same conflicts, on the NGSI-LD and the IoT routes alike."""
    from cityos.hub.store.sqlite import SqliteStore
    from cityos.web.app import create_app

    settings = Settings(rate_per_s=0)
    hub = Hub(settings, store=SqliteStore(tmp_path / "open.db"))
    with TestClient(create_app(settings, hub)) as client:
        building = {"id": "urn:ngsi-ld:Building:x", "type": "Building"}
        for path, body in ((f"{BASE}/entities", building), ("/iot/services", {"services": []})):
            r = client.post(path, json=body, headers=[(N, ALPHA), (F, BETA)])
            assert r.status_code == 400 and "more than one tenant" in r.json()["detail"], path
        r = client.post(f"{BASE}/entities", json=building, headers=[(F, ALPHA)])
        assert r.status_code == 201  # fiware-service names the NGSI-LD tenant too
        r = client.get(f"{BASE}/entities/{building['id']}", headers=[(N, ALPHA)])
        assert r.status_code == 200
        assert hub.store.query("", EntityQuery(limit=10)).entities == []
