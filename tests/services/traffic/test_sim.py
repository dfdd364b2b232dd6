"""The adapter on the tiny crossing: detectors, decisions reaching the lamps, outages, native modes."""

from __future__ import annotations

import pytest

from cityos.services.traffic import (
    Alert,
    Decision,
    Scenario,
    Simulation,
    UnknownControllerError,
    make_controller,
    run_scenario,
)
from cityos.services.traffic.signalguard import SafetyRules


def phase_serving(sim: Simulation, edge: str) -> int:
    layout = sim.layouts["C"]
    return next(
        p.index for p in layout.phases if any(layout.groups[g].edge == edge for g in p.serves)
    )


def test_observations_report_each_lane_group(tiny: Scenario) -> None:
    with Simulation(tiny, seed=1) as sim:
        while sim.time < 90:  # hold north-south green
            sim.apply([Decision("C", 0, 10, sim.time)])
            sim.advance(10)
        obs = sim.observe()["C"]
        layout = sim.layouts["C"]
        assert obs.observed_at == sim.time == 90.0
        assert set(obs.groups) == {g.id for g in layout.groups.values() if g.kind != "crossing"}
        readings = list(obs.groups.values())
        assert sum(r.vehicle_count for r in readings) > 0
        for r in readings:
            assert r.observed_at == 90.0
            assert 0.0 <= r.occupancy <= 100.0
            assert 0 <= r.queue <= r.vehicle_count
            assert (r.mean_speed is None) == (r.vehicle_count == 0)
        # east-west never had green: queues stand there
        ew = [obs.groups[g.id] for g in layout.approach_groups() if g.edge in ("EC", "WC")]
        assert obs.current_phase == 0
        assert sum(r.queue for r in ew) > 0


def test_a_decision_reaches_the_lamps_through_yellow_and_all_red(tiny: Scenario) -> None:
    rules = SafetyRules(min_green_s=5, yellow_s=3, all_red_s=2)
    with Simulation(tiny, seed=1, rules=rules) as sim:
        tl = sim._conn.trafficlight
        sim.advance(20)
        target = phase_serving(sim, "WC")
        assert sim.apply([Decision("C", target, 10, sim.time)]) == 1
        states = [tl.getRedYellowGreenState("C")]
        for _ in range(6):
            sim.advance(1)
            states.append(tl.getRedYellowGreenState("C"))
        green = sim.layouts["C"].phases[target].state
        assert "y" in states[0] and "y" in states[2]
        assert set(states[3]) <= set("rs") and set(states[4]) <= set("rs")
        assert states[5] == green
        assert sim.observe()["C"].current_phase == target


def test_decisions_for_unknown_signals_are_ignored(tiny: Scenario) -> None:
    with Simulation(tiny, seed=1) as sim:
        assert sim.apply([Decision("nowhere", 0, 10, 0.0), Decision("C", 99, 10, 0.0)]) == 0
        sim.advance(5)


def test_detector_outage_falls_back_to_the_fixed_program_and_alerts(tiny: Scenario) -> None:
    alerts: list[Alert] = []
    rules = SafetyRules(stale_after_s=30)
    controller = make_controller("max-pressure")
    with Simulation(tiny, seed=1, rules=rules, alert=alerts.append) as sim:
        controller.setup(sim.layouts, 10)
        tl = sim._conn.trafficlight

        def loop(until: float) -> None:
            while sim.time < until:
                observations = sim.observe()
                sim.apply(controller.decide(o, sim.time) for o in observations.values())
                sim.advance(10)

        loop(60)
        assert tl.getProgram("C") == "online"  # driven state by state
        sim.fail_detectors("C")
        loop(120)
        assert [a.kind for a in alerts] == ["fallback"]
        assert tl.getProgram("C") == "0"  # the network's own program
        sim.fail_detectors("C", failed=False)
        loop(240)
        assert [a.kind for a in alerts] == ["fallback", "recovered"]
        assert tl.getProgram("C") == "online"


def test_actuated_mode_switches_sumo_to_its_own_actuated_logic(tiny: Scenario) -> None:
    with Simulation(tiny, seed=1, mode="actuated") as sim:
        sim.advance(30)
        assert sim._conn.trafficlight.getProgram("C") == "cityos-actuated"
        assert not sim.guards


def test_second_simulation_runs_over_traci(tiny: Scenario) -> None:
    with Simulation(tiny, seed=1) as first, Simulation(tiny, seed=1) as second:
        assert (first.backend, second.backend) == ("libsumo", "traci")
        second.advance(30)
        assert second.time == 30.0


def test_full_loop_with_each_controller(tiny: Scenario) -> None:
    delays = {}
    for name in ("fixed", "actuated", "max-pressure", "cityos"):
        result = run_scenario(tiny, make_controller(name), seed=1)
        assert result.vehicles == tiny.route_files[0].read_text().count("<vehicle ")
        assert result.alerts == []
        delays[name] = result.average_delay_s
    assert all(0 < d < 120 for d in delays.values()), delays
    # an adaptive controller beats the fixed program on this unbalanced demand
    assert delays["cityos"] < delays["fixed"]


def test_unknown_controller_names_the_known_ones() -> None:
    with pytest.raises(UnknownControllerError) as err:
        make_controller("psychic")
    for name in ("fixed", "actuated", "max-pressure", "cityos"):
        assert name in str(err.value)
