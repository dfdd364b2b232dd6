"""The RESCO metric, on answers known in advance."""

from __future__ import annotations

from pathlib import Path

import pytest

from cityos.services.traffic import Decision, Simulation, average_delay, tiny_scenario
from cityos.services.traffic.safety import SafetyRules

TRIPINFO = """<tripinfos>
  <tripinfo id="a" depart="10.00" departDelay="2.00" arrival="50.00" timeLoss="8.00"/>
  <tripinfo id="b" depart="20.00" departDelay="1.00" arrival="-1.00" timeLoss="30.00" vaporized="end"/>
  <tripinfo id="c" depart="-1" departDelay="39.00" arrival="-1.00" timeLoss="0.00" vaporized="end"/>
</tripinfos>
"""


def test_delay_is_time_loss_plus_departure_delay_over_every_vehicle(tmp_path: Path) -> None:
    path = tmp_path / "tripinfo.xml"
    path.write_text(TRIPINFO)
    report = average_delay(path)
    assert report.average_delay_s == pytest.approx((10 + 31 + 39) / 3)
    assert (report.vehicles, report.arrived, report.in_network, report.never_inserted) == (
        3,
        1,
        1,
        1,
    )


def _one_car(tmp_path: Path, held_phase_edge: str, duration: float) -> float:
    """One car from the west, the signal held on the phase serving ``held_phase_edge``."""
    scenario = tiny_scenario(tmp_path, duration=duration, vehicles=[("WE", 0.0)])
    rules = SafetyRules(max_red_s=1e9)  # hold it, whatever waits
    with Simulation(scenario, seed=0, rules=rules) as sim:
        layout = sim.layouts["C"]
        phase = next(
            p.index
            for p in layout.phases
            if any(layout.groups[g].edge == held_phase_edge for g in p.serves)
        )
        while not sim.done:
            sim.apply([Decision("C", phase, 10, sim.time)])
            sim.advance(10)
    return average_delay(sim.tripinfo_file).average_delay_s


def test_free_flow_car_has_no_delay(tmp_path: Path) -> None:
    assert _one_car(tmp_path, "WC", 120.0) < 1.0


def test_car_held_at_a_red_light_is_delayed_until_the_hour_ends(tmp_path: Path) -> None:
    # it drives ~195 m to the stop line at 13.89 m/s (~14 s), then waits out the 300 s;
    # still in the network at the end, it counts with its time loss so far: 300 - 14 = 286 s
    delay = _one_car(tmp_path, "NC", 300.0)
    assert delay == pytest.approx(300 - 195 / 13.89, abs=4.0)


def test_metric_needs_the_trip_file(tmp_path: Path) -> None:
    from cityos.services.traffic import TrafficError

    with pytest.raises(TrafficError, match="closed"):
        average_delay(tmp_path / "missing.xml")
