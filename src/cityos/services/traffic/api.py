"""The traffic service's HTTP routes, under ``/services/traffic/``.

GTFS-realtime for passenger apps, built from what the buses report into the hub (``Vehicle``
entities with ``tripId``, ``location``, ``speed``, ``heading``, ``delay`` and
``nextStopSequence``) and the static GTFS feed the hub knows (:func:`register_feed`):

* ``GET /services/traffic/gtfs-rt/vehicle-positions`` — VehiclePositions;
* ``GET /services/traffic/gtfs-rt/trip-updates`` — TripUpdates, the delay carried to the
  coming stops of each trip;
* ``GET /services/traffic/gtfs`` — the static feed (zip) those refer to.

Protobuf (``application/x-protobuf``) as GTFS-realtime consumers expect; ``?format=json``
gives the same feed as JSON for people. Reads go through the caller's rules like any read
(``Vehicle`` entities the caller may not read are not in the feed), in the request's tenant.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from cityos.hub.access import restrict_query, visible_all
from cityos.hub.api.common import endpoint, hub_of, tenant_of
from cityos.hub.errors import ResourceNotFound
from cityos.hub.query.model import EntityQuery, TypeName
from cityos.hub.representation import render_entity

from .gtfs_rt import (
    BusPosition,
    feed_as_dict,
    predict_trips,
    serialise,
    trip_updates_feed,
    vehicle_positions_feed,
)

BASE = "/services/traffic"
FEED_DOC = "traffic-gtfs"  # registry kind: the static GTFS feed of a tenant
PROTOBUF = "application/x-protobuf"


def register_feed(store: Any, tenant: str, gtfs_zip: Path, service_day_start: datetime) -> None:
    """Tell the hub where the static GTFS feed of ``tenant`` is and the instant its service
    day starts (the timetable's 00:00:00)."""
    doc = {
        "path": str(Path(gtfs_zip).resolve()),
        "service_day_start": service_day_start.isoformat(),
    }
    store.put_doc(FEED_DOC, tenant, "feed", doc)


def _feed(store: Any, tenant: str) -> dict[str, Any] | None:
    doc = store.get_doc(FEED_DOC, tenant, "feed")
    if doc is None or not Path(doc["path"]).is_file():
        return None
    return doc


def _epoch(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


def _value(entity: dict[str, Any], name: str) -> Any:
    attr = entity.get(name)
    return attr.get("value") if isinstance(attr, dict) else None


def bus_positions(entities: list[dict[str, Any]]) -> list[BusPosition]:
    """Vehicle entities (normalized, compacted) that report a trip, as bus positions."""
    out = []
    for e in entities:
        location = _value(e, "location")
        if not isinstance(location, dict) or location.get("type") != "Point":
            continue
        lon, lat = location["coordinates"][:2]
        observed = e["location"].get("observedAt")
        delay, next_stop = _value(e, "delay"), _value(e, "nextStopSequence")
        out.append(
            BusPosition(
                vehicle_id=_value(e, "name") or e["id"].rsplit(":", 1)[-1],
                trip_id=_value(e, "tripId"),
                route_id=_value(e, "routeId"),
                lon=float(lon),
                lat=float(lat),
                bearing=_value(e, "heading"),
                speed_mps=(_value(e, "speed") / 3.6) if _value(e, "speed") is not None else None,
                timestamp=_epoch(observed) if observed else 0,
                delay_s=float(delay) if delay is not None else None,
                next_stop_sequence=int(next_stop) if next_stop is not None else None,
                stopped=bool(_value(e, "atStop")),
            )
        )
    return out


def _vehicles(request: Request) -> tuple[list[BusPosition], dict[str, Any] | None]:
    hub = hub_of(request)
    tenant = tenant_of(request, read=True)
    ctx = hub.contexts.resolve(None)
    vehicle = TypeName(ctx.expand_term("Vehicle"))
    query = restrict_query(EntityQuery(types=vehicle, limit=10_000))
    found = visible_all(hub.store.query(tenant, query).entities)
    rendered = [render_entity(e, ctx) for e in found]
    # every vehicle with a position is published; one without a trip gets no trip update
    return bus_positions(rendered), _feed(hub.store, tenant)


def _answer(request: Request, feed: Any) -> Response:
    if request.query_params.get("format") == "json":
        return JSONResponse(feed_as_dict(feed))
    return Response(serialise(feed), media_type=PROTOBUF)


@endpoint
async def vehicle_positions(request: Request) -> Response:
    positions, _ = await asyncio.to_thread(_vehicles, request)
    return _answer(request, vehicle_positions_feed(positions))


@endpoint
async def trip_updates(request: Request) -> Response:
    positions, feed = await asyncio.to_thread(_vehicles, request)
    if feed is None:
        raise ResourceNotFound(
            "no static GTFS feed is registered for this tenant: trip updates refer to its "
            "stop times (cityos traffic run --through-hub registers the one it generates)"
        )
    from .transit import read_schedules

    schedules = await asyncio.to_thread(read_schedules, Path(feed["path"]))
    day = datetime.fromisoformat(feed["service_day_start"])
    predictions = predict_trips(
        positions, schedules, service_day_start=int(day.timestamp()), max_stops=10
    )
    return _answer(request, trip_updates_feed(predictions))


@endpoint
async def static_feed(request: Request) -> Response:
    tenant = tenant_of(request, read=True)
    feed = _feed(hub_of(request).store, tenant)
    if feed is None:
        raise ResourceNotFound("no static GTFS feed is registered for this tenant")
    return FileResponse(feed["path"], media_type="application/zip", filename="gtfs.zip")


def routes() -> list[Route]:
    return [
        Route(f"{BASE}/gtfs-rt/vehicle-positions", vehicle_positions, methods=["GET"]),
        Route(f"{BASE}/gtfs-rt/trip-updates", trip_updates, methods=["GET"]),
        Route(f"{BASE}/gtfs", static_feed, methods=["GET"]),
    ]
