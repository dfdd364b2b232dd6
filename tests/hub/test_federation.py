"""Federation across two `cityos serve` processes: a city hub registers a department's hub
(an inclusive context source registration) and its entity queries include the
department's entities, with tenants and authorisation held on both sides, a failing
source left out, and a registration of the hub in itself stopped by the Via header."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cityos.hub.store.sqlite import SqliteStore
from cityos.security.keys import create_key

V0, V1, V2 = (f"urn:ngsi-ld:Vehicle:{n}" for n in ("city-0", "dept-1", "dept-other-tenant"))
AIR = "urn:ngsi-ld:AirQualityObserved:dept-2"
CITY, DEPT = "phnompenh", "transport"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keys(db: Path, grants: dict[str, tuple[str, str]]) -> dict[str, str]:
    """API keys made in a hub's database before it starts: name -> key."""
    store = SqliteStore(db)
    store.migrate()
    try:
        return {
            name: create_key(store, tenants=[tenant], roles=[role])[0]
            for name, (tenant, role) in grants.items()
        }
    finally:
        store.close()


def _headers(key: str, tenant: str) -> dict[str, str]:
    return {"Authorization": f"ApiKey {key}", "NGSILD-Tenant": tenant}


def _vehicle(eid: str, speed: int) -> dict[str, Any]:
    return {"id": eid, "type": "Vehicle", "speed": {"type": "Property", "value": speed}}


@pytest.fixture(scope="module")
def hubs(tmp_path_factory: pytest.TempPathFactory, serve_hub: Any) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("federation")
    dept_db, city_db = root / "dept.db", root / "city.db"
    dept_keys = _keys(
        dept_db,
        {
            "admin": (DEPT, "city-operator"),
            "other": ("elsewhere", "city-operator"),
            "peer": (DEPT, "transit-operator"),  # what the city hub is given: Vehicles only
        },
    )
    city_keys = _keys(
        city_db,
        {
            "admin": (CITY, "city-operator"),
            "engineer": (CITY, "traffic-engineer"),  # may read Vehicles
            "resident": (CITY, "resident"),  # may not
            "hanoi": ("hanoi", "city-operator"),
        },
    )
    env = {"CITYOS_AUTH_REQUIRED": "true", "CITYOS_DETECT": "false", "CITYOS_RATE_PER_S": "0"}
    with (
        serve_hub({**env, "CITYOS_DATABASE_URL": f"sqlite:///{dept_db}"}) as dept,
        serve_hub({**env, "CITYOS_DATABASE_URL": f"sqlite:///{city_db}"}) as city,
    ):
        with httpx.Client(base_url=f"{dept}/ngsi-ld/v1") as d:
            mine = _headers(dept_keys["admin"], DEPT)
            assert d.post("/entities", json=_vehicle(V1, 40), headers=mine).status_code == 201
            air = {"id": AIR, "type": "AirQualityObserved", "no2": {"type": "Property", "value": 9}}
            assert d.post("/entities", json=air, headers=mine).status_code == 201
            other = _headers(dept_keys["other"], "elsewhere")
            assert d.post("/entities", json=_vehicle(V2, 50), headers=other).status_code == 201
        client = httpx.Client(base_url=f"{city}/ngsi-ld/v1", timeout=30)
        admin = _headers(city_keys["admin"], CITY)
        assert client.post("/entities", json=_vehicle(V0, 30), headers=admin).status_code == 201
        registration = {
            "id": "urn:ngsi-ld:ContextSourceRegistration:transport",
            "type": "ContextSourceRegistration",
            "information": [{"entities": [{"type": "Vehicle"}, {"type": "AirQualityObserved"}]}],
            "endpoint": dept,
            "tenant": DEPT,
            "contextSourceInfo": [{"key": "Authorization", "value": f"ApiKey {dept_keys['peer']}"}],
        }
        r = client.post("/csourceRegistrations", json=registration, headers=admin)
        assert r.status_code == 201, r.text
        yield {"client": client, "keys": city_keys, "city": city, "registration": registration}
        client.close()


