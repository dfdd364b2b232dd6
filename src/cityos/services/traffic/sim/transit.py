"""Bus lines for a SUMO network, published as a GTFS feed and run by SUMO on the same timetable.

The RESCO scenarios carry no public transport, so bus priority needs lines generated on the
network: long bus-usable paths through the signalised junctions (``net.getShortestPath`` with
vClass ``bus`` between fringe edges), a stop every 300-500 m, a 5-10 minute headway over the
scenario's hour, all deterministic for a seed. One plan is written twice, so that what the
simulation runs is exactly what passengers are told:

* a GTFS feed (zip), validated with gtfs-kit;
* SUMO files: ``<busStop>`` elements and bus ``<vehicle>`` elements whose ``line`` is the GTFS
  ``route_id``, whose id is the GTFS ``trip_id``, and whose ``<stop>`` carry the timetable
  (``arrival`` = scheduled arrival, ``until`` = scheduled departure, ``duration`` = the dwell).

Times are seconds since the service day's midnight, which is also SUMO's clock: the RESCO
hours start at 25200 (07:00:00) or 57600 (16:00:00), so a stop time in the feed and the
simulation time a bus is due there are the same number.

Stop coordinates come from the network's own projection. A network without one (netconvert's
plain networks) is placed with its origin (x=0, y=0) at :data:`DEFAULT_ORIGIN`, near Phnom
Penh, x metres east and y metres north of it.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import math
import random
import warnings
import xml.sax
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from ..errors import NetworkFileError, TrafficError
from ..gtfs import METRES_PER_DEGREE, StopTime, gtfs_time

log = logging.getLogger(__name__)

DEFAULT_ORIGIN = (104.92, 11.56)  # lon, lat of a network's (0, 0) when it has no projection
BUS_TYPE = "cityos_bus"
STOP_LENGTH_M = 20.0
AGENCY_ID = "cityos"
SERVICE_ID = "daily"
_MAX_PAIRS = 900  # fringe pairs tried for line candidates; more are sampled with the seed
_SCHEDULE_SPEED_FACTOR = 0.8  # buses cruise below the limit
_STOP_LOSS_S = 8  # braking for a stop and pulling away again
_SIGNAL_ALLOWANCE_S = 12  # timetable allowance per signal crossed


class NoBusRouteError(TrafficError):
    """The network has no path that a bus may use long enough to carry a line."""


class GtfsValidationError(TrafficError):
    """The generated feed failed gtfs-kit's validation (a bug, or a bad network)."""


@dataclass(frozen=True, slots=True)
class BusStop:
    """A stop: GTFS ``stops.txt`` row and SUMO ``<busStop>`` in one."""

    stop_id: str
    name: str
    lane_id: str
    start_pos: float
    end_pos: float
    lon: float
    lat: float

    @property
    def edge_id(self) -> str:
        return self.lane_id.rsplit("_", 1)[0]


@dataclass(frozen=True, slots=True)
class LineVariant:
    """One direction of a line: its edges, its stops and the running times between them."""

    route_id: str
    direction_id: int
    edges: tuple[str, ...]
    edge_offsets: tuple[float, ...]  # distance from the path's start to each edge's start
    stop_ids: tuple[str, ...]
    stop_dists: tuple[float, ...]
    headsign: str
    shape: tuple[tuple[float, float, float], ...]  # (lon, lat, dist_m) along the path
    lead_in_s: int  # from leaving the first edge's start to the first stop
    run_s: tuple[int, ...]  # from stop i's departure to stop i+1's arrival
    dwell_s: int

    @property
    def shape_id(self) -> str:
        return f"{self.route_id}_{self.direction_id}"

    @property
    def length_m(self) -> float:
        return self.shape[-1][2] if self.shape else 0.0

    def distance_at(self, edge_id: str, lane_pos: float) -> float:
        """Distance along this path of a point given as SUMO edge + position (for the delay)."""
        try:
            index = self.edges.index(edge_id)
        except ValueError as exc:
            raise TrafficError(f"edge {edge_id!r} is not on line {self.shape_id}") from exc
        return self.edge_offsets[index] + lane_pos


