"""Each safety rule of the signal guard, pinned on a hand-made two-phase junction."""

from __future__ import annotations

import logging

import pytest

from cityos.services.traffic.model import (
    Alert,
    Decision,
    GreenPhase,
    LaneGroup,
    LaneGroupObservation,
    Observation,
    SignalLayout,
)
from cityos.services.traffic.signalguard import RunProgram, SafetyRules, ShowState, SignalGuard


def toy_layout(pedestrian: bool = False) -> SignalLayout:
    """Two-phase junction by hand: links 0-1 north-south, 2-3 east-west, 4 a crossing."""
    groups = {
        "ns": LaneGroup("ns", "approach", "n", ("n_0",)),
        "ew": LaneGroup("ew", "approach", "e", ("e_0",)),
        "out": LaneGroup("out", "exit", "o", ("o_0",)),
    }
    ped_serves: tuple[str, ...] = ()
    if pedestrian:
        groups["x~"] = LaneGroup("x~", "crossing", "x", ())
        ped_serves = ("x~",)
    phases = (
        GreenPhase(0, 0, "GGrrr", ("ns",), (("ns", "out"),)),
        GreenPhase(1, 2, "rrGGr", ("ew",), (("ew", "out"),)),
        GreenPhase(2, 4, "rrrrG" if pedestrian else "rrrrr", ped_serves, (), pedestrian),
    )
    if not pedestrian:
        phases = phases[:2]
    return SignalLayout("J", "0", groups, phases, 5)


RULES = SafetyRules(min_green_s=5, yellow_s=3, all_red_s=2, max_red_s=60, stale_after_s=20)


def run(guard: SignalGuard, start: float, end: float, decide=None) -> dict[float, str]:
    """Tick once a second; returns what the lamps showed at each second."""
    shown: dict[float, str] = {}
    t = start
    while t <= end:
        if decide is not None:
            d = decide(t)
            if d is not None:
                guard.request(d, t)
        cmd = guard.tick(t)
        if isinstance(cmd, ShowState):
            pass
        shown[t] = guard.showing if guard.mode == "adaptive" else "program"
        t += 1.0
    return shown


def demand(tls: str, now: float, **counts: int) -> Observation:
    groups = {g: LaneGroupObservation(g, n, 0.0, n, 0.0, now) for g, n in counts.items()}
    return Observation(tls, now, groups, None)


def test_minimum_green_holds_an_early_change() -> None:
    guard = SignalGuard(toy_layout(), RULES, now=0.0)
    guard.tick(0.0)
    guard.request(Decision("J", 1, 10, 0.0), 1.0)
    assert guard.tick(1.0) is None  # green only 1 s old: no change yet
    assert guard.showing == "GGrrr"
    shown = run(guard, 2.0, 5.0)
    assert shown[4.0] == "GGrrr"
    assert shown[5.0] == "yyrrr"  # min green (5 s) met at t=5: clearance starts


def test_every_change_gets_yellow_then_all_red() -> None:
    guard = SignalGuard(toy_layout(), RULES, now=0.0)
    shown = run(guard, 0.0, 20.0, lambda t: Decision("J", 1, 10, t) if t == 10.0 else None)
    assert [shown[t] for t in (9.0, 10.0, 12.0, 13.0, 14.0, 15.0)] == [
        "GGrrr", "yyrrr", "yyrrr", "rrrrr", "rrrrr", "rrGGr",
    ]  # fmt: skip
    assert guard.phase == 1
    assert guard.green_since == 15.0


def test_same_phase_decision_only_extends() -> None:
    guard = SignalGuard(toy_layout(), RULES, now=0.0)
    shown = run(guard, 0.0, 30.0, lambda t: Decision("J", 0, 10, t) if t % 10 == 0 else None)
    assert set(shown.values()) == {"GGrrr"}


def test_max_red_serves_a_waiting_lane_group_against_the_controller() -> None:
    guard = SignalGuard(toy_layout(), RULES, now=0.0)
    guard.observe(demand("J", 0.0, ns=3, ew=4), 0.0)
    # a controller that only ever wants north-south
    shown = run(guard, 0.0, 80.0, lambda t: Decision("J", 0, 10, t) if t % 10 == 0 else None)
    first_ew = min(t for t, s in shown.items() if s == "rrGGr")
    assert 60.0 < first_ew <= 61.0 + RULES.yellow_s + RULES.all_red_s
    assert guard.forced_services >= 1


