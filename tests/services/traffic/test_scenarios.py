"""Scenarios: RESCO names and hours, the generated crossing, and clear errors for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from cityos.services.traffic import (
    RESCO_SCENARIOS,
    NetworkFileError,
    Scenario,
    Simulation,
    UnknownScenarioError,
    get_scenario,
)
from cityos.services.traffic.sim.layout import read_network


def test_resco_scenarios_come_from_sumo_rl_with_their_standard_hour() -> None:
    assert set(RESCO_SCENARIOS) == {
        "cologne1", "cologne3", "cologne8", "ingolstadt1", "ingolstadt7", "ingolstadt21",
    }  # fmt: skip
    cologne = get_scenario("cologne8")
    ingolstadt = get_scenario("ingolstadt21")
    assert (cologne.begin, cologne.end) == (25200.0, 28800.0)
    assert (ingolstadt.begin, ingolstadt.end) == (57600.0, 61200.0)
    assert (cologne.step_s, cologne.yellow_s) == (10.0, 3.0)
    for name in RESCO_SCENARIOS:
        scenario = get_scenario(name)
        scenario.check_files()
        assert "sumo_rl" in str(scenario.net_file)


def test_resco_signal_counts_match_the_benchmark() -> None:
    counts = {
        name: len(read_network(get_scenario(name).net_file).layouts) for name in RESCO_SCENARIOS
    }
    assert counts == {
        "cologne1": 1, "cologne3": 3, "cologne8": 8,
        "ingolstadt1": 1, "ingolstadt7": 7, "ingolstadt21": 21,
    }  # fmt: skip


def test_unknown_scenario_names_the_known_ones() -> None:
    with pytest.raises(UnknownScenarioError) as err:
        get_scenario("atlantis")
    assert "atlantis" in str(err.value)
    for name in RESCO_SCENARIOS:
        assert name in str(err.value)


def _scenario(net: Path, routes: Path) -> Scenario:
    return Scenario("broken", net, (routes,), 0.0, 60.0)


def test_corrupt_network_file_is_a_clear_error_not_a_crash(tmp_path: Path, tiny: Scenario) -> None:
    net = tmp_path / "bad.net.xml"
    net.write_text('<net>\n  <edge id="a" broken')  # libsumo itself would abort the process
    with pytest.raises(NetworkFileError, match="not valid XML"):
        Simulation(_scenario(net, tiny.route_files[0]))
    net.write_text("<routes/>")
    with pytest.raises(NetworkFileError, match="not a SUMO network"):
        Simulation(_scenario(net, tiny.route_files[0]))


def test_missing_files_are_named(tmp_path: Path, tiny: Scenario) -> None:
    with pytest.raises(NetworkFileError, match="nowhere.net.xml"):
        Simulation(_scenario(tmp_path / "nowhere.net.xml", tiny.route_files[0]))
    with pytest.raises(NetworkFileError, match="nowhere.rou.xml"):
        Simulation(_scenario(tiny.net_file, tmp_path / "nowhere.rou.xml"))


def test_tiny_crossing_is_generated_with_one_signal(tiny: Scenario) -> None:
    layouts = read_network(tiny.net_file).layouts
    assert list(layouts) == ["C"]
    layout = layouts["C"]
    assert len(layout.phases) == 2
    approaches = {g.edge for g in layout.approach_groups()}
    assert approaches == {"NC", "SC", "EC", "WC"}
    served = [set(p.serves) for p in layout.phases]
    assert {"NC", "SC"} == {layout.groups[g].edge for g in served[0]}
    assert {"EC", "WC"} == {layout.groups[g].edge for g in served[1]}