@dataclass(frozen=True, slots=True)
class BusLine:
    """A GTFS route: one or two directions run at one headway."""

    route_id: str
    short_name: str
    long_name: str
    headway_s: int
    variants: tuple[LineVariant, ...]
    signals: tuple[str, ...]  # traffic-light ids the line crosses


@dataclass(frozen=True, slots=True)
class BusTrip:
    """One scheduled run: a GTFS trip and a SUMO vehicle with the same id."""

    trip_id: str
    route_id: str
    direction_id: int
    depart: int  # SUMO depart time at the path's first edge
    stop_times: tuple[StopTime, ...]


@dataclass(frozen=True)
class TransitPlan:
    """The generated lines, their trips and where the GTFS and SUMO files were written."""

    net_file: Path
    begin: float
    end: float
    seed: int
    stops: tuple[BusStop, ...]
    lines: tuple[BusLine, ...]
    trips: tuple[BusTrip, ...]
    gtfs_path: Path
    additional_file: Path
    route_file: Path
    validation: tuple[dict[str, Any], ...] = field(default=())

    def stop(self, stop_id: str) -> BusStop:
        return _by_id(self.stops, "stop_id", stop_id, "stop")

    def trip(self, trip_id: str) -> BusTrip:
        return _by_id(self.trips, "trip_id", trip_id, "trip")

    def line(self, route_id: str) -> BusLine:
        return _by_id(self.lines, "route_id", route_id, "line")

    def variant(self, trip_id: str) -> LineVariant:
        trip = self.trip(trip_id)
        line = self.line(trip.route_id)
        return next(v for v in line.variants if v.direction_id == trip.direction_id)

    def schedules(self) -> dict[str, tuple[StopTime, ...]]:
        """trip id -> its stop times: what the GTFS-realtime feed and the delay estimate need."""
        return {t.trip_id: t.stop_times for t in self.trips}


def _by_id(items: Iterable[Any], attr: str, value: str, what: str) -> Any:
    for item in items:
        if getattr(item, attr) == value:
            return item
    raise TrafficError(f"no {what} {value!r} in this transit plan")


# --------------------------------------------------------------------------- the network


def read_net(net_file: Path) -> Any:
    """Read a SUMO network with sumolib; a missing or corrupt file raises NetworkFileError."""
    import sumolib

    net_file = Path(net_file)
    if not net_file.is_file():
        raise NetworkFileError(f"network file {net_file} does not exist")
    try:
        net = sumolib.net.readNet(str(net_file))
    except (xml.sax.SAXException, ValueError, KeyError, AttributeError) as exc:
        raise NetworkFileError(f"network file {net_file} cannot be read: {exc}") from exc
    if not net.getEdges():
        raise NetworkFileError(f"network file {net_file} has no edges: is it a SUMO .net.xml?")
    return net


def to_lonlat(net: Any, x: float, y: float) -> tuple[float, float]:
    """WGS84 lon/lat of network coordinates: the net's projection, else the default origin."""
    if net.hasGeoProj():
        lon, lat = net.convertXY2LonLat(x, y)
        return float(lon), float(lat)
    lon0, lat0 = DEFAULT_ORIGIN
    lat = lat0 + y / METRES_PER_DEGREE
    lon = lon0 + x / (METRES_PER_DEGREE * math.cos(math.radians(lat0)))
    return lon, lat


def _bus_edges(net: Any) -> list[Any]:
    return [e for e in net.getEdges() if e.getFunction() == "" and e.allows("bus")]


def _is_entry(edge: Any) -> bool:
    """No way in except a U-turn from the edge's own reverse: where lines start."""
    start = edge.getFromNode()
    return all(
        e.getFromNode() == edge.getToNode()
        for e in start.getIncoming()
        if e.getFunction() == "" and e.allows("bus")
    )


def _is_exit(edge: Any) -> bool:
    end = edge.getToNode()
    return all(
        e.getToNode() == edge.getFromNode()
        for e in end.getOutgoing()
        if e.getFunction() == "" and e.allows("bus")
    )


@dataclass(frozen=True, slots=True)
class _Path:
    edges: tuple[Any, ...]
    length: float
    signals: tuple[str, ...]

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(e.getID() for e in self.edges)