def test_max_red_ignores_an_empty_approach() -> None:
    guard = SignalGuard(toy_layout(), RULES, now=0.0)
    guard.observe(demand("J", 0.0, ns=3, ew=0), 0.0)
    shown = run(guard, 0.0, 150.0, lambda t: Decision("J", 0, 10, t) if t % 10 == 0 else None)
    assert set(shown.values()) == {"GGrrr"}


def test_pedestrian_phase_is_never_skipped_for_good() -> None:
    guard = SignalGuard(toy_layout(pedestrian=True), RULES, now=0.0)
    guard.observe(demand("J", 0.0, ns=5, ew=5), 0.0)

    def alternate(t: float) -> Decision | None:  # never asks for the pedestrian phase
        return Decision("J", int(t // 20) % 2, 10, t) if t % 10 == 0 else None

    shown = run(guard, 0.0, 200.0, alternate)
    assert "rrrrG" in shown.values()


def test_stale_observations_fall_back_to_fixed_time_with_an_alert(caplog) -> None:
    alerts: list[Alert] = []
    guard = SignalGuard(toy_layout(), RULES, now=0.0, alert=alerts.append)
    for t in (0.0, 10.0):
        guard.request(Decision("J", 0, 10, t), t)
        guard.tick(t)
    # the detector dies at t=10: decisions keep coming but carry the old observedAt
    commands = []
    with caplog.at_level(logging.WARNING):
        for t in range(11, 60):
            if t % 10 == 0:
                guard.request(Decision("J", 1, 10, observed_at=10.0), float(t))
            commands.append(guard.tick(float(t), program_phase=0))
    fallbacks = [
        (t, c) for t, c in zip(range(11, 60), commands, strict=True) if isinstance(c, RunProgram)
    ]
    # decisions at 20 and 30 rest on data 10 and 20 s old (within the limit) and are obeyed;
    # from 40 on they are refused, and 20 s after the last fresh one the program takes over
    assert fallbacks == [(51, RunProgram("0", 2))]
    assert guard.mode == "program"
    assert [a.kind for a in alerts] == ["fallback"]
    assert sum("fixed-time program" in r.getMessage() for r in caplog.records) == 1
    # fresh data again: control resumes at the program's current green phase
    guard.request(Decision("J", 1, 10, observed_at=70.0), 70.0)
    command = guard.tick(70.0, program_phase=2)
    assert command == ShowState("rrGGr")
    assert guard.mode == "adaptive"
    assert [a.kind for a in alerts] == ["fallback", "recovered"]


def test_silence_from_the_controller_also_falls_back() -> None:
    guard = SignalGuard(toy_layout(), RULES, now=0.0)
    guard.request(Decision("J", 0, 10, 0.0), 0.0)
    results = [guard.tick(float(t), program_phase=0) for t in range(0, 25)]
    assert isinstance(results[21], RunProgram)


def test_fallback_waits_for_clearance_to_end() -> None:
    guard = SignalGuard(toy_layout(), RULES, now=0.0)
    guard.request(Decision("J", 1, 10, 0.0), 5.0)
    guard.tick(5.0)  # starts yellow
    assert guard.showing == "yyrrr"
    # no more decisions; by t=26 data is stale, but the clearance ended long before
    cmds = {t: guard.tick(float(t), program_phase=2) for t in range(6, 30)}
    fallback_at = [t for t, c in cmds.items() if isinstance(c, RunProgram)]
    assert fallback_at and fallback_at[0] > 10
    assert cmds[fallback_at[0]] == RunProgram("0", 2)  # hands over at the green it reached


def test_bad_decisions_are_rejected_without_crashing() -> None:
    alerts: list[Alert] = []

    def broken_hook(alert: Alert) -> None:
        alerts.append(alert)
        raise RuntimeError("alert sink down")

    guard = SignalGuard(toy_layout(), RULES, now=0.0, alert=broken_hook)
    assert guard.request(Decision("J", 7, 10, 0.0), 0.0) is False
    assert guard.request(Decision("K", 0, 10, 0.0), 0.0) is False
    assert [a.kind for a in alerts] == ["rejected", "rejected"]
    assert guard.tick(1.0) == ShowState("GGrrr")


@pytest.mark.parametrize("yellow,all_red", [(3, 0), (4, 2)])
def test_clearance_lengths_follow_the_rules(yellow: float, all_red: float) -> None:
    rules = SafetyRules(min_green_s=5, yellow_s=yellow, all_red_s=all_red)
    guard = SignalGuard(toy_layout(), rules, now=0.0)
    shown = run(guard, 0.0, 30.0, lambda t: Decision("J", 1, 10, t) if t == 10.0 else None)
    assert sum(1 for s in shown.values() if s == "yyrrr") == yellow
    assert sum(1 for s in shown.values() if s == "rrrrr") == all_red
