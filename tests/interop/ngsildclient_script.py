"""Drive a running CityOS hub with Orange's `ngsildclient` (PyPI), as its users would.

Run by ``test_ngsildclient.py`` with the interpreter of the interop virtualenv
(``make interop``), never imported by pytest: ngsildclient pins httpx 0.23 and rich 12,
which the project's own virtualenv cannot hold. Usage::

    python ngsildclient_script.py '{"port": 1026, "webhook": "http://127.0.0.1:8000/", "out": "…"}'

It writes one JSON object to ``out`` (its stdout is the library's own console): for each step ``{"ok": true, "value": …}`` or
``{"ok": false, "error": "<traceback>"}``, plus ``"wire"``, every HTTP request the library
sent (method, path, Content-Type, Accept, Link) and the status it got, recorded by a
transparent wrapper around ``requests.Session.send`` so nothing the library does is changed.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

WIRE: list[dict[str, Any]] = []
_send = requests.Session.send


def _recording_send(self: requests.Session, request: Any, **kwargs: Any) -> Any:
    response = _send(self, request, **kwargs)
    WIRE.append(
        {
            "method": request.method,
            "path": request.path_url,
            "content_type": request.headers.get("Content-Type"),
            "accept": request.headers.get("Accept"),
            "link": request.headers.get("Link"),
            "status": response.status_code,
        }
    )
    return response


requests.Session.send = _recording_send  # type: ignore[method-assign]

from ngsildclient import Client, Entity, SubscriptionBuilder  # noqa: E402
from ngsildclient.api.constants import AggrMethod  # noqa: E402
from ngsildclient.api.helper.temporal import TemporalQuery  # noqa: E402

AQ = "urn:ngsi-ld:AirQualityObserved:"
T0 = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def air(name: str, pm25: float, lat: float, lon: float, at: datetime = T0) -> Entity:
    """An AirQualityObserved built with ngsildclient's own builder (note: lat, lon order)."""
    e = Entity("AirQualityObserved", AQ + name)
    e.prop("pm25", pm25, unitcode="GQ", observedat=iso(at))
    e.loc(lat, lon)
    e.obs(iso(at))  # dateObserved as a {"@type": "DateTime", "@value": …} value
    e.rel("refPointOfInterest", "urn:ngsi-ld:PointOfInterest:wat-phnom")
    return e


