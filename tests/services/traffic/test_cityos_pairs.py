"""Two signals joined by short links both ways (ingolstadt21's knots): chosen together."""

from __future__ import annotations

from cityos.services.traffic.controllers import CityOSController, make_controller
from cityos.services.traffic.model import (
    GreenPhase,
    LaneGroup,
    LaneGroupObservation,
    Observation,
    SignalLayout,
)


def _pair() -> tuple[SignalLayout, SignalLayout]:
    """A and B joined by 12 m links L2 (A -> B) and L1 (B -> A), as in ingolstadt21.

    A: phase 0 serves X (into L2) and L1 (out), phase 1 serves L1 only, phase 2 serves Y
    (into L2). B mirrors it: phase 0 serves L2 and Z (into L1), phase 1 L2 only, phase 2 W
    (into L1). Y and W green together fill both links while both their ends are red.
    """
    a_groups = {
        "X>0": LaneGroup("X>0", "approach", "X", ("X_0",), 100.0),
        "L1>0.1": LaneGroup("L1>0.1", "approach", "L1", ("L1_0",), 12.0),
        "Y>2": LaneGroup("Y>2", "approach", "Y", ("Y_0",), 100.0),
        "L2<": LaneGroup("L2<", "exit", "L2", ("L2_0",), 12.0),
        "OA<": LaneGroup("OA<", "exit", "OA", ("OA_0",), 100.0),
    }
    a_phases = (
        GreenPhase(0, 0, "GGr", ("X>0", "L1>0.1"), (("X>0", "L2<"), ("L1>0.1", "OA<"))),
        GreenPhase(1, 2, "rGr", ("L1>0.1",), (("L1>0.1", "OA<"),)),
        GreenPhase(2, 4, "rrG", ("Y>2",), (("Y>2", "L2<"),)),
    )
    b_groups = {
        "L2>0.1": LaneGroup("L2>0.1", "approach", "L2", ("L2_0",), 12.0),
        "Z>0": LaneGroup("Z>0", "approach", "Z", ("Z_0",), 100.0),
        "W>2": LaneGroup("W>2", "approach", "W", ("W_0",), 100.0),
        "L1<": LaneGroup("L1<", "exit", "L1", ("L1_0",), 12.0),
        "OB<": LaneGroup("OB<", "exit", "OB", ("OB_0",), 100.0),
    }
    b_phases = (
        GreenPhase(0, 0, "GGr", ("L2>0.1", "Z>0"), (("L2>0.1", "OB<"), ("Z>0", "L1<"))),
        GreenPhase(1, 2, "Grr", ("L2>0.1",), (("L2>0.1", "OB<"),)),
        GreenPhase(2, 4, "rrG", ("W>2",), (("W>2", "L1<"),)),
    )
    return (
        SignalLayout("A", "0", a_groups, a_phases, 3),
        SignalLayout("B", "0", b_groups, b_phases, 3),
    )


def _obs(layout: SignalLayout, queues: dict[str, int], current: int | None, at: float):
    groups = {
        gid: LaneGroupObservation(gid, queues.get(gid, 0), 0.0, queues.get(gid, 0), None, at)
        for gid in layout.groups
    }
    return Observation(layout.tls_id, at, groups, current, 20.0)


def _controller(a: SignalLayout, b: SignalLayout, **params: float) -> CityOSController:
    controller = make_controller("cityos", **params)
    assert isinstance(controller, CityOSController)
    controller.setup({"A": a, "B": b}, 10.0)
    return controller


def _step(controller, a, b, qa, qb, now, current=(1, 1)) -> tuple[int, int]:
    da = controller.decide(_obs(a, qa, current[0], now), now)
    db = controller.decide(_obs(b, qb, current[1], now), now)
    assert da is not None and db is not None
    return da.phase, db.phase


def test_the_pair_is_found_from_the_layouts() -> None:
    a, b = _pair()
    controller = _controller(a, b)
    assert controller._partner == {"A": "B", "B": "A"}


def test_never_feeds_a_short_link_whose_other_end_is_red() -> None:
    """Heavy Y at A and heavy W at B: alone each would take phase 2; together never both."""
    a, b = _pair()
    controller = _controller(a, b)
    jams = {(2, 2), (2, 0), (0, 2)}  # a phase pair that fills a link with its exit red
    queues_a, queues_b = {"Y>2": 12, "X>0": 1}, {"W>2": 11, "Z>0": 1}
    now = 100.0
    state = (1, 1)
    for _ in range(6):
        state = _step(controller, a, b, queues_a, queues_b, now, state)
        assert state not in jams
        now += 10.0
    # the heavier side gets its phase 2, the other drains the link meanwhile
    first = _step(controller, a, b, queues_a, queues_b, now, (1, 1))
    assert first == (2, 1)


def test_the_second_signal_follows_the_first() -> None:
    """Whatever A has just chosen, B picks a phase that does not jam a link with it."""
    a, b = _pair()
    controller = _controller(a, b)
    da = controller.decide(_obs(a, {"Y>2": 15}, 1, 100.0), 100.0)
    assert da is not None and da.phase == 2
    # B's own data say W (phase 2) or Z (phase 0); both would fill L1 with A's end red
    db = controller.decide(_obs(b, {"W>2": 20, "Z>0": 10}, 1, 100.0), 100.0)
    assert db is not None and db.phase == 1


def test_apart_when_asked() -> None:
    """pair_mode 0: each signal decides alone, as before (both take phase 2)."""
    a, b = _pair()
    controller = _controller(a, b, pair_mode=0)
    assert _step(controller, a, b, {"Y>2": 12}, {"W>2": 11}, 100.0) == (2, 2)
