"""The rules that turn counts into incidents (each becomes an Alert in the hub).

- **crowding**: a zone holds more people than its ``capacity`` for ``hold_s`` seconds
  (severity ``medium``; ``high`` at 1.5 times the capacity);
- **restrictedAreaAfterHours**: someone is in a zone during its ``closed`` hours for
  ``hold_s`` seconds (``high``);
- **loitering**: one track stays in a zone ``loiter_s`` seconds (``low``).

Each is raised once per episode: crowding and after-hours again only after the zone has
been back to normal for ``hold_s``; loitering once per track and zone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import time
from typing import Literal

from .counting import FrameCounts
from .tracker import Track
from .zones import Zone

Kind = Literal["crowding", "restrictedAreaAfterHours", "loitering"]


@dataclass(frozen=True)
class Incident:
    """Something worth an Alert, at ``t`` seconds into the source."""

    kind: Kind
    severity: str
    description: str
    t: float
    zone: str


class _Latch:
    """True once when a condition has held ``hold_s``; re-armed after it has been false as
    long."""

    def __init__(self, hold_s: float) -> None:
        self.hold_s = hold_s
        self.since: float | None = None
        self.clear_since: float | None = None
        self.raised = False

    def update(self, condition: bool, t: float) -> bool:
        if condition:
            self.clear_since = None
            if self.since is None:
                self.since = t
            if not self.raised and t - self.since >= self.hold_s:
                self.raised = True
                return True
            return False
        self.since = None
        if self.raised:
            if self.clear_since is None:
                self.clear_since = t
            if t - self.clear_since >= self.hold_s:
                self.raised = False
        return False


class IncidentRules:
    """Evaluate every frame; ``local_time(t)`` is the camera's time of day at ``t``."""

    def __init__(
        self,
        zones: Sequence[Zone],
        local_time: Callable[[float], time],
        *,
        hold_s: float = 2.0,
    ) -> None:
        self.zones = list(zones)
        self.local_time = local_time
        self.crowding = {z.name: _Latch(hold_s) for z in zones if z.capacity is not None}
        self.closed = {z.name: _Latch(hold_s) for z in zones if z.closed is not None}

    def update(self, counts: FrameCounts, tracks: Sequence[Track]) -> list[Incident]:
        out: list[Incident] = []
        t = counts.t
        for zone in self.zones:
            n = counts.zones.get(zone.name, 0)
            if zone.capacity is not None and self.crowding[zone.name].update(n > zone.capacity, t):
                high = n >= 1.5 * zone.capacity and zone.capacity > 0
                out.append(
                    Incident(
                        "crowding",
                        "high" if high else "medium",
                        f"{n} people in zone {zone.name!r}, above its capacity of {zone.capacity}",
                        t,
                        zone.name,
                    )
                )
            if zone.closed is not None:
                at = self.local_time(t)
                if self.closed[zone.name].update(n > 0 and zone.is_closed(at), t):
                    start, end = zone.closed
                    out.append(
                        Incident(
                            "restrictedAreaAfterHours",
                            "high",
                            f"{n} {'person' if n == 1 else 'people'} in zone {zone.name!r} at "
                            f"{at:%H:%M}, when it is closed ({start:%H:%M}-{end:%H:%M})",
                            t,
                            zone.name,
                        )
                    )
            if zone.loiter_s is not None:
                out.extend(self._loitering(zone, tracks, t))
        return out

    def _loitering(self, zone: Zone, tracks: Sequence[Track], t: float) -> list[Incident]:
        found = []
        assert zone.loiter_s is not None
        for track in tracks:
            if not zone.contains(track.point):
                track.zone_since.pop(zone.name, None)
                continue
            since = track.zone_since.setdefault(zone.name, t)
            if t - since >= zone.loiter_s and zone.name not in track.reported:
                track.reported.add(zone.name)
                found.append(
                    Incident(
                        "loitering",
                        "low",
                        f"someone has stayed in zone {zone.name!r} for {t - since:.0f} s "
                        f"(limit {zone.loiter_s:g} s)",
                        t,
                        zone.name,
                    )
                )
        return found
