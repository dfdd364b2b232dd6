"""Each registered part gets a default role from what it declares it reads and writes
(issue 12): ``service:traffic`` reads and subscribes to the traffic data it reads, writes
what it writes, and nothing else; a rules file that names the role keeps its own."""

from __future__ import annotations

import pytest

from cityos.security.policy import part_role, with_part_roles

BASE = "/ngsi-ld/v1"


def _entity(kind: str, n: int = 1) -> dict:
    return {
        "id": f"urn:ngsi-ld:{kind}:x{n}",
        "type": kind,
        "name": {"type": "Property", "value": n},
    }


def _seed(s, kinds: list[str]) -> None:
    admin = s.key("city-operator")
    for kind in kinds:
        assert (
            s.client.post(f"{BASE}/entities", json=_entity(kind), headers=admin).status_code == 201
        )


def test_the_traffic_role_is_what_traffic_declares(secured) -> None:
    s = secured()
    _seed(s, ["TrafficFlowObserved", "TrafficSignal", "Person", "EnergyMeter"])
    key = s.key(part_role("traffic"))
    # reads: read, query, subscribe; not write
    assert (
        s.client.get(f"{BASE}/entities/urn:ngsi-ld:TrafficFlowObserved:x1", headers=key).status_code
        == 200
    )
    found = s.client.get(f"{BASE}/entities", params={"type": "TrafficFlowObserved"}, headers=key)
    assert [e["id"] for e in found.json()] == ["urn:ngsi-ld:TrafficFlowObserved:x1"]
    patch = {"name": {"type": "Property", "value": 9}}
    assert (
        s.client.patch(
            f"{BASE}/entities/urn:ngsi-ld:TrafficFlowObserved:x1/attrs", json=patch, headers=key
        ).status_code
        == 403
    )
    # writes: write too
    assert (
        s.client.patch(
            f"{BASE}/entities/urn:ngsi-ld:TrafficSignal:x1/attrs", json=patch, headers=key
        ).status_code
        == 204
    )
    assert (
        s.client.post(f"{BASE}/entities", json=_entity("Alert", 2), headers=key).status_code == 201
    )
    # nothing else: a person, a meter; deleting what it writes
    for kind in ("Person", "EnergyMeter"):
        r = s.client.get(f"{BASE}/entities/urn:ngsi-ld:{kind}:x1", headers=key)
        assert r.status_code in (403, 404), (kind, r.status_code)
    people = s.client.get(f"{BASE}/entities", params={"type": "Person"}, headers=key)
    assert (people.status_code, people.json()) == (200, [])  # a query sees only its grant
    assert (
        s.client.delete(f"{BASE}/entities/urn:ngsi-ld:TrafficSignal:x1", headers=key).status_code
        == 403
    )
    # the IoT agent's and the audit log's administration is not its business either
    assert s.client.get("/iot/devices", headers=key).status_code == 403
    assert s.client.get("/audit/head", headers=key).status_code == 403


def test_a_rules_file_naming_the_role_keeps_its_own(secured) -> None:
    rules = {
        "roles": {
            "city-operator": [{"actions": ["read", "write"]}],
            part_role("traffic"): [{"types": ["Person"], "actions": ["read"]}],
        }
    }
    s = secured(rules=rules)
    _seed(s, ["TrafficFlowObserved", "Person"])
    key = s.key(part_role("traffic"))
    r = s.client.get(f"{BASE}/entities", params={"type": "TrafficFlowObserved"}, headers=key)
    assert (r.status_code, r.json()) == (200, [])
    r = s.client.get(f"{BASE}/entities/urn:ngsi-ld:Person:x1", headers=key)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "declared, expected",
    [
        ({"a": ((), ())}, {}),
        (
            {"a": (("X",), ())},
            {"service:a": [{"types": ["X"], "actions": ["read", "aggregate", "subscribe"]}]},
        ),
        (
            {"a": (("X", "Y"), ("Y",))},
            {
                "service:a": [
                    {"types": ["X"], "actions": ["read", "aggregate", "subscribe"]},
                    {"types": ["Y"], "actions": ["read", "aggregate", "write", "subscribe"]},
                ]
            },
        ),
    ],
)
def test_with_part_roles(declared, expected) -> None:
    doc = {"roles": {"city-operator": [{"actions": ["read"]}]}}
    out = with_part_roles(doc, declared)
    assert out["roles"] == {"city-operator": [{"actions": ["read"]}], **expected}
    assert doc == {"roles": {"city-operator": [{"actions": ["read"]}]}}  # not changed in place


@pytest.mark.parametrize("text", ["[1]", '"roles"', '{"roles": [1]}'])
def test_a_rules_file_that_is_no_rules_is_one_line(tmp_path, text) -> None:
    """With the parts' roles added, a file that is no rules object still stops the server
    with a PolicyError saying why (a list once ended in an AttributeError)."""
    from cityos.config import Settings
    from cityos.security.policy import PolicyError
    from cityos.web.app import create_app

    rules = tmp_path / "rules.json"
    rules.write_text(text)
    settings = Settings(database_url=f"sqlite:///{tmp_path}/h.db", policy_path=str(rules))
    with pytest.raises(PolicyError) as caught:
        create_app(settings)
    assert "\n" not in str(caught.value) and ("roles" in str(caught.value))
