"""Common behaviours (clause 6.3): an unknown query parameter is an InvalidRequest, checked
before the body or anything else, so nothing is written."""

from __future__ import annotations

import json

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
        ("DELETE", "/entities?type=Building", None),
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


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:99999/c.jsonld", "http://127.0.0.1:bad/c", "http://[::1/c"]
)
def test_a_malformed_context_url_is_400_and_writes_nothing(client, url) -> None:
    """Not a URL any client could fetch: the client's error, before any lookup (was a 500
    from httpx.InvalidURL / urlsplit's ValueError)."""
    ld = {"Content-Type": "application/ld+json"}
    r = client.post(f"{BASE}/entities", json={**ENTITY, "@context": url}, headers=ld)
    assert r.status_code == 400 and "not a valid URL" in r.json()["detail"], r.text
    link = f'<{url}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
    r = client.post(f"{BASE}/entities", json=ENTITY, headers={"Link": link})
    assert r.status_code == 400, r.text
    r = client.get(f"{BASE}/entities", params={"type": "Building"}, headers={"Link": link})
    assert r.status_code == 400, r.text
    assert client.get(f"{BASE}/entities", params={"type": "Building"}).json() == []


@pytest.mark.parametrize(
    ("accept", "media"),
    [
        (None, "application/problem+json"),
        ("*/*", "application/problem+json"),
        ("application/problem+json", "application/problem+json"),
        ("application/json, application/problem+json;q=0.5", "application/problem+json"),
        ("application/json", "application/json"),  # ETSI 040_02: a client that asks for JSON
        ("application/ld+json, application/json;q=0.9", "application/json"),
        ("application/json;q=0, application/ld+json", "application/problem+json"),
        ("application/ld+json", "application/problem+json"),  # names neither: disregarded
        ("text/html", "application/problem+json"),
    ],
)
def test_an_error_is_labelled_as_the_client_accepts(client, accept, media) -> None:
    headers = {"Accept": accept} if accept else {}
    for r in (
        client.get(f"{BASE}/csourceSubscriptions/invalidUri", headers=headers),  # 400
        client.get(f"{BASE}/entities/urn:ngsi-ld:Building:none", headers=headers),  # 404
        client.get(f"{BASE}/no/such/route", headers=headers),  # the app's own 404
    ):
        assert r.status_code in (400, 404, 406), r.text  # 406: asks for no entity format
        assert r.headers["content-type"].split(";")[0] == media, (accept, r.url)
        assert r.json()["status"] == r.status_code and r.json()["type"].startswith("https://")


def test_problem_media_reads_quality_values() -> None:
    from cityos.hub.errors import problem_media

    assert problem_media("application/json;q=0.2") == "application/json"
    assert problem_media("application/json;q=bad") == "application/problem+json"
    assert problem_media("application/*;q=0.1, application/json") == "application/problem+json"
    assert problem_media("") == "application/problem+json"


def test_a_patch_without_content_type_is_read_as_json(client) -> None:
    """ETSI 039_05: a PATCH with no Content-Type (Python's requests with ``data=``) is JSON;
    malformed, it is InvalidRequest and nothing changes."""
    assert client.post(f"{BASE}/entities", json=ENTITY).status_code == 201
    url = f"{BASE}/entities/{ENTITY['id']}/attrs"
    fragment = b'{"height": {"type": "Property", "value": 12}}'
    r = client.patch(url, content=b'{"height": {"type": "Property", "value": 9},,}')
    assert "content-type" not in r.request.headers
    assert r.status_code == 400 and r.json()["type"] == INVALID_REQUEST, r.text
    assert "height" not in client.get(f"{BASE}/entities/{ENTITY['id']}").json()
    r = client.post(url, content=fragment)  # a POST without one stays 415
    assert r.status_code == 415, r.text
    assert "height" not in client.get(f"{BASE}/entities/{ENTITY['id']}").json()
    r = client.post(url, content=fragment, headers={"Content-Type": "application/json"})
    assert r.status_code == 204, r.text
    r = client.patch(url, content=b'{"height": {"type": "Property", "value": 14}}')
    assert r.status_code == 204, r.text
    assert client.get(f"{BASE}/entities/{ENTITY['id']}").json()["height"]["value"] == 14


def test_a_csource_subscription_patch_without_content_type(client) -> None:
    sub = {**SUB, "id": "urn:ngsi-ld:Subscription:ct"}
    assert client.post(f"{BASE}/csourceSubscriptions", json=sub).status_code == 201
    url = f"{BASE}/csourceSubscriptions/{sub['id']}"
    r = client.patch(url, content=b'{"notification": {"format": "keyValues",, }}')
    assert r.status_code == 400 and r.json()["type"] == INVALID_REQUEST, r.text
    fragment = {
        "notification": {"format": "keyValues", "endpoint": {"uri": "http://127.0.0.1:9/m"}}
    }
    r = client.patch(url, content=json.dumps(fragment).encode())
    assert r.status_code == 204, r.text
    assert client.get(url).json()["notification"]["format"] == "keyValues"