def main() -> None:
    args = json.loads(sys.argv[1])
    out: dict[str, Any] = {}

    def step(name: str, fn: Callable[[], Any]) -> Any:
        try:
            value = fn()
            out[name] = {"ok": True, "value": value}
            return value
        except Exception:
            out[name] = {"ok": False, "error": traceback.format_exc()}
            return None

    # Connecting probes GET /entities?type=None&limit=0&count=true, then /version and
    # /actuator/health to guess the vendor; it raises when the first probe fails.
    client = Client(hostname="127.0.0.1", port=args["port"], verbose=False)
    out["connect"] = {
        "ok": True,
        "value": {"vendor": client.broker.vendor.value, "version": client.broker.version},
    }

    # -- create, retrieve, query ---------------------------------------------------------
    step("create", lambda: client.create(air("wat-phnom", 41.5, 11.5762, 104.9230)))
    step("get", lambda: client.get(AQ + "wat-phnom").to_dict())
    step("get_dict", lambda: client.get(AQ + "wat-phnom", asdict=True))
    step("exists", lambda: client.exists(AQ + "wat-phnom"))
    step("exists_missing", lambda: client.exists(AQ + "nowhere"))

    def batch_create() -> Any:
        r = client.create(
            [air("phsar-thmei", 28.0, 11.5696, 104.9212), air("riverside", 55.0, 11.5700, 104.9310)]
        )
        return {"ok": r.ok, "success": r.success, "errors": r.errors}

    step("batch_create", batch_create)

    def batch_create_again() -> Any:  # one exists, one is new: a 207 with both lists
        r = client.create(
            [air("riverside", 55.0, 11.5700, 104.9310), air("norodom", 36.0, 11.5650, 104.9260)]
        )
        return {"ok": r.ok, "success": r.success, "errors": r.errors}

    step("batch_create_partial", batch_create_again)
    step("count", lambda: client.count(type="AirQualityObserved"))
    step("query_type", lambda: sorted(e.id for e in client.query(type="AirQualityObserved")))
    step(
        "query_q",
        lambda: sorted(e.id for e in client.query(type="AirQualityObserved", q="pm25>35")),
    )
    step(
        "query_q_relationship",
        lambda: sorted(
            e.id
            for e in client.query(
                type="AirQualityObserved",
                q='refPointOfInterest=="urn:ngsi-ld:PointOfInterest:wat-phnom";pm25<30',
            )
        ),
    )
    step("query_head", lambda: len(client.query_head(type="AirQualityObserved", n=2)))
    # ngsildclient's geo query goes through POST /entityOperations/query (its `alt` API),
    # a Query body with a geoQ: within 400 m of Wat Phnom.
    geo_query = {
        "type": "Query",
        "entities": [{"type": "AirQualityObserved"}],
        "geoQ": {
            "georel": "near;maxDistance==400",
            "geometry": "Point",
            "coordinates": [104.9230, 11.5762],
        },
    }
    step("alt_count_geo", lambda: client.alt.count(geo_query))
    step("alt_query_geo", lambda: sorted(e.id for e in client.alt.query(geo_query)))
    step(
        "types",
        lambda: sorted(client.types.list()) if hasattr(client.types, "list") else None,
    )

    # -- subscription: created now, notified by the writes below ---------------------------
    def subscribe() -> Any:
        sub = (
            SubscriptionBuilder(args["webhook"])
            .description("pm25 of Phnom Penh air sensors")
            .select_type("AirQualityObserved")
            .watch(["pm25"])
            .notif(["pm25"])
            .build()
        )
        sid = client.subscriptions.create(sub)
        got = client.subscriptions.get(sid)
        listed = [s["id"] for s in client.subscriptions.list()]
        return {
            "id": sid,
            "get": got,
            "listed": listed,
            "exists": client.subscriptions.exists(sid),
        }

    step("subscribe", subscribe)

    # -- updates: single update is delete-then-create; batch ones go to entityOperations --
    def update_single() -> Any:
        e = client.get(AQ + "wat-phnom")
        e["pm25"]["value"] = 63.0
        e["pm25"]["observedAt"] = iso(T0 + timedelta(minutes=10))
        e.rmsysattrs()
        updated = client.update(e)
        return {"updated": updated, "after": client.get(AQ + "wat-phnom", asdict=True)}

    step("update_single", update_single)

    def upsert_single() -> Any:  # create fails with 409, so delete-then-create
        done = client.upsert(air("phsar-thmei", 30.5, 11.5696, 104.9212, T0 + timedelta(minutes=5)))
        return {"done": done, "after": client.get(AQ + "phsar-thmei", asdict=True)}

    step("upsert_single", upsert_single)

    def batch_upsert() -> Any:  # two existing entities, one new; options=replace
        r = client.upsert(
            [
                air("riverside", 57.0, 11.5700, 104.9310, T0 + timedelta(minutes=10)),
                air("norodom", 38.0, 11.5650, 104.9260, T0 + timedelta(minutes=10)),
                air("monivong", 22.0, 11.5680, 104.9170, T0 + timedelta(minutes=10)),
            ]
        )
        return {"ok": r.ok, "success": r.success, "errors": r.errors}

    step("batch_upsert", batch_upsert)

    def batch_upsert_update() -> Any:  # options=update keeps attributes not sent
        e = Entity("AirQualityObserved", AQ + "riverside")
        e.prop("pm25", 59.0, unitcode="GQ", observedat=iso(T0 + timedelta(minutes=20)))
        r = client.upsert([e], update=True)
        return {
            "ok": r.ok,
            "success": r.success,
            "after": client.get(AQ + "riverside", asdict=True),
        }

    step("batch_upsert_update", batch_upsert_update)

    def batch_update() -> Any:  # POST /entityOperations/update, existing attributes only
        e = Entity("AirQualityObserved", AQ + "riverside")
        e.prop("pm25", 61.0, unitcode="GQ", observedat=iso(T0 + timedelta(minutes=30)))
        r = client.update([e])
        return {
            "ok": r.ok,
            "success": r.success,
            "errors": r.errors,
            "after": client.get(AQ + "riverside", asdict=True),
        }

    step("batch_update", batch_update)

    # -- temporal: history of what was written above --------------------------------------
    step("temporal_get", lambda: client.temporal.get(AQ + "riverside", attrs=["pm25"]))
    step(
        "temporal_get_verbose",
        lambda: client.temporal.get(AQ + "riverside", attrs=["pm25"], verbose=True),
    )
    step(
        "temporal_query",
        lambda: client.temporal.query(
            type="AirQualityObserved",
            attrs=["pm25"],
            tq=TemporalQuery().between(iso(T0), iso(T0 + timedelta(hours=1))),
        ),
    )
    step(
        "temporal_query_lastn",
        lambda: client.temporal.query(
            eid=AQ + "riverside",
            attrs=["pm25"],
            tq=TemporalQuery().after(iso(T0)),
            lastn=2,
        ),
    )
    step(
        "temporal_aggregate",
        lambda: (
            client.temporal.aggregate(
                type="AirQualityObserved",
                attrs=["pm25"],
                tq=TemporalQuery().between(iso(T0), iso(T0 + timedelta(hours=1))),
                methods=[AggrMethod.MAXIMUM, AggrMethod.TOTAL_COUNT],
                period=timedelta(hours=1),
            ).result
        ),
    )

    # -- delete: one, then a batch --------------------------------------------------------
    def delete_one() -> Any:
        # Client.delete() takes an Entity for one (a bare id string would be taken as a batch)
        done = client.delete(client.get(AQ + "norodom"))
        return {"done": done, "exists": client.exists(AQ + "norodom")}

    step("delete", delete_one)

    def delete_batch() -> Any:  # by entities (with bare ids it posts them, then fails reading 204)
        r = client.delete([client.get(AQ + "monivong"), client.get(AQ + "phsar-thmei")])
        return {
            "ok": r.ok,
            "success": r.success,
            "errors": r.errors,
            "left": sorted(e.id for e in client.query(type="AirQualityObserved")),
        }

    step("delete_batch", delete_batch)

    # a second subscription to delete (pending notifications of the first one would be
    # dropped with it: it stays)
    def unsubscribe() -> Any:
        sub = (
            SubscriptionBuilder(args["webhook"] + "?observed")
            .select_type("AirQualityObserved")
            .watch(["dateObserved"])
            .build()
        )
        sid = client.subscriptions.create(sub)
        listed = sorted(s["id"] for s in client.subscriptions.list())
        deleted = client.subscriptions._delete(sid)
        return {
            "id": sid,
            "listed": listed,
            "deleted": deleted,
            "exists": client.subscriptions.exists(sid),
        }

    step("unsubscribe", unsubscribe)
    client.close()
    out["wire"] = WIRE
    with open(args["out"], "w") as fh:
        json.dump(out, fh, default=str)


if __name__ == "__main__":
    main()
