"""GTFS-realtime for the buses: VehiclePositions and TripUpdates, and how late a bus is.

Inputs are plain dataclasses (:class:`BusPosition`) so that the feed can be fed from anything:
hub entities of buses reporting as devices, or SUMO directly. Feeds are built with the official
bindings (``google.transit.gtfs_realtime_pb2``), spec version 2.0, FULL_DATASET.

The delay estimate compares a bus's progress along its line with the timetable: between two
stops the schedule is interpolated by distance, at a stop the bus is on time anywhere between
the scheduled arrival and departure. Bus priority asks it whether a bus is late.

A bus that reports without a trip, or with a trip the timetable does not know, still appears
in VehiclePositions (a vehicle is real even when its trip is not) but gets no TripUpdate; this
is logged once per bus rather than raised, so one bad report never stops the feed.
"""

from __future__ import annotations

import bisect
import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.transit import gtfs_realtime_pb2 as rt

from .errors import TrafficError
from .gtfs import METRES_PER_DEGREE, StopTime

log = logging.getLogger(__name__)

GTFS_RT_VERSION = "2.0"
AT_STOP_TOLERANCE_M = 10.0
_reported: set[tuple[str, str]] = set()


class GtfsRealtimeError(TrafficError):
    """Bytes that are not a GTFS-realtime FeedMessage, or a request the timetable cannot answer."""


@dataclass(frozen=True, slots=True)
class BusPosition:
    """One bus's latest report. ``timestamp`` is POSIX seconds; bearing clockwise from north."""

    vehicle_id: str
    trip_id: str | None
    route_id: str | None
    lon: float
    lat: float
    bearing: float | None
    speed_mps: float | None
    timestamp: int
    delay_s: float | None = None
    next_stop_sequence: int | None = None
    stopped: bool = False  # standing at next_stop_sequence (STOPPED_AT) rather than on its way
    direction_id: int | None = None
    start_date: str | None = None  # service day, YYYYMMDD


@dataclass(frozen=True, slots=True)
class StopPrediction:
    """Expected arrival at one coming stop: the scheduled time shifted by the delay."""

    stop_sequence: int
    stop_id: str
    arrival_delay_s: int
    arrival_time: int | None = None  # POSIX seconds, when the service day's start is known


@dataclass(frozen=True, slots=True)
class TripPrediction:
    """A TripUpdate in plain form: the trip, its bus, its delay and the coming stops."""

    trip_id: str
    route_id: str | None
    vehicle_id: str | None
    timestamp: int
    delay_s: int
    stops: tuple[StopPrediction, ...]
    start_date: str | None = None
    direction_id: int | None = None


# --------------------------------------------------------------------------- delay


def scheduled_window(stop_times: Sequence[StopTime], distance_m: float) -> tuple[float, float]:
    """When the timetable has a bus at ``distance_m`` along its line: (earliest, latest).

    At a stop the window is its arrival..departure; between stops it is one instant,
    interpolated by distance; before the first stop and after the last the nearest
    segment's pace is extended.
    """
    if not stop_times:
        raise GtfsRealtimeError("a trip without stop times has no schedule to compare with")
    dists = [st.dist_m for st in stop_times]
    if any(math.isnan(d) for d in dists):
        raise GtfsRealtimeError("the stop times carry no distances (shape_dist_traveled)")
    for st in stop_times:
        if abs(distance_m - st.dist_m) <= AT_STOP_TOLERANCE_M:
            return float(st.arrival), float(st.departure)
    if len(stop_times) == 1:
        only = stop_times[0]
        instant = float(only.arrival if distance_m < only.dist_m else only.departure)
        return instant, instant
    i = bisect.bisect_right(dists, distance_m)
    if i == 0:  # before the first stop: that segment's pace, backwards from its arrival
        a, b = stop_times[0], stop_times[1]
        instant = a.arrival - (a.dist_m - distance_m) * _pace(a, b)
    elif i == len(stop_times):  # past the last stop: the last segment's pace, onwards
        a, b = stop_times[-2], stop_times[-1]
        instant = b.departure + (distance_m - b.dist_m) * _pace(a, b)
    else:
        a, b = stop_times[i - 1], stop_times[i]
        instant = a.departure + (distance_m - a.dist_m) * _pace(a, b)
    return instant, instant


def _pace(a: StopTime, b: StopTime) -> float:
    """Scheduled seconds per metre between two consecutive stops."""
    span = b.dist_m - a.dist_m
    return (b.arrival - a.departure) / span if span > 0 else 0.0


