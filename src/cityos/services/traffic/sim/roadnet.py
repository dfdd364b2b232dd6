"""The sample district as a SUMO road network, with a morning hour of traffic on it.

:func:`district_network` turns :data:`~cityos.twin.streets.STREETS` into netconvert's plain
XML and builds a geo-referenced ``.net.xml``:

* the waypoints are hand-traced, so a street whose end stops short of (or runs just past)
  another street within :data:`SNAP_M` is snapped onto it: east–west streets start on
  Monivong Blvd and end on Sisowath Quay, Norodom Blvd starts on Street 106;
* crossings are found geometrically (shapely) and become junctions shared by both streets;
  points closer than :data:`MERGE_M` (a crossing next to a waypoint) are one junction;
* one edge per stretch between junctions, both ways unless the street is one-way, with the
  street's lanes, speed and name; ids read ``norodom-blvd-3`` and ``-norodom-blvd-3``;
* junctions where two primary/secondary streets meet get a fixed-time signal (netconvert's
  static program), the others are priority junctions (bigger streets have the way);
* node coordinates are lon/lat and netconvert projects them with ``--proj.utm`` (UTM 48N), so
  the network carries a ``projParameter`` and ``convertXY2LonLat`` gives back the district.

:func:`district_demand` writes car and motorbike flows between the network's fringe edges for
one hour, on routes computed with sumolib and scaled so that the busiest stretch carries
:data:`BUSIEST_LOAD` of its street's ``capacity_vph``. :func:`district_scenario` builds both
and returns the traffic service's :class:`~cityos.services.traffic.sim.scenarios.Scenario`.
"""

from __future__ import annotations

import math
import random
import subprocess
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from shapely.geometry import LineString, Point

from cityos.twin.geo import M_PER_DEG_LAT, LonLat, m_per_deg_lon
from cityos.twin.streets import STREETS, Street

from ..errors import NetworkFileError, TrafficError
from .layout import read_network
from .scenarios import Scenario, sumo_binary

SCENARIO_NAME = "phnom-penh-daun-penh"
SNAP_M = 35.0  # a street end this close to another street is snapped onto it
MERGE_M = 12.0  # junction candidates this close together are one junction
SIGNAL_CLASSES = frozenset({"primary", "secondary"})
EDGE_PRIORITY = {"primary": 4, "secondary": 3, "tertiary": 2, "residential": 1}
BUSIEST_LOAD = 0.55  # share of capacity_vph on the busiest stretch at scale=1
MOTORBIKE_SHARE = 0.65  # Phnom Penh traffic is mostly motorbikes
MIN_FLOW_VPH = 2.0  # smaller origin-destination flows are dropped
_ORIGIN: LonLat = (104.915, 11.560)  # of the metric frame used for the geometry only


# --------------------------------------------------------------------------- geometry


def _to_xy(p: LonLat) -> tuple[float, float]:
    return (
        (p[0] - _ORIGIN[0]) * m_per_deg_lon(_ORIGIN[1]),
        (p[1] - _ORIGIN[1]) * M_PER_DEG_LAT,
    )


def _to_lonlat(x: float, y: float) -> LonLat:
    return (_ORIGIN[0] + x / m_per_deg_lon(_ORIGIN[1]), _ORIGIN[1] + y / M_PER_DEG_LAT)


@dataclass(frozen=True, slots=True)
class _Mark:
    """A junction candidate on one street: where along it, and whether streets meet there."""

    street: str
    along: float
    x: float
    y: float
    crossing: bool
    waypoint: int | None = None


@dataclass(frozen=True, slots=True)
class Junction:
    """A node of the plain network: id, lon/lat, the streets meeting there, its type."""

    node_id: str
    lon: float
    lat: float
    streets: tuple[str, ...]
    kind: str  # "traffic_light" or "priority"


@dataclass(frozen=True, slots=True)
class Link:
    """An edge of the plain network, along one street between two junctions."""

    edge_id: str
    street: Street
    from_node: str
    to_node: str


@dataclass(frozen=True)
class PlainNetwork:
    """The district as netconvert input: junctions and edges derived from the streets."""

    junctions: tuple[Junction, ...]
    links: tuple[Link, ...]
    snapped: dict[tuple[str, int], str]  # (street slug, end index) -> street snapped onto


