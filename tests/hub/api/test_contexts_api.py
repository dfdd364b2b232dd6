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


COMPOUND = [{"Shop": "https://example.org/Shop"}, {"stock": "https://example.org/stock"}]


def _subscribe(client, sid: str, context, path: str = "/ngsi-ld/v1/subscriptions"):
    body = {
        "id": sid,
        "type": "Subscription",
        "entities": [{"type": "Shop"}],
        "notification": {"endpoint": {"uri": "http://127.0.0.1:9/n"}},
        "@context": context,
    }
    return client.post(path, json=body, headers={"Content-Type": "application/ld+json"})


def test_a_compound_context_of_a_subscription_is_implicitly_created(client) -> None:
    """Clause 5.13: the hub hosts a subscription's compound @context under one URL, shown as
    its jsonldContext, listed as ImplicitlyCreated; the same @context, the same document."""
    assert _subscribe(client, "urn:ngsi-ld:Subscription:i1", COMPOUND).status_code == 201
    sub = client.get("/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:i1").json()
    url = sub["jsonldContext"]
    local = url.rsplit("/", 1)[1]
    assert url.endswith(f"{BASE}/{local}") and "implicitContext" not in sub
    assert sub["entities"] == [{"type": "https://example.org/Shop"}]  # no Link: core terms
    link = {"Link": f'<{url}>; rel="http://www.w3.org/ns/json-ld#context"'}
    r = client.get("/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:i1", headers=link)
    assert r.json()["entities"] == [{"type": "Shop"}]  # its one URL reads the terms back
    listed = client.get(BASE, params={"details": "true", "kind": "ImplicitlyCreated"}).json()
    assert [(e["URL"], e["localId"], e["kind"]) for e in listed] == [
        (url, local, "ImplicitlyCreated")
    ]
    assert client.get(BASE, params={"kind": "Hosted"}).json() == []
    assert client.get(f"{BASE}/{local}").json() == {"@context": COMPOUND}
    details = client.get(f"{BASE}/{local}", params={"details": "true"}).json()
    assert details["kind"] == "ImplicitlyCreated" and details["URL"] == url
    # another subscription with the same @context (keys in another order): the same one
    same = [dict(reversed(list(COMPOUND[0].items()))), COMPOUND[1]]
    assert _subscribe(client, "urn:ngsi-ld:Subscription:i2", same).status_code == 201
    got = client.get("/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:i2").json()
    assert got["jsonldContext"] == url
    assert len(client.get(BASE, params={"kind": "ImplicitlyCreated"}).json()) == 1
    # reload is for cached ones only; a plain delete removes it
    r = client.delete(f"{BASE}/{local}", params={"reload": "true"})
    assert r.status_code == 400 and r.json()["type"] == ERRORS + "BadRequestData"
    assert client.delete(f"{BASE}/{local}").status_code == 204
    assert client.get(f"{BASE}/{local}").status_code == 404


def test_one_url_needs_no_implicit_context(client) -> None:
    local = _host(client)
    one = f"http://testserver{BASE}/{local}"
    for sid, context in (
        ("urn:ngsi-ld:Subscription:u1", one),
        ("urn:ngsi-ld:Subscription:u2", [one]),
    ):
        assert _subscribe(client, sid, context).status_code == 201
        assert "jsonldContext" not in client.get(f"/ngsi-ld/v1/subscriptions/{sid}").json()
    assert client.get(BASE, params={"kind": "ImplicitlyCreated"}).json() == []


def test_a_subscription_that_names_its_jsonld_context_gets_none(client) -> None:
    local = _host(client)
    body = {
        "id": "urn:ngsi-ld:Subscription:j1",
        "type": "Subscription",
        "entities": [{"type": "Shop"}],
        "jsonldContext": f"http://testserver{BASE}/{local}",
        "notification": {"endpoint": {"uri": "http://127.0.0.1:9/n"}},
        "@context": COMPOUND,
    }
    r = client.post(
        "/ngsi-ld/v1/subscriptions", json=body, headers={"Content-Type": "application/ld+json"}
    )
    assert r.status_code == 201, r.text
    assert client.get(BASE, params={"kind": "ImplicitlyCreated"}).json() == []


def test_the_hub_sets_the_implicit_context_not_a_request(client) -> None:
    body = {
        "type": "Subscription",
        "entities": [{"type": "Building"}],
        "notification": {"endpoint": {"uri": "http://127.0.0.1:9/n"}},
        "implicitContext": "http://attacker.example/c.jsonld",
    }
    r = client.post("/ngsi-ld/v1/subscriptions", json=body)
    assert r.status_code == 400 and "implicitContext" in r.json()["detail"]
    assert client.get("/ngsi-ld/v1/subscriptions").json() == []


def test_a_refused_subscription_creates_no_implicit_context(client) -> None:
    assert _subscribe(client, "urn:ngsi-ld:Subscription:r1", COMPOUND).status_code == 201
    local = client.get(BASE, params={"kind": "ImplicitlyCreated", "details": "true"}).json()
    assert client.delete(f"{BASE}/{local[0]['localId']}").status_code == 204
    # the same id again: 409, and nothing made
    assert _subscribe(client, "urn:ngsi-ld:Subscription:r1", COMPOUND).status_code == 409
    assert client.get(BASE, params={"kind": "ImplicitlyCreated"}).json() == []


def test_a_csource_subscription_with_a_compound_context(client) -> None:
    path = "/ngsi-ld/v1/csourceSubscriptions"
    assert _subscribe(client, "urn:ngsi-ld:Subscription:c1", COMPOUND, path).status_code == 201
    got = client.get(f"{path}/urn:ngsi-ld:Subscription:c1").json()
    served = client.get(got["jsonldContext"].removeprefix("http://testserver"))
    assert served.json() == {"@context": COMPOUND}  # its URL serves the compound @context
    assert "implicitContext" not in got
    assert client.get(BASE, params={"kind": "ImplicitlyCreated"}).json() == [got["jsonldContext"]]