def estimate_delay(
    stop_times: Sequence[StopTime],
    now: float,
    *,
    distance_m: float | None = None,
    at_stop_sequence: int | None = None,
) -> float:
    """Seconds behind the timetable (negative: early) at ``now`` (same clock as the stop times).

    Give either how far the bus has come along its line (``distance_m``, the GTFS
    shape_dist_traveled scale: :meth:`LineVariant.distance_at` from SUMO, or
    :func:`distance_along_shape` from a GPS fix), or the stop it is serving. A bus standing
    at a stop counts as on time until the stop's scheduled departure, so there the figure is
    a lower bound on lateness; between stops it is the full delay.
    """
    if at_stop_sequence is not None:
        stop = next((st for st in stop_times if st.sequence == at_stop_sequence), None)
        if stop is None:
            raise GtfsRealtimeError(f"the trip has no stop with sequence {at_stop_sequence}")
        earliest, latest = float(stop.arrival), float(stop.departure)
    elif distance_m is not None:
        earliest, latest = scheduled_window(stop_times, distance_m)
    else:
        raise GtfsRealtimeError("estimate_delay needs distance_m or at_stop_sequence")
    if now > latest:
        return now - latest
    if now < earliest:
        return now - earliest
    return 0.0


@dataclass(frozen=True, slots=True)
class TripProgress:
    """Where a bus stands on its trip: what a :class:`BusPosition` needs beyond the fix."""

    delay_s: float
    next_stop_sequence: int | None  # None once past the last stop
    stopped: bool  # standing at next_stop_sequence


def trip_progress(
    stop_times: Sequence[StopTime], now: float, distance_m: float, speed_mps: float = 0.0
) -> TripProgress:
    """Delay, next stop and whether the bus is standing at it, from its progress along the line.

    A bus within a few metres of a stop and (almost) still is standing at it; otherwise its next
    stop is the first one ahead of it.
    """
    delay = estimate_delay(stop_times, now, distance_m=distance_m)
    for st in stop_times:
        if abs(distance_m - st.dist_m) <= AT_STOP_TOLERANCE_M and speed_mps < 0.5:
            return TripProgress(delay, st.sequence, True)
    ahead = next((st.sequence for st in stop_times if st.dist_m > distance_m), None)
    return TripProgress(delay, ahead, False)


def distance_along_shape(
    shape: Sequence[tuple[float, float, float]], lon: float, lat: float
) -> float:
    """Project a GPS fix onto a line's shape of (lon, lat, dist_m) points: distance along it.

    Works in a local flat frame around the fix (fine at city scale) and keeps the shape's own
    distance scale, so the answer compares with the stop times' dist_m.
    """
    if len(shape) < 2:
        raise GtfsRealtimeError("a shape needs at least two points to project onto")
    kx = METRES_PER_DEGREE * math.cos(math.radians(lat))
    ky = METRES_PER_DEGREE
    best = (math.inf, 0.0)
    for (lon1, lat1, d1), (lon2, lat2, d2) in zip(shape, shape[1:], strict=False):
        ax, ay = (lon1 - lon) * kx, (lat1 - lat) * ky
        bx, by = (lon2 - lon) * kx, (lat2 - lat) * ky
        dx, dy = bx - ax, by - ay
        seg = dx * dx + dy * dy
        t = 0.0 if seg == 0 else min(max(-(ax * dx + ay * dy) / seg, 0.0), 1.0)
        gap = math.hypot(ax + t * dx, ay + t * dy)
        if gap < best[0]:
            best = (gap, d1 + t * (d2 - d1))
    return best[1]


# --------------------------------------------------------------------------- predictions


def check_position(position: BusPosition) -> str | None:
    """What is wrong with a report (None when it can be published)."""
    if not position.vehicle_id:
        return "no vehicle id"
    if not (math.isfinite(position.lat) and -90.0 <= position.lat <= 90.0):
        return f"latitude {position.lat} out of range"
    if not (math.isfinite(position.lon) and -180.0 <= position.lon <= 180.0):
        return f"longitude {position.lon} out of range"
    if position.speed_mps is not None and not (
        math.isfinite(position.speed_mps) and position.speed_mps >= 0
    ):
        return f"speed {position.speed_mps} is not a speed"
    if position.bearing is not None and not math.isfinite(position.bearing):
        return f"bearing {position.bearing} is not an angle"
    return None


def _report_once(vehicle_id: str, reason: str) -> None:
    """Log a bad report once per bus and reason: a bus reports every few seconds."""
    if (vehicle_id, reason) not in _reported:
        _reported.add((vehicle_id, reason))
        log.warning("bus %s: %s", vehicle_id, reason)


