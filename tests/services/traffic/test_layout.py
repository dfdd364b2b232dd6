"""Lane groups, green phases and pedestrian phases read from a network."""

from __future__ import annotations

from cityos.services.traffic import Scenario
from cityos.services.traffic.signalguard import all_red_state, yellow_state
from cityos.services.traffic.sim.layout import is_green_state, read_network


def test_green_phases_exclude_yellow_and_all_red() -> None:
    assert is_green_state("GGrr")
    assert is_green_state("rrgg")
    assert not is_green_state("yyrr")
    assert not is_green_state("GGyy")
    assert not is_green_state("rrrr")


def test_pedestrian_phases_are_marked(tiny_pedestrians: Scenario) -> None:
    layout = read_network(tiny_pedestrians.net_file).layouts["C"]
    crossings = [g for g in layout.groups.values() if g.kind == "crossing"]
    assert len(crossings) == 4
    with_peds = [p for p in layout.phases if p.pedestrian]
    assert len(with_peds) == 2
    for phase in with_peds:
        assert any(layout.groups[g].kind == "crossing" for g in phase.serves)
    # every movement's approach and exit exist
    for phase in layout.phases:
        for src, dst in phase.movements:
            assert layout.groups[src].kind == "approach"
            assert layout.groups[dst].kind == "exit"


def test_clearance_states() -> None:
    assert yellow_state("GGrr", "rrGG") == "yyrr"
    assert all_red_state("GGrr", "rrGG") == "rrrr"
    # a link green before and after keeps going; only the one losing green clears
    assert yellow_state("GGgr", "GrrG") == "Gyyr"
    assert all_red_state("GGgr", "GrrG") == "Grrr"