def _snap_ends(streets: Sequence[Street]) -> tuple[dict[str, LineString], dict, list[_Mark]]:
    """Street lines (metres) with ends moved onto a street within SNAP_M, and those T points."""
    lines = {s.slug: LineString([_to_xy(p) for p in s.waypoints]) for s in streets}
    snapped: dict[tuple[str, int], str] = {}
    tees: list[_Mark] = []
    for street in streets:
        for end in (0, len(street.waypoints) - 1):
            coords = list(lines[street.slug].coords)
            tip = Point(coords[end])
            near = sorted(
                (lines[o.slug].distance(tip), o.slug) for o in streets if o.slug != street.slug
            )
            if not near or near[0][0] > SNAP_M:
                continue
            other = lines[near[0][1]]
            along = other.project(tip)
            spot = other.interpolate(along)
            coords[end] = (spot.x, spot.y)
            lines[street.slug] = LineString(coords)
            snapped[(street.slug, end)] = near[0][1]
            tees.append(_Mark(near[0][1], along, spot.x, spot.y, crossing=True))
    return lines, snapped, tees


def _crossings(lines: dict[str, LineString]) -> list[_Mark]:
    marks: list[_Mark] = []
    slugs = list(lines)
    for i, a in enumerate(slugs):
        for b in slugs[i + 1 :]:
            meet = lines[a].intersection(lines[b])
            if meet.is_empty:
                continue
            parts = getattr(meet, "geoms", [meet])
            points = [Point(c) for part in parts for c in part.coords]
            for p in points:
                for slug in (a, b):
                    marks.append(_Mark(slug, lines[slug].project(p), p.x, p.y, crossing=True))
    return marks


