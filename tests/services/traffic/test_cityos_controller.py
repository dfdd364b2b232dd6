"""CityOS's controller on hand-made junctions: what it serves, and what it refuses to serve."""

from __future__ import annotations

from cityos.services.traffic.controllers import CityOSController, make_controller
from cityos.services.traffic.model import (
    GreenPhase,
    LaneGroup,
    LaneGroupObservation,
    Observation,
    SignalLayout,
)


def _cross(tls: str = "J", exit_m: float = 100.0, east_edge: str = "E") -> SignalLayout:
    """Two one-lane approaches, N (phase 0, exits S) and E (phase 1, exits W)."""
    groups = {
        "N>0": LaneGroup("N>0", "approach", "N", ("N_0",), 100.0),
        f"{east_edge}>1": LaneGroup(
            f"{east_edge}>1", "approach", east_edge, (f"{east_edge}_0",), 100.0
        ),
        "S<": LaneGroup("S<", "exit", "S", ("S_0",), exit_m),
        "W<": LaneGroup("W<", "exit", "W", ("W_0",), exit_m),
    }
    phases = (
        GreenPhase(0, 0, "Gr", ("N>0",), (("N>0", "S<"),)),
        GreenPhase(1, 2, "rG", (f"{east_edge}>1",), ((f"{east_edge}>1", "W<"),)),
    )
    return SignalLayout(tls, "0", groups, phases, 2)


def _obs(
    layout: SignalLayout,
    readings: dict[str, tuple[int, int]],
    current: int | None = 0,
    elapsed: float = 20.0,
    at: float = 100.0,
) -> Observation:
    """``readings``: group id -> (vehicles, halting); groups not named are empty."""
    groups = {
        gid: LaneGroupObservation(
            gid,
            readings.get(gid, (0, 0))[0],
            0.0,
            readings.get(gid, (0, 0))[1],
            None,
            at,
        )
        for gid, g in layout.groups.items()
        if g.kind != "crossing"
    }
    return Observation(layout.tls_id, at, groups, current, elapsed)


def _controller(*layouts: SignalLayout) -> CityOSController:
    controller = make_controller("cityos")
    assert isinstance(controller, CityOSController)
    controller.setup({lay.tls_id: lay for lay in layouts}, 10.0)
    return controller


def test_serves_the_heavier_approach() -> None:
    layout = _cross()
    controller = _controller(layout)
    decision = controller.decide(_obs(layout, {"N>0": (2, 2), "E>1": (10, 10)}), 100.0)
    assert decision is not None
    assert decision.phase == 1
    assert decision.tls_id == "J"
    assert decision.observed_at == 100.0


def test_keeps_the_green_for_a_small_gain() -> None:
    """A change costs 4 s of clearance: one more waiting vehicle is not worth it."""
    layout = _cross()
    controller = _controller(layout)
    decision = controller.decide(_obs(layout, {"N>0": (3, 3), "E>1": (3, 3)}, current=0), 100.0)
    assert decision is not None and decision.phase == 0
    decision = controller.decide(_obs(layout, {"N>0": (3, 3), "E>1": (8, 8)}, current=0), 110.0)
    assert decision is not None and decision.phase == 1


def test_never_serves_a_movement_whose_exit_is_full() -> None:
    """The exit W (100 m, about 13 standing vehicles) is full: E's long queue must wait."""
    layout = _cross()
    controller = _controller(layout)
    full = {"N>0": (2, 2), "E>1": (20, 20), "W<": (14, 14)}
    decision = controller.decide(_obs(layout, full, current=0), 100.0)
    assert decision is not None and decision.phase == 0
    # moving traffic on the exit leaves room: then E is served
    flowing = {"N>0": (2, 2), "E>1": (20, 20), "W<": (4, 0)}
    decision = controller.decide(_obs(layout, flowing, current=0), 110.0)
    assert decision is not None and decision.phase == 1


def test_while_clearing_it_holds_the_phase_it_asked_for() -> None:
    layout = _cross()
    controller = _controller(layout)
    first = controller.decide(_obs(layout, {"E>1": (10, 10)}, current=0), 100.0)
    assert first is not None and first.phase == 1
    # next step the lamps are still in yellow / all-red: no change of mind
    second = controller.decide(_obs(layout, {"N>0": (30, 30)}, current=None), 110.0)
    assert second is not None and second.phase == 1


def test_a_short_link_between_two_signals_is_emptied_first() -> None:
    """Signal B's approach L is a 12 m link from A: vehicles on it are served before others."""
    a = _cross("A", exit_m=200.0)
    b = _cross("B", exit_m=200.0, east_edge="L")
    # A's exit onto L: a 12 m link (B's approach L>1)
    a_groups = dict(a.groups)
    a_groups["L<"] = LaneGroup("L<", "exit", "L", ("L_0",), 12.0)
    a_phases = (
        a.phases[0],
        GreenPhase(1, 2, "rG", ("E>1",), (("E>1", "L<"),)),
    )
    a = SignalLayout("A", "0", a_groups, a_phases, 2)
    controller = _controller(a, b)
    assert ("A", "L<") in controller._down  # the pair was found from the layouts
    readings = {"N>0": (3, 3), "L>1": (2, 2)}
    decision = controller.decide(_obs(b, readings, current=None), 100.0)
    assert decision is not None and decision.phase == 1
    # the same two approaches on a crossing with no short link: N keeps its green
    plain = _cross("P")
    other = _controller(plain)
    decision = other.decide(_obs(plain, {"N>0": (3, 3), "E>1": (2, 2)}, current=None), 100.0)
    assert decision is not None and decision.phase == 0


def test_unknown_signal_gets_no_decision() -> None:
    layout = _cross()
    controller = _controller(layout)
    stranger = Observation("nowhere", 0.0, {}, None, 0.0)
    assert controller.decide(stranger, 0.0) is None


def _tuned(layout: SignalLayout, **params: float) -> CityOSController:
    controller = make_controller("cityos", **params)
    assert isinstance(controller, CityOSController)
    controller.setup({layout.tls_id: layout}, 10.0)
    return controller


def test_a_platoon_moving_through_its_green_holds_it() -> None:
    """Stopping a moving platoon costs each vehicle a stop and a start: the hold weighs that."""
    layout = _cross()
    # N has green and 4 vehicles still moving towards the line; E has 6 standing
    readings = {"N>0": (4, 0), "E>1": (6, 6)}
    plain = _tuned(layout).decide(_obs(layout, readings, current=0), 100.0)
    held = _tuned(layout, hold_per_moving=1.0).decide(_obs(layout, readings, current=0), 100.0)
    assert plain is not None and plain.phase == 1  # 6 - 4 > 1: pressure alone switches
    assert held is not None and held.phase == 0  # 6 - 4 < 1 + 1 x 4 moving: kept
    # once the platoon has passed, the same hold lets the waiting side go
    gone = _tuned(layout, hold_per_moving=1.0).decide(
        _obs(layout, {"N>0": (0, 0), "E>1": (6, 6)}, current=0), 110.0
    )
    assert gone is not None and gone.phase == 1


def test_a_demand_cap_stops_one_long_queue_outweighing_many() -> None:
    layout = _cross()
    readings = {"N>0": (12, 12), "E>1": (9, 9)}
    assert _tuned(layout).decide(_obs(layout, readings, current=None), 100.0).phase == 0  # type: ignore[union-attr]
    capped = _tuned(layout, demand_cap=8.0)
    assert capped.score(_obs(layout, readings), layout, 0, 100.0) == capped.score(
        _obs(layout, {"N>0": (8, 8)}), layout, 0, 100.0
    )
