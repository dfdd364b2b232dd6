"""The district as a SUMO network: geography, signals, connectivity, demand, a short run, buses."""

from __future__ import annotations

import dataclasses
import math
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import pytest
import sumolib

from cityos.services.traffic import make_controller, run_scenario
from cityos.services.traffic.sim.layout import read_network
from cityos.services.traffic.sim.roadnet import (
    BUSIEST_LOAD,
    MERGE_M,
    SCENARIO_NAME,
    SIGNAL_CLASSES,
    SNAP_M,
    district_demand,
    district_scenario,
    fringe_edges,
    plain_network,
)
from cityos.services.traffic.sim.transit import make_bus_lines
from cityos.twin.geo import distance_m, project_onto_segment
from cityos.twin.streets import STREETS

BEGIN = 25200.0
BY_NAME = {s.name: s for s in STREETS}
BY_SLUG = {s.slug: s for s in STREETS}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory):
    return district_scenario(tmp_path_factory.mktemp("daun-penh"))


@pytest.fixture(scope="module")
def net(scenario):
    return sumolib.net.readNet(str(scenario.net_file))


def lonlat(net, node) -> tuple[float, float]:
    lon, lat = net.convertXY2LonLat(*node.getCoord())
    return float(lon), float(lat)


def distance_to_street(p: tuple[float, float], slug: str) -> float:
    pts = BY_SLUG[slug].waypoints
    return min(project_onto_segment(p, a, b)[1] for a, b in zip(pts, pts[1:], strict=False))


def test_scenario_files_and_name(scenario):
    scenario.check_files()
    assert scenario.name == SCENARIO_NAME == "phnom-penh-daun-penh"
    assert (scenario.begin, scenario.end) == (25200.0, 28800.0)


def test_network_keeps_the_district_geography(net, scenario):
    assert net.hasGeoProj()
    location = ET.parse(scenario.net_file).getroot().find("location")
    assert "+proj=utm +zone=48" in location.get("projParameter")
    positions = {n.getID(): lonlat(net, n) for n in net.getNodes()}
    plain = plain_network()
    assert set(positions) == {j.node_id for j in plain.junctions}
    for j in plain.junctions:  # what netconvert was given comes back through the projection
        assert distance_m((j.lon, j.lat), positions[j.node_id]) < 0.5, j.node_id
    close = 0
    for street in STREETS:
        last = len(street.waypoints) - 1
        for k, waypoint in enumerate(street.waypoints):
            nearest = min(distance_m(waypoint, p) for p in positions.values())
            snapped = (street.slug, k) in plain.snapped and k in (0, last)
            assert nearest <= (SNAP_M if snapped else MERGE_M), (street.slug, k, nearest)
            close += nearest < 1.0
    assert close >= sum(len(s.waypoints) for s in STREETS) // 2


def test_edges_carry_their_street(net):
    ids = {e.getID() for e in net.getEdges() if e.getFunction() == ""}
    assert {"norodom-blvd-3", "-norodom-blvd-3"} <= ids
    for edge in net.getEdges():
        if edge.getFunction():
            continue
        street = BY_NAME[edge.getName()]
        assert edge.getID().lstrip("-").startswith(street.slug + "-")
        assert edge.getLaneNumber() == street.lanes_per_direction
        assert math.isclose(edge.getSpeed(), street.max_speed_kmh / 3.6, abs_tol=0.01)
        assert edge.allows("bus") and edge.allows("motorcycle")
        if street.one_way:
            assert not edge.getID().startswith("-"), edge.getID()


def test_east_west_streets_meet_monivong_and_the_quay(net):
    plain = plain_network()
    meeting = [
        {e.getName() for e in (*node.getIncoming(), *node.getOutgoing())} for node in net.getNodes()
    ]
    for slug in ("street-106", "street-108", "street-130", "street-136", "street-154"):
        last = len(BY_SLUG[slug].waypoints) - 1
        assert plain.snapped[(slug, 0)] == "monivong-blvd"
        assert plain.snapped[(slug, last)] == "sisowath-quay"
        name = BY_SLUG[slug].name
        assert {name, "Monivong Blvd"} in [m & {name, "Monivong Blvd"} for m in meeting], slug
        assert {name, "Sisowath Quay"} in [m & {name, "Sisowath Quay"} for m in meeting], slug
    assert plain.snapped[("norodom-blvd", 0)] == "street-106"


