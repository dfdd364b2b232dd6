"""The door, walked: every route × every example role × own tenant, another tenant and no
credentials, on SQLite and PostgreSQL. Without credentials: 401; another tenant: 403; in
its tenant a role gets 403 exactly where no rule of it grants the route's action (and, on
the payments ledger's routes, the action on the ``FareLedger`` type as well)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient
from tests.security.conftest import close_payments, payments_environ

from cityos.config import Settings
from cityos.devices.api import ROUTES as DEVICE_ROUTES
from cityos.hub.api import PREFIX, ROUTES
from cityos.hub.core import Hub
from cityos.security.guard import action_of, load_policy
from cityos.security.keys import create_key
from cityos.security.policy import EXAMPLE_ROLES
from cityos.services.flows import api as flows_api
from cityos.services.payments import api as payments_api
from cityos.services.traffic import api as traffic_api
from cityos.web.dashboard import Dashboard
from cityos.web.dashboard import routes as dashboard_routes

PARAMS = {
    "entity_id": "urn:ngsi-ld:TrafficFlowObserved:1",
    "attr": "intensity",
    "context_id": "nope",
    "device_id": "d1",
    "instance_id": "urn:ngsi-ld:attribute:instance:1",
    "subscription_id": "urn:ngsi-ld:Subscription:1",
    "registration_id": "urn:ngsi-ld:ContextSourceRegistration:1",
    "type": "TrafficFlowObserved",
    "account_id": "rider:a",
    "transfer_id": "t1",
    "slug": "overview",
}
ROLES = sorted(EXAMPLE_ROLES["roles"])
ALL_ROUTES = [(PREFIX + p, m) for p, m, _, _ in ROUTES] + [(p, m) for p, m, _, _ in DEVICE_ROUTES]
ALL_ROUTES += [
    (r.path, m) for r in traffic_api.routes() for m in sorted(r.methods or ()) if m != "HEAD"
]
ALL_ROUTES += [(payments_api.BASE + p, m) for p, m, _, _ in payments_api.ROUTES]
# the flows service: its releases one route per kind (each spends its own dataset's budget)
ALL_ROUTES += [
    (path, m)
    for r in flows_api.routes()
    for m in sorted(r.methods or ())
    if m != "HEAD"
    for path in (
        [r.path.replace("{kind}", kind) for kind in flows_api.RELEASES]
        if "{kind}" in r.path
        else [r.path]
    )
]
# the operations dashboard's API (its shell and assets are open: they hold no data)
ALL_ROUTES += [
    (r.path, m)
    for r in dashboard_routes(Dashboard((), {}), auth_required=True)
    for m in sorted(r.methods or ())
    if m != "HEAD" and r.path.startswith("/ui/api/")
]
# The payments routes that move or read money: past the door, they also need the action on
# the ledger's type (api.require); qr, decode and fares/quote touch no ledger.
LEDGER_ROUTES = {
    payments_api.BASE + p
    for p, _, _, _ in payments_api.ROUTES
    if p not in ("/qr", "/decode", "/fares/quote")
}
FARE_LEDGER = "https://uri.etsi.org/ngsi-ld/default-context/FareLedger"


@pytest.fixture(params=["sqlite", "postgresql"])
def door(request, tmp_path) -> Iterator[tuple[TestClient, Hub]]:
    from cityos.web.app import create_app

    schema = f"cityos_test_{uuid.uuid4().hex[:10]}"
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    settings = Settings(
        auth_required=True,
        token_key_path=str(tmp_path / "key.pem"),
        audit_key_path=str(tmp_path / "audit.pem"),
        rate_per_s=0,  # the walk is hundreds of requests from one client
        dashboard_stream_s=0,  # the dashboard's live stream answers, then ends
        environ=payments_environ(tmp_path, url, schema),  # the ledger beside the hub's tables
    )
    if url is None:
        from cityos.hub.store.sqlite import SqliteStore

        store = SqliteStore(tmp_path / "g.db")
    else:
        from cityos.hub.store.postgres import PostgresStore

        store = PostgresStore(url, schema=schema)
    hub = Hub(settings, store=store)
    with TestClient(create_app(settings, hub), raise_server_exceptions=False) as client:
        yield client, hub
    close_payments(client)
    if url is not None:
        from cityos.hub.store.postgres import PostgresStore

        PostgresStore(url, schema=store.schema).drop_schema()


def test_every_route_role_and_tenant(door) -> None:
    client, hub = door
    policy = load_policy(hub)
    payments = client.app.state.services["payments"]
    assert payments.client.ctx.expand_term(payments_api.LEDGER_TYPE) == FARE_LEDGER
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
            if template in LEDGER_ROUTES:  # the door's action, then the ledger's type
                view = policy.view(frozenset([role]), "phnompenh", action)
                granted = granted and (view.all_types or FARE_LEDGER in view.types)
            assert (own.status_code == 403) == (not granted), (role, method, path, own.text)
            assert own.status_code != 401
            assert own.status_code < 500, (role, method, path, own.text)
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
    assert bad.headers["content-type"] == "application/problem+json"
    # a client that accepts only JSON gets the same problem labelled as JSON
    as_json = client.get(
        f"{PREFIX}/types",
        headers={"Authorization": f"ApiKey {forged}", "Accept": "application/json"},
    )
    assert as_json.status_code == 401 and as_json.headers["content-type"] == "application/json"
    assert as_json.json()["status"] == 401 and as_json.json()["detail"]
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


# The action each route is judged by, written out (not computed by action_of): a route
# added later must be placed here, and a prefix slip (``/iot/devices`` read as the device
# message path ``/iot/d``) shows as a difference.
PINNED_ACTIONS = {
    ("POST", "/ngsi-ld/v1/entities"): "write",
    ("GET", "/ngsi-ld/v1/entities"): "read",
    ("DELETE", "/ngsi-ld/v1/entities"): "delete",
    ("GET", "/ngsi-ld/v1/entities/{entity_id}"): "read",
    ("PUT", "/ngsi-ld/v1/entities/{entity_id}"): "write",
    ("PATCH", "/ngsi-ld/v1/entities/{entity_id}"): "write",
    ("DELETE", "/ngsi-ld/v1/entities/{entity_id}"): "delete",
    ("POST", "/ngsi-ld/v1/entities/{entity_id}/attrs"): "write",
    ("PATCH", "/ngsi-ld/v1/entities/{entity_id}/attrs"): "write",
    ("PATCH", "/ngsi-ld/v1/entities/{entity_id}/attrs/{attr}"): "write",
    ("PUT", "/ngsi-ld/v1/entities/{entity_id}/attrs/{attr}"): "write",
    ("DELETE", "/ngsi-ld/v1/entities/{entity_id}/attrs/{attr}"): "delete",
    ("POST", "/ngsi-ld/v1/entityOperations/create"): "write",
    ("POST", "/ngsi-ld/v1/entityOperations/upsert"): "write",
    ("POST", "/ngsi-ld/v1/entityOperations/update"): "write",
    ("POST", "/ngsi-ld/v1/entityOperations/merge"): "write",
    ("POST", "/ngsi-ld/v1/entityOperations/delete"): "delete",
    ("POST", "/ngsi-ld/v1/entityOperations/query"): "read",
    ("GET", "/ngsi-ld/v1/temporal/entities"): "read",
    ("POST", "/ngsi-ld/v1/temporal/entityOperations/query"): "read",
    ("POST", "/ngsi-ld/v1/temporal/entities"): "write",
    ("GET", "/ngsi-ld/v1/temporal/entities/{entity_id}"): "read",
    ("DELETE", "/ngsi-ld/v1/temporal/entities/{entity_id}"): "delete",
    ("POST", "/ngsi-ld/v1/temporal/entities/{entity_id}/attrs"): "write",
    ("DELETE", "/ngsi-ld/v1/temporal/entities/{entity_id}/attrs/{attr}"): "delete",
    ("PATCH", "/ngsi-ld/v1/temporal/entities/{entity_id}/attrs/{attr}/{instance_id}"): "write",
    ("DELETE", "/ngsi-ld/v1/temporal/entities/{entity_id}/attrs/{attr}/{instance_id}"): "delete",
    ("POST", "/ngsi-ld/v1/subscriptions"): "subscribe",
    ("GET", "/ngsi-ld/v1/subscriptions"): "subscribe",
    ("GET", "/ngsi-ld/v1/subscriptions/{subscription_id}"): "subscribe",
    ("PATCH", "/ngsi-ld/v1/subscriptions/{subscription_id}"): "subscribe",
    ("DELETE", "/ngsi-ld/v1/subscriptions/{subscription_id}"): "subscribe",
    ("GET", "/ngsi-ld/v1/types"): "read",
    ("GET", "/ngsi-ld/v1/types/{type}"): "read",
    ("GET", "/ngsi-ld/v1/attributes"): "read",
    ("GET", "/ngsi-ld/v1/attributes/{attr}"): "read",
    ("GET", "/ngsi-ld/v1/jsonldContexts"): "read",
    ("POST", "/ngsi-ld/v1/jsonldContexts"): "administer",
    ("GET", "/ngsi-ld/v1/jsonldContexts/{context_id}"): "read",
    ("DELETE", "/ngsi-ld/v1/jsonldContexts/{context_id}"): "administer",
    ("POST", "/ngsi-ld/v1/csourceRegistrations"): "administer",
    ("GET", "/ngsi-ld/v1/csourceRegistrations"): "read",
    ("GET", "/ngsi-ld/v1/csourceRegistrations/{registration_id}"): "read",
    ("PATCH", "/ngsi-ld/v1/csourceRegistrations/{registration_id}"): "administer",
    ("DELETE", "/ngsi-ld/v1/csourceRegistrations/{registration_id}"): "administer",
    ("POST", "/ngsi-ld/v1/csourceSubscriptions"): "administer",
    ("GET", "/ngsi-ld/v1/csourceSubscriptions"): "administer",
    ("GET", "/ngsi-ld/v1/csourceSubscriptions/{subscription_id}"): "administer",
    ("PATCH", "/ngsi-ld/v1/csourceSubscriptions/{subscription_id}"): "administer",
    ("DELETE", "/ngsi-ld/v1/csourceSubscriptions/{subscription_id}"): "administer",
    ("POST", "/iot/services"): "administer",
    ("GET", "/iot/services"): "administer",
    ("DELETE", "/iot/services"): "administer",
    ("POST", "/iot/devices"): "administer",
    ("GET", "/iot/devices"): "administer",
    ("GET", "/iot/devices/{device_id}"): "administer",
    ("DELETE", "/iot/devices/{device_id}"): "administer",
    ("POST", "/iot/d"): "write",
    ("POST", "/iot/json"): "write",
    ("POST", "/iot/json/commands"): "write",
    ("GET", "/services/traffic/gtfs-rt/vehicle-positions"): "read",
    ("GET", "/services/traffic/gtfs-rt/trip-updates"): "read",
    ("GET", "/services/traffic/gtfs"): "read",
    ("POST", "/services/payments/qr"): "write",
    ("POST", "/services/payments/decode"): "write",
    ("POST", "/services/payments/fares/quote"): "write",
    ("POST", "/services/payments/taps"): "write",
    ("POST", "/services/payments/tickets"): "write",
    ("POST", "/services/payments/accounts"): "write",
    ("GET", "/services/payments/accounts/{account_id}"): "read",
    ("POST", "/services/payments/transfers"): "write",
    ("GET", "/services/payments/transfers/{transfer_id}"): "read",
    ("POST", "/services/payments/transfers/{transfer_id}/post"): "write",
    ("POST", "/services/payments/transfers/{transfer_id}/void"): "write",
    ("GET", "/services/flows/privacy-report"): "read",
    ("GET", "/services/flows/zones"): "read",
    ("POST", "/services/flows/releases/od"): "write",
    ("POST", "/services/flows/releases/crowd"): "write",
    ("POST", "/services/flows/releases/dwell"): "write",
    ("GET", "/ui/api/me"): "read",
    ("GET", "/ui/api/pages"): "read",
    ("GET", "/ui/api/pages/{slug}"): "read",
    # a page's form answered: computed from the values, reading under the viewer's grant
    ("POST", "/ui/api/pages/{slug}"): "read",
    ("GET", "/ui/api/pages/{slug}/events"): "read",
}


def test_every_route_is_judged_by_its_pinned_action() -> None:
    assert {(m, t) for t, m in ALL_ROUTES} == set(PINNED_ACTIONS)
    for (method, template), action in PINNED_ACTIONS.items():
        assert action_of(method, template.format(**PARAMS), "") == action, (method, template)
    temporal = f"{PREFIX}/temporal/entities/{PARAMS['entity_id']}"
    assert action_of("GET", temporal, "aggrMethods=avg&aggrPeriodDuration=PT1H") == "aggregate"
    post = f"{PREFIX}/temporal/entityOperations/query"
    assert action_of("POST", post, "aggrMethods=avg&aggrPeriodDuration=PT1H") == "aggregate"
    assert action_of("HEAD", f"{PREFIX}/jsonldContexts", "") == "read"


def test_every_service_route_is_walked() -> None:
    """Each route a registered service serves under /services/ has its row in the walk
    (a {kind} route once per kind): a service's new route cannot skip it."""
    from cityos.services.registry import services

    served = set()
    for service in services():
        for r in service.routes():
            if not r.path.startswith("/services/"):
                continue
            kinds = flows_api.RELEASES if "{kind}" in r.path else [""]
            served |= {(r.path.replace("{kind}", k), m) for k in kinds for m in r.methods or ()}
    assert {(p, m) for p, m in served if m != "HEAD"} == {
        (p, m) for p, m in ALL_ROUTES if p.startswith("/services/")
    }


