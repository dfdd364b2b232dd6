"""CityOS driven by Orange's `ngsildclient` 0.5.2 (PyPI), a client written to NGSI-LD by
someone else: `ngsildclient_script.py` runs in its own virtualenv against a real server and
reports what each call returned and every request the library put on the wire.

What the library does, and these tests keep: it sends ``application/ld+json`` bodies with the
``@context`` inside, to paths with a trailing slash (``/entities/``,
``/entityOperations/create/``, ``/subscriptions/``); it probes
``/entities?type=None&limit=0&count=true`` and ``/version`` on connecting; it updates one
entity by deleting and re-creating it; it asks the temporal API for ``options=count``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # the fixtures' types (conftest.py is not importable as a module)
    from tests.interop.conftest import Run, Webhook

AQ = "urn:ngsi-ld:AirQualityObserved:"
LD = "application/ld+json"

CLIENT = "ngsildclient"  # its virtualenv: .venv-interop/ngsildclient


@pytest.fixture(scope="module")
def run(run_client: Callable[[str], Run]) -> Run:
    return run_client(CLIENT)


def test_connect_probes_entities_and_version(run: Run) -> None:
    assert run["connect"] == {"vendor": None, "version": "N/A"}  # not Orion-LD, nor Java
    probe = run.sent("GET", "/ngsi-ld/v1/entities?type=None&limit=0&count=true")
    assert [w["status"] for w in probe] == [200]
    assert run.statuses("GET", "/version") == [200]
    assert run.statuses("GET", "/actuator/health") == [404]


def test_create_and_retrieve(run: Run) -> None:
    assert run["create"] is True
    posts = run.sent("POST", "/ngsi-ld/v1/entities/")
    assert posts and all(w["path"] == "/ngsi-ld/v1/entities/" for w in posts)
    assert posts[0]["content_type"] == LD and posts[0]["status"] == 201

    got = run["get_dict"]
    assert got["@context"]  # asked for with Accept: application/ld+json
    assert got["pm25"]["value"] == 41.5 and got["pm25"]["unitCode"] == "GQ"
    assert got["pm25"]["observedAt"].startswith("2026-11-30T01:00:00")
    assert got["location"] == {
        "type": "GeoProperty",
        "value": {"type": "Point", "coordinates": [104.923, 11.5762]},
    }
    assert got["refPointOfInterest"] == {
        "type": "Relationship",
        "object": "urn:ngsi-ld:PointOfInterest:wat-phnom",
    }
    assert got["dateObserved"]["value"] == {"@type": "DateTime", "@value": "2026-11-30T01:00:00Z"}
    assert run["get"]["id"] == AQ + "wat-phnom"  # parsed back into an ngsildclient Entity
    assert run["exists"] is True and run["exists_missing"] is False


def test_query_by_type_q_and_geo(run: Run) -> None:
    assert run["count"] == 4
    everything = [AQ + n for n in ("norodom", "phsar-thmei", "riverside", "wat-phnom")]
    assert run["query_type"] == everything
    assert run["query_q"] == [AQ + "norodom", AQ + "riverside", AQ + "wat-phnom"]
    assert run["query_q_relationship"] == [AQ + "phsar-thmei"]
    assert run["query_head"] == 2
    # geo goes through POST /entityOperations/query with a Query body (application/json)
    assert run["alt_count_geo"] == 1
    assert run["alt_query_geo"] == [AQ + "wat-phnom"]
    posted = run.sent("POST", "/ngsi-ld/v1/entityOperations/query")
    assert posted and all(w["status"] == 200 for w in posted)
    assert run["types"] == ["AirQualityObserved"]


def test_batch_create_upsert_update(run: Run) -> None:
    assert run["batch_create"] == {
        "ok": True,
        "success": [AQ + "phsar-thmei", AQ + "riverside"],
        "errors": [],
    }
    partial = run["batch_create_partial"]
    assert partial["success"] == [AQ + "norodom"]
    [error] = partial["errors"]
    assert error["entityId"] == AQ + "riverside"
    assert error["error"]["type"] == "https://uri.etsi.org/ngsi-ld/errors/AlreadyExists"
    assert run.statuses("POST", "/ngsi-ld/v1/entityOperations/create/") == [201, 207]

    upsert = run["batch_upsert"]  # 201 with the ids it created
    assert upsert["ok"] and upsert["success"] == [AQ + "monivong"]
    assert run.sent("POST", "/ngsi-ld/v1/entityOperations/upsert/?options=replace")

    kept = run["batch_upsert_update"]["after"]  # options=update keeps what was not sent
    assert kept["pm25"]["value"] == 59.0
    assert kept["location"]["value"]["coordinates"] == [104.931, 11.57]
    assert run.statuses("POST", "/ngsi-ld/v1/entityOperations/upsert/?options=update") == [204]

    updated = run["batch_update"]
    assert updated["ok"] and updated["after"]["pm25"]["value"] == 61.0
    assert run.statuses("POST", "/ngsi-ld/v1/entityOperations/update/") == [204]


def test_update_is_delete_then_create(run: Run) -> None:
    single = run["update_single"]
    assert single["updated"] is True
    assert single["after"]["pm25"]["value"] == 63.0
    assert single["after"]["pm25"]["observedAt"].startswith("2026-11-30T01:10:00")
    calls = [(w["method"], w["path"], w["status"]) for w in run.wire]
    deleted = ("DELETE", "/ngsi-ld/v1/entities/" + AQ + "wat-phnom", 204)
    assert calls.count(deleted) == 1
    assert calls[calls.index(deleted) + 1] == ("POST", "/ngsi-ld/v1/entities/", 201)

    upserted = run["upsert_single"]  # create → 409 AlreadyExists → delete → create
    assert upserted["done"] is True and upserted["after"]["pm25"]["value"] == 30.5
    assert 409 in run.statuses("POST", "/ngsi-ld/v1/entities/")


def test_delete(run: Run) -> None:
    assert run["delete"] == {"done": True, "exists": False}
    batch = run["delete_batch"]
    assert batch["ok"] and batch["left"] == [AQ + "riverside", AQ + "wat-phnom"]
    assert run.statuses("POST", "/ngsi-ld/v1/entityOperations/delete/") == [204]


def test_temporal(run: Run) -> None:
    riverside = [[55.0, "2026-11-30T01:00:00"], [57.0, "2026-11-30T01:10:00"]]
    riverside += [[59.0, "2026-11-30T01:20:00"], [61.0, "2026-11-30T01:30:00"]]

    def values(troe: dict) -> list[list]:
        return [[v, t[:19]] for v, t in troe["pm25"]["values"]]

    got = run["temporal_get"]  # options=temporalValues: [value, observedAt] pairs
    assert got["id"] == AQ + "riverside" and values(got) == riverside
    verbose = run["temporal_get_verbose"]["pm25"]
    assert [i["value"] for i in verbose] == [55.0, 57.0, 59.0, 61.0]
    assert all(i["instanceId"].startswith("urn:ngsi-ld:attribute:instance:") for i in verbose)

    # GET /temporal/entities?options=count,temporalValues&timerel=between…
    asked = run.statuses(
        "GET",
        "/ngsi-ld/v1/temporal/entities?type=AirQualityObserved&attrs=pm25&options=count%2CtemporalValues",
    )
    assert asked == [200]
    by_id = {e["id"]: e for e in run["temporal_query"]}
    assert values(by_id[AQ + "riverside"]) == riverside
    # ngsildclient's update (delete, then create) keeps the entity's history
    assert [v for v, _ in values(by_id[AQ + "wat-phnom"])] == [41.5, 63.0]
    assert [values(e) for e in run["temporal_query_lastn"]] == [riverside[-2:]]

    aggregated = {e["id"]: e["pm25"] for e in run["temporal_aggregate"]}
    assert aggregated[AQ + "riverside"]["max"][0][0] == 61.0
    assert aggregated[AQ + "riverside"]["totalCount"][0][0] == 4


def test_subscription_notifies_the_webhook(run: Run, webhook: Webhook) -> None:
    sub = run["subscribe"]
    assert sub["exists"] is True and sub["id"] in sub["listed"]
    assert sub["get"]["entities"] == [{"type": "AirQualityObserved"}]
    assert sub["get"]["watchedAttributes"] == ["pm25"]
    assert sub["get"]["notification"]["endpoint"] == {"uri": webhook.url, "accept": LD}
    posts = run.sent("POST", "/ngsi-ld/v1/subscriptions/")  # this one, and the second
    assert [(w["content_type"], w["status"]) for w in posts] == [(LD, 201)] * 2
    other = run["unsubscribe"]  # a second one, deleted
    assert sorted([sub["id"], other["id"]]) == other["listed"]
    assert other["deleted"] is True and other["exists"] is False

    # the writes made after subscribing: deletes-then-creates, batch upserts and updates
    expected = {
        (AQ + "wat-phnom", 63.0),
        (AQ + "phsar-thmei", 30.5),
        (AQ + "riverside", 57.0),
        (AQ + "norodom", 38.0),
        (AQ + "monivong", 22.0),
        (AQ + "riverside", 59.0),
        (AQ + "riverside", 61.0),
    }

    def mine(received: list) -> list:
        return [n for n in received if n.body.get("subscriptionId") == sub["id"]]

    def seen(received: list) -> set:
        data = [e for n in mine(received) for e in n.body["data"]]
        return {(e["id"], e["pm25"]["value"]) for e in data if "pm25" in e}

    received = mine(webhook.wait_for(lambda r: expected <= seen(r)))
    assert expected <= seen(received), f"notified {sorted(seen(received))}"
    for n in received:
        assert n.headers["content-type"] == LD  # the endpoint's accept
        assert n.body["type"] == "Notification"
        for entity in n.body["data"]:
            assert entity["type"] == "AirQualityObserved"
            # attributes: [pm25]; under application/ld+json each entity carries its @context
            assert set(entity) <= {"id", "type", "pm25", "deletedAt", "@context"}


def test_ld_json_notification_carries_its_context(run: Run, webhook: Webhook) -> None:
    sid = run["subscribe"]["id"]
    received = webhook.wait_for(lambda r: any(n.body.get("subscriptionId") == sid for n in r))
    mine = [n for n in received if n.body.get("subscriptionId") == sid]
    assert mine and all(n.body.get("@context") for n in mine)
