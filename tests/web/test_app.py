"""The ASGI application itself (``cityos.web.app``): health and version, the problem
documents for unknown routes and methods, path normalisation, the OpenAPI document and the
lifespan that starts and stops the background work. The NGSI-LD routes are tested in
``tests/hub/api``, the door and hardening in ``tests/security``."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

import cityos
from cityos.config import Settings
from cityos.hub.core import Hub
from cityos.hub.store.sqlite import SqliteStore
from cityos.web.app import create_app

BASE = "/ngsi-ld/v1"
PROBLEM = "application/problem+json"
ENTITY = {"id": "urn:ngsi-ld:Shop:one", "type": "Shop", "name": {"type": "Property", "value": "a"}}


def make_app(tmp_path, **settings):
    config = Settings(**settings)
    hub = Hub(config, store=SqliteStore(tmp_path / "web.db"))
    return create_app(config, hub), hub


@pytest.fixture
def client(tmp_path) -> Iterator[TestClient]:
    app, _ = make_app(tmp_path)
    with TestClient(app, base_url="http://127.0.0.1:1026") as c:
        yield c


def assert_problem(r, status: int) -> dict:
    assert r.status_code == status, r.text[:300]
    assert r.headers["content-type"].startswith(PROBLEM)
    doc = r.json()
    assert doc["status"] == status
    assert doc["type"].startswith("https://uri.etsi.org/ngsi-ld/errors/")
    assert doc["title"] and doc["detail"]
    return doc


# ------------------------------------------------------------------ health and version
def test_health_names_the_engine_and_the_worker(client) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert {k: body[k] for k in ("status", "engine", "worker")} == {
        "status": "ok",
        "engine": "sqlite",
        "worker": os.getpid(),
    }
    # each built-in part reports its own, through the plug
    parts = body["services"]
    assert parts["devices"] == {"status": "ok", "mqtt": {"status": "off"}}
    assert parts["identity"]["auth_required"] is False
    assert parts["audit"]["status"] == "ok" and parts["audit"]["entries"] >= 0


def test_health_is_degraded_when_a_part_is(tmp_path) -> None:
    """A broker that never answers: the devices part says so, and so does the whole."""
    settings = Settings(database_url=f"sqlite:///{tmp_path}/h.db", mqtt_url="mqtt://127.0.0.1:9")
    with TestClient(create_app(settings)) as c:
        body = c.get("/health").json()
    assert body["status"] == "degraded"
    assert body["services"]["devices"]["status"] == "degraded"
    assert body["services"]["devices"]["mqtt"]["status"] == "connecting"


def test_version_names_cityos_and_the_ngsi_ld_release(client) -> None:
    r = client.get("/version")
    assert r.status_code == 200
    assert r.json() == {"name": "cityos", "version": cityos.__version__, "ngsi-ld": "1.8.1"}


# ----------------------------------------------------------------- 404 and 405 problems
@pytest.mark.parametrize("path", ["/nowhere", f"{BASE}/nothing-here", "/health/extra"])
def test_an_unknown_route_is_a_404_problem_naming_it(client, path) -> None:
    doc = assert_problem(client.get(path), 404)
    assert doc["type"].endswith("/ResourceNotFound")
    assert doc["detail"] == f"no route GET {path}"
    assert doc["instance"] == path


@pytest.mark.parametrize(
    "method, path",
    [
        ("PATCH", f"{BASE}/entities//attrs"),
        ("DELETE", f"{BASE}/temporal/entities//attrs/speed"),
        ("PATCH", f"{BASE}/temporal/entities/urn:ngsi-ld:X:1/attrs//urn:x"),
    ],
)
def test_an_empty_id_or_name_in_the_path_is_a_400(client, method, path) -> None:
    """Clause 6.3.1: a request with an empty id or attribute name is malformed (400), not a
    request for something missing (404)."""
    r = client.request(method, path, json={"speed": {"type": "Property", "value": 1}})
    doc = assert_problem(r, 400)
    assert doc["type"].endswith("/BadRequestData") and "empty id or name" in doc["detail"]


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_an_entity_named_by_an_empty_id_is_a_400(client, method) -> None:
    """``PUT /entities/`` names an entity by an empty id (ETSI 054_02_02, 056_02_02): 400;
    without the slash the method is simply not allowed on the collection (405)."""
    body = {"name": {"type": "Property", "value": 1}}
    doc = assert_problem(client.request(method, f"{BASE}/entities/", json=body), 400)
    assert "empty id" in doc["detail"]
    assert client.request(method, f"{BASE}/entities", json=body).status_code == 405
    # the other collections keep their 405 (ETSI 029_01_01, 032_01_01, 035_02_01)
    assert client.request(method, f"{BASE}/subscriptions/", json=body).status_code == 405
    assert client.delete(f"{BASE}/subscriptions/").status_code == 405


def test_a_partial_attribute_update_takes_merge_patch(client) -> None:
    """``PATCH /entities/{id}/attrs/{attr}`` with application/merge-patch+json (ETSI 044_01_01)."""
    entity = {"id": "urn:ngsi-ld:Road:1", "type": "Road", "lanes": {"type": "Property", "value": 2}}
    assert client.post(f"{BASE}/entities", json=entity).status_code == 201
    r = client.patch(
        f"{BASE}/entities/urn:ngsi-ld:Road:1/attrs/lanes",
        content=json.dumps({"value": 3}),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert r.status_code == 204, r.text
    got = client.get(f"{BASE}/entities/urn:ngsi-ld:Road:1", params={"options": "keyValues"})
    assert got.json()["lanes"] == 3


def test_a_wrong_method_is_a_405_problem_with_allow(client) -> None:
    r = client.put("/version")
    doc = assert_problem(r, 405)
    assert set(r.headers["allow"].replace(" ", "").split(",")) >= {"GET"}
    assert "method PUT is not allowed on /version" in doc["detail"]


# -------------------------------------------------------------------- path normalisation
def test_a_trailing_slash_reaches_the_same_route(client) -> None:
    assert client.post(f"{BASE}/entities/", json=ENTITY).status_code == 201
    plain = client.get(f"{BASE}/entities", params={"type": "Shop"})
    slashed = client.get(f"{BASE}/entities/", params={"type": "Shop"})
    assert slashed.status_code == plain.status_code == 200
    assert slashed.json() == plain.json() != []
    assert client.get(f"{BASE}/entities/{ENTITY['id']}/").json()["id"] == ENTITY["id"]
    assert client.get("/health/").json()["status"] == "ok"
    assert client.get("/version//").json()["name"] == "cityos"


def test_an_encoded_slash_stays_inside_its_segment(client) -> None:
    eid = "urn:ngsi-ld:Shop:a/b"
    assert client.post(f"{BASE}/entities", json={**ENTITY, "id": eid}).status_code == 201
    r = client.get(f"{BASE}/entities/urn:ngsi-ld:Shop:a%2Fb")
    assert r.status_code == 200, r.text
    assert r.json()["id"] == eid
    # an unknown id with %2F is the entity's 404, not a missing route
    doc = assert_problem(client.get(f"{BASE}/entities/urn:ngsi-ld:Shop:x%2Fy"), 404)
    assert not doc["detail"].startswith("no route"), doc
    assert "urn:ngsi-ld:Shop:x/y" in doc["detail"]


@pytest.mark.parametrize(
    "url", [f"{BASE}/entities/urn:ngsi-ld:Shop:a%00", f"{BASE}/entities?type=Sh%00op"]
)
def test_nul_in_a_path_or_query_is_a_400_problem(client, url) -> None:
    doc = assert_problem(client.get(url), 400)
    assert doc["type"].endswith("/BadRequestData")
    assert "%00" in doc["detail"]


# ----------------------------------------------------------------------------- OpenAPI
def test_openapi_json_is_served_as_valid_json_describing_the_app(client) -> None:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    doc = json.loads(r.content)  # strict JSON: no NaN, Infinity or trailing garbage
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["version"] == cityos.__version__
    for path in (f"{BASE}/entities", "/health", "/version"):
        assert path in doc["paths"], path
    # every operation it documents is routed: none answers "no route"
    for path, ops in doc["paths"].items():
        if "{" in path or "get" not in ops:
            continue
        r = client.get(path)
        assert not (r.status_code == 404 and "no route" in r.text), path


# ---------------------------------------------------------------------------- lifespan
def agent_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "cityos-device-agent" and t.is_alive()]


def test_the_lifespan_starts_the_background_work_and_stops_it(tmp_path) -> None:
    app, hub = make_app(tmp_path)
    before = len(agent_threads())
    with TestClient(app) as c:
        assert len(agent_threads()) == before + 1  # the device agent runs while serving
        assert c.post(f"{BASE}/entities", json=ENTITY).status_code == 201
    assert len(agent_threads()) == before  # stopped (and flushed) on shutdown
    # the hub was closed with the app, and what was written is on disk
    reopened = SqliteStore(tmp_path / "web.db")
    try:
        assert reopened.get_entity("", ENTITY["id"]) is not None
    finally:
        reopened.close()


def test_bad_retention_rules_stop_the_start_with_the_reason(tmp_path) -> None:
    app, _ = make_app(tmp_path, retention=["*=forever"], retention_interval_s=60)
    with pytest.raises(Exception, match="forever"), TestClient(app):
        pass


def test_a_link_of_another_relation_is_no_context(client) -> None:
    """A read with a Link header of another relation (RFC 8288; ngsildclient sends its
    context so on GET subscription) is answered in the core context; a write that needs
    the context it names is still refused."""
    odd = {"Link": '<https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld>; rel="other"'}
    assert client.get(f"{BASE}/entities", params={"type": "Road"}, headers=odd).status_code == 200
    entity = {"id": "urn:ngsi-ld:Road:9", "type": "Road"}
    doc = assert_problem(client.post(f"{BASE}/entities", json=entity, headers=odd), 400)
    assert "names no JSON-LD context" in doc["detail"]
