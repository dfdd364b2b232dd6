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

The routes reach the hub only through the service's
:class:`~cityos.hub.client.HubClient` (``request.app.state.services["traffic"].client``, for
the request's tenant), which applies the caller's rules. The static feed a tenant publishes
is a ``GtfsFeed`` entity (:func:`register_feed`), read under the same rules.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from cityos.hub.api.common import endpoint, tenant_of
from cityos.hub.client import HubClient
from cityos.hub.errors import ResourceNotFound

from .gtfs import read_schedules
from .gtfs_rt import (
    BusPosition,
    feed_as_dict,
    predict_trips,
    serialise,
    trip_updates_feed,
    vehicle_positions_feed,
)

BASE = "/services/traffic"
FEED_ID = "urn:ngsi-ld:GtfsFeed:traffic"  # the static GTFS feed of a tenant, one per tenant
PROTOBUF = "application/x-protobuf"


def register_feed(client: HubClient, gtfs_zip: Path, service_day_start: datetime) -> None:
    """Tell the hub (the client's tenant) where its static GTFS feed is and the instant its
    service day starts (the timetable's 00:00:00): a ``GtfsFeed`` entity, replaced."""
    client.upsert(
        [
            {
                "id": FEED_ID,
                "type": "GtfsFeed",
                "path": {"type": "Property", "value": str(Path(gtfs_zip).resolve())},
                "serviceDayStart": {
                    "type": "Property",
                    "value": {"@type": "DateTime", "@value": service_day_start.isoformat()},
                },
            }
        ]
    )


def read_feed(client: HubClient) -> dict[str, Any] | None:
    """The registered feed (``path``, ``service_day_start``) if its file is still there and
    the caller may read it; else None."""
    try:
        entity = client.get(FEED_ID, fmt="keyValues")
    except ResourceNotFound:
        return None
    path = entity.get("path")
    start = entity.get("serviceDayStart")
    if isinstance(start, dict):
        start = start.get("@value")
    if not isinstance(path, str) or not isinstance(start, str) or not Path(path).is_file():
        return None
    return {"path": path, "service_day_start": start}


def client_of(request: Request) -> HubClient:
    """The service's hub client, for the request's tenant (the door decided it)."""
    ctx = request.app.state.services["traffic"]
    return ctx.client.for_tenant(tenant_of(request, read=True))


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


def _vehicles(client: HubClient) -> tuple[list[BusPosition], dict[str, Any] | None]:
    # every vehicle with a position is published; one without a trip gets no trip update
    return bus_positions(client.query(type="Vehicle", limit=10_000)), read_feed(client)


def _answer(request: Request, feed: Any) -> Response:
    if request.query_params.get("format") == "json":
        return JSONResponse(feed_as_dict(feed))
    return Response(serialise(feed), media_type=PROTOBUF)


@endpoint
async def vehicle_positions(request: Request) -> Response:
    positions, _ = await asyncio.to_thread(_vehicles, client_of(request))
    return _answer(request, vehicle_positions_feed(positions))


@endpoint
async def trip_updates(request: Request) -> Response:
    positions, feed = await asyncio.to_thread(_vehicles, client_of(request))
    if feed is None:
        raise ResourceNotFound(
            "no static GTFS feed is registered for this tenant: trip updates refer to its "
            "stop times (cityos traffic run --through-hub registers the one it generates)"
        )
    schedules = await asyncio.to_thread(read_schedules, Path(feed["path"]))
    day = datetime.fromisoformat(feed["service_day_start"])
    predictions = predict_trips(
        positions, schedules, service_day_start=int(day.timestamp()), max_stops=10
    )
    return _answer(request, trip_updates_feed(predictions))


@endpoint
async def static_feed(request: Request) -> Response:
    feed = await asyncio.to_thread(read_feed, client_of(request))
    if feed is None:
        raise ResourceNotFound("no static GTFS feed is registered for this tenant")
    return FileResponse(feed["path"], media_type="application/zip", filename="gtfs.zip")


def routes() -> list[Route]:
    return [
        Route(f"{BASE}/gtfs-rt/vehicle-positions", vehicle_positions, methods=["GET"]),
        Route(f"{BASE}/gtfs-rt/trip-updates", trip_updates, methods=["GET"]),
        Route(f"{BASE}/gtfs", static_feed, methods=["GET"]),
    ]