def _signals_on(edges: Sequence[Any]) -> tuple[str, ...]:
    """Traffic lights controlling the turns the path takes, in order, once each."""
    seen: list[str] = []
    for a, b in zip(edges, edges[1:], strict=False):
        for conn in a.getConnections(b):
            tls = conn.getTLSID()
            if tls and tls not in seen:
                seen.append(tls)
    return tuple(seen)


def _make_path(net: Any, start: Any, goal: Any) -> _Path | None:
    edges, _cost = net.getShortestPath(start, goal, vClass="bus")
    if not edges:
        return None
    length = _edge_offsets(edges)[-1] + edges[-1].getLength()
    return _Path(tuple(edges), length, _signals_on(edges))


def _candidate_paths(net: Any, rng: random.Random) -> list[_Path]:
    """Shortest bus paths between the network's fringe edges (sampled when there are many)."""
    edges = _bus_edges(net)
    entries = sorted((e for e in edges if _is_entry(e)), key=lambda e: e.getID()) or edges
    exits = sorted((e for e in edges if _is_exit(e)), key=lambda e: e.getID()) or edges
    side = int(math.sqrt(_MAX_PAIRS))
    if len(entries) * len(exits) > _MAX_PAIRS:
        entries = sorted(rng.sample(entries, min(side, len(entries))), key=lambda e: e.getID())
        exits = sorted(rng.sample(exits, min(side, len(exits))), key=lambda e: e.getID())
    paths = []
    for a in entries:
        for b in exits:
            if a != b and b.getToNode() == a.getFromNode():
                continue  # a U-turn is no line
            path = _make_path(net, a, b)
            if path is not None:
                paths.append(path)
    return paths


def _choose_paths(paths: list[_Path], n_lines: int) -> list[_Path]:
    """Greedy: each line covers the most signals not yet served and overlaps little."""
    chosen: list[_Path] = []
    covered: set[str] = set()
    while len(chosen) < n_lines:
        fresh = [p for p in paths if all(_overlap(p, c) < 0.5 for c in chosen)]
        if not fresh:
            break
        best = max(
            fresh,
            key=lambda p: (
                len(set(p.signals) - covered),
                len(p.signals),
                round(p.length),
                [e.getID() for e in p.edges],
            ),
        )
        chosen.append(best)
        covered.update(best.signals)
    return chosen


def _overlap(a: _Path, b: _Path) -> float:
    """Share of a's length that runs on b's edges or on their reverses (same street)."""
    b_nodes = {frozenset((e.getFromNode().getID(), e.getToNode().getID())) for e in b.edges}
    shared = sum(
        e.getLength()
        for e in a.edges
        if frozenset((e.getFromNode().getID(), e.getToNode().getID())) in b_nodes
    )
    return shared / a.length if a.length else 1.0


def _reverse_edge(edge: Any) -> Any | None:
    for e in edge.getToNode().getOutgoing():
        if e.getToNode() == edge.getFromNode() and e.getFunction() == "" and e.allows("bus"):
            return e
    return None


def _return_path(
    net: Any, path: _Path, candidates: Sequence[_Path], min_length_m: float
) -> _Path | None:
    """The way back along the same streets: the exact reverse when the streets are two-way for
    buses, else the candidate that runs the most of the way back (one-way pairs)."""
    start, goal = _reverse_edge(path.edges[-1]), _reverse_edge(path.edges[0])
    back = _make_path(net, start, goal) if start is not None and goal is not None else None
    if back is not None and back.length >= min_length_m:
        return back
    forward = {e.getID() for e in path.edges}
    others = [
        c
        for c in candidates
        if c.length >= min_length_m and not forward & c.ids and _overlap(c, path) >= 0.5
    ]
    if not others:
        return None
    return max(
        others,
        key=lambda c: (
            round(_overlap(c, path) + _overlap(path, c), 3),
            [e.getID() for e in c.edges],
        ),
    )


# --------------------------------------------------------------------------- stops


def _stop_lane(edge: Any, next_edge: Any | None) -> Any | None:
    """Rightmost bus lane that leads on to the next edge, so a bus can leave the stop."""
    for lane in edge.getLanes():
        if not lane.allows("bus"):
            continue
        if next_edge is None or any(c.getTo() == next_edge for c in lane.getOutgoing()):
            return lane
    return None


