"""Subscriptions end to end: CRUD pairs, and notifications delivered to a real local webhook."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from starlette.testclient import TestClient

from cityos.config import Settings
from cityos.hub.core import Hub

BASE = "/ngsi-ld/v1"


class Receiver:
    """A webhook on 127.0.0.1 that records what it is sent (and can be told to fail)."""

    def __init__(self) -> None:
        self.received: list[tuple[dict, dict]] = []
        self.status = 200
        self.delay_s = 0.0  # how long it takes to answer, once the notification is in
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.received.append((dict(self.headers), json.loads(body)))
                time.sleep(outer.delay_s)
                self.send_response(outer.status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/notify"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_entities(self, n: int, timeout: float = 10) -> list[dict]:
        """The entities notified, once there are ``n`` (several may share a notification)."""
        deadline = time.monotonic() + timeout
        while True:
            got = [e for _, body in self.received for e in body["data"]]
            if len(got) >= n:
                return got
            assert time.monotonic() < deadline, f"got {len(got)} of {n} notified entities"
            time.sleep(0.05)

    def wait(self, n: int, timeout: float = 10) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.received) < n:
            assert time.monotonic() < deadline, f"got {len(self.received)} of {n} notifications"
            time.sleep(0.05)
        return [b for _, b in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture(params=["sqlite", "postgresql"])
def live(request, tmp_path) -> Iterator[TestClient]:
    """A hub whose delivery worker runs (fast retries for the tests)."""
    from cityos.web.app import create_app

    settings = Settings(
        notify_backoff_s=0.05, notify_max_attempts=2, notify_poll_s=0.05, notify_timeout_s=2
    )
    if request.param == "sqlite":
        from cityos.hub.store.sqlite import SqliteStore

        store = SqliteStore(tmp_path / "s.db")
    else:
        from cityos.hub.store.postgres import PostgresStore

        url = request.getfixturevalue("postgres_url")
        store = PostgresStore(url, schema=f"cityos_test_{uuid.uuid4().hex[:10]}")
    hub = Hub(settings, store=store)
    with TestClient(create_app(settings, hub)) as client:
        yield client
    if request.param == "postgresql":
        from cityos.hub.store.postgres import PostgresStore

        again = PostgresStore(url, schema=store.schema)
        again.drop_schema()


def subscription(uri: str, **extra) -> dict:
    return {
        "type": "Subscription",
        "entities": [{"type": "TrafficFlowObserved"}],
        "watchedAttributes": ["intensity"],
        "q": "intensity>500",
        "notification": {
            "endpoint": {"uri": uri},
            "attributes": ["intensity"],
            "format": "keyValues",
        },
        **extra,
    }


def flow(n: int, intensity: int) -> dict:
    return {
        "id": f"urn:ngsi-ld:TrafficFlowObserved:{n}",
        "type": "TrafficFlowObserved",
        "intensity": {"type": "Property", "value": intensity},
        "name": {"type": "Property", "value": f"sensor {n}"},
    }


def notice(client, sub_id: str) -> dict:
    """The subscription's notification member: delivery's status and counters (5.2.14)."""
    return client.get(f"{BASE}/subscriptions/{sub_id}").json()["notification"]


def test_crud_pairs(live, receiver) -> None:
    r = live.post(
        f"{BASE}/subscriptions", json=subscription(receiver.url, id="urn:ngsi-ld:Subscription:s1")
    )
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == f"{BASE}/subscriptions/urn:ngsi-ld:Subscription:s1"
    assert (
        live.post(
            f"{BASE}/subscriptions",
            json=subscription(receiver.url, id="urn:ngsi-ld:Subscription:s1"),
        ).status_code
        == 409
    )
    got = live.get(f"{BASE}/subscriptions/urn:ngsi-ld:Subscription:s1").json()
    assert got["status"] == "active" and got["q"] == "intensity>500"
    assert "timesSent" not in got["notification"]  # nothing sent yet: no counters
    assert "status" not in got["notification"]  # ok/failed only once one was sent
    assert got["notificationTrigger"] == ["attributeCreated", "attributeUpdated"]  # default
    assert "createdAt" not in got and "isActive" not in got  # sysAttrs / not written
    assert [s["id"] for s in live.get(f"{BASE}/subscriptions").json()] == [
        "urn:ngsi-ld:Subscription:s1"
    ]
    assert (
        live.patch(
            f"{BASE}/subscriptions/urn:ngsi-ld:Subscription:s1", json={"isActive": False}
        ).status_code
        == 204
    )
    assert (
        live.get(f"{BASE}/subscriptions/urn:ngsi-ld:Subscription:s1").json()["status"] == "paused"
    )
    assert live.delete(f"{BASE}/subscriptions/urn:ngsi-ld:Subscription:s1").status_code == 204
    assert live.get(f"{BASE}/subscriptions/urn:ngsi-ld:Subscription:s1").status_code == 404
    for bad in (
        {"type": "Subscription", "notification": {"endpoint": {"uri": receiver.url}}},
        subscription("ftp://x/y"),
        subscription("local://someone-elses-callback"),  # in-process only, never over HTTP
        subscription(receiver.url, q="intensity>>1"),
        {**subscription(receiver.url), "notification": {"endpoint": {}}},
        subscription(receiver.url, entities=[{"id": "urn:x:1"}]),
    ):
        r = live.post(f"{BASE}/subscriptions", json=bad)
        assert r.status_code == 400, (bad, r.text)
    assert live.get(f"{BASE}/subscriptions").json() == []


def test_matching_changes_are_notified(live, receiver) -> None:
    assert live.post(f"{BASE}/subscriptions", json=subscription(receiver.url)).status_code == 201
    assert live.post(f"{BASE}/entities", json=flow(1, 900)).status_code == 201  # matches
    assert live.post(f"{BASE}/entities", json=flow(2, 100)).status_code == 201  # q false
    live.patch(
        f"{BASE}/entities/urn:ngsi-ld:TrafficFlowObserved:2/attrs",
        json={"name": {"type": "Property", "value": "x"}},
    )  # not watched
    live.patch(
        f"{BASE}/entities/urn:ngsi-ld:TrafficFlowObserved:2/attrs",
        json={"intensity": {"type": "Property", "value": 700}},
    )
    receiver.wait_entities(2)
    time.sleep(0.3)
    first, second = receiver.wait_entities(2)  # two changes (in one or two notifications)
    assert len([e for _, b in receiver.received for e in b["data"]]) == 2
    assert all(b["type"] == "Notification" for _, b in receiver.received)
    assert first == {
        "id": "urn:ngsi-ld:TrafficFlowObserved:1",
        "type": "TrafficFlowObserved",
        "intensity": 900,
    }
    assert second["intensity"] == 700
    sub_id = receiver.received[0][1]["subscriptionId"]
    deadline = time.monotonic() + 5
    while notice(live, sub_id).get("timesSent", 0) < len(receiver.received):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    status = notice(live, sub_id)
    assert status["lastSuccess"] and status["lastNotification"] and status["status"] == "ok"
    assert live.get(f"{BASE}/subscriptions/{sub_id}").json()["status"] == "active"
    assert status["timesSent"] == len(receiver.received)  # notifications, not changes


def test_failing_endpoint_is_retried_then_marked_failed(live, receiver) -> None:
    receiver.status = 500
    r = live.post(
        f"{BASE}/subscriptions", json=subscription(receiver.url, id="urn:ngsi-ld:Subscription:f")
    )
    assert r.status_code == 201
    live.post(f"{BASE}/entities", json=flow(1, 900))
    receiver.wait(2)  # the first try and one retry (max 2 attempts in this hub)
    deadline = time.monotonic() + 5
    while notice(live, "urn:ngsi-ld:Subscription:f").get("timesFailed", 0) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    status = notice(live, "urn:ngsi-ld:Subscription:f")
    assert status["status"] == "failed"  # the latest attempt failed (clause 5.2.14)
    assert status["timesFailed"] == 2 and status["lastFailure"] and "timesSent" not in status


def test_mqtt_endpoint_publishes_to_the_broker(live, mosquitto) -> None:
    import paho.mqtt.client as mqtt

    host, port = mosquitto
    topic = f"cityos/test/{uuid.uuid4().hex}"
    got: list[dict] = []
    ready = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, *a: (c.subscribe(topic, qos=1), ready.set())
    client.on_message = lambda c, u, msg: got.append(json.loads(msg.payload))
    client.connect(host, port)
    client.loop_start()
    try:
        assert ready.wait(5)
        time.sleep(0.2)
        sub = subscription(f"mqtt://{host}:{port}/{topic}")
        assert live.post(f"{BASE}/subscriptions", json=sub).status_code == 201
        assert live.post(f"{BASE}/entities", json=flow(1, 950)).status_code == 201
        deadline = time.monotonic() + 10
        while not got:
            assert time.monotonic() < deadline, (
                "no MQTT notification",
                {
                    k: v
                    for k, v in live.get(f"{BASE}/subscriptions").json()[0]["notification"].items()
                    if k.startswith(("lastFailureReason", "status"))
                },
            )
            time.sleep(0.05)
        assert got[0]["type"] == "Notification" and got[0]["data"][0]["intensity"] == 950
    finally:
        client.loop_stop()
        client.disconnect()


def test_show_changes_and_throttling(live, receiver) -> None:
    sub = subscription(receiver.url, id="urn:ngsi-ld:Subscription:changes")
    sub["notification"] = {
        "endpoint": {"uri": receiver.url},
        "attributes": ["intensity"],
        "showChanges": True,
    }
    assert live.post(f"{BASE}/subscriptions", json=sub).status_code == 201
    live.post(f"{BASE}/entities", json=flow(1, 600))
    live.patch(
        f"{BASE}/entities/urn:ngsi-ld:TrafficFlowObserved:1/attrs",
        json={"intensity": {"type": "Property", "value": 800}},
    )
    first, second = receiver.wait_entities(2)  # perhaps in one notification, in order
    assert "previousValue" not in first["intensity"]
    assert second["intensity"]["value"] == 800
    assert second["intensity"]["previousValue"] == 600
    # a throttled subscription: two quick matching changes give one notification
    receiver.received.clear()
    slow = subscription(receiver.url, id="urn:ngsi-ld:Subscription:slow", throttling=60)
    assert live.post(f"{BASE}/subscriptions", json=slow).status_code == 201
    assert live.delete(f"{BASE}/subscriptions/urn:ngsi-ld:Subscription:changes").status_code == 204
    live.post(f"{BASE}/entities", json=flow(2, 900))
    live.post(f"{BASE}/entities", json=flow(3, 901))
    receiver.wait(1)
    time.sleep(0.5)
    assert len(receiver.received) == 1
    assert (
        live.post(
            f"{BASE}/subscriptions", json=subscription(receiver.url, throttling=-1)
        ).status_code
        == 400
    )


def test_deletions_are_notified_only_when_asked_for(live, receiver) -> None:
    on_delete = subscription(receiver.url, notificationTrigger=["entityDeleted"])
    del on_delete["q"], on_delete["watchedAttributes"]
    assert live.post(f"{BASE}/subscriptions", json=on_delete).status_code == 201
    default = subscription(receiver.url)  # creations and changes only
    assert live.post(f"{BASE}/subscriptions", json=default).status_code == 201
    assert live.post(f"{BASE}/entities", json=flow(1, 900)).status_code == 201
    [created] = receiver.wait(1)
    assert created["data"][0]["intensity"] == 900
    assert live.delete(f"{BASE}/entities/urn:ngsi-ld:TrafficFlowObserved:1").status_code == 204
    bodies = receiver.wait(2)
    time.sleep(0.3)
    assert len(receiver.received) == 2
    gone = bodies[1]["data"]
    assert [(e["id"], e["type"]) for e in gone] == [
        ("urn:ngsi-ld:TrafficFlowObserved:1", "TrafficFlowObserved")
    ]
    assert gone[0]["deletedAt"].endswith("Z")
    bad = live.post(
        f"{BASE}/subscriptions", json=subscription(receiver.url, notificationTrigger=["nope"])
    )
    assert bad.status_code == 400


def test_periodic_subscription_sends_the_current_state(live, receiver) -> None:
    periodic = subscription(receiver.url, timeInterval=0.3)
    del periodic["watchedAttributes"]
    live.post(f"{BASE}/entities", json=flow(1, 900))
    live.post(f"{BASE}/entities", json=flow(2, 100))  # q intensity>500 leaves it out
    r = live.post(f"{BASE}/subscriptions", json=periodic)
    assert r.status_code == 201
    first = receiver.wait(1)[0]
    assert [e["intensity"] for e in first["data"]] == [900]
    live.patch(
        f"{BASE}/entities/urn:ngsi-ld:TrafficFlowObserved:2/attrs",
        json={"intensity": {"type": "Property", "value": 800}},
    )
    deadline = time.monotonic() + 10
    while True:  # a later period carries both, without a change having triggered it
        latest = receiver.wait(len(receiver.received) + 1)[-1]
        if sorted(e["intensity"] for e in latest["data"]) == [800, 900]:
            break
        assert time.monotonic() < deadline
    sub_id = r.headers["Location"].rsplit("/", 1)[1]
    deadline = time.monotonic() + 5  # the status is written just after the webhook answers
    while notice(live, sub_id).get("timesSent", 0) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    mixed = subscription(receiver.url, timeInterval=5)  # watchedAttributes: change-driven
    assert live.post(f"{BASE}/subscriptions", json=mixed).status_code == 400


@pytest.fixture(params=["sqlite", "postgresql"])
def two_workers(request, tmp_path) -> Iterator[tuple[TestClient, TestClient]]:
    """Two hubs, each with its own delivery worker, over one database."""
    from cityos.web.app import create_app

    settings = Settings(notify_backoff_s=0.05, notify_poll_s=0.05, notify_timeout_s=2)
    if request.param == "sqlite":
        from cityos.hub.store.sqlite import SqliteStore

        stores = [SqliteStore(tmp_path / "w.db"), SqliteStore(tmp_path / "w.db")]
    else:
        from cityos.hub.store.postgres import PostgresStore

        url = request.getfixturevalue("postgres_url")
        schema = f"cityos_test_{uuid.uuid4().hex[:10]}"
        stores = [PostgresStore(url, schema=schema), PostgresStore(url, schema=schema)]
    stores[0].migrate()
    hubs = [Hub(settings, store=s) for s in stores]
    with (
        TestClient(create_app(settings, hubs[0])) as a,
        TestClient(create_app(settings, hubs[1])) as b,
    ):
        yield a, b
    if request.param == "postgresql":
        from cityos.hub.store.postgres import PostgresStore

        PostgresStore(url, schema=schema).drop_schema()


def test_each_change_is_notified_once_whichever_worker_took_it(two_workers, receiver) -> None:
    a, b = two_workers
    # b has compiled its (empty) set of subscriptions before a gets one
    assert b.post(f"{BASE}/entities", json=flow(99, 1)).status_code == 201
    assert a.post(f"{BASE}/subscriptions", json=subscription(receiver.url)).status_code == 201
    for n in range(20):  # the subscription was made on a; writes alternate between workers
        client = a if n % 2 else b
        assert client.post(f"{BASE}/entities", json=flow(n, 600 + n)).status_code == 201
    receiver.wait_entities(20)
    time.sleep(0.5)
    seen = [e["intensity"] for e in receiver.wait_entities(20)]
    assert sorted(seen) == [600 + n for n in range(20)]  # every change, none twice


def test_a_hanging_webhook_slows_only_its_own_subscription(live, receiver) -> None:
    import socket

    hang = socket.socket()  # accepts connections and never answers (timeout here: 2 s)
    hang.bind(("127.0.0.1", 0))
    hang.listen(16)
    try:
        stuck = subscription(f"http://127.0.0.1:{hang.getsockname()[1]}/")
        assert live.post(f"{BASE}/subscriptions", json=stuck).status_code == 201
        assert (
            live.post(f"{BASE}/subscriptions", json=subscription(receiver.url)).status_code == 201
        )
        start = time.monotonic()
        for n in range(3):  # while the first one's notification hangs, more changes come
            assert live.post(f"{BASE}/entities", json=flow(n, 700 + n)).status_code == 201
            time.sleep(0.2)
        receiver.wait_entities(3, timeout=1.8)  # all before the hanging send timed out
        assert time.monotonic() - start < 2.0
        assert sorted(e["intensity"] for e in receiver.wait_entities(3)) == [700, 701, 702]
    finally:
        hang.close()


BAD_IDNA = "http://xn--bad_.example/n"  # not a valid A-label: httpx cannot even encode it


def test_an_endpoint_host_that_is_not_valid_idna_is_refused(live, receiver) -> None:
    r = live.post(
        f"{BASE}/subscriptions", json=subscription(BAD_IDNA, id="urn:ngsi-ld:Subscription:i")
    )
    assert r.status_code == 400, r.text
    assert r.json()["type"].endswith("/BadRequestData") and BAD_IDNA in r.json()["detail"]
    assert live.get(f"{BASE}/subscriptions/urn:ngsi-ld:Subscription:i").status_code == 404
    sid = "urn:ngsi-ld:Subscription:j"
    assert live.post(f"{BASE}/subscriptions", json=subscription(receiver.url, id=sid)).is_success
    patch = {"notification": {"endpoint": {"uri": "mqtt://xn--bad_.example:1883/t"}}}
    r = live.patch(f"{BASE}/subscriptions/{sid}", json=patch)
    assert r.status_code == 400 and "xn--bad_.example" in r.json()["detail"]
    kept = live.get(f"{BASE}/subscriptions/{sid}").json()
    assert kept["notification"]["endpoint"]["uri"] == receiver.url


def test_any_exception_sending_is_a_failed_attempt_not_a_hot_loop(live, caplog) -> None:
    """A subscription the API would refuse, written straight to the store (as one stored
    before the check was there): each attempt fails, backs off, and the subscription is
    marked failed after notify_max_attempts (2 here), logged once per state change."""
    store = live.app.state.hub.store
    sid = "urn:ngsi-ld:Subscription:idna"
    r = live.post(
        f"{BASE}/subscriptions", json=subscription("http://notify.example/n", id=sid)
    )  # a valid one first, then its endpoint broken in the store
    assert r.status_code == 201
    doc = store.get_subscription("", sid)
    doc["notification"]["endpoint"]["uri"] = BAD_IDNA
    store.put_subscription("", doc)
    caplog.set_level("INFO", logger="cityos.delivery")
    live.post(f"{BASE}/entities", json=flow(7, 900))
    deadline = time.monotonic() + 10
    while notice(live, sid).get("timesFailed", 0) < 2:  # both attempts made
        assert time.monotonic() < deadline, live.get(f"{BASE}/subscriptions/{sid}").json()
        time.sleep(0.05)
    status = notice(live, sid)
    assert status["timesFailed"] == 2 and "timesSent" not in status and status["lastFailure"]
    assert "IDNA" in status["lastFailureReason"] or "A-label" in status["lastFailureReason"]
    time.sleep(0.5)  # ten poll intervals: a hot loop would have tried (and logged) again
    assert notice(live, sid)["timesFailed"] == 2
    mine = [r for r in caplog.records if r.name == "cityos.delivery"]
    assert len(mine) == 2, [r.getMessage() for r in mine]  # failing, then given up
    assert not any(r.exc_info for r in mine)  # no traceback per attempt


@pytest.mark.parametrize(
    "bad",
    [
        {"id": ""},  # an empty id is not "no id"
        {"expiresAt": "2001-01-01T00:00:00Z"},  # in the past (clause 5.8.1)
        {"expiresAt": "tomorrow"},
        {
            "notification": {
                "endpoint": {"uri": "http://127.0.0.1:9/n"},
                "pick": ["id"],
                "omit": ["id"],
            }
        },
        {
            "notification": {
                "endpoint": {"uri": "http://127.0.0.1:9/n"},
                "pick": ["id"],
                "attributes": ["id"],
            }
        },
        {
            "notification": {
                "endpoint": {"uri": "http://127.0.0.1:9/n"},
                "omit": ["id"],
                "attributes": ["id"],
            }
        },
    ],
)
def test_invalid_subscriptions_are_400_and_write_nothing(live, bad) -> None:
    r = live.post(f"{BASE}/subscriptions", json={**subscription("http://127.0.0.1:9/n"), **bad})
    assert r.status_code == 400, r.text
    assert r.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"
    assert live.get(f"{BASE}/subscriptions").json() == []


def test_update_to_an_expiry_in_the_past_is_400(live) -> None:
    sid = "urn:ngsi-ld:Subscription:exp"
    body = subscription("http://127.0.0.1:9/n", id=sid, expiresAt="2099-01-01T00:00:00Z")
    assert live.post(f"{BASE}/subscriptions", json=body).status_code == 201
    r = live.patch(f"{BASE}/subscriptions/{sid}", json={"expiresAt": "2001-01-01T00:00:00Z"})
    assert r.status_code == 400 and r.json()["type"].endswith("BadRequestData")
    got = live.get(f"{BASE}/subscriptions/{sid}", params={"options": "sysAttrs"}).json()
    assert got["expiresAt"] == "2099-01-01T00:00:00.000000Z" and got["createdAt"]
    # another member changes; the stored expiry is kept, not judged again
    assert live.patch(f"{BASE}/subscriptions/{sid}", json={"q": "intensity>1"}).status_code == 204
    assert live.get(f"{BASE}/subscriptions/{sid}").json()["q"] == "intensity>1"


def _building(n: int) -> dict:
    return {
        "id": f"urn:ngsi-ld:Building:{n}",
        "type": "Building",
        "name": {"type": "Property", "value": "Central Market"},
        "locatedAt": {"type": "Relationship", "object": "urn:ngsi-ld:City:PP"},
        "tags": {"type": "JsonProperty", "json": {"a": 1}},
    }


def _watch(uri: str, **notification) -> dict:
    return {
        "type": "Subscription",
        "entities": [{"type": "Building"}],
        "notificationTrigger": ["attributeDeleted", "attributeUpdated", "entityDeleted"],
        "notification": {"endpoint": {"uri": uri}, **notification},
    }


def test_deleted_attribute_is_notified_as_null_with_its_previous_value(live, receiver) -> None:
    assert live.post(f"{BASE}/entities", json=_building(1)).status_code == 201
    sub = _watch(receiver.url, showChanges=True, sysAttrs=True)
    assert live.post(f"{BASE}/subscriptions", json=sub).status_code == 201
    eid = "urn:ngsi-ld:Building:1"
    assert live.delete(f"{BASE}/entities/{eid}/attrs/name").status_code == 204
    (got,) = receiver.wait_entities(1)
    name = got["name"]
    assert name["value"] == "urn:ngsi-ld:null" and name["previousValue"] == "Central Market"
    assert name["deletedAt"] and name["createdAt"]  # sysAttrs: when it was made and went
    assert got["locatedAt"]["object"] == "urn:ngsi-ld:City:PP"
    assert "previousObject" not in got["locatedAt"]  # unchanged: no previous payload
    r = live.patch(
        f"{BASE}/entities/{eid}/attrs", json={"tags": {"type": "JsonProperty", "json": {"a": 2}}}
    )
    assert r.status_code == 204
    updated = receiver.wait_entities(2)[1]
    assert updated["tags"]["json"] == {"a": 2} and updated["tags"]["previousJson"] == {"a": 1}
    assert updated["tags"]["modifiedAt"]  # sysAttrs
    assert live.delete(f"{BASE}/entities/{eid}").status_code == 204
    gone = receiver.wait_entities(3)[2]
    assert gone["deletedAt"] and gone["createdAt"]  # sysAttrs
    located = {k: v for k, v in gone["locatedAt"].items() if not k.endswith("At")}
    assert located == {
        "type": "Relationship",
        "object": "urn:ngsi-ld:null",
        "previousObject": "urn:ngsi-ld:City:PP",
    }
    assert gone["tags"]["json"] == "urn:ngsi-ld:null" and gone["tags"]["previousJson"] == {"a": 2}


def test_deleted_entity_without_show_changes_is_id_type_and_deleted_at(live, receiver) -> None:
    assert live.post(f"{BASE}/entities", json=_building(2)).status_code == 201
    sub = {**_watch(receiver.url, format="keyValues"), "notificationTrigger": ["entityDeleted"]}
    assert live.post(f"{BASE}/subscriptions", json=sub).status_code == 201
    assert live.delete(f"{BASE}/entities/urn:ngsi-ld:Building:2").status_code == 204
    (gone,) = receiver.wait_entities(1)
    assert set(gone) == {"id", "type", "deletedAt"}


def test_attribute_deletions_instances_and_whole_entities(live, receiver) -> None:
    """attributeDeleted: an attribute, one instance of it (by datasetId), or all of a
    deleted entity's watched attributes, each notified as the NGSI-LD Null."""
    building = {
        **_building(4),
        "name": [
            {"type": "Property", "value": "Central Market"},
            {"type": "Property", "value": "Phsar Thmei", "datasetId": "urn:ngsi-ld:Dataset:km"},
        ],
    }
    assert live.post(f"{BASE}/entities", json=building).status_code == 201
    sub = {
        **_watch(receiver.url, format="keyValues"),
        "notificationTrigger": ["attributeDeleted"],
        "watchedAttributes": ["name"],
    }
    assert live.post(f"{BASE}/subscriptions", json=sub).status_code == 201
    eid = "urn:ngsi-ld:Building:4"
    r = live.delete(
        f"{BASE}/entities/{eid}/attrs/name", params={"datasetId": "urn:ngsi-ld:Dataset:km"}
    )
    assert r.status_code == 204
    (first,) = receiver.wait_entities(1)
    # keyValues shows every instance of a multi-attribute, the deleted one as NGSI-LD Null
    assert first["name"] == {
        "dataset": {"@none": "Central Market", "urn:ngsi-ld:Dataset:km": "urn:ngsi-ld:null"}
    }
    r = live.patch(
        f"{BASE}/entities/{eid}/attrs", json={"tags": {"type": "JsonProperty", "json": 1}}
    )
    assert r.status_code == 204  # not a deletion of a watched attribute: nothing
    assert live.delete(f"{BASE}/entities/{eid}").status_code == 204
    gone = receiver.wait_entities(2)[1]
    assert gone["name"] == "urn:ngsi-ld:null" and gone["deletedAt"]
    assert "locatedAt" not in gone  # not watched
    assert len(receiver.wait_entities(2)) == 2