def test_provisioning_needs_administer_and_device_keys_only_send_measures(door) -> None:
    """A role that may write data cannot provision devices nor read service groups' API
    keys; a device key sends its own device's messages and is held to its roles' rules
    everywhere else."""
    client, hub = door
    city = {"NGSILD-Tenant": "phnompenh"}
    admin, _ = create_key(hub.store, tenants=["phnompenh"], roles=["city-operator"])
    engineer, _ = create_key(hub.store, tenants=["phnompenh"], roles=["traffic-engineer"])
    as_admin = {**city, "Authorization": f"ApiKey {admin}"}
    as_engineer = {**city, "Authorization": f"ApiKey {engineer}"}
    group = {"apikey": "det-key-7f3a", "entity_type": "TrafficFlowObserved",
             "attributes": [{"object_id": "c", "name": "intensity", "type": "Integer"}]}  # fmt: skip
    device = {"device_id": "d1", "apikey": "det-key-7f3a",
              "entity_name": "urn:ngsi-ld:TrafficFlowObserved:d1"}  # fmt: skip
    for path, body in (
        ("/iot/services", {"services": [group]}),
        ("/iot/devices", {"devices": [device]}),
    ):
        assert client.post(path, json=body, headers=as_engineer).status_code == 403, path
        assert client.post(path, json=body, headers=as_admin).status_code == 201, path
    for path in ("/iot/services", "/iot/devices", "/iot/devices/d1"):
        r = client.get(path, headers=as_engineer)
        assert r.status_code == 403 and "det-key-7f3a" not in r.text, path  # no API keys read
    bound, _ = create_key(hub.store, tenants=["phnompenh"], roles=["device"], service_group="det-key-7f3a",
                          device_id="d1")  # fmt: skip
    as_device = {**city, "Authorization": f"ApiKey {bound}"}
    ok = client.post("/iot/json?k=det-key-7f3a&i=d1", json={"c": 7}, headers=as_device)
    assert ok.status_code == 200, ok.text
    # the device key's k= names its own group: it still may not provision under it
    more = {"devices": [{"device_id": "d2", "apikey": "det-key-7f3a"}]}
    assert (
        client.post("/iot/devices?k=det-key-7f3a&i=d1", json=more, headers=as_device).status_code
        == 403
    )
    # nor write, read or delete data outside its own messages
    eid = "urn:ngsi-ld:TrafficFlowObserved:d1"
    for method, path, body in (
        ("PATCH", f"{PREFIX}/entities/{eid}/attrs", {"intensity": {"value": 999}}),
        ("GET", f"{PREFIX}/entities/{eid}", None),
        ("DELETE", f"{PREFIX}/entities/{eid}", None),
    ):
        r = client.request(method, path, json=body, headers=as_device)
        assert r.status_code == 403, (method, path, r.text)
    kv = client.get(f"{PREFIX}/entities/{eid}?options=keyValues", headers=as_admin).json()
    assert kv["intensity"] == 7


