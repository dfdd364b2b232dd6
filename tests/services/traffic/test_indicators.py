"""Congestion index, jam detection and emissions per district: the city's indicators."""

from __future__ import annotations

from pathlib import Path

import pytest

from cityos.services.traffic.congestion import (
    JamWatch,
    congestion_index,
    emissions_by_district,
    segment_readings,
)
from cityos.services.traffic.model import (
    GreenPhase,
    LaneGroup,
    LaneGroupObservation,
    Observation,
    SignalLayout,
)


def test_congestion_index_is_the_share_of_free_flow_speed_lost() -> None:
    assert congestion_index(13.89, 13.89) == 0.0
    assert congestion_index(3.47, 13.89) == pytest.approx(0.75, abs=1e-3)
    assert congestion_index(0.0, 13.89) == 1.0
    assert congestion_index(None, 13.89) == 0.0  # nobody on the detector: free
    assert congestion_index(20.0, 13.89) == 0.0  # faster than the limit is not negative


def test_a_jam_needs_a_slow_crowded_segment_for_the_hold_time_and_clears_with_hysteresis() -> None:
    watch = JamWatch(enter=0.7, leave=0.4, hold_s=60, min_queue=5)
    events = [watch.update("s", 0.9, t, queue=12) for t in (0, 30, 50)]
    assert events == [None, None, None]
    assert watch.update("s", 0.9, 60, queue=12) == "jam"
    assert watch.jammed() == {"s"}
    # still jammed at 0.5 (above leave), then 60 s at or below 0.4 clears it
    assert [watch.update("s", i, t, queue=3) for i, t in ((0.5, 70), (0.3, 80))] == [None, None]
    assert watch.update("s", 0.35, 140, queue=2) == "clear"
    assert watch.jammed() == set()


def test_one_slow_car_is_not_a_jam_and_a_dip_restarts_the_clock() -> None:
    watch = JamWatch(hold_s=60, min_queue=5)
    assert all(watch.update("a", 1.0, t, queue=1) is None for t in range(0, 600, 10))
    for t in (0, 40):
        assert watch.update("b", 0.9, t, queue=8) is None
    assert watch.update("b", 0.2, 50, queue=8) is None  # it moved: the hold starts again
    assert watch.update("b", 0.9, 60, queue=8) is None
    assert watch.update("b", 0.9, 120, queue=8) == "jam"


def test_segment_readings_weigh_speeds_by_the_vehicles_seen() -> None:
    layout = SignalLayout(
        "J",
        "0",
        {
            "a1": LaneGroup("a1", "approach", "main", ("main_0",)),
            "a2": LaneGroup("a2", "approach", "main", ("main_1",)),
            "x": LaneGroup("x", "exit", "out", ("out_0",)),
        },
        (GreenPhase(0, 0, "GG", ("a1", "a2"), ()),),
        2,
    )
    groups = {
        "a1": LaneGroupObservation("a1", 3, 30.0, 2, 2.0, 10.0),
        "a2": LaneGroupObservation("a2", 1, 10.0, 0, 10.0, 10.0),
        "x": LaneGroupObservation("x", 5, 50.0, 5, 0.0, 10.0),
    }
    readings = segment_readings(
        {"J": Observation("J", 10.0, groups, 0)}, {"J": layout}, {"main": 10.0}
    )
    assert set(readings) == {"main"}  # exits are not approaches
    r = readings["main"]
    assert r.mean_speed == pytest.approx((3 * 2.0 + 1 * 10.0) / 4)
    assert r.congestion_index == pytest.approx(1 - 4.0 / 10.0)
    assert (r.vehicles, r.queue, r.occupancy) == (4, 2, 20.0)


def test_emissions_are_summed_per_district_and_interval_in_city_units(tmp_path: Path) -> None:
    xml = tmp_path / "emissions.xml"
    xml.write_text(
        "<meandata>\n"
        ' <interval begin="0.00" end="3600.00" id="e">\n'
        '  <edge id="a" sampledSeconds="3600" CO2_abs="2000000" NOx_abs="5000" PMx_abs="100"'
        ' fuel_abs="742000"/>\n'
        '  <edge id="b" sampledSeconds="1800" CO2_abs="1000000" NOx_abs="1000" PMx_abs="50"'
        ' fuel_abs="742000"/>\n'
        '  <edge id="c" sampledSeconds="10" CO2_abs="999" NOx_abs="1" PMx_abs="1" fuel_abs="1"/>\n'
        " </interval>\n"
        ' <interval begin="3600.00" end="7200.00" id="e">\n'
        '  <edge id="a" sampledSeconds="360" CO2_abs="500000" NOx_abs="0" PMx_abs="0"'
        ' fuel_abs="0"/>\n'
        " </interval>\n"
        "</meandata>\n"
    )
    rows = emissions_by_district(xml, {"a": "north", "b": "north"})  # c is in no district
    assert [(r.district, r.begin, r.end) for r in rows] == [
        ("north", 0.0, 3600.0),
        ("north", 3600.0, 7200.0),
    ]
    first = rows[0]
    assert first.co2_kg == pytest.approx(3.0)  # mg -> kg
    assert first.nox_g == pytest.approx(6.0)
    assert first.pmx_g == pytest.approx(0.15)
    assert first.fuel_l == pytest.approx(2.0)  # 1,484 g at 742 g/l
    assert first.vehicle_hours == pytest.approx(1.5)
    assert rows[1].co2_kg == pytest.approx(0.5)