def test_json_ld_notification_carries_a_context_per_entity_and_pick(live, receiver) -> None:
    sub = _watch(receiver.url, pick=["id", "name"])
    sub["notification"]["endpoint"]["accept"] = "application/ld+json"
    sub["notificationTrigger"] = ["entityCreated"]
    assert live.post(f"{BASE}/subscriptions", json=sub).status_code == 201
    assert live.post(f"{BASE}/entities", json=_building(3)).status_code == 201
    receiver.wait(1)
    headers, body = receiver.received[0]
    assert "Link" not in headers and body["@context"]
    (entity,) = body["data"]
    assert entity["@context"] == body["@context"]
    assert set(entity) == {"id", "name", "@context"}  # picked: no type, no other attribute


def test_jsonld_context_member_is_checked_and_used_for_notifications(live, receiver) -> None:
    core = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
    mine = {
        "@context": {"Building": "https://example.org/Building", "name": "https://example.org/name"}
    }
    sub = _watch(receiver.url)
    sub["notification"]["endpoint"]["accept"] = "application/ld+json"
    sub["notificationTrigger"] = ["entityCreated"]
    for bad, status in (("unknownContext", 400), ("https://nowhere.invalid/c.jsonld", 503)):
        r = live.post(
            f"{BASE}/subscriptions",
            json={**sub, **mine, "jsonldContext": bad},
            headers={"Content-Type": "application/ld+json"},
        )
        assert r.status_code == status, r.text
    assert live.get(f"{BASE}/subscriptions").json() == []
    r = live.post(
        f"{BASE}/subscriptions",
        json={**sub, **mine, "jsonldContext": core},
        headers={"Content-Type": "application/ld+json"},
    )
    assert r.status_code == 201, r.text
    entity = {**_building(5), **mine}
    r = live.post(f"{BASE}/entities", json=entity, headers={"Content-Type": "application/ld+json"})
    assert r.status_code == 201, r.text
    receiver.wait(1)
    (got,) = receiver.received[0][1]["data"]
    assert got["@context"] == core  # the subscription's jsonldContext, not its @context
    assert got["type"] == "https://example.org/Building"  # terms of the core context only
    assert got["https://example.org/name"]["value"] == "Central Market"


