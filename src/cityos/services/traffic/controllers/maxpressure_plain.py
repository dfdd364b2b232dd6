"""Plain max-pressure as RESCO runs it: halting queues only, no extra rules.

The baseline of the RESCO benchmark (Ault & Sharon, NeurIPS 2021 datasets track,
``agents/maxpressure.py`` with the ``mplight`` state): each control step (10 s), for each
green phase, sum over its green movements the halting vehicles on the incoming lanes minus
the halting vehicles on the outgoing lanes, and show the phase with the most pressure;
ties go to the lowest phase index, as ``np.argmax`` gives them. Nothing else: no per-lane
normalisation, no moving vehicles, no switch margin, no spillback care. The project's
own ``max-pressure`` (vehicles per lane, kept phase on ties) and CityOS's controller are
measured against it, so it has to stay this plain.

Observations come per lane group (an approach group = the lanes of one edge served by
the same phases; an exit group = the exit edge's lanes), so RESCO's per-direction sums
are sums over groups: a movement (approach group -> exit group) contributes the group's
halting vehicles minus the exit's. That is the per-link sum exactly when each lane of
the group has one link into the exit edge and those links land one on each exit lane;
otherwise it is the nearest the group readings allow (a lane with two links into one
exit edge: 4 lanes of ingolstadt7, 17 of ingolstadt21).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..model import Decision, Observation, SignalLayout


def halting(obs: Observation, group_id: str) -> int:
    """Halting vehicles a group's detectors report (0 when it reports nothing)."""
    reading = obs.groups.get(group_id)
    return reading.queue if reading is not None else 0


def plain_pressure(obs: Observation, layout: SignalLayout, phase: int) -> int:
    """Sum over the phase's movements of halting in minus halting out."""
    return sum(halting(obs, src) - halting(obs, dst) for src, dst in layout.phases[phase].movements)


class PlainMaxPressureController:
    """RESCO's max-pressure baseline, one decision per junction per control step."""

    name = "max-pressure-plain"
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
        pressures = [plain_pressure(obs, layout, p.index) for p in layout.phases]
        best = pressures.index(max(pressures))  # first maximum, as np.argmax
        return Decision(obs.tls_id, best, self.step_s, obs.observed_at)