def _ids(r: httpx.Response) -> set[str]:
    assert r.status_code == 200, r.text
    return {e["id"] for e in r.json()}


def test_a_query_includes_the_registered_hubs_entities(hubs: dict[str, Any]) -> None:
    c, keys = hubs["client"], hubs["keys"]
    engineer = _headers(keys["engineer"], CITY)
    assert _ids(c.get("/entities", params={"type": "Vehicle"}, headers=engineer)) == {V0, V1}
    got = c.get(f"/entities/{V1}", headers=engineer)
    assert got.status_code == 200, got.text
    assert got.json()["speed"]["value"] == 40
    query = {"type": "Query", "entities": [{"type": "Vehicle"}], "q": "speed>35"}
    assert _ids(c.post("/entityOperations/query", json=query, headers=engineer)) == {V1}
    # local=true: this hub's own entities only, no source asked (clause 6.3.18)
    local = {"type": "Vehicle", "local": "true"}
    assert _ids(c.get("/entities", params=local, headers=engineer)) == {V0}
    r = c.get(f"/entities/{V1}", params={"local": "true"}, headers=engineer)
    assert r.status_code == 404, r.text


def test_authorisation_and_tenants_hold_on_both_sides(hubs: dict[str, Any]) -> None:
    c, keys = hubs["client"], hubs["keys"]
    admin = _headers(keys["admin"], CITY)
    # the department's key for the city hub reads Vehicles only: no air quality comes back
    assert _ids(c.get("/entities", params={"type": "AirQualityObserved"}, headers=admin)) == set()
    # the department's other tenant is never asked
    assert V2 not in _ids(c.get("/entities", params={"type": "Vehicle"}, headers=admin))
    # a caller who may not read Vehicles here sees none from the department either
    resident = c.get(
        "/entities", params={"type": "Vehicle"}, headers=_headers(keys["resident"], CITY)
    )
    assert resident.status_code == 403 or not _ids(resident)
    assert c.get(f"/entities/{V1}", headers=_headers(keys["resident"], CITY)).status_code in (
        403,
        404,
    )
    # another tenant of the city hub has no registration
    hanoi = c.get("/entities", params={"type": "Vehicle"}, headers=_headers(keys["hanoi"], "hanoi"))
    assert hanoi.status_code < 500 and V1 not in hanoi.text
    # the registration is shown without the department's key
    reg = c.get(f"/csourceRegistrations/{hubs['registration']['id']}", headers=admin).json()
    assert reg["contextSourceInfo"][0]["value"] == "********"
    # and only an administrator may register
    engineer = _headers(keys["engineer"], CITY)
    sneaky = {**hubs["registration"], "id": "urn:ngsi-ld:ContextSourceRegistration:sneaky"}
    assert c.post("/csourceRegistrations", json=sneaky, headers=engineer).status_code == 403


def test_a_failing_source_and_a_loop_do_not_fail_the_answer(hubs: dict[str, Any]) -> None:
    c, keys = hubs["client"], hubs["keys"]
    admin = _headers(keys["admin"], CITY)
    dead = {
        **hubs["registration"],
        "id": "urn:ngsi-ld:ContextSourceRegistration:dead",
        "endpoint": f"http://127.0.0.1:{free_port()}",
    }
    itself = {
        **hubs["registration"],
        "id": "urn:ngsi-ld:ContextSourceRegistration:itself",
        "endpoint": hubs["city"],
        "tenant": CITY,
        "contextSourceInfo": [{"key": "Authorization", "value": f"ApiKey {keys['admin']}"}],
    }
    for reg in (dead, itself):
        assert c.post("/csourceRegistrations", json=reg, headers=admin).status_code == 201
    try:
        found = c.get("/entities", params={"type": "Vehicle"}, headers=admin)
        assert _ids(found) == {V0, V1}
        assert len(found.json()) == 2  # the hub's own answer, through itself, not doubled
    finally:
        for reg in (dead, itself):
            c.delete(f"/csourceRegistrations/{reg['id']}", headers=admin)


