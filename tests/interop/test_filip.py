"""CityOS driven by FIWARE's `filip` 0.8.1 (PyPI), a client written to NGSI-LD by someone
else: `filip_script.py` runs in its own virtualenv against a real server and reports what
each call returned and every request the library put on the wire.

What the library does, and these tests keep: plain ``application/json`` bodies with the
NGSI-LD core context (v1.6) in a ``Link`` header on every request (``application/ld+json``
only for a body with its own ``@context``); ``Accept: application/ld+json``; queries and
subscription listings on ``/entities/`` and ``/subscriptions/`` with ``idPattern=.*``,
``count=true``, ``limit=1000`` (and ``options=count``); one attribute updated by
``PATCH /entities/{id}/attrs/{attr}`` with ``{"value": …}``. filip has no client for the
temporal API: history is read with filip's own HTTP client and headers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # the fixtures' types (conftest.py is not importable as a module)
    from tests.interop.conftest import Run, Webhook

TF = "urn:ngsi-ld:TrafficFlowObserved:"
CORE_V16 = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.6.jsonld"
JSON, LD = "application/json", "application/ld+json"

CLIENT = "filip"  # its virtualenv: .venv-interop/filip


@pytest.fixture(scope="module")
def run(run_client: Callable[[str], Run]) -> Run:
    return run_client(CLIENT)


def test_every_plain_json_request_carries_the_link_header(run: Run) -> None:
    assert run["version"]["name"] == "cityos"
    for w in run.wire:
        assert w["accept"] == LD, w
        if w["content_type"] == JSON:
            assert w["link"].startswith(f"<{CORE_V16}>") and "json-ld#context" in w["link"], w
        assert w["status"] < 500, w


def test_create_and_retrieve(run: Run) -> None:
    assert run["post_entity"] == "/ngsi-ld/v1/entities/" + TF + "sisowath"
    first = run.sent("POST", "/ngsi-ld/v1/entities")[0]
    assert first["content_type"] == JSON and first["status"] == 201
    assert run["post_entity_keyvalues"] == "/ngsi-ld/v1/entities/" + TF + "norodom"
    # a body with its own @context: application/ld+json, and filip drops the Link header
    assert run["post_entity_ld"] == "/ngsi-ld/v1/entities/" + TF + "street-13"
    ld = [w for w in run.sent("POST", "/ngsi-ld/v1/entities") if w["content_type"] == LD]
    assert [(w["link"], w["status"]) for w in ld] == [(None, 201)]
    # filip's keyValues → normalized makes `location` a Property: refused, clearly
    refused = run["post_entity_keyvalues_location"]
    assert refused["status"] == 400
    assert refused["problem"]["type"] == "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"
    assert "GeoProperty" in refused["problem"]["detail"]

    got = run["get_entity"]
    assert got["@context"] == CORE_V16  # the caller's context, sent back
    assert got["intensity"]["value"] == 420
    assert got["intensity"]["observedAt"].startswith("2026-11-30T07:00:00")
    assert got["averageVehicleSpeed"] == {"type": "Property", "value": 24.5, "unitCode": "KMH"}
    assert got["location"]["type"] == "GeoProperty"
    assert got["location"]["value"]["coordinates"] == [104.931, 11.57]
    assert got["refRoadSegment"] == {
        "type": "Relationship",
        "object": "urn:ngsi-ld:RoadSegment:monivong-sisowath",
    }
    assert got["laneId"]["value"] == 1  # post_entity(append=True): 409, then append
    assert run["post_entity_append"]["laneId"]["value"] == 1
    assert run.statuses("POST", f"/ngsi-ld/v1/entities/{TF}sisowath/attrs") == [204]

    kv = run["get_entity_keyvalues"]
    assert kv["intensity"] == 420
    assert kv["location"] == {"type": "Point", "coordinates": [104.931, 11.57]}
    attrs = run["get_entity_attrs"]
    assert set(attrs) - {"id", "type", "@context"} == {"intensity"}
    assert run["get_entity_missing"] == 404


def test_query_by_type_q_and_geo(run: Run) -> None:
    assert run["list_type"] == [TF + "norodom", TF + "sisowath", TF + "street-13"]
    assert run["list_q"] == [TF + "norodom", TF + "sisowath"]
    assert run["list_q_relationship"] == [TF + "sisowath"]
    assert run["list_geo"] == [TF + "sisowath"]
    page = run["list_keyvalues_limit"]  # limit=2, options=keyValues
    assert len(page) == 2 and all(isinstance(e["intensity"], int) for e in page)
    assert run["list_id"] == [TF + "norodom"]
    queries = run.sent("GET", "/ngsi-ld/v1/entities/?")  # the trailing slash, as filip sends
    assert queries and all(w["status"] == 200 for w in queries)
    assert all("idPattern=.%2A" in w["path"] and "count=true" in w["path"] for w in queries)


def test_batch(run: Run) -> None:
    created = run["batch_create"]
    assert {TF + "monivong", TF + "street-154"} <= set(created)
    assert run.statuses("POST", "/ngsi-ld/v1/entityOperations/create") == [201]
    assert TF + "street-63" in run["batch_upsert"]
    assert run.statuses("POST", "/ngsi-ld/v1/entityOperations/upsert?options=update") == [201]
    replaced = run["override_entities"]  # upsert?options=replace
    assert replaced["intensity"]["value"] == 120
    assert run.statuses("POST", "/ngsi-ld/v1/entityOperations/upsert?options=replace") == [204]
    updated = run["batch_update"]
    assert updated["intensity"]["value"] == 990
    assert updated["averageVehicleSpeed"]["value"] == 24.5  # update keeps what was not sent
    assert run.statuses("POST", "/ngsi-ld/v1/entityOperations/update") == [204]


def test_updates(run: Run) -> None:
    one = run["update_attribute"]  # PATCH …/attrs/intensity {"value": 730}
    assert one["intensity"]["value"] == 730
    assert one["intensity"]["observedAt"].startswith("2026-11-30T07:00:00")  # merged, kept
    [patch] = run.sent("PATCH", f"/ngsi-ld/v1/entities/{TF}sisowath/attrs/intensity")
    assert patch["content_type"] == JSON and patch["status"] == 204

    replaced = run["replace_attrs"]  # PATCH …/attrs
    assert replaced["intensity"]["value"] == 640
    assert replaced["intensity"]["observedAt"].startswith("2026-11-30T07:10:00")

    appended = run["append_attrs_no_overwrite"]  # POST …/attrs?options=noOverwrite
    assert appended["intensity"]["value"] == 640 and appended["congested"]["value"] is True


def test_delete(run: Run) -> None:
    assert "congested" not in run["delete_attribute"]
    assert run["delete_entity"] == 404
    assert run["batch_delete"] == [TF + "monivong", TF + "norodom", TF + "sisowath"]
    assert run.statuses("POST", "/ngsi-ld/v1/entityOperations/delete") == [204]


def test_temporal_through_filips_http_client(run: Run) -> None:
    history = run["temporal_entity"]
    assert [[v, t[:19]] for v, t in history["intensity"]["values"]] == [
        [880, "2026-11-30T07:00:00"],
        [910, "2026-11-30T07:20:00"],
        [990, "2026-11-30T07:40:00"],
    ]
    last = {e["id"]: [i["value"] for i in e["intensity"]] for e in run["temporal_query"]}
    assert last[TF + "sisowath"] == [730] and last[TF + "monivong"] == [990]
    got = run.sent("GET", "/ngsi-ld/v1/temporal/entities")
    assert got and all(w["content_type"] == JSON and w["link"] for w in got)


def test_subscription_notifies_the_webhook(run: Run, webhook: Webhook) -> None:
    sub = run["subscribe"]
    assert sub["again"] == sub["id"]  # filip recognised it in the listing: not posted twice
    assert sub["listed"] == [sub["id"]]
    assert len(run.sent("POST", "/ngsi-ld/v1/subscriptions")) == 2  # this one, and the second
    got = sub["get"]
    assert got["q"] == "intensity>500" and got["watchedAttributes"] == ["intensity"]
    assert got["notification"]["format"] == "keyValues"
    assert got["notification"]["endpoint"]["accept"] == JSON
    assert run.sent("GET", "/ngsi-ld/v1/subscriptions/?options=count")
    other = run["second_subscription"]  # paused, then deleted
    assert other["listed"] == sorted([sub["id"], other["id"]])
    assert other["updated"]["isActive"] is False
    assert other["updated"]["watchedAttributes"] == ["averageVehicleSpeed"]
    assert other["left"] == [sub["id"]] and other["deleted_get"] == 404
    assert run.statuses("PATCH", "/ngsi-ld/v1/subscriptions/" + other["id"]) == [204]

    expected = {
        (TF + "sisowath", 730),  # PATCH …/attrs/intensity
        (TF + "norodom", 640),  # PATCH …/attrs
        (TF + "monivong", 910),  # batch upsert (update)
        (TF + "monivong", 990),  # batch update
    }

    def mine(received: list) -> list:
        return [n for n in received if n.body.get("subscriptionId") == sub["id"]]

    def seen(received: list) -> set:
        data = [e for n in mine(received) for e in n.body["data"]]
        return {(e["id"], e["intensity"]) for e in data if "intensity" in e}

    received = mine(webhook.wait_for(lambda r: expected <= seen(r)))
    assert expected <= seen(received), f"notified {sorted(seen(received))}"
    assert all(intensity > 500 for _, intensity in seen(received))  # the subscription's q
    for n in received:
        assert n.headers["content-type"] == JSON
        for entity in n.body["data"]:
            assert set(entity) <= {"id", "type", "intensity", "deletedAt"}  # keyValues


def test_json_notification_links_its_context(run: Run, webhook: Webhook) -> None:
    sid = run["subscribe"]["id"]
    received = webhook.wait_for(lambda r: any(n.body.get("subscriptionId") == sid for n in r))
    mine = [n for n in received if n.body.get("subscriptionId") == sid]
    assert mine and all("json-ld#context" in n.headers.get("link", "") for n in mine)
