"""Subscriptions have owners, on SQLite and PostgreSQL (issue 11, item 3): only the principal
that made a subscription, or one with ``administer`` in the tenant, lists, retrieves,
updates or deletes it; to anyone else it does not exist (404, not listed, not counted), and
its endpoint's credentials are shown redacted to everyone but its owner."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from cityos.config import Settings
from cityos.hub.core import Hub
from cityos.security.keys import create_key

BASE = "/ngsi-ld/v1"
SUBS = f"{BASE}/subscriptions"
RULES = {
    "roles": {
        "operator": [{"actions": ["read", "write", "delete", "subscribe", "administer"]}],
        "flows": [{"types": ["TrafficFlowObserved"], "actions": ["read", "subscribe"]}],
        "transit": [{"types": ["TrafficFlowObserved"], "actions": ["read", "subscribe"]}],
    }
}
SECRET_URI = "http://hookuser:s3cret@127.0.0.1:9/hook"
MQTT_URI = "mqtt://mquser:mqpass@127.0.0.1:1883/city/flows"
LEGACY = "urn:ngsi-ld:Subscription:made-without-auth"


def subscription(sid: str, uri: str = SECRET_URI) -> dict[str, Any]:
    return {
        "id": sid,
        "type": "Subscription",
        "entities": [{"type": "TrafficFlowObserved"}],
        "notification": {
            "endpoint": {
                "uri": uri,
                "receiverInfo": [{"key": "Authorization", "value": "Bearer hook-token"}],
            }
        },
    }


def _store(engine: str, request, tmp_path, schema: str):  # type: ignore[no-untyped-def]
    if engine == "sqlite":
        from cityos.hub.store.sqlite import SqliteStore

        return SqliteStore(tmp_path / "s.db")
    from cityos.hub.store.postgres import PostgresStore

    return PostgresStore(request.getfixturevalue("postgres_url"), schema=schema)


@pytest.fixture(params=["sqlite", "postgresql"])
def hub_and_keys(request, tmp_path) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    from cityos.web.app import create_app

    schema = f"cityos_test_{uuid.uuid4().hex[:10]}"
    # first, a subscription made while authentication was off: it has no owner
    open_settings = Settings(rate_per_s=0)
    open_hub = Hub(open_settings, store=_store(request.param, request, tmp_path, schema))
    with TestClient(create_app(open_settings, open_hub)) as client:
        city = {"NGSILD-Tenant": "city"}
        flow = {"id": "urn:ngsi-ld:TrafficFlowObserved:1", "type": "TrafficFlowObserved"}
        assert client.post(f"{BASE}/entities", json=flow, headers=city).status_code == 201
        made = client.post(SUBS, json=subscription(LEGACY), headers=city)
        assert made.status_code == 201, made.text
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(RULES))
    settings = Settings(
        auth_required=True,
        policy_path=str(rules),
        token_key_path=str(tmp_path / "key.pem"),
        audit_key_path=str(tmp_path / "audit.pem"),
        rate_per_s=0,
    )
    store = _store(request.param, request, tmp_path, schema)
    hub = Hub(settings, store=store)
    with TestClient(create_app(settings, hub)) as client:

        def key(role: str) -> dict[str, str]:
            secret = create_key(hub.store, tenants=["city"], roles=[role])[0]
            return {"Authorization": f"ApiKey {secret}", "NGSILD-Tenant": "city"}

        # two principals of one role, a third of another, an administrator
        keys = {
            "alice": key("flows"),
            "bob": key("flows"),
            "carol": key("transit"),
            "admin": key("operator"),
        }
        yield client, keys
    if request.param == "postgresql":
        from cityos.hub.store.postgres import PostgresStore

        PostgresStore(request.getfixturevalue("postgres_url"), schema=schema).drop_schema()


def ids(response: Any) -> set[str]:
    assert response.status_code == 200, response.text
    return {s["id"] for s in response.json()}


def make(client: TestClient, who: dict[str, str], name: str, uri: str = SECRET_URI) -> str:
    sid = f"urn:ngsi-ld:Subscription:{name}"
    r = client.post(SUBS, json=subscription(sid, uri), headers=who)
    assert r.status_code == 201, r.text
    return sid


def test_only_the_owner_or_an_administrator_sees_a_subscription(hub_and_keys) -> None:
    client, keys = hub_and_keys
    a = make(client, keys["alice"], "alice")
    b = make(client, keys["bob"], "bob")
    c = make(client, keys["carol"], "carol")
    for who, own in (("alice", a), ("bob", b), ("carol", c)):
        r = client.get(SUBS, headers=keys[who])
        assert ids(r) == {own} and r.headers["NGSILD-Results-Count"] == "1", who
    everyone = client.get(SUBS, headers=keys["admin"])
    assert ids(everyone) == {a, b, c, LEGACY}
    assert everyone.headers["NGSILD-Results-Count"] == "4"
    # pages count only what the caller may see
    assert client.get(SUBS, params={"offset": 1}, headers=keys["alice"]).json() == []
    for who in ("bob", "carol"):
        assert client.get(f"{SUBS}/{a}", headers=keys[who]).status_code == 404
    assert client.get(f"{SUBS}/{a}", headers=keys["alice"]).status_code == 200
    assert client.get(f"{SUBS}/{a}", headers=keys["admin"]).status_code == 200


def test_another_principal_may_not_change_or_delete_a_subscription(hub_and_keys) -> None:
    client, keys = hub_and_keys
    a = make(client, keys["alice"], "alice")
    before = client.get(f"{SUBS}/{a}", headers=keys["alice"]).json()
    for who in ("bob", "carol"):
        r = client.patch(f"{SUBS}/{a}", json={"throttling": 60}, headers=keys[who])
        assert r.status_code == 404, (who, r.text)
        assert client.delete(f"{SUBS}/{a}", headers=keys[who]).status_code == 404
    # the same id cannot be taken over by creating it again either
    r = client.post(SUBS, json=subscription(a, "http://127.0.0.1:9/bob"), headers=keys["bob"])
    assert r.status_code == 409
    assert client.get(f"{SUBS}/{a}", headers=keys["alice"]).json() == before
    # the owner may
    r = client.patch(f"{SUBS}/{a}", json={"throttling": 5}, headers=keys["alice"])
    assert r.status_code == 204, r.text
    assert client.get(f"{SUBS}/{a}", headers=keys["alice"]).json()["throttling"] == 5
    assert client.delete(f"{SUBS}/{a}", headers=keys["alice"]).status_code == 204
    assert client.get(f"{SUBS}/{a}", headers=keys["admin"]).status_code == 404


def test_an_administrator_manages_any_subscription_and_the_owner_keeps_it(hub_and_keys) -> None:
    client, keys = hub_and_keys
    a = make(client, keys["alice"], "alice")
    r = client.patch(f"{SUBS}/{a}", json={"throttling": 30}, headers=keys["admin"])
    assert r.status_code == 204, r.text
    mine = client.get(f"{SUBS}/{a}", headers=keys["alice"])
    assert mine.status_code == 200 and mine.json()["throttling"] == 30  # still alice's
    assert mine.json()["notification"]["endpoint"]["uri"] == SECRET_URI  # not redacted away
    assert ids(client.get(SUBS, headers=keys["bob"])) == set()
    assert client.delete(f"{SUBS}/{a}", headers=keys["admin"]).status_code == 204
    assert client.get(f"{SUBS}/{a}", headers=keys["alice"]).status_code == 404


def test_a_subscription_made_without_authentication_is_for_administrators(hub_and_keys) -> None:
    client, keys = hub_and_keys
    for who in ("alice", "carol"):
        assert LEGACY not in ids(client.get(SUBS, headers=keys[who]))
        assert client.get(f"{SUBS}/{LEGACY}", headers=keys[who]).status_code == 404
        assert client.delete(f"{SUBS}/{LEGACY}", headers=keys[who]).status_code == 404
    shown = client.get(f"{SUBS}/{LEGACY}", headers=keys["admin"])
    assert shown.status_code == 200
    assert shown.json()["notification"]["endpoint"]["uri"] == "http://REDACTED@127.0.0.1:9/hook"
    assert client.delete(f"{SUBS}/{LEGACY}", headers=keys["admin"]).status_code == 204


def test_endpoint_credentials_are_shown_only_to_the_owner(hub_and_keys) -> None:
    client, keys = hub_and_keys
    a = make(client, keys["alice"], "alice")
    m = make(client, keys["alice"], "alice-mqtt", MQTT_URI)
    own = client.get(f"{SUBS}/{a}", headers=keys["alice"]).json()
    assert own["notification"]["endpoint"]["uri"] == SECRET_URI
    assert own["notification"]["endpoint"]["receiverInfo"][0]["value"] == "Bearer hook-token"
    assert not any("owner" in k for k in own)  # the owner record is not a member
    admin = client.get(f"{SUBS}/{a}", headers=keys["admin"]).json()
    endpoint = admin["notification"]["endpoint"]
    assert endpoint["uri"] == "http://REDACTED@127.0.0.1:9/hook"
    assert endpoint["receiverInfo"] == [{"key": "Authorization", "value": "REDACTED"}]
    mqtt = client.get(f"{SUBS}/{m}", headers=keys["admin"]).json()
    assert mqtt["notification"]["endpoint"]["uri"] == "mqtt://REDACTED@127.0.0.1:1883/city/flows"
    listed = client.get(SUBS, headers=keys["admin"]).text
    for secret in ("s3cret", "hook-token", "mqpass", "hookuser"):
        assert secret not in listed, secret
    assert not any("owner" in k for s in client.get(SUBS, headers=keys["admin"]).json() for k in s)


def test_a_request_may_not_name_the_owner(hub_and_keys) -> None:
    client, keys = hub_and_keys
    forged = subscription("urn:ngsi-ld:Subscription:forged")
    forged["cityos:owner"] = {"subject": "someone-else", "issuer": "cityos"}
    r = client.post(SUBS, json=forged, headers=keys["alice"])
    assert r.status_code == 400 and "cityos:owner" in r.json()["detail"]
    assert client.get(f"{SUBS}/{forged['id']}", headers=keys["admin"]).status_code == 404
    a = make(client, keys["alice"], "alice")
    r = client.patch(
        f"{SUBS}/{a}", json={"cityos:owner": forged["cityos:owner"]}, headers=keys["alice"]
    )
    assert r.status_code == 400
    assert client.get(f"{SUBS}/{a}", headers=keys["alice"]).status_code == 200