def test_a_device_credential_with_roles_is_held_to_the_data_rules(door, tmp_path) -> None:
    """An identity provider's token (or key) of kind device that carries a role: outside
    its own measures it is judged by that role's rules inside the data, like any caller."""
    client, hub = door
    city = {"NGSILD-Tenant": "phnompenh"}
    admin, _ = create_key(hub.store, tenants=["phnompenh"], roles=["city-operator"])
    as_admin = {**city, "Authorization": f"ApiKey {admin}"}
    hub.settings.auth_recheck_s = 0
    building = {"id": "urn:ngsi-ld:Building:b1", "type": "Building"}
    assert client.post(f"{PREFIX}/entities", json=building, headers=as_admin).status_code == 201
    group = {"services": [{"apikey": "det", "entity_type": "TrafficFlowObserved"}]}
    assert client.post("/iot/services", json=group, headers=as_admin).status_code == 201
    key, _ = create_key(hub.store, tenants=["phnompenh"], roles=["traffic-engineer"],
                        service_group="det")  # fmt: skip
    as_device = {**city, "Authorization": f"ApiKey {key}"}
    r = client.get(f"{PREFIX}/entities/urn:ngsi-ld:Building:b1", headers=as_device)
    assert r.status_code == 404  # a type its role may not read: as if it did not exist
    r = client.delete(f"{PREFIX}/entities/urn:ngsi-ld:Building:b1", headers=as_device)
    assert r.status_code in (403, 404)
    r = client.post(f"{PREFIX}/entities", json={"id": "urn:ngsi-ld:Building:b2", "type": "Building"},
                    headers=as_device)  # fmt: skip
    assert r.status_code == 403
    listed = client.get(f"{PREFIX}/entities?type=Building", headers=as_device)
    assert listed.status_code == 200 and listed.json() == []