class _StopRegistry:
    """Stops shared between lines: a line reuses a stop already on its lane nearby."""

    def __init__(self, net: Any) -> None:
        self.net = net
        self.stops: dict[str, BusStop] = {}
        self.by_lane: dict[str, list[str]] = {}

    def candidate(self, lane: Any, centre: float) -> BusStop:
        """The stop already on this lane within 100 m of ``centre``, else a new one (unsaved)."""
        length = lane.getLength()
        for stop_id in self.by_lane.get(lane.getID(), []):
            stop = self.stops[stop_id]
            if abs((stop.start_pos + stop.end_pos) / 2 - centre) < 100.0:
                return stop
        start = min(max(centre - STOP_LENGTH_M / 2, 1.0), length - STOP_LENGTH_M - 1.0)
        end = start + STOP_LENGTH_M
        stop_id = f"S{len(self.stops) + 1:03d}"
        x, y = _position_on(lane.getShape(), (start + end) / 2)
        lon, lat = to_lonlat(self.net, x, y)
        street = lane.getEdge().getName() or f"edge {lane.getEdge().getID()}"
        name = f"{street} ({stop_id})"
        return BusStop(stop_id, name, lane.getID(), round(start, 2), round(end, 2), lon, lat)

    def keep(self, stop: BusStop) -> None:
        if stop.stop_id not in self.stops:
            self.stops[stop.stop_id] = stop
            self.by_lane.setdefault(stop.lane_id, []).append(stop.stop_id)


def _position_on(shape: Sequence[tuple[float, float]], offset: float) -> tuple[float, float]:
    from sumolib.geomhelper import positionAtShapeOffset

    x, y = positionAtShapeOffset(shape, offset)[:2]
    return float(x), float(y)


def _place_stops(
    edges: Sequence[Any], registry: _StopRegistry, rng: random.Random, spacing: tuple[float, float]
) -> list[tuple[BusStop, float]]:
    """A stop near the start, then one every ``spacing`` metres, and one near the end."""
    offsets = _edge_offsets(edges)
    length = offsets[-1] + edges[-1].getLength()
    min_edge = STOP_LENGTH_M + 12.0
    placed: list[tuple[BusStop, float]] = []
    target = 20.0
    while target < length:
        spot = _stop_at(edges, offsets, target, min_edge, registry, placed)
        if spot is None:
            break
        placed.append(spot)
        target = spot[1] + rng.uniform(*spacing)
    last = placed[-1][1] if placed else 0.0
    if length - last > spacing[0] / 2:
        end_spot = _stop_at(edges, offsets, length - 12.0, min_edge, registry, placed, back=True)
        if end_spot is not None and end_spot[1] > last + 50.0:
            placed.append(end_spot)
    return placed


def _stop_at(
    edges: Sequence[Any],
    offsets: Sequence[float],
    target: float,
    min_edge: float,
    registry: _StopRegistry,
    placed: list[tuple[BusStop, float]],
    back: bool = False,
) -> tuple[BusStop, float] | None:
    """The stop nearest ``target`` on an edge long enough to hold one (searching on, or back)."""
    index = max(i for i, off in enumerate(offsets) if off <= target)
    order = range(index, -1, -1) if back else range(index, len(edges))
    previous = placed[-1][1] if placed else -math.inf
    for i in order:
        edge = edges[i]
        nxt = edges[i + 1] if i + 1 < len(edges) else None
        lane = _stop_lane(edge, nxt)
        if lane is None or lane.getLength() < min_edge:
            continue
        centre = min(max(target - offsets[i], 16.0), lane.getLength() - 16.0)
        stop = registry.candidate(lane, centre)
        dist = offsets[i] + stop.end_pos
        if dist > previous + 50.0 and all(s.stop_id != stop.stop_id for s, _ in placed):
            registry.keep(stop)
            return stop, dist
    return None


def _edge_offsets(edges: Sequence[Any]) -> list[float]:
    """Distance from the path's start to each edge's start, junction crossings included.

    A junction is counted as the straight gap between one edge's end and the next one's
    start, close to SUMO's internal lane, so that distances match a bus's odometer.
    """
    offsets, total = [], 0.0
    for i, edge in enumerate(edges):
        if i:
            total += math.dist(edges[i - 1].getShape()[-1], edge.getShape()[0])
        offsets.append(total)
        total += edge.getLength()
    return offsets


