"""The door, walked: every route × every example role × own tenant, another tenant and no
credentials, on SQLite and PostgreSQL. Without credentials: 401; another tenant: 403; in
its tenant a role gets 403 exactly where no rule of it grants the route's action."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from cityos.config import Settings
from cityos.devices.api import ROUTES as DEVICE_ROUTES
from cityos.hub.api import PREFIX, ROUTES
from cityos.hub.core import Hub
from cityos.security.guard import action_of, load_policy
from cityos.security.keys import create_key
from cityos.security.policy import EXAMPLE_ROLES
from cityos.services.traffic import api as traffic_api

PARAMS = {
    "entity_id": "urn:ngsi-ld:TrafficFlowObserved:1",
    "attr": "intensity",
    "context_id": "nope",
    "device_id": "d1",
    "instance_id": "urn:ngsi-ld:attribute:instance:1",
    "subscription_id": "urn:ngsi-ld:Subscription:1",
    "type": "TrafficFlowObserved",
}
ROLES = sorted(EXAMPLE_ROLES["roles"])
ALL_ROUTES = [(PREFIX + p, m) for p, m, _, _ in ROUTES] + [(p, m) for p, m, _, _ in DEVICE_ROUTES]
ALL_ROUTES += [
    (r.path, m) for r in traffic_api.routes() for m in sorted(r.methods or ()) if m != "HEAD"
]


@pytest.fixture(params=["sqlite", "postgresql"])
def door(request, tmp_path) -> Iterator[tuple[TestClient, Hub]]:
    from cityos.web.app import create_app

    settings = Settings(
        auth_required=True,
        token_key_path=str(tmp_path / "key.pem"),
        audit_key_path=str(tmp_path / "audit.pem"),
        rate_per_s=0,  # the walk is hundreds of requests from one client
    )
    if request.param == "sqlite":
        from cityos.hub.store.sqlite import SqliteStore

        store = SqliteStore(tmp_path / "g.db")
    else:
        from cityos.hub.store.postgres import PostgresStore

        url = request.getfixturevalue("postgres_url")
        store = PostgresStore(url, schema=f"cityos_test_{uuid.uuid4().hex[:10]}")
    hub = Hub(settings, store=store)
    with TestClient(create_app(settings, hub), raise_server_exceptions=False) as client:
        yield client, hub
    if request.param == "postgresql":
        from cityos.hub.store.postgres import PostgresStore

        PostgresStore(url, schema=store.schema).drop_schema()


def test_every_route_role_and_tenant(door) -> None:
    client, hub = door
    policy = load_policy(hub)
    keys = {
        role: create_key(hub.store, tenants=["phnompenh"], roles=[role], name=role)[0]
        for role in ROLES
    }
    checked = 0
    for template, method in ALL_ROUTES:
        path = template.format(**PARAMS)
        query = "aggrMethods=avg&aggrPeriodDuration=PT1H" if "/temporal/" in path else ""
        url = path + ("?" + query if query else "")
        anonymous = client.request(method, url, headers={"NGSILD-Tenant": "phnompenh"})
        assert anonymous.status_code == 401, (method, path)
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        action = action_of(method, path, query)
        for role in ROLES:
            auth = {"Authorization": f"ApiKey {keys[role]}"}
            other = client.request(method, url, headers={**auth, "NGSILD-Tenant": "bangkok"})
            assert other.status_code == 403, (role, method, path)
            own = client.request(method, url, headers={**auth, "NGSILD-Tenant": "phnompenh"})
            granted = policy.allowed([role], "phnompenh", action)
            assert (own.status_code == 403) == (not granted), (role, method, path, own.text)
            assert own.status_code != 401
            checked += 1
    assert checked == len(ALL_ROUTES) * len(ROLES)
    assert client.get("/health").status_code == 200  # liveness needs no credentials


def test_a_bad_or_revoked_key_is_refused(door) -> None:
    from cityos.security.keys import revoke_key

    client, hub = door
    key, doc = create_key(hub.store, tenants=["phnompenh"], roles=["city-operator"])
    ok = client.get(
        f"{PREFIX}/types", headers={"Authorization": f"ApiKey {key}", "NGSILD-Tenant": "phnompenh"}
    )
    assert ok.status_code != 401
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    bad = client.get(f"{PREFIX}/types", headers={"Authorization": f"ApiKey {forged}"})
    assert bad.status_code == 401 and "invalid_token" in bad.headers["www-authenticate"]
    revoke_key(hub.store, doc["id"])
    hub_auth_forget(hub)
    gone = client.get(
        f"{PREFIX}/types", headers={"Authorization": f"ApiKey {key}", "NGSILD-Tenant": "phnompenh"}
    )
    assert gone.status_code == 401


def hub_auth_forget(hub: Hub) -> None:
    """Revocation reaches a running worker within auth_recheck_s; the test does not wait."""
    from cityos.security.identity import authenticator

    authenticator(hub.settings, hub.store).forget()
