"""Hostile and random input: never a 5xx, and a rejected request writes nothing."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from cityos.config import Settings
from cityos.hub.core import Hub
from cityos.hub.store.sqlite import SqliteStore
from cityos.web.app import create_app

BASE = "/ngsi-ld/v1"


@pytest.fixture(scope="module")
def sqlite_client(tmp_path_factory):
    # rate_per_s=0: the fuzzing floods on purpose (rate limits: tests/security/test_ratelimit.py)
    settings = Settings(max_body_bytes=32 * 1024, rate_per_s=0)
    hub = Hub(settings, store=SqliteStore(tmp_path_factory.mktemp("fuzz") / "f.db"))
    with TestClient(create_app(settings, hub)) as c:
        seed = {"id": "urn:ngsi-ld:T:seed", "type": "T", "v": {"type": "Property", "value": 1}}
        assert c.post(f"{BASE}/entities", json=seed).status_code == 201
        yield c


def snapshot(client) -> str:
    r = client.get(
        f"{BASE}/entities", params={"idPattern": ".*", "limit": 1000, "options": "sysAttrs"}
    )
    assert r.status_code == 200
    return r.text


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)

entity_like = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["urn:ngsi-ld:T:seed", "urn:ngsi-ld:T:new", "not a uri", ""])
        | st.integers()
    },
    optional={
        "type": st.sampled_from(["T", "", "bad type", ["T", "U"], 5]),
        "v": json_values,
        "location": json_values | st.just({"type": "Point", "coordinates": [500, 0]}),
        "rel": st.fixed_dictionaries({"type": st.just("Relationship"), "object": json_values}),
    },
)

ROUTES = [
    ("POST", "/entities"),
    ("PUT", "/entities/urn:ngsi-ld:T:seed"),
    ("PATCH", "/entities/urn:ngsi-ld:T:seed"),
    ("POST", "/entities/urn:ngsi-ld:T:seed/attrs"),
    ("PATCH", "/entities/urn:ngsi-ld:T:seed/attrs"),
    ("PATCH", "/entities/urn:ngsi-ld:T:seed/attrs/v"),
    ("POST", "/entityOperations/create"),
    ("POST", "/entityOperations/upsert"),
    ("POST", "/entityOperations/update"),
    ("POST", "/entityOperations/merge"),
    ("POST", "/entityOperations/delete"),
    ("POST", "/entityOperations/query"),
]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    route=st.sampled_from(ROUTES),
    body=json_values | entity_like | st.lists(entity_like, max_size=3),
)
def test_random_bodies_never_5xx_and_rejections_write_nothing(sqlite_client, route, body) -> None:
    method, path = route
    before = snapshot(sqlite_client)
    r = sqlite_client.request(
        method, BASE + path, content=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    assert r.status_code < 500, (method, path, body, r.text)
    if r.status_code >= 400:
        assert r.headers["content-type"].startswith("application/problem+json")
        assert snapshot(sqlite_client) == before
    # put the seed back the way it was for the next example
    sqlite_client.post(f"{BASE}/entityOperations/delete", json=["urn:ngsi-ld:T:new"])
    sqlite_client.post(
        f"{BASE}/entityOperations/upsert",
        json=[{"id": "urn:ngsi-ld:T:seed", "type": "T", "v": {"type": "Property", "value": 1}}],
    )


HOSTILE_RAW = [
    b"[" * 100_000,
    b'{"a":' * 5000 + b"1" + b"}" * 5000,
    b'{"id": "urn:a:1", "type": "T", "v": {"type": "Property", "value": "\\ud800"}}',
    b'{"id": "urn:a:1", "type": "T", "v": {"type": "Property", "value": 1e999}}',
    b'{"id": "urn:a:1", "type": "T", "v": {"type": "Property", "value": -Infinity}}',
    b'{"id": "urn:a:1", "type": "T", "@context": "http://127.0.0.1:22/evil.jsonld"}',
    b'{"id": "urn:a:1", "type": "T", "@context": "http://169.254.169.254/latest/meta-data"}',
    b'{"id": "urn:a:1", "type": "T", "v": {"type": "Property", "value": 123456789012345678901234567890}}',
    b'{"id": "urn:a:1", "type": "T", "v": {"type": "Property", "value": ' + b"1" * 5000 + b"}}",
    b'{"id": "urn:a:1", "type": "T", "v\\u0000x": {"type": "Property", "value": 1}}',
    b"\x00\x01\x02",
    b"",
    b"null",
    b'"just a string"',
    b"x" * 40_000,
]


@pytest.mark.parametrize("raw", HOSTILE_RAW, ids=range(len(HOSTILE_RAW)))
def test_hostile_bodies(sqlite_client, raw: bytes) -> None:
    before = snapshot(sqlite_client)
    for ctype in ("application/json", "application/ld+json"):
        r = sqlite_client.post(f"{BASE}/entities", content=raw, headers={"Content-Type": ctype})
        assert 400 <= r.status_code < 500 or r.status_code == 503, r.text
    assert snapshot(sqlite_client) == before


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    q=st.text(alphabet="abv.[]()!=<>~;|\"'0123456789:/,-TZ ", max_size=40),
    georel=st.sampled_from(
        ["near;maxDistance==10", "near;x==1", "within", "bogus", "near;maxDistance==-5"]
    ),
    geometry=st.sampled_from(["Point", "Polygon", "LineString", "Circle"]),
    coords=st.text(alphabet="[]0123456789.,-e ", max_size=30),
)
def test_hostile_queries_never_5xx(sqlite_client, q, georel, geometry, coords) -> None:
    r = sqlite_client.get(f"{BASE}/entities", params={"type": "T", "q": q})
    assert r.status_code in (200, 400, 403), (q, r.text)
    r = sqlite_client.get(
        f"{BASE}/entities",
        params={"type": "T", "georel": georel, "geometry": geometry, "coordinates": coords},
    )
    assert r.status_code in (200, 400), (georel, geometry, coords, r.text)


PARAMS = [
    "type",
    "id",
    "idPattern",
    "attrs",
    "pick",
    "omit",
    "q",
    "scopeQ",
    "limit",
    "offset",
    "count",
    "options",
    "format",
    "lang",
    "geometryProperty",
    "georel",
    "geometry",
    "coordinates",
    "geoproperty",
    "details",
    "datasetId",
    "deleteAll",
]


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    params=st.dictionaries(
        st.sampled_from(PARAMS),
        st.text(alphabet="abT,;|()[]{}.:/#+=<>!~-0123456789 \"'*", max_size=15),
        min_size=1,
        max_size=5,
    ),
    route=st.sampled_from(
        [
            ("GET", "/entities"),
            ("GET", "/entities/urn:ngsi-ld:T:seed"),
            ("POST", "/entityOperations/query"),
            ("GET", "/types"),
            ("GET", "/attributes"),
            ("GET", "/jsonldContexts"),
            ("DELETE", "/entities/urn:ngsi-ld:T:none/attrs/v"),
        ]
    ),
)
def test_random_query_parameters_never_5xx(sqlite_client, params, route) -> None:
    method, path = route
    body = json.dumps({"type": "Query", "entities": [{"type": "T"}]}) if method == "POST" else None
    r = sqlite_client.request(
        method,
        BASE + path,
        params=params,
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code < 500, (method, path, params, r.text)