# --------------------------------------------------------------------------- timetable


def _run_time(edges: Sequence[Any], offsets: Sequence[float], a: float, b: float) -> float:
    """Cruise time from distance a to distance b along the path, at scheduled speed."""
    total = 0.0
    for edge, off in zip(edges, offsets, strict=True):
        lo, hi = max(a, off), min(b, off + edge.getLength())
        if hi > lo:
            total += (hi - lo) / (edge.getSpeed() * _SCHEDULE_SPEED_FACTOR)
    return total


def _signals_between(path: _Path, offsets: Sequence[float], a: float, b: float) -> int:
    count = 0
    for i, (x, y) in enumerate(zip(path.edges, path.edges[1:], strict=False)):
        junction_at = offsets[i] + x.getLength()
        if a < junction_at <= b and any(c.getTLSID() for c in x.getConnections(y)):
            count += 1
    return count


def _make_variant(
    net: Any,
    route_id: str,
    direction: int,
    path: _Path,
    registry: _StopRegistry,
    rng: random.Random,
    spacing: tuple[float, float],
    dwell_s: int,
) -> LineVariant | None:
    placed = _place_stops(path.edges, registry, rng, spacing)
    if len(placed) < 2:
        return None
    offsets = _edge_offsets(path.edges)
    dists = [d for _, d in placed]
    lead_in = math.ceil(_run_time(path.edges, offsets, 0.0, dists[0]) + _STOP_LOSS_S / 2)
    runs = tuple(
        math.ceil(
            _run_time(path.edges, offsets, a, b)
            + _STOP_LOSS_S
            + _SIGNAL_ALLOWANCE_S * _signals_between(path, offsets, a, b)
        )
        for a, b in zip(dists, dists[1:], strict=False)
    )
    last_stop = placed[-1][0]
    return LineVariant(
        route_id=route_id,
        direction_id=direction,
        edges=tuple(e.getID() for e in path.edges),
        edge_offsets=tuple(round(o, 2) for o in offsets),
        stop_ids=tuple(s.stop_id for s, _ in placed),
        stop_dists=tuple(round(d, 2) for d in dists),
        headsign=last_stop.name,
        shape=_shape(net, path.edges),
        lead_in_s=lead_in,
        run_s=runs,
        dwell_s=dwell_s,
    )


def _shape(net: Any, edges: Sequence[Any]) -> tuple[tuple[float, float, float], ...]:
    """The path's geometry as (lon, lat, distance) points, on the :func:`_edge_offsets` scale."""
    points: list[tuple[float, float, float]] = []
    for edge, offset in zip(edges, _edge_offsets(edges), strict=True):
        shape = edge.getShape()
        geometric = sum(math.dist(p, q) for p, q in zip(shape, shape[1:], strict=False)) or 1.0
        scale = edge.getLength() / geometric
        walked = 0.0
        for i, (x, y) in enumerate(shape):
            if i:
                walked += math.dist(shape[i - 1], (x, y))
            lon, lat = to_lonlat(net, x, y)
            dist = round(offset + walked * scale, 2)
            if points and dist <= points[-1][2]:
                continue
            points.append((round(lon, 7), round(lat, 7), dist))
    return tuple(points)


def _trip_stop_times(variant: LineVariant, depart: int) -> tuple[StopTime, ...]:
    times = []
    arrival = depart + variant.lead_in_s
    for i, (stop_id, dist) in enumerate(zip(variant.stop_ids, variant.stop_dists, strict=True)):
        if i:
            arrival = times[-1].departure + variant.run_s[i - 1]
        dwell = variant.dwell_s if 0 < i < len(variant.stop_ids) - 1 else 0
        times.append(StopTime(stop_id, i + 1, arrival, arrival + dwell, dist))
    return tuple(times)


def _make_trips(line: BusLine, begin: float, end: float, rng: random.Random) -> list[BusTrip]:
    trips = []
    for variant in line.variants:
        t = int(math.ceil(begin)) + rng.randrange(0, line.headway_s, 10)
        n = 0
        while t < end:
            trip_id = f"{line.route_id}_{variant.direction_id}_{n:03d}"
            stop_times = _trip_stop_times(variant, t)
            trips.append(BusTrip(trip_id, line.route_id, variant.direction_id, t, stop_times))
            t += line.headway_s
            n += 1
    return trips


