"""Plain max-pressure (RESCO's baseline): halting in minus halting out, nothing else."""

from __future__ import annotations

from cityos.services.traffic.controllers import PlainMaxPressureController, make_controller
from cityos.services.traffic.controllers.maxpressure_plain import plain_pressure
from cityos.services.traffic.model import (
    GreenPhase,
    LaneGroup,
    LaneGroupObservation,
    Observation,
    SignalLayout,
)


def _layout() -> SignalLayout:
    """N (two lanes) goes S in phase 0; E (one lane) goes W and S in phase 1."""
    groups = {
        "N>0": LaneGroup("N>0", "approach", "N", ("N_0", "N_1"), 200.0),
        "E>1": LaneGroup("E>1", "approach", "E", ("E_0",), 200.0),
        "S<": LaneGroup("S<", "exit", "S", ("S_0", "S_1"), 200.0),
        "W<": LaneGroup("W<", "exit", "W", ("W_0",), 200.0),
    }
    phases = (
        GreenPhase(0, 0, "GGrr", ("N>0",), (("N>0", "S<"),)),
        GreenPhase(1, 2, "rrGG", ("E>1",), (("E>1", "W<"), ("E>1", "S<"))),
    )
    return SignalLayout("J", "0", groups, phases, 4)


def _obs(readings: dict[str, tuple[int, int]], current: int | None = 0) -> Observation:
    """``readings``: group id -> (vehicles, halting); groups not named are empty."""
    groups = {}
    for gid in ("N>0", "E>1", "S<", "W<"):
        vehicles, queue = readings.get(gid, (0, 0))
        groups[gid] = LaneGroupObservation(gid, vehicles, 0.0, queue, None, 50.0)
    return Observation("J", 50.0, groups, current, 20.0)


def _decide(readings: dict[str, tuple[int, int]], current: int | None = 0) -> int:
    controller = make_controller("max-pressure-plain")
    assert isinstance(controller, PlainMaxPressureController)
    controller.setup({"J": _layout()}, 10.0)
    decision = controller.decide(_obs(readings, current), 50.0)
    assert decision is not None and decision.duration == 10.0
    return decision.phase


def test_pressure_is_halting_in_minus_halting_out_per_movement() -> None:
    obs = _obs({"N>0": (9, 6), "E>1": (4, 3), "S<": (5, 2), "W<": (1, 1)})
    layout = _layout()
    assert plain_pressure(obs, layout, 0) == 6 - 2
    # E feeds two exits: each movement counts E's queue once, less that exit's queue
    assert plain_pressure(obs, layout, 1) == (3 - 1) + (3 - 2)


def test_the_phase_with_most_pressure_wins() -> None:
    assert _decide({"N>0": (9, 6), "E>1": (4, 3), "S<": (5, 2), "W<": (1, 1)}) == 0  # 4 > 3
    # 6 - 4 = 2 against (4 - 0) + (4 - 4) = 4
    assert _decide({"N>0": (9, 6), "E>1": (4, 4), "S<": (5, 4), "W<": (1, 0)}, current=0) == 1


def test_moving_vehicles_and_lane_counts_do_not_count() -> None:
    # N has many more vehicles, all moving, and two lanes; only halting ones weigh
    assert _decide({"N>0": (30, 1), "E>1": (2, 2)}) == 1


def test_ties_go_to_the_first_phase_even_against_the_current_one() -> None:
    assert _decide({"N>0": (3, 2), "E>1": (2, 1)}, current=1) == 0  # 2 == 1 + 1
    assert _decide({}, current=1) == 0
    assert _decide({}, current=None) == 0


def test_unknown_junction_gets_no_decision() -> None:
    controller = PlainMaxPressureController()
    controller.setup({}, 10.0)
    assert controller.decide(_obs({}), 50.0) is None
