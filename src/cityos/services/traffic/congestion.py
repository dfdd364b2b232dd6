"""Jams and environment: a congestion index per road segment, jam alerts, and traffic
emissions per district and hour — what the city's indicators read from the hub.

* **Congestion index** of a road segment (a SUMO edge with a detector): ``1 − v / v_free``,
  the share of free-flow speed lost, from the mean speed its detectors report (weighted by
  the vehicles they see) and the segment's speed limit; 0 with nobody on the detector.
* **Jams**: a segment whose index stays at or above ``enter`` (0.7: under 30 % of the
  speed limit) with at least ``min_queue`` (5) vehicles standing, for ``hold_s``, is jammed; it clears when the index stays at or below
  ``leave`` for ``hold_s`` (hysteresis, so a queue discharging at a green does not flap).
* **Emissions** come from SUMO itself (its HBEFA-based models, per vehicle class): an
  ``edgeData`` output of type ``emissions`` sums each edge's CO2, NOx, PMx and fuel per
  hour, and the edges are grouped into districts (square cells of ``cell_m`` in network
  coordinates unless a city gives its own mapping).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import NetworkFileError
from .model import Observation, SignalLayout

EMISSION_PERIOD_S = 3600.0


# ---------------------------------------------------------------------------- congestion
def edge_speeds(net_file: Path) -> dict[str, float]:
    """Each edge's speed limit (m/s, the fastest of its lanes)."""
    speeds: dict[str, float] = {}
    try:
        for _, el in ET.iterparse(net_file, events=("end",)):
            if el.tag == "edge" and el.get("function") != "internal":
                lanes = [float(lane.get("speed", "0")) for lane in el.iter("lane")]
                if lanes:
                    speeds[el.get("id", "")] = max(lanes)
                el.clear()
    except (ET.ParseError, OSError) as exc:
        raise NetworkFileError(f"network file {net_file}: {exc}") from exc
    return speeds


@dataclass(frozen=True, slots=True)
class SegmentReading:
    """One road segment at one moment, from every lane group measured on it."""

    segment: str
    congestion_index: float
    mean_speed: float | None  # m/s
    vehicles: int
    queue: int
    occupancy: float  # percent, the mean of its lane groups


def congestion_index(mean_speed: float | None, free_speed: float) -> float:
    """Share of free-flow speed lost, 0 (free) … 1 (standing); 0 when nobody is measured."""
    if mean_speed is None or free_speed <= 0:
        return 0.0
    return min(1.0, max(0.0, 1.0 - mean_speed / free_speed))


def segment_readings(
    observations: Mapping[str, Observation],
    layouts: Mapping[str, SignalLayout],
    free_speed: Mapping[str, float],
) -> dict[str, SegmentReading]:
    """Lane-group observations gathered per road segment (approaches only)."""
    parts: dict[str, list[tuple[int, float | None, int, float]]] = {}
    for tls, obs in observations.items():
        layout = layouts.get(tls)
        if layout is None:
            continue
        for gid, g in obs.groups.items():
            group = layout.groups.get(gid)
            if group is None or group.kind != "approach":
                continue
            parts.setdefault(group.edge, []).append(
                (g.vehicle_count, g.mean_speed, g.queue, g.occupancy)
            )
    out: dict[str, SegmentReading] = {}
    for edge, rows in parts.items():
        moving = [(n, v) for n, v, _, _ in rows if v is not None and n > 0]
        vehicles = sum(n for n, _ in moving)
        speed = sum(n * v for n, v in moving) / vehicles if vehicles else None
        out[edge] = SegmentReading(
            segment=edge,
            congestion_index=congestion_index(speed, free_speed.get(edge, 0.0)),
            mean_speed=speed,
            vehicles=sum(r[0] for r in rows),
            queue=sum(r[2] for r in rows),
            occupancy=sum(r[3] for r in rows) / len(rows),
        )
    return out


@dataclass
class _Segment:
    jammed: bool = False
    since: float | None = None  # when the index crossed the threshold towards a change


