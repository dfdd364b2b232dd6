"""The static GTFS feed as the service reads it: stop times, and GTFS clock times.

Split from the bus-line generator (:mod:`.sim.transit`, which needs SUMO's network tools)
so that what reads a feed — the GTFS-realtime routes, the delay estimate — needs no SUMO.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .errors import TrafficError

METRES_PER_DEGREE = 111_320.0


@dataclass(frozen=True, slots=True)
class StopTime:
    """One scheduled call; times in seconds since the service day's midnight (= SUMO time)."""

    stop_id: str
    sequence: int
    arrival: int
    departure: int
    dist_m: float  # distance along the line's path where the bus halts (shape_dist_traveled)


def gtfs_time(seconds: float) -> str:
    """GTFS HH:MM:SS; hours run past 24 for service after midnight, as the spec allows."""
    s = int(round(seconds))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def read_schedules(path: Path) -> dict[str, tuple[StopTime, ...]]:
    """trip id -> stop times, read back from a GTFS feed with gtfs-kit (any feed, not only ours)."""
    import gtfs_kit

    feed = gtfs_kit.read_feed(Path(path), dist_units="m")
    frame = feed.stop_times.sort_values(["trip_id", "stop_sequence"])
    has_dist = "shape_dist_traveled" in frame.columns
    out: dict[str, list[StopTime]] = {}
    for row in frame.itertuples(index=False):
        dist = float(row.shape_dist_traveled) if has_dist else math.nan
        out.setdefault(str(row.trip_id), []).append(
            StopTime(
                stop_id=str(row.stop_id),
                sequence=int(row.stop_sequence),
                arrival=parse_gtfs_time(str(row.arrival_time)),
                departure=parse_gtfs_time(str(row.departure_time)),
                dist_m=dist,
            )
        )
    return {trip: tuple(times) for trip, times in out.items()}


def parse_gtfs_time(text: str) -> int:
    """Seconds since the service day's midnight from GTFS H:MM:SS (hours may pass 24)."""
    try:
        h, m, s = (int(part) for part in text.strip().split(":"))
    except ValueError as exc:
        raise TrafficError(f"not a GTFS time (HH:MM:SS): {text!r}") from exc
    return h * 3600 + m * 60 + s
