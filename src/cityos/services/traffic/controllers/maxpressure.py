"""Max-pressure (Varaiya 2013): give green to the phase whose movements have most pressure.

Pressure of a movement = vehicles per lane on its approach minus vehicles per lane on its
exit, both from the detectors; a phase's pressure is the sum over its movements. Decided
afresh every control step, as in RESCO's baseline.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..model import Decision, Observation, SignalLayout


def per_lane(obs: Observation, layout: SignalLayout, group_id: str) -> float:
    """Vehicles per lane on a group's detectors (0 when the group reports nothing)."""
    reading = obs.groups.get(group_id)
    group = layout.groups.get(group_id)
    if reading is None or group is None or not group.lanes:
        return 0.0
    return reading.vehicle_count / len(group.lanes)


def phase_pressure(obs: Observation, layout: SignalLayout, phase: int) -> float:
    return sum(
        per_lane(obs, layout, src) - per_lane(obs, layout, dst)
        for src, dst in layout.phases[phase].movements
    )


class MaxPressureController:
    """Pure max-pressure, one decision per junction per control step."""

    name = "max-pressure"
    native_program = None

    def __init__(self) -> None:
        self.layouts: dict[str, SignalLayout] = {}
        self.step_s = 10.0

    def setup(self, layouts: Mapping[str, SignalLayout], step_s: float) -> None:
        self.layouts = dict(layouts)
        self.step_s = step_s

    def decide(self, obs: Observation, now: float) -> Decision | None:
        layout = self.layouts.get(obs.tls_id)
        if layout is None or not layout.phases:
            return None
        pressures = [phase_pressure(obs, layout, p.index) for p in layout.phases]
        best = max(range(len(pressures)), key=lambda i: pressures[i])
        current = obs.current_phase
        if current is not None and pressures[current] >= pressures[best]:
            best = current
        return Decision(obs.tls_id, best, self.step_s, obs.observed_at)