class JamWatch:
    """Decides when a segment jams and when it clears, with hysteresis and a hold time."""

    def __init__(
        self,
        *,
        enter: float = 0.7,
        leave: float = 0.4,
        hold_s: float = 60.0,
        min_queue: int = 5,
    ) -> None:
        if not 0.0 <= leave < enter <= 1.0:
            raise ValueError("need 0 <= leave < enter <= 1")
        self.enter, self.leave, self.hold_s = enter, leave, hold_s
        self.min_queue = min_queue  # one slow car is not a jam
        self._segments: dict[str, _Segment] = {}

    def jammed(self) -> set[str]:
        return {s for s, state in self._segments.items() if state.jammed}

    def update(
        self, segment: str, index: float, now: float, queue: int | None = None
    ) -> str | None:
        """``"jam"`` when the segment has just jammed, ``"clear"`` when it has just cleared
        (``queue``: vehicles standing on it; a jam needs ``min_queue`` of them)."""
        state = self._segments.setdefault(segment, _Segment())
        crowded = queue is None or queue >= self.min_queue
        towards = index <= self.leave if state.jammed else (index >= self.enter and crowded)
        if not towards:
            state.since = None
            return None
        if state.since is None:
            state.since = now
        if now - state.since < self.hold_s:
            return None
        state.jammed, state.since = not state.jammed, None
        return "jam" if state.jammed else "clear"


# ---------------------------------------------------------------------------- emissions
def write_emission_output(path: Path, output: Path, period_s: float = EMISSION_PERIOD_S) -> Path:
    """An additional file asking SUMO for each edge's emissions per ``period_s``."""
    root = ET.Element("additional")
    ET.SubElement(
        root,
        "edgeData",
        id="cityos-emissions",
        type="emissions",
        period=f"{period_s:g}",
        file=str(output),
        excludeEmpty="true",
    )
    ET.ElementTree(root).write(path, encoding="unicode")
    return path


def edge_centres(net_file: Path) -> dict[str, tuple[float, float]]:
    """The middle of each edge's first lane (network coordinates, metres)."""
    centres: dict[str, tuple[float, float]] = {}
    for _, el in ET.iterparse(net_file, events=("end",)):
        if el.tag == "edge" and el.get("function") != "internal":
            lane = el.find("lane")
            if lane is not None and lane.get("shape"):
                points = [
                    tuple(map(float, p.split(",")[:2])) for p in lane.get("shape", "").split()
                ]
                xs, ys = zip(*points, strict=True)
                centres[el.get("id", "")] = (sum(xs) / len(xs), sum(ys) / len(ys))
            el.clear()
    return centres


def grid_districts(net_file: Path, cell_m: float = 1000.0) -> dict[str, str]:
    """Edge → district: the ``cell_m`` square of the network that holds its middle."""
    return {
        edge: f"cell-{int(x // cell_m)}-{int(y // cell_m)}"
        for edge, (x, y) in edge_centres(net_file).items()
    }


@dataclass(frozen=True, slots=True)
class DistrictEmissions:
    """What traffic emitted in one district during one interval (SUMO's models)."""

    district: str
    begin: float  # simulation seconds
    end: float
    co2_kg: float
    nox_g: float
    pmx_g: float
    fuel_l: float
    vehicle_hours: float  # time vehicles spent in the district


# SUMO writes *_abs in milligrams (fuel too, since 1.14: mg of fuel; petrol ~ 742 g/l)
_FUEL_G_PER_L = 742.0


def emissions_by_district(
    emission_file: Path, district_of: Mapping[str, str] | Callable[[str], str | None]
) -> list[DistrictEmissions]:
    """Sum SUMO's per-edge emissions per district and interval."""
    lookup = district_of.get if isinstance(district_of, Mapping) else district_of
    sums: dict[tuple[str, float, float], list[float]] = {}
    for _, interval in ET.iterparse(emission_file, events=("end",)):
        if interval.tag != "interval":
            continue
        begin, end = float(interval.get("begin", "0")), float(interval.get("end", "0"))
        for edge in interval.iter("edge"):
            district = lookup(edge.get("id", ""))
            if district is None:
                continue
            acc = sums.setdefault((district, begin, end), [0.0] * 5)
            acc[0] += float(edge.get("CO2_abs", "0"))
            acc[1] += float(edge.get("NOx_abs", "0"))
            acc[2] += float(edge.get("PMx_abs", "0"))
            acc[3] += float(edge.get("fuel_abs", "0"))
            acc[4] += float(edge.get("sampledSeconds", "0"))
        interval.clear()
    return [
        DistrictEmissions(
            district=d,
            begin=b,
            end=e,
            co2_kg=v[0] / 1e6,
            nox_g=v[1] / 1e3,
            pmx_g=v[2] / 1e3,
            fuel_l=v[3] / 1e3 / _FUEL_G_PER_L,
            vehicle_hours=v[4] / 3600.0,
        )
        for (d, b, e), v in sorted(sums.items())
    ]


def total(rows: Iterable[DistrictEmissions]) -> float:
    """All the CO2 (kg) of these rows."""
    return sum(r.co2_kg for r in rows)