# --------------------------------------------------------------------------- the plan


def make_bus_lines(
    net_file: Path,
    begin: float,
    end: float,
    seed: int,
    out_dir: Path,
    *,
    n_lines: int = 3,
    min_length_m: float = 250.0,
    stop_spacing_m: tuple[float, float] = (300.0, 500.0),
    headways_s: Sequence[int] = (300, 360, 420, 480, 540, 600),
    dwell_s: int = 20,
    validate: bool = True,
    start_date: date = date(2025, 1, 1),
    end_date: date = date(2035, 12, 31),
    timezone: str = "Asia/Phnom_Penh",
) -> TransitPlan:
    """Generate up to ``n_lines`` bus lines on ``net_file`` and write GTFS and SUMO files.

    Deterministic for ``seed``. Raises :class:`NoBusRouteError` when no bus-usable path of
    ``min_length_m`` exists, :class:`NetworkFileError` for a missing or corrupt network and
    :class:`GtfsValidationError` if gtfs-kit finds an error in the written feed.
    """
    if end <= begin:
        raise TrafficError(f"the timetable needs end > begin (got begin={begin}, end={end})")
    net = read_net(Path(net_file))
    rng = random.Random(seed)
    paths = _candidate_paths(net, rng)
    longest = max((p.length for p in paths), default=0.0)
    chosen = _choose_paths([p for p in paths if p.length >= min_length_m], n_lines)
    settings = LineSettings(min_length_m, tuple(stop_spacing_m), tuple(headways_s), dwell_s)
    builder = _LineBuilder(net, rng, paths, settings)
    lines = [line for i, p in enumerate(chosen, 1) if (line := builder.line(f"L{i}", p))]
    if not lines:
        raise NoBusRouteError(
            f"network {net_file} has no path of at least {min_length_m:.0f} m that buses may "
            f"use with room for two stops (longest found: {longest:.0f} m); "
            "bus lines need connected edges that allow vClass 'bus'"
        )
    trips = [t for line in lines for t in _make_trips(line, begin, end, rng)]
    trips.sort(key=lambda t: (t.depart, t.trip_id))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = TransitPlan(
        net_file=Path(net_file),
        begin=begin,
        end=end,
        seed=seed,
        stops=_used_stops(builder.registry, lines),
        lines=tuple(lines),
        trips=tuple(trips),
        gtfs_path=out_dir / "gtfs.zip",
        additional_file=out_dir / "bus_stops.add.xml",
        route_file=out_dir / "buses.rou.xml",
    )
    write_gtfs(plan, plan.gtfs_path, start_date=start_date, end_date=end_date, timezone=timezone)
    write_sumo_stops(plan, plan.additional_file)
    write_sumo_buses(plan, plan.route_file)
    if not validate:
        return plan
    problems = validate_gtfs(plan.gtfs_path)
    errors = [p for p in problems if p["type"] == "error"]
    if errors:
        raise GtfsValidationError(f"generated feed {plan.gtfs_path} is invalid: {errors}")
    return dataclasses.replace(plan, validation=tuple(problems))


def _used_stops(registry: _StopRegistry, lines: Sequence[BusLine]) -> tuple[BusStop, ...]:
    """Stops some line calls at (a direction dropped for want of stops leaves none behind)."""
    used = {sid for line in lines for v in line.variants for sid in v.stop_ids}
    return tuple(s for s in registry.stops.values() if s.stop_id in used)


@dataclass(frozen=True, slots=True)
class LineSettings:
    """How lines are laid out: minimum length, stop spacing, headways, dwell at a stop."""

    min_length_m: float = 250.0
    stop_spacing_m: tuple[float, float] = (300.0, 500.0)
    headways_s: tuple[int, ...] = (300, 360, 420, 480, 540, 600)
    dwell_s: int = 20


