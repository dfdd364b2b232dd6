"""More request/response pairs: attribute kinds over HTTP, scopes, languages, contexts, media."""

from __future__ import annotations

import json

BASE = "/ngsi-ld/v1"
LD = {"Content-Type": "application/ld+json"}
JSONCT = {"Content-Type": "application/json"}
CTX = {
    "name": "https://example.org/name",
    "Shop": "https://example.org/Shop",
    "owner": "https://example.org/owner",
}


def post(client, body, headers=LD):
    return client.post(f"{BASE}/entities", content=json.dumps(body), headers=headers)


def test_concise_input_and_language_property(client) -> None:
    body = {
        "id": "urn:ngsi-ld:Shop:phsar-thmei",
        "type": "Shop",
        "name": {"languageMap": {"en": "Central Market", "km": "ផ្សារធំថ្មី"}},
        "owner": {"object": "urn:ngsi-ld:Organization:city"},
        "stalls": 3000,
        "location": {"type": "Point", "coordinates": [104.921, 11.5697]},
        "@context": CTX,
    }
    assert post(client, body).status_code == 201
    full = client.get(
        f"{BASE}/entities/urn:ngsi-ld:Shop:phsar-thmei", headers={"Accept": "application/ld+json"}
    ).json()
    assert full["@context"]  # ld+json answers carry the context in the body
    stored = client.get(f"{BASE}/entities/urn:ngsi-ld:Shop:phsar-thmei").json()
    assert stored["https://example.org/name"]["type"] == "LanguageProperty"
    assert stored["https://example.org/owner"] == {
        "type": "Relationship",
        "object": "urn:ngsi-ld:Organization:city",
    }
    assert stored["stalls"] == {"type": "Property", "value": 3000}
    assert stored["location"]["type"] == "GeoProperty"
    km = client.get(
        f"{BASE}/entities/urn:ngsi-ld:Shop:phsar-thmei",
        params={"lang": "km", "options": "keyValues"},
    ).json()
    assert km["https://example.org/name"] == "ផ្សារធំថ្មី"
    # relationship target in q
    r = client.get(
        f"{BASE}/entities",
        params={
            "type": "https://example.org/Shop",
            "q": "https://example.org/owner==urn:ngsi-ld:Organization:city",
        },
    )
    assert [e["id"] for e in r.json()] == ["urn:ngsi-ld:Shop:phsar-thmei"]


def test_scope_query_over_http(client) -> None:
    for n, scope in enumerate(
        ["/KH/PhnomPenh/DaunPenh", "/KH/PhnomPenh/Chamkarmon", "/TH/Bangkok"]
    ):
        body = {
            "id": f"urn:ngsi-ld:Shop:{n}",
            "type": "Shop",
            "scope": scope,
            "stalls": n,
            "@context": CTX,
        }
        assert post(client, body).status_code == 201
    r = client.get(f"{BASE}/entities", params={"scopeQ": "/KH/PhnomPenh/#"})
    assert sorted(e["id"] for e in r.json()) == ["urn:ngsi-ld:Shop:0", "urn:ngsi-ld:Shop:1"]
    r = client.get(f"{BASE}/entities", params={"scopeQ": "/KH/+/DaunPenh|/TH/#"})
    assert sorted(e["id"] for e in r.json()) == ["urn:ngsi-ld:Shop:0", "urn:ngsi-ld:Shop:2"]


def test_pick_omit_and_format(client) -> None:
    body = {"id": "urn:ngsi-ld:Shop:1", "type": "Shop", "name": "A", "stalls": 1, "@context": CTX}
    post(client, body)
    r = client.get(
        f"{BASE}/entities",
        params={"type": "https://example.org/Shop", "omit": "stalls", "format": "keyValues"},
    )
    assert r.json() == [
        {
            "id": "urn:ngsi-ld:Shop:1",
            "type": "https://example.org/Shop",
            "https://example.org/name": "A",
        }
    ]
    r = client.get(f"{BASE}/entities", params={"type": "https://example.org/Shop", "pick": "id"})
    assert r.json() == [{"id": "urn:ngsi-ld:Shop:1"}]
    r = client.get(
        f"{BASE}/entities",
        params={"type": "https://example.org/Shop", "pick": "id", "omit": "type"},
    )
    assert r.status_code == 400