def _latest(positions: Iterable[BusPosition]) -> list[BusPosition]:
    """One report per bus (its newest), valid ones only, in a stable order."""
    latest: dict[str, BusPosition] = {}
    for p in positions:
        problem = check_position(p)
        if problem is not None:
            _report_once(p.vehicle_id or "?", f"report skipped: {problem}")
            continue
        if p.vehicle_id not in latest or p.timestamp >= latest[p.vehicle_id].timestamp:
            latest[p.vehicle_id] = p
    return [latest[k] for k in sorted(latest)]


def predict_trip(
    position: BusPosition,
    stop_times: Sequence[StopTime],
    *,
    service_day_start: int | None = None,
    max_stops: int | None = None,
) -> TripPrediction:
    """The coming stops of the bus's trip, each expected ``delay_s`` after its schedule.

    The delay is carried forward unchanged (the usual GTFS-realtime propagation). Without a
    next stop in the report, the coming stops are those not yet due at the report's time.
    """
    if position.trip_id is None or position.delay_s is None:
        raise GtfsRealtimeError(f"bus {position.vehicle_id}: a prediction needs a trip and a delay")
    delay = int(round(position.delay_s))
    coming = _coming_stops(position, stop_times, delay, service_day_start)
    if max_stops is not None:
        coming = coming[:max_stops]
    stops = tuple(
        StopPrediction(
            st.sequence,
            st.stop_id,
            delay,
            None if service_day_start is None else service_day_start + st.arrival + delay,
        )
        for st in coming
    )
    return TripPrediction(
        trip_id=position.trip_id,
        route_id=position.route_id,
        vehicle_id=position.vehicle_id,
        timestamp=position.timestamp,
        delay_s=delay,
        stops=stops,
        start_date=position.start_date,
        direction_id=position.direction_id,
    )


def _coming_stops(
    position: BusPosition, stop_times: Sequence[StopTime], delay: int, day_start: int | None
) -> list[StopTime]:
    if position.next_stop_sequence is not None:
        return [st for st in stop_times if st.sequence >= position.next_stop_sequence]
    if day_start is None:
        return list(stop_times)
    now = position.timestamp - day_start
    return [st for st in stop_times if st.departure + delay >= now]


def predict_trips(
    positions: Iterable[BusPosition],
    schedules: Mapping[str, Sequence[StopTime]],
    *,
    service_day_start: int | None = None,
    max_stops: int | None = None,
) -> list[TripPrediction]:
    """Predictions for every bus that reports a known trip and a delay; others are logged."""
    out = []
    for p in _latest(positions):
        if p.trip_id is None:
            _report_once(p.vehicle_id, "reports no trip: position published, no trip update")
            continue
        if p.trip_id not in schedules:
            _report_once(p.vehicle_id, f"trip {p.trip_id!r} is not in the timetable")
            continue
        if p.delay_s is None:
            _report_once(p.vehicle_id, "reports no delay: no trip update")
            continue
        out.append(
            predict_trip(
                p,
                schedules[p.trip_id],
                service_day_start=service_day_start,
                max_stops=max_stops,
            )
        )
    return out


# --------------------------------------------------------------------------- feeds


def _header(feed: rt.FeedMessage, timestamp: int | None) -> None:
    feed.header.gtfs_realtime_version = GTFS_RT_VERSION
    feed.header.incrementality = rt.FeedHeader.FULL_DATASET
    feed.header.timestamp = int(time.time() if timestamp is None else timestamp)


def _trip_descriptor(
    target: rt.TripDescriptor,
    trip_id: str | None,
    route_id: str | None,
    direction_id: int | None,
    start_date: str | None,
) -> None:
    if trip_id:
        target.trip_id = trip_id
    if route_id:
        target.route_id = route_id
    if direction_id is not None:
        target.direction_id = direction_id
    if start_date:
        target.start_date = start_date
    target.schedule_relationship = rt.TripDescriptor.SCHEDULED


def vehicle_positions_feed(
    positions: Iterable[BusPosition], *, timestamp: int | None = None
) -> rt.FeedMessage:
    """A VehiclePositions FeedMessage: one entity per bus (its newest valid report)."""
    feed = rt.FeedMessage()
    _header(feed, timestamp)
    for p in _latest(positions):
        entity = feed.entity.add()
        entity.id = p.vehicle_id
        vp = entity.vehicle
        if p.trip_id or p.route_id:
            _trip_descriptor(vp.trip, p.trip_id, p.route_id, p.direction_id, p.start_date)
        vp.vehicle.id = p.vehicle_id
        vp.vehicle.label = p.vehicle_id
        vp.position.latitude = p.lat
        vp.position.longitude = p.lon
        if p.bearing is not None:
            vp.position.bearing = p.bearing % 360.0
        if p.speed_mps is not None:
            vp.position.speed = p.speed_mps
        if p.next_stop_sequence is not None:
            vp.current_stop_sequence = p.next_stop_sequence
            vp.current_status = (
                rt.VehiclePosition.STOPPED_AT if p.stopped else rt.VehiclePosition.IN_TRANSIT_TO
            )
        vp.timestamp = int(p.timestamp)
    return feed