class _LineBuilder:
    """Turns chosen paths into lines, sharing one stop registry and one seeded generator."""

    def __init__(
        self, net: Any, rng: random.Random, candidates: Sequence[_Path], settings: LineSettings
    ) -> None:
        self.net, self.rng, self.candidates, self.settings = net, rng, candidates, settings
        self.registry = _StopRegistry(net)

    def variant(self, route_id: str, direction: int, path: _Path) -> LineVariant | None:
        return _make_variant(
            self.net,
            route_id,
            direction,
            path,
            self.registry,
            self.rng,
            self.settings.stop_spacing_m,
            self.settings.dwell_s,
        )

    def line(self, route_id: str, path: _Path) -> BusLine | None:
        out = self.variant(route_id, 0, path)
        if out is None:
            return None
        variants = [out]
        back = _return_path(self.net, path, self.candidates, self.settings.min_length_m)
        ret = self.variant(route_id, 1, back) if back is not None else None
        if ret is not None:
            variants.append(ret)
        stops = self.registry.stops
        signals = path.signals + (back.signals if back is not None else ())
        return BusLine(
            route_id=route_id,
            short_name=route_id[1:],
            long_name=f"{stops[out.stop_ids[0]].name} - {stops[out.stop_ids[-1]].name}",
            headway_s=int(self.rng.choice(list(self.settings.headways_s))),
            variants=tuple(variants),
            signals=tuple(dict.fromkeys(signals)),
        )


# --------------------------------------------------------------------------- GTFS


def _csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _gtfs_tables(
    plan: TransitPlan, start_date: date, end_date: date, timezone: str
) -> dict[str, str]:
    agency = [
        {
            "agency_id": AGENCY_ID,
            "agency_name": "CityOS generated bus lines",
            "agency_url": "https://example.org/cityos",
            "agency_timezone": timezone,
            "agency_lang": "en",
        }
    ]
    stops = [
        {
            "stop_id": s.stop_id,
            "stop_name": s.name,
            "stop_lat": f"{s.lat:.7f}",
            "stop_lon": f"{s.lon:.7f}",
            "location_type": 0,
        }
        for s in plan.stops
    ]
    routes = [
        {
            "route_id": line.route_id,
            "agency_id": AGENCY_ID,
            "route_short_name": line.short_name,
            "route_long_name": line.long_name,
            "route_type": 3,
        }
        for line in plan.lines
    ]
    days = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    calendar = [
        {
            "service_id": SERVICE_ID,
            **dict.fromkeys(days, 1),
            "start_date": start_date.strftime("%Y%m%d"),
            "end_date": end_date.strftime("%Y%m%d"),
        }
    ]
    shapes = [
        {
            "shape_id": v.shape_id,
            "shape_pt_lat": f"{lat:.7f}",
            "shape_pt_lon": f"{lon:.7f}",
            "shape_pt_sequence": i,
            "shape_dist_traveled": f"{dist:.2f}",
        }
        for line in plan.lines
        for v in line.variants
        for i, (lon, lat, dist) in enumerate(v.shape)
    ]
    trips = [
        {
            "route_id": t.route_id,
            "service_id": SERVICE_ID,
            "trip_id": t.trip_id,
            "trip_headsign": plan.variant(t.trip_id).headsign,
            "direction_id": t.direction_id,
            "shape_id": f"{t.route_id}_{t.direction_id}",
        }
        for t in plan.trips
    ]
    stop_times = [
        {
            "trip_id": t.trip_id,
            "arrival_time": gtfs_time(st.arrival),
            "departure_time": gtfs_time(st.departure),
            "stop_id": st.stop_id,
            "stop_sequence": st.sequence,
            "timepoint": 1,
            "shape_dist_traveled": f"{st.dist_m:.2f}",
        }
        for t in plan.trips
        for st in t.stop_times
    ]
    feed_info = [
        {
            "feed_publisher_name": "CityOS",
            "feed_publisher_url": "https://example.org/cityos",
            "feed_lang": "en",
            "feed_start_date": start_date.strftime("%Y%m%d"),
            "feed_end_date": end_date.strftime("%Y%m%d"),
            "feed_version": f"seed-{plan.seed}",
        }
    ]
    return {
        "agency.txt": _csv(agency, list(agency[0])),
        "stops.txt": _csv(stops, list(stops[0])),
        "routes.txt": _csv(routes, list(routes[0])),
        "calendar.txt": _csv(calendar, list(calendar[0])),
        "shapes.txt": _csv(shapes, list(shapes[0])),
        "trips.txt": _csv(trips, list(trips[0])),
        "stop_times.txt": _csv(stop_times, list(stop_times[0])),
        "feed_info.txt": _csv(feed_info, list(feed_info[0])),
    }