def test_signals_at_the_main_crossings(net, scenario):
    signals = {tls.getID() for tls in net.getTrafficLights()}
    for crossing in (
        "norodom-blvd--street-130",
        "norodom-blvd--street-108",
        "monivong-blvd--street-130",
        "charles-de-gaulle-blvd--monivong-blvd",
        "sisowath-quay--street-130",
    ):
        assert crossing in signals
        node = net.getNode(crossing)
        for slug in crossing.split("--"):  # the junction lies on both streets
            assert distance_to_street(lonlat(net, node), slug) < 15.0, (crossing, slug)
    assert "norodom-blvd--street-136" not in signals  # a tertiary side street: priority
    for tls in signals:
        big = [s for s in tls.split("--") if BY_SLUG[s].road_class in SIGNAL_CLASSES]
        assert len(big) >= 2, tls
    layouts = read_network(scenario.net_file).layouts
    assert set(layouts) == signals
    for tls, layout in layouts.items():
        assert len(layout.phases) >= 2, tls


def test_fringe_edges_reach_each_other(net):
    entries, exits = fringe_edges(net)
    assert len(entries) >= 8 and len(exits) >= 8
    for a in entries:
        reached = [
            b
            for b in exits
            if b != a
            and b.getToNode() != a.getFromNode()
            and net.getShortestPath(a, b, vClass="passenger")[0]
        ]
        assert reached, f"no exit reachable from {a.getID()}"
    for b in exits:
        assert any(a != b and net.getShortestPath(a, b, vClass="passenger")[0] for a in entries)


def flows(route_file: Path) -> list[ET.Element]:
    return list(ET.parse(route_file).getroot().iter("flow"))


def test_demand_routes_exist_and_load_the_streets(net, scenario):
    entries, exits = fringe_edges(net)
    entry_ids, exit_ids = {e.getID() for e in entries}, {e.getID() for e in exits}
    all_flows = flows(scenario.route_files[0])
    assert {f.get("type") for f in all_flows} == {"car", "motorbike"}
    load: dict[str, float] = defaultdict(float)
    for flow in all_flows:
        edges = flow.find("route").get("edges").split()
        assert edges[0] in entry_ids and edges[-1] in exit_ids
        for a, b in zip(edges, edges[1:], strict=False):
            assert net.getEdge(b) in net.getEdge(a).getOutgoing(), (flow.get("id"), a, b)
        assert scenario.begin <= float(flow.get("begin")) < scenario.end
        for edge in edges:
            load[edge] += float(flow.get("vehsPerHour"))
    motorbikes = sum(float(f.get("vehsPerHour")) for f in all_flows if f.get("type") == "motorbike")
    total = sum(float(f.get("vehsPerHour")) for f in all_flows)
    assert 1500 < total < 6000 and motorbikes > total / 2
    ratio = {e: v / BY_NAME[net.getEdge(e).getName()].capacity_vph for e, v in load.items()}
    assert BUSIEST_LOAD * 0.8 < max(ratio.values()) <= BUSIEST_LOAD + 0.01
    busy_main = [e for e, r in ratio.items() if r > 0.25]
    assert any(e.lstrip("-").startswith(("norodom", "monivong")) for e in busy_main)


def test_demand_is_deterministic_and_scales(scenario, tmp_path):
    net_file, begin, end = scenario.net_file, scenario.begin, scenario.end
    again = district_demand(net_file, tmp_path / "again.rou.xml", begin, end, seed=0)
    assert again.read_bytes() == scenario.route_files[0].read_bytes()
    other = district_demand(net_file, tmp_path / "other.rou.xml", begin, end, seed=1)
    assert other.read_bytes() != again.read_bytes()
    half = district_demand(net_file, tmp_path / "half.rou.xml", begin, end, seed=0, scale=0.5)

    def total(path: Path) -> float:
        return sum(float(f.get("vehsPerHour")) for f in flows(path))

    assert 0.4 < total(half) / total(again) < 0.55


def test_ten_minutes_move_vehicles_through(scenario, tmp_path):
    short = dataclasses.replace(scenario, end=scenario.begin + 600.0)
    result = run_scenario(short, make_controller("max-pressure"), work_dir=tmp_path)
    assert result.vehicles > 300
    assert result.arrived > result.vehicles / 2
    assert result.never_inserted == 0
    assert math.isfinite(result.average_delay_s) and result.average_delay_s >= 0.0


def test_bus_lines_run_on_the_corridors(scenario, tmp_path):
    plan = make_bus_lines(scenario.net_file, BEGIN, BEGIN + 1200.0, 0, tmp_path)
    assert plan.lines and plan.trips
    assert any(line.signals for line in plan.lines)
    corridors = {s.name for s in STREETS if s.bus_corridor}
    names = {stop.name.split(" (")[0] for stop in plan.stops}
    assert names & corridors
