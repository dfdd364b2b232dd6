"""Counts per frame (people in view, in each zone, crossings of the line) and their
aggregation per interval, which is what reaches the hub."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .tracker import Point, Track
from .zones import CountingLine, Zone


class LineCounter:
    """Counts tracks crossing the line, once per crossing.

    A track's side is only trusted ``margin`` pixels away from the line, so a point that
    jitters on the line is not counted back and forth; a crossing counts when the path from
    its last trusted position on one side to its first on the other passes between the
    segment's ends."""

    def __init__(self, line: CountingLine, *, margin: float = 6.0) -> None:
        self.line = line
        self.margin = margin
        self.total_in = 0
        self.total_out = 0

    def update(self, tracks: Sequence[Track]) -> tuple[int, int]:
        """(in, out) crossings completed in this frame."""
        cin = cout = 0
        for track in tracks:
            d = self.line.side(track.point)
            if abs(d) < self.margin:
                continue
            side = 1 if d > 0 else -1
            crossed = track.side and side != track.side and track.anchor is not None
            if crossed and self.line.spans(track.anchor, track.point):  # type: ignore[arg-type]
                if side > 0:
                    cin += 1
                else:
                    cout += 1
            track.side = side
            track.anchor = track.point
        self.total_in += cin
        self.total_out += cout
        return cin, cout


@dataclass
class FrameCounts:
    """What one frame shows: people in view, per zone, crossings completed."""

    t: float
    in_view: int
    zones: dict[str, int]
    crossed_in: int = 0
    crossed_out: int = 0


def count_frame(
    t: float,
    points: Sequence[Point],
    zones: Sequence[Zone],
    tracks: Sequence[Track],
    line: LineCounter | None,
) -> FrameCounts:
    pts = list(points)
    per_zone = {z.name: z.count(pts) for z in zones}
    cin, cout = line.update(tracks) if line is not None else (0, 0)
    return FrameCounts(t, len(pts), per_zone, cin, cout)


@dataclass
class Interval:
    """The counts of one reporting interval: peaks and means of occupancy, crossings."""

    start: float
    end: float
    frames: int = 0
    view_peak: int = 0
    view_sum: int = 0
    zone_peak: dict[str, int] = field(default_factory=dict)
    zone_sum: dict[str, int] = field(default_factory=dict)
    zone_occupied: dict[str, int] = field(default_factory=dict)  # frames with someone there
    crossed_in: int = 0
    crossed_out: int = 0

    def add(self, counts: FrameCounts) -> None:
        self.frames += 1
        self.end = counts.t
        self.view_peak = max(self.view_peak, counts.in_view)
        self.view_sum += counts.in_view
        for name, n in counts.zones.items():
            self.zone_peak[name] = max(self.zone_peak.get(name, 0), n)
            self.zone_sum[name] = self.zone_sum.get(name, 0) + n
            self.zone_occupied[name] = self.zone_occupied.get(name, 0) + (n > 0)
        self.crossed_in += counts.crossed_in
        self.crossed_out += counts.crossed_out

    @property
    def view_mean(self) -> float:
        return self.view_sum / self.frames if self.frames else 0.0

    def zone_mean(self, name: str) -> float:
        return self.zone_sum.get(name, 0) / self.frames if self.frames else 0.0


class IntervalCounter:
    """Collects frames into intervals of ``interval_s`` seconds of video time."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.current: Interval | None = None

    def add(self, counts: FrameCounts) -> Interval | None:
        """Add a frame; the finished interval when this frame starts a new one."""
        done = None
        if self.current is not None and counts.t - self.current.start >= self.interval_s:
            done = self.current
            self.current = None
        if self.current is None:
            self.current = Interval(counts.t, counts.t)
        self.current.add(counts)
        return done

    def flush(self) -> Interval | None:
        """The interval in progress (at the end of a run), if it has frames."""
        done, self.current = self.current, None
        return done if done is not None and done.frames else None