def write_gtfs(
    plan: TransitPlan,
    path: Path,
    *,
    start_date: date = date(2025, 1, 1),
    end_date: date = date(2035, 12, 31),
    timezone: str = "Asia/Phnom_Penh",
) -> Path:
    """Write the plan as a GTFS zip (fixed file dates, so the same seed gives the same bytes)."""
    tables = _gtfs_tables(plan, start_date, end_date, timezone)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in tables.items():
            info = zipfile.ZipInfo(name, date_time=(2025, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text)
    return path


def validate_gtfs(path: Path) -> list[dict[str, Any]]:
    """gtfs-kit's validation of a feed: a list of {type, message, table, rows} problems.

    ``Feed.validate`` exists up to gtfs-kit 9.0.0 (later releases dropped validation); with a
    gtfs-kit that lacks it the list holds one warning saying so instead of failing.
    """
    import gtfs_kit

    feed = gtfs_kit.read_feed(Path(path), dist_units="m")
    if not hasattr(feed, "validate"):
        message = "this gtfs-kit has no validator (pin gtfs-kit==9.0.0); feed not validated"
        log.warning(message)
        return [{"type": "warning", "message": message, "table": "", "rows": []}]
    with warnings.catch_warnings():  # gtfs-kit 9 uses pandas calls that pandas 3 deprecates
        warnings.filterwarnings("ignore", module="gtfs_kit")
        report = feed.validate(as_df=False) if _takes_as_df(feed.validate) else feed.validate()
    if hasattr(report, "to_dict"):
        return [dict(r) for r in report.to_dict("records")]
    return [dict(zip(("type", "message", "table", "rows"), r, strict=False)) for r in report]


def _takes_as_df(func: Any) -> bool:
    import inspect

    return "as_df" in inspect.signature(func).parameters


# --------------------------------------------------------------------------- SUMO


def write_sumo_stops(plan: TransitPlan, path: Path) -> Path:
    """An additional file with one ``<busStop>`` per GTFS stop (same id, lines listed)."""
    lines_at: dict[str, list[str]] = {}
    for line in plan.lines:
        for variant in line.variants:
            for stop_id in variant.stop_ids:
                lines_at.setdefault(stop_id, [])
                if line.route_id not in lines_at[stop_id]:
                    lines_at[stop_id].append(line.route_id)
    rows = [
        f"    <busStop id={quoteattr(s.stop_id)} lane={quoteattr(s.lane_id)} "
        f'startPos="{s.start_pos:.2f}" endPos="{s.end_pos:.2f}" '
        f"name={quoteattr(s.name)} lines={quoteattr(' '.join(lines_at.get(s.stop_id, [])))}/>\n"
        for s in plan.stops
    ]
    path.write_text("<additional>\n" + "".join(rows) + "</additional>\n")
    return path


def write_sumo_buses(plan: TransitPlan, path: Path) -> Path:
    """Bus vehicles, one per GTFS trip (id = trip_id, line = route_id), stops on the timetable."""
    parts = [
        "<routes>\n",
        f'    <vType id="{BUS_TYPE}" vClass="bus" length="12" minGap="2.5" accel="1.2" '
        'decel="4.0" sigma="0.5" personCapacity="85" guiShape="bus"/>\n',
    ]
    for line in plan.lines:
        for v in line.variants:
            parts.append(f'    <route id="{v.shape_id}" edges="{" ".join(v.edges)}"/>\n')
    for trip in plan.trips:
        parts.append(
            f'    <vehicle id={quoteattr(trip.trip_id)} type="{BUS_TYPE}" '
            f'route="{trip.route_id}_{trip.direction_id}" depart="{trip.depart}" '
            f'departLane="first" departPos="base" line={quoteattr(trip.route_id)}>\n'
        )
        for st in trip.stop_times:
            dwell = max(st.departure - st.arrival, 1)
            parts.append(
                f'        <stop busStop={quoteattr(st.stop_id)} arrival="{st.arrival}" '
                f'duration="{dwell}" until="{st.departure}"/>\n'
            )
        parts.append("    </vehicle>\n")
    parts.append("</routes>\n")
    path.write_text("".join(parts))
    return path
