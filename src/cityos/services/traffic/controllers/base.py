"""The one interface every controller implements."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Protocol, runtime_checkable

from ..model import Decision, Observation, SignalLayout

NativeProgram = Literal["static", "actuated"]


@runtime_checkable
class Controller(Protocol):
    """Decides green phases from observations only.

    ``native_program`` is ``None`` for controllers that decide per step. A controller that
    is SUMO's own logic (fixed-time, actuated) sets it to ``"static"`` or ``"actuated"``:
    the adapter then runs that program inside the simulation and ``decide`` is not called.
    ``decide`` should return a Decision at every control step (holding the current phase
    is a decision too): a signal that hears nothing fresh for a while falls back to its
    fixed-time plan.
    """

    name: str
    native_program: NativeProgram | None

    def setup(self, layouts: Mapping[str, SignalLayout], step_s: float) -> None: ...

    def decide(self, obs: Observation, now: float) -> Decision | None: ...
