"""SUMO's actuated control: the network's program, green times stretched by induction loops."""

from __future__ import annotations

from collections.abc import Mapping

from ..model import Decision, Observation, SignalLayout


class ActuatedController:
    """Switches every junction to an ``type="actuated"`` copy of its program (see programs.py).

    SUMO runs the gap-out logic itself each simulation step, so this controller only names
    the program type; ``decide`` is never called.
    """

    name = "actuated"
    native_program = "actuated"

    def setup(self, layouts: Mapping[str, SignalLayout], step_s: float) -> None:
        pass

    def decide(self, obs: Observation, now: float) -> Decision | None:
        return None
