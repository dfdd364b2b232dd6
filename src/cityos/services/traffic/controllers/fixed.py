"""The network's own fixed-time program, as the network file defines it."""

from __future__ import annotations

from collections.abc import Mapping

from ..model import Decision, Observation, SignalLayout


class FixedTimeController:
    """Runs each junction's fixed-time program inside SUMO; never decides anything itself."""

    name = "fixed"
    native_program = "static"

    def setup(self, layouts: Mapping[str, SignalLayout], step_s: float) -> None:
        pass

    def decide(self, obs: Observation, now: float) -> Decision | None:
        return None
