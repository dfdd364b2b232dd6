"""The day's clock: simulated time, paced against the wall so the dashboard can follow.

``--speed N`` is N simulated seconds per wall second. Each phase waits for its simulated
time; a phase that takes longer than its slot (SUMO runs as fast as it can) moves the
clock's anchor instead of making the next phases rush to catch up, so the rest of the day
keeps the same pace.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

DAY_S = 86_400.0
DEFAULT_SPEED = 600.0  # the day's 24 hours in 2.4 minutes of pauses, plus the work itself
TICK_S = 0.25  # how often a wait shows the clock moving


class SpeedError(ValueError):
    """``--speed`` is not a positive number (or ``max``); the message is one line."""


def parse_speed(text: str | float) -> float:
    """Simulated seconds per wall second from ``--speed``: a positive number, or ``max``
    (no pauses at all: scripts, tests, benchmarks)."""
    if isinstance(text, str) and text.strip().lower() in ("max", "inf"):
        return math.inf
    try:
        speed = float(text)
    except (TypeError, ValueError):
        raise SpeedError(
            f"--speed {text}: give simulated seconds per wall second, a number above 0 "
            f"(default {DEFAULT_SPEED:g}: the day in about {DAY_S / DEFAULT_SPEED / 60:.1f} "
            "minutes), or max"
        ) from None
    if not speed > 0 or math.isnan(speed):
        raise SpeedError(
            f"--speed {text}: the clock must move forward; give a number above 0 "
            f"(default {DEFAULT_SPEED:g}) or max"
        )
    return speed


@dataclass
class DayClock:
    """Simulated seconds since the day's local midnight (``midnight``, tz-aware), paced at
    ``speed`` simulated seconds per wall second."""

    midnight: datetime
    speed: float = DEFAULT_SPEED
    on_tick: Callable[[float], None] | None = None  # the simulated seconds while it waits
    now_s: float = 0.0
    _anchor_wall: float = field(default_factory=time.monotonic)
    _anchor_sim: float = 0.0

    @property
    def now(self) -> datetime:
        """The simulated instant (tz-aware, in the district's time zone)."""
        return self.midnight + timedelta(seconds=self.now_s)

    def at(self, seconds: float) -> datetime:
        return self.midnight + timedelta(seconds=seconds)

    def start(self) -> None:
        """The day starts now (on the wall) at its current simulated time."""
        self._anchor_wall, self._anchor_sim = time.monotonic(), self.now_s

    def advance(self, seconds: float) -> None:
        """Move to ``seconds`` since midnight, waiting on the wall for the time in between;
        behind already (a long phase), re-anchor instead of rushing."""
        seconds = max(seconds, self.now_s)
        if math.isfinite(self.speed):
            target = self._anchor_wall + (seconds - self._anchor_sim) / self.speed
            if target < time.monotonic():
                self._anchor_wall, self._anchor_sim = time.monotonic(), seconds
            while (wait := target - time.monotonic()) > 0:
                time.sleep(min(wait, TICK_S))
                if self.on_tick is not None:
                    self.on_tick(seconds - max(0.0, target - time.monotonic()) * self.speed)
        self.now_s = seconds

    def label(self, seconds: float | None = None) -> str:
        """HH:MM of the simulated time (24:00 at the end of the day)."""
        minutes = int((self.now_s if seconds is None else seconds) // 60)
        return f"{minutes // 60:02d}:{minutes % 60:02d}"
