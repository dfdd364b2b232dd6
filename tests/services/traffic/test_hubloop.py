"""The detector → hub → controller → signal loop on a small network, on both engines."""

from __future__ import annotations

import asyncio

import pytest

from cityos.config import Settings
from cityos.hub.client import HubClient
from cityos.hub.core import Hub
from cityos.hub.store.base import Store
from cityos.services.traffic import Scenario, make_controller, run_scenario
from cityos.services.traffic.signalguard import SafetyRules
from cityos.services.traffic.signalservice import (
    COMMAND,
    flow_entity,
    signal_entity,
    sim_iso,
    sim_seconds,
)
from cityos.services.traffic.sim.cabinet import Cabinet
from cityos.services.traffic.sim.hubloop import run_through_hub
from cityos.services.traffic.sim.simulation import Simulation


@pytest.fixture
def hub(store: Store) -> Hub:
    return Hub(Settings(), store=store)


def test_simulated_times_round_trip_through_the_hub_clock() -> None:
    for t in (0.0, 25200.0, 57600.5):
        assert sim_seconds(sim_iso(t)) == t


def test_the_loop_through_the_hub_decides_as_direct_access_does(tiny: Scenario, hub: Hub) -> None:
    """The controller sees only hub entities, yet every decision equals the direct loop's:
    the same average delay to the last digit, one command per junction and step, all OK."""
    direct = run_scenario(tiny, make_controller("max-pressure"))
    result, stats = asyncio.run(run_through_hub(tiny, make_controller("max-pressure"), hub))
    assert result.average_delay_s == pytest.approx(direct.average_delay_s, abs=1e-9)
    assert result.vehicles == direct.vehicles > 0
    assert stats.steps == round(tiny.duration / tiny.step_s)
    assert stats.commands == stats.steps  # one junction, one decision per step
    assert stats.messages_refused == stats.commands_rejected == 0

    client = HubClient(hub)
    [signal] = client.query(type="TrafficSignal")
    assert signal["id"] == signal_entity("C")
    assert signal[f"{COMMAND}_status"]["value"] == "OK"
    assert set(signal[COMMAND]["value"]) == {"phase", "duration", "basedOn"}
    flows = client.query(type="TrafficFlowObserved", limit=100)
    assert len(flows) >= 4  # one per approach of the crossing at least
    for flow in flows:
        assert flow["refTrafficSignal"]["object"] == signal["id"]
        assert flow["id"] == flow_entity("C", flow["laneGroup"]["value"])
        last = sim_seconds(flow["intensity"]["observedAt"])
        assert tiny.end - 2 * tiny.step_s <= last < tiny.end
    # history: every step's reading is kept (the temporal API serves it)
    history = hub.store.history("", flows[0]["id"], limit=10_000)
    assert len([h for h in history if h.attr.endswith("intensity")]) == stats.steps


def test_a_detector_that_stops_reporting_falls_back_and_raises_an_alert(
    tiny: Scenario, hub: Hub
) -> None:
    """Its entities stop moving in the hub; decisions on them are too old for the guard,
    which runs the fixed-time plan, and an Alert entity says so. The loop goes on."""

    def break_detectors(sim: Simulation) -> None:
        if sim.time >= tiny.begin + 60:
            sim.fail_detectors("C")

    rules = SafetyRules(yellow_s=tiny.yellow_s, stale_after_s=20.0)
    result, stats = asyncio.run(
        run_through_hub(
            tiny, make_controller("max-pressure"), hub, rules=rules, before_step=break_detectors
        )
    )
    assert result.simulated_s == tiny.duration  # ran to the end
    assert stats.alerts >= 1
    assert any(a["kind"] == "fallback" for a in result.alerts)
    alerts = HubClient(hub).query(type="Alert")
    fallback = [a for a in alerts if a["subCategory"]["value"] == "signal-fallback"]
    assert fallback, alerts
    assert fallback[0]["alertSource"]["object"] == signal_entity("C")
    assert fallback[0]["severity"]["value"] == "high"
    # the stale decisions were answered as refused, not silently dropped
    assert stats.commands_rejected > 0
    [signal] = HubClient(hub).query(type="TrafficSignal")
    assert signal[f"{COMMAND}_info"]["value"].startswith("ERROR")  # still stale at the end


def test_a_malformed_command_is_answered_with_an_error_and_changes_nothing(
    tiny: Scenario, hub: Hub
) -> None:
    from cityos.devices.agent import Agent
    from cityos.services.traffic.signalservice import provision

    sim = Simulation(tiny, mode="guarded")
    sim.start()
    try:
        agent = Agent(hub)
        wiring = provision(agent, "", sim.layouts)
        cabinet = Cabinet(sim, agent, "", wiring)
        device = wiring.signal_device["C"]
        for bad in (b'{"setPhase": "green please"}', b'{"setPhase": {"phase": 0}}', b"nope"):
            ok, _ = cabinet._receive(f"/traffic-signals/{device}/cmd", bad)
            if ok:
                assert cabinet.apply_commands() == []
        assert cabinet.rejected == 2  # the two that parsed as JSON were answered ERROR
        [signal] = HubClient(hub).query(type="TrafficSignal")
        assert signal[f"{COMMAND}_info"]["value"].startswith("ERROR")
    finally:
        sim.close()


def test_controllers_that_run_inside_sumo_are_refused_through_the_hub(
    tiny: Scenario, hub: Hub
) -> None:
    with pytest.raises(ValueError, match="runs inside SUMO"):
        asyncio.run(run_through_hub(tiny, make_controller("fixed"), hub))
