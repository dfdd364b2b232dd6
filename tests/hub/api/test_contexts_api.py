"""/jsonldContexts (clause 5.13): details, kinds, the core context by any of its URLs, and
``reload`` only for cached contexts."""

from __future__ import annotations

from urllib.parse import quote

BASE = "/ngsi-ld/v1/jsonldContexts"
CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
DOC = {"@context": {"Shop": "https://example.org/Shop"}}
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"


def _host(client) -> str:
    r = client.post(BASE, json=DOC)
    assert r.status_code == 201, r.text
    return r.headers["Location"].rsplit("/", 1)[1]


def test_serve_with_and_without_details(client) -> None:
    local = _host(client)
    r = client.get(f"{BASE}/{local}")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    assert r.json() == DOC
    r = client.get(f"{BASE}/{local}", params={"details": "true"})
    got = r.json()
    assert r.headers["Content-Type"] == "application/json"
    assert set(got) == {"URL", "localId", "kind", "createdAt"}
    assert got["kind"] == "Hosted" and got["localId"] == local and got["URL"].endswith(local)
    listed = client.get(BASE, params={"details": "true", "kind": "Hosted"}).json()
    assert [e["localId"] for e in listed] == [local]
    assert client.get(BASE, params={"kind": "Cached"}).json() == [CORE]


def test_the_core_context_by_its_url(client) -> None:
    r = client.get(f"{BASE}/{quote(CORE, safe='')}", params={"details": "true"})
    assert r.status_code == 200, r.text
    assert r.json()["kind"] == "Cached" and r.json()["URL"] == CORE and r.json()["createdAt"]
    assert client.get(f"{BASE}/{quote(CORE, safe='')}").json()["@context"]
    for reload in (None, "false"):
        params = {"reload": reload} if reload else {}
        r = client.delete(f"{BASE}/{quote(CORE, safe='')}", params=params)
        assert r.status_code == 400 and r.json()["type"] == ERRORS + "BadRequestData"
    assert client.delete(f"{BASE}/core", params={"reload": "true"}).status_code == 204
    assert client.get(f"{BASE}/core").status_code == 200  # still there: built in


def test_reload_values_and_kinds(client) -> None:
    local = _host(client)
    for ctx_id, reload, status, kind in (
        ("wrong_id_context", "true", 400, "BadRequestData"),  # not a cached @context
        ("wrong_id_context", "false", 404, "ResourceNotFound"),
        ("wrong_id_context", None, 404, "ResourceNotFound"),
        ("wrong_id_context", "xxx", 400, "BadRequestData"),
        (local, "true", 400, "BadRequestData"),  # hosted: nothing to fetch again
    ):
        params = {"reload": reload} if reload else {}
        r = client.delete(f"{BASE}/{ctx_id}", params=params)
        assert r.status_code == status and r.json()["type"] == ERRORS + kind, (ctx_id, reload)
    assert client.get(f"{BASE}/{local}").status_code == 200  # nothing deleted
    assert client.delete(f"{BASE}/{local}").status_code == 204
    assert client.get(f"{BASE}/{local}").status_code == 404


def test_a_body_that_is_no_context_is_invalid_request(client) -> None:
    r = client.post(BASE, json={"A1": "urn:ngsi-ld:attributes:A1"})
    assert r.status_code == 400 and r.json()["type"] == ERRORS + "InvalidRequest"
    assert client.get(BASE, params={"kind": "Hosted"}).json() == []
