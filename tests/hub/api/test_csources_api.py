"""Context source registrations and csource subscriptions: request/response pairs
(clauses 5.9 to 5.11), on both engines, and a CSourceNotification to a real webhook."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from starlette.testclient import TestClient

BASE = "/ngsi-ld/v1"
REG = "urn:ngsi-ld:ContextSourceRegistration:r1"
CTX = {"ex": "https://example.org/ns#", "Sensor": "ex:Sensor", "temp": "ex:temperature"}


def _reg(**extra: object) -> dict:
    return {
        "id": REG,
        "type": "ContextSourceRegistration",
        "information": [
            {"entities": [{"type": "Building"}], "propertyNames": ["name"]},
            {"entities": [{"idPattern": ".*downtown$", "type": "OffStreetParking"}]},
        ],
        "endpoint": "http://department.example.org:1026",
        **extra,
    }


def test_create_retrieve_update_delete(client: TestClient) -> None:
    r = client.post(f"{BASE}/csourceRegistrations", json=_reg(csourceProperty1="aValue"))
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == f"{BASE}/csourceRegistrations/{REG}"
    again = client.post(f"{BASE}/csourceRegistrations", json=_reg())
    assert again.status_code == 409
    assert again.json()["type"].endswith("AlreadyExists")

    got = client.get(f"{BASE}/csourceRegistrations/{REG}")
    assert got.status_code == 200
    body = got.json()
    assert body["information"][0] == {"entities": [{"type": "Building"}], "propertyNames": ["name"]}
    assert (body["mode"], body["operations"]) == ("inclusive", ["federationOps"])
    assert body["csourceProperty1"] == "aValue"
    assert "createdAt" not in body
    assert "createdAt" in client.get(f"{BASE}/csourceRegistrations/{REG}?options=sysAttrs").json()

    patch = {"endpoint": "http://other.example.org:1026", "csourceProperty1": None}
    assert client.patch(f"{BASE}/csourceRegistrations/{REG}", json=patch).status_code == 204
    body = client.get(f"{BASE}/csourceRegistrations/{REG}").json()
    assert body["endpoint"] == "http://other.example.org:1026"
    assert "csourceProperty1" not in body
    drop = client.patch(f"{BASE}/csourceRegistrations/{REG}", json={"information": None})
    assert drop.status_code == 400  # a mandatory member cannot be removed
    assert client.get(f"{BASE}/csourceRegistrations/{REG}").json()["information"]

    assert client.delete(f"{BASE}/csourceRegistrations/{REG}").status_code == 204
    assert client.get(f"{BASE}/csourceRegistrations/{REG}").status_code == 404
    assert client.delete(f"{BASE}/csourceRegistrations/{REG}").status_code == 404
    assert client.get(f"{BASE}/csourceRegistrations/not-a-uri").status_code == 400


def test_bad_registrations_are_refused_and_nothing_is_written(client: TestClient) -> None:
    bad = [
        {**_reg(), "information": None},
        {**_reg(), "type": "Building"},
        {k: v for k, v in _reg().items() if k != "endpoint"},
        _reg(expiresAt="2018-11-29T14:53:15Z"),
        _reg(mode="sometimes"),
        _reg(operations=["stealEverything"]),
        {**_reg(), "information": [{"entities": [{"id": "urn:x:1"}]}]},
        _reg(location={"type": "Point", "coordinates": "here"}),
        _reg(managementInterval={"startAt": "2021-01-01T00:00:00Z", "endAt": "2020-01-01"}),
    ]
    for body in bad:
        r = client.post(f"{BASE}/csourceRegistrations", json=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["type"].endswith("BadRequestData")
    assert client.get(f"{BASE}/csourceRegistrations/{REG}").status_code == 404
    assert client.get(f"{BASE}/csourceRegistrations?type=Building").json() == []


def test_registrations_are_compacted_with_the_callers_context(client: TestClient) -> None:
    body = {
        **_reg(),
        "information": [{"entities": [{"type": "Sensor"}], "propertyNames": ["temp"]}],
        "@context": [CTX],
    }
    r = client.post(
        f"{BASE}/csourceRegistrations",
        json=body,
        headers={"Content-Type": "application/ld+json"},
    )
    assert r.status_code == 201, r.text
    plain = client.get(f"{BASE}/csourceRegistrations/{REG}").json()  # the core context
    assert plain["information"] == [
        {
            "entities": [{"type": "https://example.org/ns#Sensor"}],
            "propertyNames": ["https://example.org/ns#temperature"],
        }
    ]
    found = client.get(f"{BASE}/csourceRegistrations?type=https://example.org/ns%23Sensor")
    assert [x["id"] for x in found.json()] == [REG]


def test_discovery_matches_types_attrs_ids_q_geo_and_time(client: TestClient) -> None:
    other = "urn:ngsi-ld:ContextSourceRegistration:r2"
    assert client.post(f"{BASE}/csourceRegistrations", json=_reg()).status_code == 201
    second = {
        **_reg(),
        "id": other,
        "information": [{"entities": [{"type": "Vehicle", "id": "urn:ngsi-ld:Vehicle:A1"}]}],
        "location": {"type": "Point", "coordinates": [104.92, 11.57]},
        "managementInterval": {"startAt": "2020-01-01T00:00:00Z", "endAt": "2021-01-01T00:00:00Z"},
        "department": "transport",
    }
    assert client.post(f"{BASE}/csourceRegistrations", json=second).status_code == 201

    def ids(query: str) -> list[str]:
        r = client.get(f"{BASE}/csourceRegistrations?{query}")
        assert r.status_code == 200, r.text
        return [x["id"] for x in r.json()]

    assert ids("type=Building") == [REG]
    assert ids("type=Vehicle") == [other]
    assert ids("type=Building,Vehicle") == [REG, other]
    assert ids("attrs=name") == [REG, other]  # r2 names no attributes: it may hold any
    assert ids("type=Building&attrs=height") == []
    assert ids("type=OffStreetParking&id=urn:ngsi-ld:OffStreetParking:downtown") == [REG]
    assert ids("type=OffStreetParking&id=urn:ngsi-ld:OffStreetParking:uptown") == []
    assert ids("type=Vehicle&id=urn:ngsi-ld:Vehicle:B2") == []
    assert ids('q=department=="transport"') == [other]
    assert ids('csf=department=="health"') == []
    near = "georel=near;maxDistance==1000&geometry=Point&coordinates=[104.921,11.571]"
    assert ids(f"type=Vehicle&{near}") == [other]
    far = "georel=near;maxDistance==1000&geometry=Point&coordinates=[0,0]"
    assert ids(f"type=Vehicle&{far}") == []
    late = "timerel=after&timeAt=2022-01-01T00:00:00Z&timeproperty=modifiedAt"
    assert ids(f"type=Vehicle&{late}") == []
    early = "timerel=before&timeAt=2020-06-01T00:00:00Z&timeproperty=createdAt"
    assert ids(f"type=Vehicle&{early}") == [other]

    page = client.get(f"{BASE}/csourceRegistrations?type=Building,Vehicle&limit=1&count=true")
    assert page.headers["NGSILD-Results-Count"] == "2"
    assert 'rel="next"' in page.headers["Link"]
    for bad in ("", "id=invalidUri", "q=(invalid", "georel=within", "timerel=before"):
        r = client.get(f"{BASE}/csourceRegistrations?{bad}")
        assert r.status_code == 400, (bad, r.text)


def test_registrations_belong_to_their_tenant(client: TestClient) -> None:
    city = {"NGSILD-Tenant": "phnompenh"}
    assert client.post(f"{BASE}/csourceRegistrations", json=_reg(), headers=city).status_code == 201
    assert client.get(f"{BASE}/csourceRegistrations/{REG}", headers=city).status_code == 200
    assert client.get(f"{BASE}/csourceRegistrations/{REG}").status_code == 404
    assert client.get(f"{BASE}/csourceRegistrations?type=Building").json() == []
    other = client.get(f"{BASE}/csourceRegistrations?type=Building", headers={"NGSILD-Tenant": "x"})
    assert other.status_code == 404


class Receiver:
    """A webhook on 127.0.0.1 that records the notifications it is sent."""

    def __init__(self) -> None:
        self.received: list[tuple[dict, dict]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.received.append((dict(self.headers), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/notify"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def _wait(receiver: Receiver, n: int) -> list[dict]:
    deadline = time.monotonic() + 5
    while len(receiver.received) < n and time.monotonic() < deadline:
        time.sleep(0.02)
    return [body for _, body in receiver.received]


def test_csource_subscription_crud_and_notifications(client: TestClient) -> None:
    receiver = Receiver()
    try:
        assert client.post(f"{BASE}/csourceRegistrations", json=_reg()).status_code == 201
        sub = {
            "id": "urn:ngsi-ld:Subscription:cs1",
            "type": "Subscription",
            "entities": [{"type": "Building"}],
            "notification": {"endpoint": {"uri": receiver.url, "accept": "application/json"}},
        }
        r = client.post(f"{BASE}/csourceSubscriptions", json=sub)
        assert r.status_code == 201, r.text
        assert client.post(f"{BASE}/csourceSubscriptions", json=sub).status_code == 409
        first = _wait(receiver, 1)[0]
        assert first["type"] == "ContextSourceNotification"
        assert (first["subscriptionId"], first["triggerReason"]) == (sub["id"], "newlyMatching")
        assert [d["id"] for d in first["data"]] == [REG]

        patch = {"endpoint": "http://moved.example.org"}
        assert client.patch(f"{BASE}/csourceRegistrations/{REG}", json=patch).status_code == 204
        assert _wait(receiver, 2)[1]["triggerReason"] == "updated"
        assert client.delete(f"{BASE}/csourceRegistrations/{REG}").status_code == 204
        assert _wait(receiver, 3)[2]["triggerReason"] == "noLongerMatching"

        # the sender records a notification once the receiver has answered: wait for it
        deadline = time.monotonic() + 5
        while True:
            got = client.get(f"{BASE}/csourceSubscriptions/{sub['id']}").json()
            if got["notification"].get("timesSent") == 3 or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert got["status"] == "active" and "isActive" not in got  # as written: absent = true
        assert got["notification"]["timesSent"] == 3
        listed = client.get(f"{BASE}/csourceSubscriptions")
        assert [s["id"] for s in listed.json()] == [sub["id"]]

        off = {"isActive": False}
        assert client.patch(f"{BASE}/csourceSubscriptions/{sub['id']}", json=off).status_code == 204
        assert client.post(f"{BASE}/csourceRegistrations", json=_reg()).status_code == 201
        time.sleep(0.3)
        assert len(receiver.received) == 3  # paused: told nothing
        got = client.get(f"{BASE}/csourceSubscriptions/{sub['id']}").json()
        assert (got["isActive"], got["status"]) == (False, "paused")
        bad = {"notification": {"format": "keyValues"}}
        assert client.patch(f"{BASE}/csourceSubscriptions/{sub['id']}", json=bad).status_code == 400
        assert client.delete(f"{BASE}/csourceSubscriptions/{sub['id']}").status_code == 204
        assert client.get(f"{BASE}/csourceSubscriptions/{sub['id']}").status_code == 404
        for body in ({**sub, "type": "Other"}, {**sub, "watchedAttributes": []}, {"type": "x"}):
            assert client.post(f"{BASE}/csourceSubscriptions", json=body).status_code == 400
        assert client.get(f"{BASE}/csourceSubscriptions?limit=-1").status_code == 400
    finally:
        receiver.close()


def test_a_periodic_csource_subscription_is_told_every_interval(client: TestClient) -> None:
    receiver = Receiver()
    try:
        assert client.post(f"{BASE}/csourceRegistrations", json=_reg()).status_code == 201
        sub = {
            "id": "urn:ngsi-ld:Subscription:every",
            "type": "Subscription",
            "entities": [{"type": "Building"}],
            "timeInterval": 0.2,
            "notification": {"endpoint": {"uri": receiver.url}},
        }
        assert client.post(f"{BASE}/csourceSubscriptions", json=sub).status_code == 201
        told = _wait(receiver, 3)
        assert len(told) >= 3 and all([d["id"] for d in n["data"]] == [REG] for n in told)
        assert client.delete(f"{BASE}/csourceSubscriptions/{sub['id']}").status_code == 204
        time.sleep(0.3)
        settled = len(receiver.received)
        time.sleep(0.5)
        assert len(receiver.received) == settled  # deleted: the schedule stopped
        watched = {**sub, "watchedAttributes": ["name"]}
        assert client.post(f"{BASE}/csourceSubscriptions", json=watched).status_code == 400
    finally:
        receiver.close()


def test_an_updated_subscription_is_told_what_matches_it_now_and_only_the_relevant_infos(
    client: TestClient,
) -> None:
    receiver = Receiver()
    try:
        assert client.post(f"{BASE}/csourceRegistrations", json=_reg()).status_code == 201
        sub = {
            "id": "urn:ngsi-ld:Subscription:cs2",
            "type": "Subscription",
            "entities": [{"type": "Vehicle"}],
            "notification": {"endpoint": {"uri": receiver.url}},
        }
        assert client.post(f"{BASE}/csourceSubscriptions", json=sub).status_code == 201
        time.sleep(0.3)
        assert receiver.received == []  # a Vehicle source is not registered
        patch = {"entities": [{"type": "OffStreetParking"}]}
        r = client.patch(f"{BASE}/csourceSubscriptions/{sub['id']}", json=patch)
        assert r.status_code == 204
        told = _wait(receiver, 1)[0]
        assert told["triggerReason"] == "newlyMatching"
        assert told["data"][0]["information"] == [
            {"entities": [{"idPattern": ".*downtown$", "type": "OffStreetParking"}]}
        ]  # the Building item of the registration is left out
    finally:
        receiver.close()
