"""A centroid tracker that exists only to count: which point in this frame is which point
in the last one, so a crossing is counted once and a stay in a zone can be timed.

Deliberately minimal, for privacy: a track is a number that lives in memory while its point
keeps being matched (nearest neighbour within ``max_distance`` pixels, greedy, closest pairs
first) and is forgotten ``max_missed`` frames after it was last seen. No appearance, no
identity, nothing about a track is stored or sent; only the counts it produces are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

Point = tuple[float, float]


@dataclass
class Track:
    """One point followed from frame to frame (in memory only)."""

    id: int
    point: Point
    since: float  # when it was first seen (s)
    seen: float  # when it was last matched (s)
    missed: int = 0
    anchor: Point | None = None  # its last position clearly on one side of the line
    side: int = 0  # -1 / +1: that side; 0: not yet known
    zone_since: dict[str, float] = field(default_factory=dict)  # zone -> entered at (s)
    reported: set[str] = field(default_factory=set)  # zones whose loitering was raised


class CentroidTracker:
    """Match each frame's points to the live tracks."""

    def __init__(self, *, max_distance: float = 60.0, max_missed: int = 10) -> None:
        self.max_distance = max_distance
        self.max_missed = max_missed
        self.tracks: list[Track] = []
        self._next = 1

    def update(self, points: Sequence[Point], t: float) -> list[Track]:
        """The tracks matched or started in this frame (unmatched ones age and end)."""
        live = self.tracks
        matched: list[Track] = []
        used_tracks: set[int] = set()
        used_points: set[int] = set()
        if live and points:
            a = np.array([tr.point for tr in live], dtype=float)
            b = np.array(points, dtype=float)
            dist = np.hypot(a[:, None, 0] - b[None, :, 0], a[:, None, 1] - b[None, :, 1])
            for flat in np.argsort(dist, axis=None):
                i, j = divmod(int(flat), len(points))
                if dist[i, j] > self.max_distance:
                    break
                if i in used_tracks or j in used_points:
                    continue
                used_tracks.add(i)
                used_points.add(j)
                track = live[i]
                track.point = (float(points[j][0]), float(points[j][1]))
                track.seen = t
                track.missed = 0
                matched.append(track)
        kept = []
        for i, track in enumerate(live):
            if i not in used_tracks:
                track.missed += 1
            if track.missed <= self.max_missed:
                kept.append(track)
        for j, p in enumerate(points):
            if j not in used_points:
                track = Track(self._next, (float(p[0]), float(p[1])), t, t)
                self._next += 1
                kept.append(track)
                matched.append(track)
        self.tracks = kept
        return matched