def test_pages_of_subscriptions_link_prev_and_next(live) -> None:
    for n in range(3):
        body = subscription("http://127.0.0.1:9/n", id=f"urn:ngsi-ld:Subscription:p{n}")
        assert live.post(f"{BASE}/subscriptions", json=body).status_code == 201
    ld = {"Accept": "application/ld+json"}
    r = live.get(f"{BASE}/subscriptions", params={"limit": 1, "offset": 1}, headers=ld)
    assert len(r.json()) == 1 and r.headers["NGSILD-Results-Count"] == "3"
    assert sorted(r.headers["Link"].replace(" ", "").split(",")) == [
        '</ngsi-ld/v1/subscriptions?limit=1&offset=0>;rel="prev";type="application/ld+json"',
        '</ngsi-ld/v1/subscriptions?limit=1&offset=2>;rel="next";type="application/ld+json"',
    ]
    r = live.get(f"{BASE}/subscriptions", params={"limit": 1, "offset": 2}, headers=ld)
    assert r.headers["Link"] == (
        '</ngsi-ld/v1/subscriptions?limit=1&offset=1>;rel="prev";type="application/ld+json"'
    )
    assert "Link" not in live.get(f"{BASE}/subscriptions", headers=ld).headers  # one page
    r = live.get(f"{BASE}/subscriptions/urn:ngsi-ld:Subscription:p0", headers={"Accept": "*/*"})
    assert r.headers["Content-Type"] == "application/json"
    assert "ngsi-ld-core-context" in r.headers["Link"]  # plain JSON: its @context as a Link