def trip_updates_feed(
    predictions: Iterable[TripPrediction], *, timestamp: int | None = None
) -> rt.FeedMessage:
    """A TripUpdates FeedMessage from :func:`predict_trips`: arrival delays of coming stops."""
    feed = rt.FeedMessage()
    _header(feed, timestamp)
    for pred in predictions:
        entity = feed.entity.add()
        entity.id = pred.trip_id
        tu = entity.trip_update
        _trip_descriptor(tu.trip, pred.trip_id, pred.route_id, pred.direction_id, pred.start_date)
        if pred.vehicle_id:
            tu.vehicle.id = pred.vehicle_id
            tu.vehicle.label = pred.vehicle_id
        tu.timestamp = int(pred.timestamp)
        tu.delay = pred.delay_s
        for stop in pred.stops:
            update = tu.stop_time_update.add()
            update.stop_sequence = stop.stop_sequence
            update.stop_id = stop.stop_id
            update.arrival.delay = stop.arrival_delay_s
            if stop.arrival_time is not None:
                update.arrival.time = stop.arrival_time
            update.schedule_relationship = rt.TripUpdate.StopTimeUpdate.SCHEDULED
    return feed


def serialise(feed: rt.FeedMessage) -> bytes:
    """The protobuf bytes to serve (content type application/x-protobuf)."""
    return feed.SerializeToString()


def parse_feed(data: bytes) -> rt.FeedMessage:
    """Bytes back to a FeedMessage; anything else raises :class:`GtfsRealtimeError`."""
    feed = rt.FeedMessage()
    try:
        feed.ParseFromString(data)
    except DecodeError as exc:
        raise GtfsRealtimeError(f"not a GTFS-realtime FeedMessage: {exc}") from exc
    if not feed.header.gtfs_realtime_version:
        raise GtfsRealtimeError("not a GTFS-realtime FeedMessage: header has no version")
    return feed


def feed_as_dict(feed: rt.FeedMessage) -> dict[str, Any]:
    """The feed as JSON-ready dict (GTFS-realtime's field names), for debugging endpoints."""
    return json_format.MessageToDict(feed, preserving_proto_field_name=True)


def read_vehicle_positions(data: bytes) -> list[BusPosition]:
    """Parse a VehiclePositions feed back into :class:`BusPosition` (delay is not in it)."""
    out = []
    for entity in parse_feed(data).entity:
        if not entity.HasField("vehicle"):
            continue
        vp = entity.vehicle
        has_trip = vp.HasField("trip")
        has_stop = vp.HasField("current_stop_sequence")
        out.append(
            BusPosition(
                vehicle_id=vp.vehicle.id or entity.id,
                trip_id=(vp.trip.trip_id or None) if has_trip else None,
                route_id=(vp.trip.route_id or None) if has_trip else None,
                lon=vp.position.longitude,
                lat=vp.position.latitude,
                bearing=vp.position.bearing if vp.position.HasField("bearing") else None,
                speed_mps=vp.position.speed if vp.position.HasField("speed") else None,
                timestamp=vp.timestamp,
                next_stop_sequence=vp.current_stop_sequence if has_stop else None,
                stopped=has_stop and vp.current_status == rt.VehiclePosition.STOPPED_AT,
                direction_id=vp.trip.direction_id if vp.trip.HasField("direction_id") else None,
                start_date=vp.trip.start_date or None,
            )
        )
    return out


def read_trip_updates(data: bytes) -> list[TripPrediction]:
    """Parse a TripUpdates feed back into :class:`TripPrediction`."""
    out = []
    for entity in parse_feed(data).entity:
        if not entity.HasField("trip_update"):
            continue
        tu = entity.trip_update
        stops = tuple(
            StopPrediction(
                stop_sequence=u.stop_sequence,
                stop_id=u.stop_id,
                arrival_delay_s=u.arrival.delay,
                arrival_time=u.arrival.time if u.arrival.HasField("time") else None,
            )
            for u in tu.stop_time_update
        )
        out.append(
            TripPrediction(
                trip_id=tu.trip.trip_id,
                route_id=tu.trip.route_id or None,
                vehicle_id=tu.vehicle.id or None,
                timestamp=tu.timestamp,
                delay_s=tu.delay,
                stops=stops,
                start_date=tu.trip.start_date or None,
                direction_id=tu.trip.direction_id if tu.trip.HasField("direction_id") else None,
            )
        )
    return out