def test_a_device_key_sends_without_a_tenant_header(door) -> None:
    """Real devices send no fiware-service: the door takes the device credential's own
    tenant for its own messages, and still holds it to its group and device."""
    client, hub = door
    city = {"NGSILD-Tenant": "phnompenh"}
    admin, _ = create_key(hub.store, tenants=["phnompenh"], roles=["city-operator"])
    as_admin = {**city, "Authorization": f"ApiKey {admin}"}
    group = {"apikey": "loop-key", "entity_type": "TrafficFlowObserved",
             "attributes": [{"object_id": "c", "name": "intensity", "type": "Integer"}]}  # fmt: skip
    device = {"device_id": "d9", "apikey": "loop-key",
              "entity_name": "urn:ngsi-ld:TrafficFlowObserved:d9"}  # fmt: skip
    assert (
        client.post("/iot/services", json={"services": [group]}, headers=as_admin).status_code
        == 201
    )
    assert (
        client.post("/iot/devices", json={"devices": [device]}, headers=as_admin).status_code == 201
    )
    key, _ = create_key(hub.store, tenants=["phnompenh"], roles=["device"], service_group="loop-key",
                        device_id="d9")  # fmt: skip
    bare = {"Authorization": f"ApiKey {key}"}  # no tenant header at all
    r = client.post("/iot/json?k=loop-key&i=d9", json={"c": 11}, headers=bare)
    assert r.status_code == 200, r.text
    kv = client.get(
        f"{PREFIX}/entities/urn:ngsi-ld:TrafficFlowObserved:d9?options=keyValues", headers=as_admin
    ).json()
    assert kv["intensity"] == 11
    # its own messages only: another device, another group, or a data route stay refused
    assert client.post("/iot/json?k=loop-key&i=d8", json={"c": 1}, headers=bare).status_code == 403
    assert client.post("/iot/json?k=other&i=d9", json={"c": 1}, headers=bare).status_code == 403
    r = client.get(f"{PREFIX}/entities/urn:ngsi-ld:TrafficFlowObserved:d9", headers=bare)
    assert r.status_code == 403
