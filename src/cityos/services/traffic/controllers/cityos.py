"""CityOS's own controller: per-movement pressure with hysteresis and a light downstream term.

It sees only the detector observations (per lane group: vehicles, halting vehicles,
occupancy) and the phase on show. Each control step it scores every green phase as the
sum over its movements of

    demand(approach) - exit_weight x vehicles per lane on the exit

times a room factor that falls towards zero when the exit's occupancy passes
``spill_occupancy`` (green into a full exit only blocks the junction), where demand =
halting vehicles + ``moving_weight`` x moving vehicles, per lane, optionally grown with
the approach's red time (``age_s``). It then keeps the current phase unless another
phase scores more than ``switch_margin`` higher (a change costs yellow + all-red, about
4 s of green) or the current one has run ``max_green_s``.

Compared with max-pressure it switches less (the margin) and gives the downstream queue
half the weight, which on RESCO's scenarios lowers delay. No learning, no GPU: the
defaults were picked by a small hand sweep over the six RESCO scenarios (about 12 s per
setting on this 2-core machine, a few minutes in all; see docs/services/traffic.md).
Spill and ageing are available but off by default: in the sweep they did not help.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from ..model import Decision, Observation, SignalLayout


@dataclass(frozen=True)
class CityOSParams:
    moving_weight: float = 1.0
    exit_weight: float = 0.5
    spill_occupancy: float = 101.0  # percent; above 100 = off
    age_s: float = float("inf")  # off
    switch_margin: float = 1.0
    max_green_s: float = float("inf")  # the safety guard's max red bounds waiting anyway


class CityOSController:
    """See module docstring."""

    name = "cityos"
    native_program = None

    def __init__(self, params: CityOSParams | None = None, **overrides: float) -> None:
        self.params = CityOSParams(**{**asdict(params or CityOSParams()), **overrides})
        self.layouts: dict[str, SignalLayout] = {}
        self.step_s = 10.0
        self._red_since: dict[tuple[str, str], float] = {}
        self._last: dict[str, int] = {}

    def setup(self, layouts: Mapping[str, SignalLayout], step_s: float) -> None:
        self.layouts = dict(layouts)
        self.step_s = step_s
        self._red_since.clear()
        self._last.clear()

    def decide(self, obs: Observation, now: float) -> Decision | None:
        layout = self.layouts.get(obs.tls_id)
        if layout is None or not layout.phases:
            return None
        current = obs.current_phase if obs.current_phase is not None else self._last.get(obs.tls_id)
        self._age(layout, current, now)
        scores = [self.score(obs, layout, p.index, now) for p in layout.phases]
        best = max(range(len(scores)), key=scores.__getitem__)
        choice = best
        if current is not None:
            choice = current
            in_green = obs.current_phase is not None
            too_long = in_green and obs.phase_elapsed >= self.params.max_green_s
            if (
                in_green
                and best != current
                and (too_long or scores[best] > scores[current] + self.params.switch_margin)
            ):
                choice = best
            elif too_long:
                others = [i for i in range(len(scores)) if i != current]
                if others:
                    choice = max(others, key=scores.__getitem__)
        self._last[obs.tls_id] = choice
        return Decision(obs.tls_id, choice, self.step_s, obs.observed_at)

    def score(self, obs: Observation, layout: SignalLayout, phase: int, now: float) -> float:
        """How much serving ``phase`` now is worth, in vehicles per lane."""
        p = self.params
        total = 0.0
        for src, dst in layout.phases[phase].movements:
            waited = now - self._red_since.get((layout.tls_id, src), now)
            demand = self._per_lane(obs, layout, src, p.moving_weight) * (1.0 + waited / p.age_s)
            total += self._room(obs, dst) * (
                demand - p.exit_weight * self._per_lane(obs, layout, dst, 1.0)
            )
        return total

    def _age(self, layout: SignalLayout, current: int | None, now: float) -> None:
        served = set(layout.phases[current].serves) if current is not None else set()
        for group in layout.approach_groups():
            key = (layout.tls_id, group.id)
            if group.id in served:
                self._red_since[key] = now
            else:
                self._red_since.setdefault(key, now)

    @staticmethod
    def _per_lane(obs: Observation, layout: SignalLayout, gid: str, moving_weight: float) -> float:
        reading = obs.groups.get(gid)
        group = layout.groups.get(gid)
        if reading is None or group is None:
            return 0.0
        moving = reading.vehicle_count - reading.queue
        return (reading.queue + moving_weight * moving) / max(1, len(group.lanes))

    def _room(self, obs: Observation, exit_id: str) -> float:
        reading = obs.groups.get(exit_id)
        spill = self.params.spill_occupancy
        if reading is None or spill >= 100.0 or reading.occupancy <= spill:
            return 1.0
        return max(0.0, (100.0 - reading.occupancy) / (100.0 - spill))
