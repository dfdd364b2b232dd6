"""The rules inside the data, on SQLite and PostgreSQL: a role sees only its types (counts
and pages right), never an attribute it may not read (entities, GeoJSON, temporal,
notifications), `q` on such an attribute behaves as if it did not exist, and writes outside
its rules are refused with nothing written."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from cityos.config import Settings
from cityos.hub.core import Hub
from cityos.security.keys import create_key

BASE = "/ngsi-ld/v1"
RULES = {
    "roles": {
        "operator": [{"actions": ["read", "write", "delete", "subscribe", "administer"]}],
        "flows": [
            {
                "types": ["TrafficFlowObserved"],
                "attrs": ["intensity", "location"],
                "actions": ["read", "write", "subscribe"],
            }
        ],
    }
}


def flow(n: int) -> dict:
    return {
        "id": f"urn:ngsi-ld:TrafficFlowObserved:{n}",
        "type": "TrafficFlowObserved",
        "intensity": {"type": "Property", "value": 100 * n},
        "secretNote": {"type": "Property", "value": "plate ABC-123"},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [104.9, 11.5]},
        },
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def hub_and_keys(request, tmp_path) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    from cityos.web.app import create_app

    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(RULES))
    settings = Settings(
        auth_required=True,
        policy_path=str(rules),
        token_key_path=str(tmp_path / "key.pem"),
        audit_key_path=str(tmp_path / "audit.pem"),
        rate_per_s=0,
    )
    if request.param == "sqlite":
        from cityos.hub.store.sqlite import SqliteStore

        store = SqliteStore(tmp_path / "s.db")
    else:
        from cityos.hub.store.postgres import PostgresStore

        url = request.getfixturevalue("postgres_url")
        store = PostgresStore(url, schema=f"cityos_test_{uuid.uuid4().hex[:10]}")
    hub = Hub(settings, store=store)
    with TestClient(create_app(settings, hub)) as client:
        keys = {
            role: {
                "Authorization": "ApiKey "
                + create_key(hub.store, tenants=["city"], roles=[role])[0],
                "NGSILD-Tenant": "city",
            }
            for role in RULES["roles"]
        }
        op = keys["operator"]
        for n in (1, 2, 3):
            assert client.post(f"{BASE}/entities", json=flow(n), headers=op).status_code == 201
        for n in (1, 2):
            aq = {"id": f"urn:ngsi-ld:AirQualityObserved:{n}", "type": "AirQualityObserved"}
            aq["pm25"] = {"type": "Property", "value": 40}
            assert client.post(f"{BASE}/entities", json=aq, headers=op).status_code == 201
        yield client, keys
    if request.param == "postgresql":
        from cityos.hub.store.postgres import PostgresStore

        PostgresStore(url, schema=store.schema).drop_schema()


def test_reads_see_only_allowed_types_and_attributes(hub_and_keys) -> None:
    client, keys = hub_and_keys
    me = keys["flows"]
    r = client.get(f"{BASE}/entities", params={"idPattern": ".*", "count": "true"}, headers=me)
    assert r.status_code == 200 and r.headers["NGSILD-Results-Count"] == "3"  # in the database
    assert {e["type"] for e in r.json()} == {"TrafficFlowObserved"}
    assert all("secretNote" not in e for e in r.json())
    page = client.get(
        f"{BASE}/entities", params={"idPattern": ".*", "limit": 2, "offset": 2}, headers=me
    )
    assert len(page.json()) == 1  # pages counted over what may be seen
    assert client.get(f"{BASE}/entities?type=AirQualityObserved", headers=me).json() == []
    one = client.get(f"{BASE}/entities/urn:ngsi-ld:AirQualityObserved:1", headers=me)
    assert one.status_code == 404  # as if it did not exist
    own = client.get(f"{BASE}/entities/urn:ngsi-ld:TrafficFlowObserved:1", headers=me).json()
    assert "intensity" in own and "secretNote" not in own
    geo = client.get(
        f"{BASE}/entities?type=TrafficFlowObserved",
        headers={**me, "Accept": "application/geo+json"},
    ).json()
    assert geo["features"] and all("secretNote" not in f["properties"] for f in geo["features"])
    history = client.get(
        f"{BASE}/temporal/entities/urn:ngsi-ld:TrafficFlowObserved:1",
        params={"timeproperty": "modifiedAt"},
        headers=me,
    ).json()
    assert "intensity" in history and "secretNote" not in history
    # the operator sees it all
    full = client.get(
        f"{BASE}/entities/urn:ngsi-ld:TrafficFlowObserved:1", headers=keys["operator"]
    )
    assert "secretNote" in full.json()


def test_q_on_a_hidden_attribute_behaves_as_if_it_did_not_exist(hub_and_keys) -> None:
    client, keys = hub_and_keys
    me, op = keys["flows"], keys["operator"]
    q = {"type": "TrafficFlowObserved", "q": 'secretNote=="plate ABC-123"'}
    assert len(client.get(f"{BASE}/entities", params=q, headers=op).json()) == 3
    assert client.get(f"{BASE}/entities", params=q, headers=me).json() == []
    absent = {"type": "TrafficFlowObserved", "q": "!secretNote"}
    assert len(client.get(f"{BASE}/entities", params=absent, headers=me).json()) == 3
    assert client.get(f"{BASE}/entities", params=absent, headers=op).json() == []
    visible = {"type": "TrafficFlowObserved", "q": "intensity>150"}
    assert len(client.get(f"{BASE}/entities", params=visible, headers=me).json()) == 2


def test_writes_outside_the_rules_are_refused_and_change_nothing(hub_and_keys) -> None:
    client, keys = hub_and_keys
    me, op = keys["flows"], keys["operator"]
    url = f"{BASE}/entities/urn:ngsi-ld:TrafficFlowObserved:1/attrs"
    ok = client.patch(url, json={"intensity": {"type": "Property", "value": 7}}, headers=me)
    assert ok.status_code == 204
    bad = client.patch(url, json={"secretNote": {"type": "Property", "value": "x"}}, headers=me)
    assert bad.status_code == 403
    both = client.patch(
        url,
        json={
            "intensity": {"type": "Property", "value": 8},
            "secretNote": {"type": "Property", "value": "y"},
        },
        headers=me,
    )
    assert both.status_code == 403  # all or nothing
    now = client.get(f"{BASE}/entities/urn:ngsi-ld:TrafficFlowObserved:1", headers=op).json()
    assert now["intensity"]["value"] == 7 and now["secretNote"]["value"] == "plate ABC-123"
    aq = {"id": "urn:ngsi-ld:AirQualityObserved:9", "type": "AirQualityObserved"}
    assert client.post(f"{BASE}/entities", json=aq, headers=me).status_code == 403
    assert client.get(f"{BASE}/entities/{aq['id']}", headers=op).status_code == 404
    gone = client.delete(f"{BASE}/entities/urn:ngsi-ld:TrafficFlowObserved:2", headers=me)
    assert gone.status_code == 403  # the role may write, not delete


def test_subscriptions_carry_only_readable_attributes(hub_and_keys) -> None:
    client, keys = hub_and_keys
    me = keys["flows"]
    sub = {
        "type": "Subscription",
        "entities": [{"type": "TrafficFlowObserved"}],
        "notification": {"endpoint": {"uri": "http://127.0.0.1:9/hook"}},
    }
    r = client.post(f"{BASE}/subscriptions", json=sub, headers=me)
    assert r.status_code == 201
    stored = client.get(r.headers["Location"], headers=me).json()
    assert sorted(stored["notification"]["attributes"]) == ["intensity", "location"]
    other = {**sub, "entities": [{"type": "AirQualityObserved"}]}
    assert client.post(f"{BASE}/subscriptions", json=other, headers=me).status_code == 403


def test_a_subscription_may_not_match_on_attributes_it_may_not_read(hub_and_keys) -> None:
    """q or watchedAttributes on a hidden attribute would leak it (which entities match,
    when it changes): refused, and nothing stored."""
    client, keys = hub_and_keys
    me = keys["flows"]
    base = {
        "type": "Subscription",
        "entities": [{"type": "TrafficFlowObserved"}],
        "notification": {"endpoint": {"uri": "http://127.0.0.1:9/hook"}},
    }
    for extra in (
        {"q": 'secretNote=="plate ABC-123"'},
        {"q": "intensity>100;secretNote"},
        {"watchedAttributes": ["secretNote"]},
    ):
        r = client.post(f"{BASE}/subscriptions", json={**base, **extra}, headers=me)
        assert r.status_code == 403, (extra, r.text)
        assert "secretNote" in r.json()["detail"]
    assert client.get(f"{BASE}/subscriptions", headers=me).json() == []
    ok = {**base, "q": "intensity>100", "watchedAttributes": ["intensity"]}
    assert client.post(f"{BASE}/subscriptions", json=ok, headers=me).status_code == 201
    # the operator, who may read everything, may match on it
    op = keys["operator"]
    r = client.post(f"{BASE}/subscriptions", json={**base, "q": 'secretNote=="x"'}, headers=op)
    assert r.status_code == 201, r.text