def _clusters(marks: Sequence[_Mark]) -> list[list[int]]:
    """Union-find over marks closer than MERGE_M; clusters in a stable order."""
    parent = list(range(len(marks)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(marks):
        for j in range(i + 1, len(marks)):
            b = marks[j]
            if math.hypot(a.x - b.x, a.y - b.y) < MERGE_M:
                parent[find(j)] = find(i)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(marks)):
        groups[find(i)].append(i)
    return sorted(groups.values(), key=lambda g: min(g))


def plain_network(streets: Sequence[Street] = STREETS) -> PlainNetwork:
    """Junctions and edges of the district (no SUMO needed): what netconvert is given."""
    if len({s.slug for s in streets}) != len(streets):
        raise TrafficError("street slugs must be unique")
    by_slug = {s.slug: s for s in streets}
    lines, snapped, tees = _snap_ends(streets)
    marks: list[_Mark] = []
    for street in streets:
        line = lines[street.slug]
        for k, (x, y) in enumerate(line.coords):
            marks.append(_Mark(street.slug, line.project(Point(x, y)), x, y, False, k))
    marks += tees + _crossings(lines)

    groups = _clusters(marks)
    node_of: dict[int, str] = {}
    positions: dict[str, tuple[float, float]] = {}
    meeting: dict[str, tuple[str, ...]] = {}
    used: set[str] = set()
    for group in groups:
        members = [marks[i] for i in group]
        slugs = tuple(sorted({m.street for m in members}))
        key = [m for m in members if m.crossing] or members
        x = sum(m.x for m in key) / len(key)
        y = sum(m.y for m in key) / len(key)
        if len(slugs) > 1:
            node_id = "--".join(slugs)
        else:
            first = min((m for m in members if m.waypoint is not None), key=lambda m: m.waypoint)
            node_id = f"{slugs[0]}.{first.waypoint}"
        base, n = node_id, 1
        while node_id in used:
            n += 1
            node_id = f"{base}.{n}"
        used.add(node_id)
        positions[node_id] = (x, y)
        meeting[node_id] = slugs
        for i in group:
            node_of[i] = node_id

    links: list[Link] = []
    legs: dict[str, set[str]] = defaultdict(set)
    for street in streets:
        order = sorted(
            (m.along, node_of[i]) for i, m in enumerate(marks) if m.street == street.slug
        )
        sequence: list[str] = []
        for _along, node in order:
            if not sequence or sequence[-1] != node:
                sequence.append(node)
        for k, (a, b) in enumerate(zip(sequence, sequence[1:], strict=False), 1):
            if a == b:
                continue
            links.append(Link(f"{street.slug}-{k}", street, a, b))
            if not street.one_way:
                links.append(Link(f"-{street.slug}-{k}", street, b, a))
            legs[a].add(b)
            legs[b].add(a)

    junctions = []
    for node_id, (x, y) in positions.items():
        big = [s for s in meeting[node_id] if by_slug[s].road_class in SIGNAL_CLASSES]
        signal = len(big) >= 2 and len(legs[node_id]) >= 3
        lon, lat = _to_lonlat(x, y)
        junctions.append(
            Junction(
                node_id,
                lon,
                lat,
                meeting[node_id],
                "traffic_light" if signal else "priority",
            )
        )
    return PlainNetwork(tuple(junctions), tuple(links), snapped)


# --------------------------------------------------------------------------- the network


def _write_plain(plain: PlainNetwork, nodes_file: Path, edges_file: Path) -> None:
    rows = [
        f'    <node id={quoteattr(j.node_id)} x="{j.lon:.7f}" y="{j.lat:.7f}" type="{j.kind}"/>\n'
        for j in plain.junctions
    ]
    nodes_file.write_text("<nodes>\n" + "".join(rows) + "</nodes>\n")
    rows = [
        f"    <edge id={quoteattr(e.edge_id)} from={quoteattr(e.from_node)} "
        f'to={quoteattr(e.to_node)} numLanes="{e.street.lanes_per_direction}" '
        f'speed="{e.street.max_speed_kmh / 3.6:.2f}" '
        f'priority="{EDGE_PRIORITY.get(e.street.road_class, 1)}" '
        f"name={quoteattr(e.street.name)}/>\n"
        for e in plain.links
    ]
    edges_file.write_text("<edges>\n" + "".join(rows) + "</edges>\n")


def district_network(out_dir: Path, streets: Sequence[Street] = STREETS) -> Path:
    """Build ``daun-penh.net.xml`` in ``out_dir`` with netconvert and check it (see module doc).

    Raises :class:`NetworkFileError` when netconvert fails, a signal has fewer than two green
    phases, or some fringe edge cannot reach (or be reached from) another fringe edge.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plain = plain_network(streets)
    nodes, edges = out_dir / "daun-penh.nod.xml", out_dir / "daun-penh.edg.xml"
    net = out_dir / "daun-penh.net.xml"
    _write_plain(plain, nodes, edges)
    cmd = [
        sumo_binary("netconvert"),
        "--node-files", str(nodes),
        "--edge-files", str(edges),
        "--output-file", str(net),
        "--proj.utm", "true",
        "--tls.default-type", "static",
        "--no-turnarounds.except-deadend", "true",
        "--no-warnings", "true",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise NetworkFileError(f"netconvert failed: {done.stderr.strip()[-500:]}")
    check_network(net)
    return net


def fringe_edges(net: Any, vclass: str = "passenger") -> tuple[list[Any], list[Any]]:
    """(entries, exits): edges a vehicle can only come into from outside the network (nothing
    leads in but a U-turn from the edge's own reverse), and edges it can only leave by."""
    normal = [e for e in net.getEdges() if e.getFunction() == "" and e.allows(vclass)]

    def entry(edge: Any) -> bool:
        return all(
            e.getFromNode() == edge.getToNode()
            for e in edge.getFromNode().getIncoming()
            if e.getFunction() == "" and e.allows(vclass)
        )

    def exit_(edge: Any) -> bool:
        return all(
            e.getToNode() == edge.getFromNode()
            for e in edge.getToNode().getOutgoing()
            if e.getFunction() == "" and e.allows(vclass)
        )

    by_id = sorted(normal, key=lambda e: e.getID())
    return [e for e in by_id if entry(e)], [e for e in by_id if exit_(e)]


def _is_u_turn(a: Any, b: Any) -> bool:
    return a.getFromNode() == b.getToNode() and a.getToNode() == b.getFromNode()


def _reachable(start: Any, forward: bool = True) -> set[str]:
    seen = {start.getID()}
    todo = [start]
    while todo:
        edge = todo.pop()
        nxt = edge.getOutgoing() if forward else edge.getIncoming()
        for other in nxt:
            if other.getFunction() == "" and other.getID() not in seen:
                seen.add(other.getID())
                todo.append(other)
    return seen


def check_network(net_file: Path) -> None:
    """Signals with two or more green phases; every fringe edge connected to another one."""
    import sumolib

    info = read_network(Path(net_file))
    for tls, layout in info.layouts.items():
        if len(layout.phases) < 2:
            raise NetworkFileError(
                f"{net_file}: signal {tls} has {len(layout.phases)} green phase(s), needs two"
            )
    net = sumolib.net.readNet(str(net_file))
    entries, exits = fringe_edges(net)
    if not entries or not exits:
        raise NetworkFileError(f"{net_file}: no fringe edges")
    exit_ids = {e.getID() for e in exits}
    entry_ids = {e.getID() for e in entries}
    for edge in entries:
        if not (_reachable(edge) & exit_ids) - {edge.getID()}:
            raise NetworkFileError(f"{net_file}: fringe edge {edge.getID()} leads to no exit")
    for edge in exits:
        if not (_reachable(edge, forward=False) & entry_ids) - {edge.getID()}:
            raise NetworkFileError(
                f"{net_file}: fringe edge {edge.getID()} is reached from no entry"
            )


# --------------------------------------------------------------------------- the demand

_VTYPES = (
    '    <vType id="car" vClass="passenger" length="4.5" minGap="2.5" accel="2.6" decel="4.5" '
    'sigma="0.5" speedDev="0.1"/>\n'
    '    <vType id="motorbike" vClass="motorcycle" length="2.2" width="0.8" minGap="1.5" '
    'accel="3.0" decel="5.0" sigma="0.5" speedDev="0.1" guiShape="motorcycle"/>\n'
)


@dataclass(frozen=True, slots=True)
class Flow:
    """One origin-destination flow of one vehicle type (vehicles per hour on a fixed route)."""

    flow_id: str
    vtype: str
    edges: tuple[str, ...]
    vph: float
    begin: float


def _street_capacity(streets: Iterable[Street]) -> dict[str, int]:
    return {s.name: s.capacity_vph for s in streets}


def _capacity(edge: Any, capacity: dict[str, int]) -> float:
    return float(capacity.get(edge.getName(), 900 * edge.getLaneNumber()))


def demand_flows(
    net_file: Path,
    begin: float,
    end: float,
    seed: int = 0,
    scale: float = 1.0,
    streets: Sequence[Street] = STREETS,
) -> list[Flow]:
    """The flows :func:`district_demand` writes, sorted by first departure."""
    import sumolib

    if end <= begin:
        raise TrafficError(f"the demand needs end > begin (got begin={begin}, end={end})")
    if scale < 0:
        raise TrafficError(f"scale must not be negative (got {scale})")
    net = sumolib.net.readNet(str(net_file))
    capacity = _street_capacity(streets)
    rng = random.Random(seed)
    entries, exits = fringe_edges(net)
    pairs: list[tuple[Any, Any, tuple[Any, ...], float]] = []
    for a in entries:
        targets = []
        for b in exits:
            if a == b or _is_u_turn(a, b):
                continue
            path, _cost = net.getFastestPath(a, b, vClass="passenger")
            if path:
                targets.append((b, tuple(path), _capacity(b, capacity) * rng.uniform(0.7, 1.3)))
        total = sum(w for _b, _p, w in targets)
        for b, path, w in targets:
            pairs.append((a, b, path, _capacity(a, capacity) * w / total))
    if not pairs:
        raise TrafficError(f"{net_file}: no route between fringe edges")

    load: dict[str, float] = defaultdict(float)
    for _a, _b, path, vph in pairs:
        for edge in path:
            load[edge.getID()] += vph
    busiest = max(
        load[e.getID()] / _capacity(e, capacity) for e in net.getEdges() if e.getID() in load
    )
    factor = BUSIEST_LOAD * scale / busiest
    hour = (end - begin) / 3600.0

    flows: list[Flow] = []
    for n, (_a, _b, path, vph) in enumerate(pairs):
        rate = vph * factor
        if rate < MIN_FLOW_VPH:
            continue
        edges = tuple(e.getID() for e in path)
        for vtype, share in (("motorbike", MOTORBIKE_SHARE), ("car", 1.0 - MOTORBIKE_SHARE)):
            part = round(rate * share, 1)
            if part * hour < 1.0:
                continue
            start = begin + rng.uniform(0.0, min(3600.0 / part, end - begin))
            flows.append(Flow(f"od{n:03d}_{vtype}", vtype, edges, part, round(start, 1)))
    flows.sort(key=lambda f: (f.begin, f.flow_id))
    return flows


def district_demand(
    net_file: Path,
    out_file: Path,
    begin: float,
    end: float,
    seed: int = 0,
    scale: float = 1.0,
) -> Path:
    """Write car and motorbike flows between the fringe edges of ``net_file`` for begin-end.

    Each entry edge sends traffic in proportion to its street's capacity, split over the exits
    by their capacity (jittered ±30 % with ``seed``); routes are sumolib's fastest paths, and
    all flows are scaled so the busiest stretch carries ``BUSIEST_LOAD * scale`` of its
    capacity. Deterministic for ``seed``.
    """
    flows = demand_flows(Path(net_file), begin, end, seed, scale)
    parts = ["<routes>\n", _VTYPES]
    for f in flows:
        parts.append(
            f'    <flow id="{f.flow_id}" type="{f.vtype}" begin="{f.begin:.1f}" end="{end:.1f}" '
            f'vehsPerHour="{f.vph:.1f}" departLane="best" departSpeed="max">\n'
            f'        <route edges="{" ".join(f.edges)}"/>\n'
            "    </flow>\n"
        )
    parts.append("</routes>\n")
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text("".join(parts))
    return out_file


def district_scenario(
    out_dir: Path,
    begin: float = 25200.0,
    end: float = 28800.0,
    seed: int = 0,
    scale: float = 1.0,
) -> Scenario:
    """The district's network and a morning hour of demand (07:00-08:00 by default)."""
    out_dir = Path(out_dir)
    net = district_network(out_dir)
    routes = district_demand(net, out_dir / "daun-penh.rou.xml", begin, end, seed, scale)
    scenario = Scenario(
        name=SCENARIO_NAME,
        net_file=net,
        route_files=(routes,),
        begin=begin,
        end=end,
        source="generated by cityos from cityos.twin.streets (netconvert, UTM 48N)",
    )
    scenario.check_files()
    return scenario