def test_replace_one_attribute(client) -> None:
    post(
        client,
        {
            "id": "urn:ngsi-ld:Shop:1",
            "type": "Shop",
            "stalls": {"type": "Property", "value": 1, "unitCode": "C62"},
            "@context": CTX,
        },
    )
    r = client.put(
        f"{BASE}/entities/urn:ngsi-ld:Shop:1/attrs/stalls",
        content=json.dumps({"type": "Property", "value": 2}),
        headers=JSONCT,
    )
    assert r.status_code == 204, r.text
    stored = client.get(f"{BASE}/entities/urn:ngsi-ld:Shop:1").json()
    assert stored["stalls"] == {"type": "Property", "value": 2}  # replaced whole: unitCode gone
    r = client.put(
        f"{BASE}/entities/urn:ngsi-ld:Shop:1/attrs/nothing",
        content=json.dumps({"type": "Property", "value": 2}),
        headers=JSONCT,
    )
    assert r.status_code == 404


def test_query_limits_and_media(client) -> None:
    r = client.get(f"{BASE}/entities", params={"type": "T", "q": "(" * 40 + "a==1" + ")" * 40})
    assert r.status_code == 403 and r.json()["type"].endswith("TooComplexQuery")
    r = client.get(f"{BASE}/entities", params={"type": "T"}, headers={"Accept": "text/html"})
    assert r.status_code == 406
    r = client.get(f"{BASE}/entities", params={"type": "T", "options": "bogus"})
    assert r.status_code == 400
    body = {"id": "urn:ngsi-ld:Shop:1", "type": "Shop", "@context": CTX}
    r = client.post(f"{BASE}/entities", content=json.dumps(body), headers=JSONCT)
    assert r.status_code == 400  # an @context in a plain JSON body


def test_context_listing_and_delete(client) -> None:
    r = client.post(f"{BASE}/jsonldContexts", content=json.dumps({"@context": CTX}), headers=LD)
    assert r.status_code == 201
    ctx_path = r.headers["location"]
    listed = client.get(f"{BASE}/jsonldContexts").json()
    assert any(u.endswith(ctx_path) for u in listed)
    assert any("ngsi-ld-core-context" in u for u in listed)
    details = client.get(
        f"{BASE}/jsonldContexts", params={"details": "true", "kind": "Hosted"}
    ).json()
    assert [d["kind"] for d in details] == ["Hosted"]
    assert client.get(ctx_path).json() == {"@context": CTX}
    assert client.get(f"{BASE}/jsonldContexts/core").json()["@context"]
    assert client.delete(ctx_path).status_code == 204
    assert client.get(ctx_path).status_code == 404
    bad = client.post(
        f"{BASE}/jsonldContexts", content=json.dumps({"@context": {"x": {"@id": 5}}}), headers=LD
    )
    assert bad.status_code == 400
    assert client.delete(f"{BASE}/jsonldContexts/core").status_code == 400


def test_link_header_context_resolves_hosted_context_under_any_host_name(client) -> None:
    r = client.post(f"{BASE}/jsonldContexts", content=json.dumps({"@context": CTX}), headers=LD)
    url = "http://cityos.internal:1026" + r.headers["location"]
    link = f'<{url}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
    body = {"id": "urn:ngsi-ld:Shop:1", "type": "Shop", "name": "A"}
    assert post(client, body, headers={**JSONCT, "Link": link}).status_code == 201
    got = client.get(f"{BASE}/entities/urn:ngsi-ld:Shop:1", headers={"Link": link}).json()
    assert got["type"] == "Shop" and got["name"]["value"] == "A"


def test_post_query_paging_errors_and_merge_scope(client) -> None:
    body = {"type": "Query", "entities": [{"type": "Shop"}], "@context": CTX}
    for bad in ({"limit": "abc"}, {"count": "maybe"}, {"offset": "-1"}):
        r = client.post(
            f"{BASE}/entityOperations/query", params=bad, content=json.dumps(body), headers=LD
        )
        assert r.status_code == 400, (bad, r.text)
    r = client.post(
        f"{BASE}/entityOperations/query",
        params={"limit": "100000"},
        content=json.dumps(body),
        headers=LD,
    )
    assert r.status_code == 403
    post(client, {"id": "urn:ngsi-ld:Shop:1", "type": "Shop", "stalls": 1, "@context": CTX})
    r = client.patch(
        f"{BASE}/entities/urn:ngsi-ld:Shop:1",
        content=json.dumps({"scope": "/KH/PhnomPenh"}),
        headers=JSONCT,
    )
    assert r.status_code == 204, r.text
    assert (
        client.get(f"{BASE}/entities", params={"scopeQ": "/KH/#"}).json()[0]["id"]
        == "urn:ngsi-ld:Shop:1"
    )
    r = client.patch(
        f"{BASE}/entities/urn:ngsi-ld:Shop:1",
        content=json.dumps({"scope": "no-slash"}),
        headers=JSONCT,
    )
    assert r.status_code == 400