def test_patch_media_types(live) -> None:
    sid = "urn:ngsi-ld:Subscription:mp"
    body = subscription("http://127.0.0.1:9/n", id=sid)
    assert live.post(f"{BASE}/subscriptions", json=body).status_code == 201
    r = live.patch(
        f"{BASE}/subscriptions/{sid}",
        content=json.dumps({"q": "intensity>7"}),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert r.status_code == 204, r.text
    assert live.get(f"{BASE}/subscriptions/{sid}").json()["q"] == "intensity>7"
    for target in (sid, "urn:ngsi-ld:Subscription:none"):  # 415 before 404
        r = live.patch(
            f"{BASE}/subscriptions/{target}", content=b"q=1", headers={"Content-Type": "text/plain"}
        )
        assert r.status_code == 415, r.text


def test_type_expressions_and_percent_encoded_q(live, receiver) -> None:
    sub = {
        "type": "Subscription",
        "entities": [{"type": "(Building|Tower)"}],
        "q": 'name=="Central%20Market"',  # as in a URL: percent-decoded
        "notificationTrigger": ["entityCreated"],
        "notification": {"endpoint": {"uri": receiver.url}, "format": "keyValues"},
    }
    assert live.post(f"{BASE}/subscriptions", json=sub).status_code == 201
    bad = {**sub, "entities": [{"type": "(Building|"}]}
    assert live.post(f"{BASE}/subscriptions", json=bad).status_code == 400
    tower = {**_building(6), "type": "Tower"}
    other = {**_building(7), "name": {"type": "Property", "value": "Wat Phnom"}}
    for entity in (tower, other, {**_building(8), "type": "Shop"}):
        assert live.post(f"{BASE}/entities", json=entity).status_code == 201
    (got,) = receiver.wait_entities(1)
    assert got["id"] == "urn:ngsi-ld:Building:6" and got["type"] == "Tower"
    time.sleep(0.3)
    assert len(receiver.wait_entities(1)) == 1  # not the other name, not a Shop


def test_notifications_join_linked_entities(live, receiver) -> None:
    city = {
        "id": "urn:ngsi-ld:City:PP",
        "type": "City",
        "name": {"type": "Property", "value": "PP"},
    }
    assert live.post(f"{BASE}/entities", json=city).status_code == 201
    for join in ("flat", "inline"):
        sub = _watch(receiver.url, join=join, joinLevel=1)
        sub["notificationTrigger"] = ["entityCreated"]
        sub["id"] = f"urn:ngsi-ld:Subscription:join-{join}"
        assert live.post(f"{BASE}/subscriptions", json=sub).status_code == 201
    bad = {**_watch(receiver.url, join="sideways")}
    assert live.post(f"{BASE}/subscriptions", json=bad).status_code == 400
    assert live.post(f"{BASE}/entities", json=_building(9)).status_code == 201
    receiver.wait(2)
    by_sub = {b["subscriptionId"].rsplit("-", 1)[1]: b["data"] for _, b in receiver.received}
    flat = by_sub["flat"]
    assert [e["id"] for e in flat] == ["urn:ngsi-ld:Building:9", "urn:ngsi-ld:City:PP"]
    (inline,) = by_sub["inline"]
    assert inline["locatedAt"]["entity"]["name"]["value"] == "PP"


def test_a_subscription_is_shown_in_the_callers_terms(live) -> None:
    ctx = {"Vehicle": "https://example.org/Vehicle", "speed": "https://example.org/speed"}
    sub = {
        **subscription("http://127.0.0.1:9/n", id="urn:ngsi-ld:Subscription:terms"),
        "entities": [{"type": "Vehicle"}],
        "watchedAttributes": ["speed"],
        "q": "speed>1",
        "@context": ctx,
    }
    sub["notification"]["attributes"] = ["speed"]
    r = live.post(
        f"{BASE}/subscriptions", json=sub, headers={"Content-Type": "application/ld+json"}
    )
    assert r.status_code == 201, r.text
    url = f"{BASE}/subscriptions/urn:ngsi-ld:Subscription:terms"
    got = live.get(url).json()  # no Link: the core context's terms, so full IRIs
    assert got["entities"] == [{"type": "https://example.org/Vehicle"}]
    assert got["watchedAttributes"] == ["https://example.org/speed"]
    assert got["notification"]["attributes"] == ["https://example.org/speed"]
    got = live.get(url, headers={"Accept": "application/ld+json"}).json()
    assert got["@context"] == "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
    listed = live.get(f"{BASE}/subscriptions").json()
    assert listed[0]["entities"] == [{"type": "https://example.org/Vehicle"}]


def test_a_compound_context_is_linked_by_its_implicit_context(live, receiver) -> None:
    """A plain-JSON notification names one @context: for a compound one, the implicit
    @context the hub made of it (clause 5.13), which reads every term back; deleted by an
    operator, it is put back before the next notification."""
    compound = [{"Shop": "https://example.org/Shop"}, {"stock": "https://example.org/stock"}]
    sub = {
        "type": "Subscription",
        "entities": [{"type": "Shop"}],
        "notificationTrigger": ["entityCreated", "attributeUpdated"],
        "notification": {"endpoint": {"uri": receiver.url}},
        "@context": compound,
    }
    ld = {"Content-Type": "application/ld+json"}
    r = live.post(f"{BASE}/subscriptions", content=json.dumps(sub), headers=ld)
    assert r.status_code == 201, r.text
    shown = live.get(r.headers["Location"]).json()
    url = shown["jsonldContext"]
    shop = {"id": "urn:ngsi-ld:Shop:1", "type": "Shop", "stock": {"type": "Property", "value": 3}}
    r = live.post(
        f"{BASE}/entities", content=json.dumps({**shop, "@context": compound}), headers=ld
    )
    assert r.status_code == 201, r.text
    receiver.wait(1)
    headers, body = receiver.received[0]
    assert f"<{url}>" in headers["Link"]
    (entity,) = body["data"]
    assert entity["type"] == "Shop" and entity["stock"]["value"] == 3  # its own terms
    served = live.get(url.split("testserver", 1)[-1]).json()
    assert served == {"@context": compound}
    local = url.rsplit("/", 1)[1]
    assert live.delete(f"{BASE}/jsonldContexts/{local}").status_code == 204
    r = live.patch(
        f"{BASE}/entities/urn:ngsi-ld:Shop:1/attrs",
        content=json.dumps({"stock": {"type": "Property", "value": 2}, "@context": compound}),
        headers=ld,
    )
    assert r.status_code == 204, r.text
    receiver.wait(2)
    assert f"<{url}>" in receiver.received[1][0]["Link"]
    assert live.get(f"{BASE}/jsonldContexts/{local}").json() == {"@context": compound}


def test_a_read_right_after_the_receiver_answered_sees_the_delivery(live, receiver) -> None:
    """ETSI 046_11/046_12 read the subscription the moment their receiver has answered: the
    read waits (briefly) for the notification being sent, so it sees timesSent and
    lastSuccess as they now are, every time."""
    receiver.delay_s = 0.1  # the test reads while the hub still waits for the answer
    assert live.post(f"{BASE}/entities", json=_building(5)).status_code == 201
    r = live.post(f"{BASE}/subscriptions", json=_watch(receiver.url))
    assert r.status_code == 201, r.text
    url = r.headers["Location"]
    for n in range(1, 6):
        fragment = {"name": {"type": "Property", "value": f"Market {n}"}}
        r = live.patch(f"{BASE}/entities/urn:ngsi-ld:Building:5/attrs", json=fragment)
        assert r.status_code == 204, r.text
        receiver.wait(n)
        note = live.get(url).json()["notification"]
        assert note.get("timesSent") == n and note.get("status") == "ok", (n, note)
        assert note["lastSuccess"] and note["lastNotification"]