def test_a_retrieval_is_forwarded_as_one_and_operations_are_kept(hubs: dict[str, Any]) -> None:
    """A registration that allows retrieveEntity only is asked GET /entities/{id}, and not
    a query (clause 4.20); one that allows queryEntity only answers a retrieval by a query."""
    c, keys = hubs["client"], hubs["keys"]
    hanoi = _headers(keys["hanoi"], "hanoi")
    base = {**hubs["registration"], "id": "urn:ngsi-ld:ContextSourceRegistration:hanoi-r"}
    own = "urn:ngsi-ld:Vehicle:hanoi-0"  # a tenant with entities of its own (else 404 first)
    assert c.post("/entities", json=_vehicle(own, 20), headers=hanoi).status_code in (201, 409)
    for ops in (["retrieveEntity"], ["queryEntity"]):
        reg = {**base, "operations": ops}
        assert c.post("/csourceRegistrations", json=reg, headers=hanoi).status_code == 201
        try:
            got = c.get(f"/entities/{V1}", headers=hanoi)
            assert got.status_code == 200, (ops, got.text)
            assert got.json()["id"] == V1 and got.json()["speed"]["value"] == 40
            listed = _ids(c.get("/entities", params={"type": "Vehicle"}, headers=hanoi))
            assert listed == ({own, V1} if ops == ["queryEntity"] else {own}), ops
            missing = c.get("/entities/urn:ngsi-ld:Vehicle:nowhere", headers=hanoi)
            assert missing.status_code == 404
            # an entity the source holds of a type the registration does not name: not taken
            assert c.get(f"/entities/{AIR}", headers=hanoi).status_code == 404
        finally:
            c.delete(f"/csourceRegistrations/{base['id']}", headers=hanoi)


@pytest.mark.parametrize(
    ("mode", "names", "speed"),
    [
        ("inclusive", None, 7),  # the source adds what is not here: the local speed stays
        ("auxiliary", None, 7),
        ("redirect", None, 40),  # the entity lives at the source: its speed
        ("exclusive", ["speed"], 40),  # the source owns the registered attribute
        ("exclusive", ["brandName"], 7),  # ... and only that one
    ],
)
def test_the_registration_mode_decides_whose_attribute_is_read(
    hubs: dict[str, Any], mode: str, names: list[str] | None, speed: int
) -> None:
    c, keys = hubs["client"], hubs["keys"]
    hanoi = _headers(keys["hanoi"], "hanoi")
    r = c.post("/entities", json=_vehicle(V1, 7), headers=hanoi)  # a local copy of V1
    assert r.status_code == 201, r.text
    info: dict[str, Any] = {"entities": [{"type": "Vehicle", "id": V1}]}
    if names:
        info["propertyNames"] = names
    reg = {
        **hubs["registration"],
        "id": "urn:ngsi-ld:ContextSourceRegistration:hanoi-mode",
        "information": [info],
        "mode": mode,
    }
    assert c.post("/csourceRegistrations", json=reg, headers=hanoi).status_code == 201
    try:
        got = c.get(f"/entities/{V1}", headers=hanoi)
        assert got.status_code == 200, got.text
        assert got.json()["speed"]["value"] == speed, mode
        (listed,) = [
            e
            for e in c.get("/entities", params={"type": "Vehicle"}, headers=hanoi).json()
            if e["id"] == V1
        ]
        assert listed["speed"]["value"] == speed, mode
    finally:
        c.delete(f"/csourceRegistrations/{reg['id']}", headers=hanoi)
        c.delete(f"/entities/{V1}", headers=hanoi)  # the local copy: the other tests' world
