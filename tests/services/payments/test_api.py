"""The payments routes over HTTP: each answer pinned, bad input refused with nothing
written, and, with authentication on, no anonymous caller and no role without the grant
moves money."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from cityos.config import Settings

BASE = "/services/payments"
CITY = {"NGSILD-Tenant": "phnom-penh"}


@pytest.fixture
def registered(monkeypatch) -> Iterator[None]:
    """The payments service among the registered ones (until pyproject.toml names it)."""
    import cityos.web.app as web
    import cityos.web.openapi as doc
    from cityos.services.payments.service import SERVICE
    from cityos.services.registry import services

    found = services()
    if all(s.name != "payments" for s in found):
        monkeypatch.setattr(web, "services", lambda: (*found, SERVICE))
        monkeypatch.setattr(doc, "services", lambda: (*found, SERVICE))
    doc.openapi_document.cache_clear()
    yield
    doc.openapi_document.cache_clear()


def _settings(tmp_path, **extra: Any) -> Settings:
    env = {
        "CITYOS_PAYMENTS_TICKET_KEY_PATH": str(tmp_path / "ticket.pem"),
        "CITYOS_PAYMENTS_PSEUDONYM_KEY_PATH": str(tmp_path / "pseudonym.key"),
        "CITYOS_PAYMENTS_PUBLISH_INTERVAL_S": "0",
    }
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/city.db",
        token_key_path=str(tmp_path / "token.pem"),
        audit_key_path=str(tmp_path / "audit.pem"),
        rate_per_s=0,
        **extra,
    )
    settings.environ = env
    return settings


@pytest.fixture
def client(tmp_path, registered) -> Iterator[TestClient]:
    from cityos.web.app import create_app

    with TestClient(create_app(_settings(tmp_path)), raise_server_exceptions=False) as c:
        yield c


def _snapshot(client: TestClient) -> str:
    """Everything the ledger holds, every tenant: what a refused request must not change."""
    from cityos.services.payments.runtime import payments_of

    ctx = client.app.state.services["payments"]
    with payments_of(ctx).db.reading() as tx:
        tables = {
            t: sorted(map(list, tx.all(f"SELECT * FROM {t}")))
            for t in ("pay_accounts", "pay_transfers", "pay_taps", "pay_nonces")
        }
    return json.dumps(tables, sort_keys=True, default=str)


def _books(client: TestClient, headers: dict[str, str] = CITY) -> None:
    for body in (
        {"id": "settlement:khqr", "currency": "KHR", "kind": "settlement", "overdraft_limit": None},
        {"id": "rider:a", "currency": "KHR"},
    ):
        r = client.post(f"{BASE}/accounts", json=body, headers=headers)
        assert r.status_code == 201, r.text
    top = {"id": "top-1", "debit": "settlement:khqr", "credit": "rider:a", "amount": "10000.00",
           "currency": "KHR", "reference": "KHQR-1"}  # fmt: skip
    assert client.post(f"{BASE}/transfers", json=top, headers=headers).status_code == 201


def test_accounts_transfers_and_their_idempotency(client) -> None:
    _books(client)
    r = client.get(f"{BASE}/accounts/rider:a", headers=CITY)
    assert r.status_code == 200
    assert (r.json()["balance"], r.json()["balance_major"]) == (1_000_000, "10000.00")
    # the same account again: 200, the same; other terms: 409
    again = client.post(f"{BASE}/accounts", json={"id": "rider:a", "currency": "KHR"}, headers=CITY)
    assert again.status_code == 200
    other = client.post(f"{BASE}/accounts", json={"id": "rider:a", "currency": "USD"}, headers=CITY)
    assert other.status_code == 409 and other.json()["code"] == "idempotency_conflict"
    top = {"id": "top-1", "debit": "settlement:khqr", "credit": "rider:a", "amount": "10000.00",
           "currency": "KHR", "reference": "KHQR-1"}  # fmt: skip
    r = client.post(f"{BASE}/transfers", json=top, headers=CITY)
    assert (r.status_code, r.json()["status"]) == (200, "exists")
    r = client.post(f"{BASE}/transfers", json={**top, "amount": "9999.00"}, headers=CITY)
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"
    t = client.get(f"{BASE}/transfers/top-1", headers=CITY).json()
    assert (t["amount"], t["amount_major"], t["state"]) == (1_000_000, "10000.00", "posted")
    assert client.get(f"{BASE}/transfers/nope", headers=CITY).status_code == 404
    assert client.get(f"{BASE}/accounts/rider:a").status_code == 404  # another tenant's ledger


def test_a_pending_transfer_is_posted_or_voided(client) -> None:
    _books(client)
    client.post(f"{BASE}/accounts", json={"id": "operator:x", "currency": "KHR",
                                          "kind": "operator"}, headers=CITY)  # fmt: skip
    hold = {"id": "h1", "debit": "rider:a", "credit": "operator:x", "amount_minor": 400000,
            "currency": "KHR", "pending": True}  # fmt: skip
    assert client.post(f"{BASE}/transfers", json=hold, headers=CITY).status_code == 201
    assert client.get(f"{BASE}/accounts/rider:a", headers=CITY).json()["available"] == 600000
    r = client.post(f"{BASE}/transfers/h1/post", json={"amount": "1900.00"}, headers=CITY)
    assert (r.status_code, r.json()["state"]) == (201, "posted")
    r = client.post(f"{BASE}/transfers/h1/void", headers=CITY)
    assert r.status_code == 422 and r.json()["code"] == "state_conflict"
    assert client.get(f"{BASE}/accounts/rider:a", headers=CITY).json()["balance"] == 810000


def test_an_atomic_batch_refused_writes_nothing_and_says_why(client) -> None:
    _books(client)
    before = _snapshot(client)
    batch = {"transfers": [
        {"debit": "rider:a", "credit": "settlement:khqr", "amount": "6000", "currency": "KHR"},
        {"debit": "rider:a", "credit": "settlement:khqr", "amount": "6000", "currency": "KHR"},
    ]}  # fmt: skip
    r = client.post(f"{BASE}/transfers", json=batch, headers=CITY)
    assert r.status_code == 422
    assert [x["code"] for x in r.json()["results"]] == ["not_applied", "insufficient_funds"]
    assert _snapshot(client) == before
    r = client.post(f"{BASE}/transfers", json={**batch, "atomic": False}, headers=CITY)
    assert r.status_code == 201
    assert [x["status"] for x in r.json()["results"]] == ["created", "refused"]


def test_taps_with_a_ticket_and_its_replay(client) -> None:
    _books(client)
    r = client.post(f"{BASE}/tickets", json={"account": "rider:a"}, headers=CITY)
    assert r.status_code == 200, r.text
    ticket = r.json()
    assert ticket["payload"].startswith("CTK1.") and ticket["svg"].startswith("<svg")
    tap = {"id": "reader-7:1", "stop": "wat-phnom", "product": "bus", "medium": "ticket",
           "ticket": ticket["payload"]}  # fmt: skip
    r = client.post(f"{BASE}/taps", json=tap, headers=CITY)
    assert r.status_code == 201, r.text
    assert (r.json()["charged_major"], r.json()["state"]) == ("1500.00", "posted")
    assert client.post(f"{BASE}/taps", json=tap, headers=CITY).status_code == 200  # a retry
    before = _snapshot(client)
    r = client.post(f"{BASE}/taps", json={**tap, "id": "reader-8:1"}, headers=CITY)
    assert r.status_code == 400 and r.json()["code"] == "ticket_replayed"
    assert _snapshot(client) == before
    png = client.post(f"{BASE}/tickets?format=png", json={"account": "rider:a"}, headers=CITY)
    assert png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"


def test_a_fare_quote_explains_each_charge_and_writes_nothing(client) -> None:
    before = _snapshot(client)
    body = {"taps": [
        {"at": "2026-03-02T07:00:00+07:00", "stop": "wat-phnom", "product": "bus"},
        {"at": "2026-03-02T07:30:00+07:00", "stop": "phsar-thmei", "product": "bus"},
        {"at": "2026-03-02T08:00:00+07:00", "stop": "hotel-le-royal", "product": "brt"},
        {"at": "2026-03-02T08:25:00+07:00", "stop": "riverside-south", "product": "brt",
         "kind": "out"},
    ]}  # fmt: skip
    r = client.post(f"{BASE}/fares/quote", json=body)
    assert r.status_code == 200, r.text
    (day,) = r.json()["days"]
    # 07:00 bus 1,500; 07:30 bus within the hour: free (1st transfer); 08:00 rapid bus,
    # 3 km = 1,900, exactly 60 min after 07:00 and the 2nd transfer: 1,900 - 1,500 = 400
    assert day["total"]["major"] == "1900.00"
    explained = [c["explanation"] for c in day["charges"]]
    assert explained[1] == (
        "base 1,500 KHR (flat); transfer 0 KHR (within 60 min of the 07:00 journey: free)"
    )
    assert explained[2] == (
        "base 1,900 KHR (3 km); "
        "transfer 400 KHR (within 60 min of the 07:00 journey: pays the difference)"
    )
    assert _snapshot(client) == before


def test_qr_codes_are_made_and_read(client) -> None:
    body = {"scheme": "khqr", "fields": {"account": "cityos@aclb", "merchant_name": "City Bus",
                                         "merchant_city": "Phnom Penh"}}  # fmt: skip
    r = client.post(f"{BASE}/qr", json=body)
    assert r.status_code == 200, r.text
    made = r.json()
    assert made["scheme"] == "khqr" and made["svg"].startswith("<svg")
    r = client.post(f"{BASE}/decode", json={"payload": made["payload"]})
    assert (r.status_code, r.json()["scheme"]) == (200, "khqr")
    assert (
        client.post(f"{BASE}/qr?format=svg", json=body)
        .headers["content-type"]
        .startswith("image/svg+xml")
    )
    broken = made["payload"][:-4] + "0000"  # a wrong CRC
    r = client.post(f"{BASE}/decode", json={"payload": broken})
    assert r.status_code == 400 and r.json()["tag"] == "63"


BAD = [  # (path, body, status): refused before anything is written
    ("/accounts", {"id": "rider:b"}, 400),
    ("/accounts", {"id": "rider:b", "currency": "XXX"}, 400),
    ("/accounts", {"id": "rider:b", "currency": "KHR", "kind": "wizard"}, 400),
    ("/accounts", {"id": "rider:b", "currency": "KHR", "overdraft_limit": 1.5}, 400),
    ("/accounts", [1, 2], 400),
    ("/transfers", {"debit": "rider:a", "credit": "settlement:khqr", "amount": 15.5,
                    "currency": "KHR"}, 400),
    ("/transfers", {"debit": "rider:a", "credit": "settlement:khqr", "amount": "1.001",
                    "currency": "KHR"}, 400),
    ("/transfers", {"debit": "rider:a", "credit": "nobody", "amount": "1", "currency": "KHR"},
     404),
    ("/transfers", {"debit": "rider:a", "credit": "settlement:khqr", "amount": "99999",
                    "currency": "KHR"}, 422),
    ("/transfers", {"transfers": []}, 400),
    ("/transfers", {"transfers": [{"debit": "rider:a"}]}, 400),
    ("/transfers/top-1/post", {}, 422),
    ("/transfers/nope/void", {}, 404),
    ("/taps", {"id": "t", "stop": "atlantis", "product": "bus", "medium": "account",
               "account": "rider:a"}, 400),
    ("/taps", {"id": "t", "stop": "wat-phnom", "product": "bus", "medium": "ticket",
               "ticket": "CTK1.x.y"}, 400),
    ("/taps", {"id": "t", "stop": "wat-phnom", "product": "bus", "medium": "account",
               "account": "rider:a", "at": "yesterday"}, 400),
    ("/taps", {"id": "t", "stop": "wat-phnom", "product": "bus", "medium": "carrier-pigeon",
               "account": "rider:a"}, 400),
    ("/tickets", {"account": "rider:nobody"}, 404),
    ("/tickets", {"account": "rider:a", "concession": "vip"}, 400),
    ("/fares/quote", {"taps": [{"at": "2026-03-02T07:00:00", "stop": "wat-phnom",
                                "product": "bus"}]}, 400),
    ("/qr", {"scheme": "bitcoin"}, 400),
    ("/qr", {"scheme": "khqr", "fields": {"account": "x@y", "colour": "red"}}, 400),
    ("/decode", {"payload": "hello"}, 400),
]  # fmt: skip


def test_bad_input_is_a_4xx_problem_and_writes_nothing(client) -> None:
    _books(client)
    before = _snapshot(client)
    for path, body, status in BAD:
        r = client.post(BASE + path, json=body, headers=CITY)
        assert r.status_code == status, (path, body, r.status_code, r.text)
        assert r.headers["content-type"] == "application/problem+json", (path, r.text)
        assert _snapshot(client) == before, (path, body)
    r = client.post(f"{BASE}/taps", content=b"{not json", headers={**CITY,
                    "Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 400
    r = client.post(f"{BASE}/taps", content=b"id=1", headers={**CITY,
                    "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert r.status_code == 415
    assert _snapshot(client) == before


def test_the_stops_fares_are_published_into_the_hub(client) -> None:
    from cityos.services.payments.service import publish_once

    _books(client, headers={})
    client.post(f"{BASE}/taps", json={"id": "r:1", "stop": "wat-phnom", "product": "bus",
                                      "medium": "account", "account": "rider:a"})  # fmt: skip
    assert publish_once(client.app.state.services["payments"]) == 1
    r = client.get("/ngsi-ld/v1/entities", params={"type": "FareCollectionObserved",
                                                    "options": "keyValues"})  # fmt: skip
    (entity,) = r.json()
    assert entity["passengerCount"] == 1 and entity["revenue"] == 150000
    assert entity["refStop"] == "urn:ngsi-ld:GtfsStop:wat-phnom"


def test_openapi_documents_every_route(client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    from cityos.services.payments.api import ROUTES

    for path, method, _, _ in ROUTES:
        assert method.lower() in paths[BASE + path], path
    assert client.get("/health").json()["services"]["payments"]["status"] == "ok"


# -- with authentication on ------------------------------------------------------------------
RULES = {
    "roles": {
        "fare-collector": [{"types": ["FareLedger"], "actions": ["read", "write"]}],
        "auditor": [{"types": ["FareLedger"], "actions": ["read"]}],
        "engineer": [{"types": ["TrafficSignal"], "actions": ["read", "write"]}],
        # as the example resident: its own record, any type, by id only
        "resident": [{"ids": ["urn:ngsi-ld:Person:{subject}"], "actions": ["read", "write"]}],
    }
}


@pytest.fixture
def secured(tmp_path, registered) -> Iterator[tuple[TestClient, Any]]:
    from cityos.web.app import create_app

    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(RULES))
    settings = _settings(tmp_path, auth_required=True, policy_path=str(rules), detect=False)
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c, app.state.hub


def _key(hub: Any, role: str) -> dict[str, str]:
    from cityos.security.keys import create_key

    secret = create_key(hub.store, tenants=["phnom-penh"], roles=[role])[0]
    return {**CITY, "Authorization": f"ApiKey {secret}"}


def test_no_anonymous_caller_and_no_role_without_the_grant_moves_money(secured) -> None:
    client, hub = secured
    collector, auditor, engineer, resident = (
        _key(hub, r) for r in ("fare-collector", "auditor", "engineer", "resident")
    )
    _books(client, collector)
    before = _snapshot(client)
    writes = [
        ("/accounts", {"id": "rider:x", "currency": "KHR"}),
        ("/transfers", {"debit": "rider:a", "credit": "settlement:khqr", "amount": "1",
                        "currency": "KHR"}),
        ("/transfers/top-1/void", {}),
        ("/transfers/top-1/post", {}),
        ("/taps", {"id": "t1", "stop": "wat-phnom", "product": "bus", "medium": "account",
                   "account": "rider:a"}),
        ("/tickets", {"account": "rider:a"}),
    ]  # fmt: skip
    for path, body in writes:
        assert client.post(BASE + path, json=body, headers=CITY).status_code == 401, path
        for who in (auditor, engineer, resident):  # may not write / may, but not the ledger
            r = client.post(BASE + path, json=body, headers=who)
            assert r.status_code == 403, (path, r.text)
        assert _snapshot(client) == before, path
    for path in ("/accounts/rider:a", "/transfers/top-1"):
        assert client.get(BASE + path, headers=CITY).status_code == 401
        assert client.get(BASE + path, headers=engineer).status_code == 403
        assert client.get(BASE + path, headers=resident).status_code == 403
        assert client.get(BASE + path, headers=auditor).status_code == 200
    # the grant's holder does
    r = client.post(f"{BASE}/taps", json=writes[4][1], headers=collector)
    assert r.status_code == 201, r.text
    # the routes that touch no ledger: the door's write grant suffices
    assert client.post(f"{BASE}/decode", json={"payload": "x"}, headers=engineer).status_code == 400
    assert client.post(f"{BASE}/decode", json={"payload": "x"}, headers=CITY).status_code == 401


def test_the_task_publishes_after_its_interval_and_reports_in_health(client) -> None:
    import asyncio
    import dataclasses

    from cityos.services.payments.service import health, run_publisher

    _books(client, headers={})
    client.post(f"{BASE}/taps", json={"id": "r:1", "stop": "wat-phnom", "product": "bus",
                                      "medium": "account", "account": "rider:a"})  # fmt: skip
    ctx = dataclasses.replace(client.app.state.services["payments"])
    ctx.settings = dataclasses.replace(ctx.settings, publish_interval_s=1)

    async def one_round() -> None:
        task = asyncio.create_task(run_publisher(ctx))
        await asyncio.sleep(0.1)
        assert health(ctx)["task"] == "waiting for its first publication"
        await asyncio.sleep(1.3)
        task.cancel()

    asyncio.run(one_round())
    report = health(ctx)
    assert (report["status"], report["task"], report["published"]) == ("ok", "running", 1)
