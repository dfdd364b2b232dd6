"""The RESCO metric, on answers known in advance."""

from __future__ import annotations

from pathlib import Path

import pytest

from cityos.services.traffic import Decision, Simulation, average_delay, tiny_scenario
from cityos.services.traffic.metric import DelaySplit, delay_split
from cityos.services.traffic.signalguard import SafetyRules

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


def _one_car(tmp_path: Path, held_phase_edge: str, duration: float) -> DelaySplit:
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
    split = delay_split(sim.tripinfo_file)
    assert split.average_delay_s == pytest.approx(average_delay(sim.tripinfo_file).average_delay_s)
    return split


def test_free_flow_car_has_no_delay(tmp_path: Path) -> None:
    split = _one_car(tmp_path, "WC", 120.0)
    assert split.average_delay_s < 1.0
    assert split.stops == 0.0 and split.unstopped_share == 1.0


def test_car_held_at_a_red_light_is_delayed_until_the_hour_ends(tmp_path: Path) -> None:
    # it drives ~195 m to the stop line at 13.89 m/s (~14 s), then waits out the 300 s;
    # still in the network at the end, it counts with its time loss so far: 300 - 14 = 286 s
    delay = _one_car(tmp_path, "NC", 300.0).average_delay_s
    assert delay == pytest.approx(300 - 195 / 13.89, abs=4.0)


SPLIT = """<tripinfos>
  <tripinfo id="a" depart="10.00" departDelay="2.00" arrival="50.00" timeLoss="8.00" waitingTime="0.00" waitingCount="0"/>
  <tripinfo id="b" depart="20.00" departDelay="1.00" arrival="90.00" timeLoss="30.00" waitingTime="20.00" waitingCount="2"/>
  <tripinfo id="c" depart="30.00" departDelay="0.00" arrival="60.00" timeLoss="4.00" waitingTime="0.00" waitingCount="0"/>
  <tripinfo id="d" depart="-1" departDelay="39.00" arrival="-1.00" timeLoss="0.00" waitingTime="0.00" waitingCount="0"/>
</tripinfos>
"""


def test_the_delay_split_adds_up_and_sets_apart_what_streets_cost(tmp_path: Path) -> None:
    path = tmp_path / "tripinfo.xml"
    path.write_text(SPLIT)
    split = delay_split(path)
    assert split.average_delay_s == pytest.approx(average_delay(path).average_delay_s)
    assert split.average_delay_s == pytest.approx(
        split.departure_delay_s + split.waiting_s + split.moving_loss_s
    )
    assert (split.departure_delay_s, split.waiting_s, split.moving_loss_s) == pytest.approx(
        (42 / 4, 20 / 4, 22 / 4)
    )
    assert split.stops == pytest.approx(0.5)
    # a and c never stopped (d never drove): streets alone cost them (8 + 4) / 2
    assert split.unstopped_share == pytest.approx(0.5)
    assert split.unstopped_loss_s == pytest.approx(6.0)
    assert split.signal_share_s == pytest.approx(84 / 4 - 6.0)


def test_a_car_held_at_red_stops_once_and_waits(tmp_path: Path) -> None:
    split = _one_car(tmp_path, "NC", 120.0)
    assert split.stops == 1.0 and split.unstopped_share == 0.0
    assert split.waiting_s == pytest.approx(120 - 195 / 13.89, abs=5.0)


def test_metric_needs_the_trip_file(tmp_path: Path) -> None:
    from cityos.services.traffic import TrafficError

    with pytest.raises(TrafficError, match="closed"):
        average_delay(tmp_path / "missing.xml")
