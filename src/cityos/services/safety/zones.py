"""Zones (polygons in the camera's pixels, with their rules) and the counting line.

A zones file is JSON::

    {"zones": [
      {"name": "entrance", "polygon": [[0, 400], [640, 400], [640, 720], [0, 720]],
       "capacity": 12,                          # crowding above this many people
       "closed": {"from": "22:00", "to": "06:00"},  # restricted: nobody inside then
       "loiter_s": 120}                         # loitering: one person inside this long
    ]}

Only ``name`` and ``polygon`` (at least three points) are required. A person is in a zone
when the point they stand on (the bottom centre of their box) is inside it. Times of
``closed`` are the camera's local time (the offset of the run's start time).

The counting line ``x1,y1,x2,y2`` counts a crossing **in** when a person crosses onto the
right-hand side of the line walking from (x1, y1) to (x2, y2) (image y points down: a line
drawn left to right counts walking down the picture as in), and **out** the other way.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import Polygon

from .errors import ConfigError

Point = tuple[float, float]


@dataclass(frozen=True)
class Zone:
    """A named area of the picture and the rules that apply in it."""

    name: str
    polygon: Polygon
    capacity: int | None = None
    closed: tuple[time, time] | None = None
    loiter_s: float | None = None

    def contains(self, point: Point) -> bool:
        return bool(shapely.intersects_xy(self.polygon, point[0], point[1]))

    def count(self, points: list[Point]) -> int:
        if not points:
            return 0
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        return int(shapely.intersects_xy(self.polygon, xs, ys).sum())

    def is_closed(self, at: time) -> bool:
        """Whether ``at`` (local time) falls in the closed hours (which may wrap midnight)."""
        if self.closed is None:
            return False
        start, end = self.closed
        if start <= end:
            return start <= at < end
        return at >= start or at < end


def _hhmm(value: Any, where: str) -> time:
    try:
        return time.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"{where}: {value!r} is not a time of day (HH:MM)") from None


def zone_from(doc: Any, where: str) -> Zone:
    if not isinstance(doc, dict):
        raise ConfigError(f"{where} must be an object with a name and a polygon")
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where} needs a name")
    where = f"zone {name!r}"
    points = doc.get("polygon")
    try:
        coords = [(float(p[0]), float(p[1])) for p in points]
    except (TypeError, ValueError, IndexError, KeyError):
        raise ConfigError(f"{where}: polygon must be a list of [x, y] pixel points") from None
    if len(coords) < 3 or not all(math.isfinite(c) for p in coords for c in p):
        raise ConfigError(f"{where}: polygon needs at least three finite [x, y] points")
    polygon = Polygon(coords)
    if not polygon.is_valid or polygon.area <= 0:
        raise ConfigError(f"{where}: polygon crosses itself or has no area")
    shapely.prepare(polygon)
    capacity = doc.get("capacity")
    if capacity is not None and (
        isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0
    ):
        raise ConfigError(f"{where}: capacity must be a whole number of people, 0 or more")
    closed = None
    if doc.get("closed") is not None:
        hours = doc["closed"]
        if not isinstance(hours, dict) or "from" not in hours or "to" not in hours:
            raise ConfigError(f'{where}: closed must be {{"from": "HH:MM", "to": "HH:MM"}}')
        closed = (_hhmm(hours["from"], where), _hhmm(hours["to"], where))
    loiter = doc.get("loiter_s")
    if loiter is not None and (
        isinstance(loiter, bool) or not isinstance(loiter, int | float) or loiter <= 0
    ):
        raise ConfigError(f"{where}: loiter_s must be a number of seconds above 0")
    return Zone(name.strip(), polygon, capacity, closed, float(loiter) if loiter else None)


def load_zones(path: str | Path) -> list[Zone]:
    """The zones of a JSON file; :class:`ConfigError` naming what is wrong."""
    file = Path(path)
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"zones file {file}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"zones file {file}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"zones file {file} is not JSON: {exc.msg} (line {exc.lineno})") from None
    items = doc.get("zones") if isinstance(doc, dict) else doc
    if not isinstance(items, list) or not items:
        raise ConfigError(f'zones file {file}: expected {{"zones": [ ... ]}} with one zone or more')
    zones = [zone_from(item, f"zone #{n + 1}") for n, item in enumerate(items)]
    names = [z.name for z in zones]
    if len(set(names)) != len(names):
        raise ConfigError(f"zones file {file}: zone names repeat ({', '.join(names)})")
    return zones


@dataclass(frozen=True)
class CountingLine:
    """A directed segment; see the module doc for which way is in."""

    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def length(self) -> float:
        return math.hypot(self.x2 - self.x1, self.y2 - self.y1)

    def side(self, p: Point) -> float:
        """Signed distance from the line in pixels: > 0 on its right-hand side (in)."""
        cross = (self.x2 - self.x1) * (p[1] - self.y1) - (self.y2 - self.y1) * (p[0] - self.x1)
        return cross / self.length

    def spans(self, a: Point, b: Point) -> bool:
        """Whether the path a -> b passes between the segment's two ends (it crosses the
        segment, not the line's extension)."""
        dx, dy = self.x2 - self.x1, self.y2 - self.y1
        da, db = self.side(a), self.side(b)
        if da == db:
            return False
        f = da / (da - db)
        cx, cy = a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1])
        along = ((cx - self.x1) * dx + (cy - self.y1) * dy) / (self.length**2)
        return 0.0 <= along <= 1.0


def parse_line(text: str) -> CountingLine:
    """``x1,y1,x2,y2`` (pixels) as a counting line."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise ConfigError(f"--line {text!r}: expected four numbers x1,y1,x2,y2 (pixels)")
    line = CountingLine(*values)
    if line.length < 1:
        raise ConfigError(f"--line {text!r}: its two ends are the same point")
    return line
