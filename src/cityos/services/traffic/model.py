"""What a controller sees and what it says: plain dataclasses, ready to become hub entities.

An :class:`Observation` maps onto TrafficFlowObserved entities (one per lane group), a
:class:`Decision` onto a command on a TrafficSignal entity (phase, duration). A
:class:`SignalLayout` is the static description of one junction that a controller cabinet
knows anyway: its lane groups and the green phases of its program.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

GroupKind = Literal["approach", "exit", "crossing"]

GREEN = "Gg"  # the characters of a SUMO signal state that give a link green


def is_green_state(state: str) -> bool:
    """A phase a controller may choose: some green, no yellow."""
    return any(c in GREEN for c in state) and not any(c in "yY" for c in state)


@dataclass(frozen=True, slots=True)
class LaneGroup:
    """Lanes measured together: an approach served by the same phases, an exit, or a crossing."""

    id: str
    kind: GroupKind
    edge: str
    lanes: tuple[str, ...]
    detector_length_m: float = 0.0


@dataclass(frozen=True, slots=True)
class GreenPhase:
    """One green phase of the junction's own program, the unit a controller chooses."""

    index: int  # position in SignalLayout.phases (what Decision.phase refers to)
    program_index: int  # position in the network's fixed-time program
    state: str  # SUMO signal string, one character per controlled link
    serves: tuple[str, ...]  # approach and crossing group ids that have green
    movements: tuple[tuple[str, str], ...]  # (approach group, exit group) pairs with green
    pedestrian: bool = False


@dataclass(frozen=True, slots=True)
class SignalLayout:
    """A signalised junction as its controller knows it."""

    tls_id: str
    program_id: str
    groups: dict[str, LaneGroup]
    phases: tuple[GreenPhase, ...]
    link_count: int

    def approach_groups(self) -> list[LaneGroup]:
        return [g for g in self.groups.values() if g.kind == "approach"]


@dataclass(frozen=True, slots=True)
class LaneGroupObservation:
    """What the detectors of one lane group report (a TrafficFlowObserved entity)."""

    group_id: str
    vehicle_count: int
    occupancy: float  # percent of the detector length occupied
    queue: int  # halting vehicles (speed < 0.1 m/s)
    mean_speed: float | None  # m/s, None when no vehicle is on the detector
    observed_at: float  # simulation time (s) of the reading


@dataclass(frozen=True, slots=True)
class Observation:
    """Everything a controller may use about one junction at one moment."""

    tls_id: str
    observed_at: float  # the oldest lane-group reading in here: how fresh the data really is
    groups: dict[str, LaneGroupObservation]
    current_phase: int | None  # green phase on show, None during a yellow/all-red clearance
    phase_elapsed: float = 0.0  # seconds the current phase has been green

    def group(self, group_id: str) -> LaneGroupObservation | None:
        return self.groups.get(group_id)


@dataclass(frozen=True, slots=True)
class Decision:
    """A controller's wish for one junction: show green phase ``phase`` for ``duration`` s."""

    tls_id: str
    phase: int
    duration: float
    observed_at: float | None = None  # the Observation.observed_at it was based on


@dataclass(frozen=True, slots=True)
class Alert:
    """Raised through the alert hook when a signal falls back to its safe plan or recovers."""

    tls_id: str
    kind: Literal["fallback", "recovered", "rejected"]
    message: str
    at: float
    details: dict[str, object] = field(default_factory=dict)
