"""Common behaviours (clause 6.3): an unknown query parameter is an InvalidRequest, checked
before the body or anything else, so nothing is written."""

from __future__ import annotations

import pytest

BASE = "/ngsi-ld/v1"
INVALID_REQUEST = "https://uri.etsi.org/ngsi-ld/errors/InvalidRequest"
ENTITY = {"id": "urn:ngsi-ld:Building:p1", "type": "Building"}
SUB = {
    "type": "Subscription",
    "entities": [{"type": "Building"}],
    "notification": {"endpoint": {"uri": "http://127.0.0.1:9/n"}},
}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/entities", ENTITY),
        ("GET", "/entities?type=Building", None),
        ("POST", "/temporal/entities", ENTITY),
        ("GET", "/temporal/entities?type=Building", None),
        ("GET", "/types", None),
        ("POST", "/subscriptions", SUB),
        ("GET", "/subscriptions", None),
        ("GET", "/jsonldContexts", None),
    ],
)
def test_unknown_query_parameter_is_invalid_request(client, method, path, body) -> None:
    sep = "&" if "?" in path else "?"
    r = client.request(method, f"{BASE}{path}{sep}invalidParams=invalidValue", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["type"] == INVALID_REQUEST and "invalidParams" in r.json()["detail"]
    assert client.get(f"{BASE}/entities", params={"type": "Building"}).json() == []
    assert client.get(f"{BASE}/subscriptions").json() == []


def test_known_parameters_still_pass(client) -> None:
    assert client.post(f"{BASE}/entities", json=ENTITY).status_code == 201
    r = client.get(f"{BASE}/entities", params={"type": "Building", "limit": 5, "count": "true"})
    assert r.status_code == 200 and r.headers["NGSILD-Results-Count"] == "1"
    assert client.get(f"{BASE}/types", params={"details": "true"}).status_code == 200
    assert client.get(f"{BASE}/subscriptions", params={"limit": 1}).status_code == 200
