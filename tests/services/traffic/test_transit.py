"""Bus lines on a network: GTFS feed (gtfs-kit round trip) and SUMO runs the same timetable."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import sumolib

from cityos.services.traffic.errors import NetworkFileError
from cityos.services.traffic.gtfs import gtfs_time, parse_gtfs_time, read_schedules
from cityos.services.traffic.gtfs_rt import distance_along_shape, estimate_delay
from cityos.services.traffic.sim.scenarios import get_scenario, sumo_binary
from cityos.services.traffic.sim.transit import (
    DEFAULT_ORIGIN,
    NoBusRouteError,
    TransitPlan,
    make_bus_lines,
    to_lonlat,
    validate_gtfs,
)

BEGIN, END = 25200.0, 26400.0  # 07:00-07:20


def _netconvert(directory: Path, nodes: str, edges: str, name: str = "net") -> Path:
    (directory / f"{name}.nod.xml").write_text(f"<nodes>\n{nodes}</nodes>\n")
    (directory / f"{name}.edg.xml").write_text(f"<edges>\n{edges}</edges>\n")
    net = directory / f"{name}.net.xml"
    done = subprocess.run(
        [
            sumo_binary("netconvert"),
            "-n",
            str(directory / f"{name}.nod.xml"),
            "-e",
            str(directory / f"{name}.edg.xml"),
            "-o",
            str(net),
            "--no-turnarounds",
            "--tls.default-type",
            "static",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return net


def corridor(directory: Path, allow: str = "") -> Path:
    """A 1.6 km two-way avenue with three signalised crossings 400 m apart (no projection)."""
    xs = {"J1": 400, "J2": 800, "J3": 1200}
    nodes = '  <node id="W" x="0" y="0" type="priority"/>\n'
    nodes += '  <node id="E" x="1600" y="0" type="priority"/>\n'
    for j, x in xs.items():
        nodes += f'  <node id="{j}" x="{x}" y="0" type="traffic_light"/>\n'
        nodes += f'  <node id="N{j}" x="{x}" y="150" type="priority"/>\n'
        nodes += f'  <node id="S{j}" x="{x}" y="-150" type="priority"/>\n'
    extra = f' allow="{allow}"' if allow else ""
    chain = ["W", *xs, "E"]
    edges = ""
    for a, b in zip(chain, chain[1:], strict=False):
        for u, v in ((a, b), (b, a)):
            edges += (
                f'  <edge id="{u}{v}" from="{u}" to="{v}" numLanes="2" speed="13.89"{extra}/>\n'
            )
    for j in xs:
        for side in ("N", "S"):
            for u, v in ((f"{side}{j}", j), (j, f"{side}{j}")):
                edges += (
                    f'  <edge id="{u}{v}" from="{u}" to="{v}" numLanes="1" speed="11.11"{extra}/>\n'
                )
    return _netconvert(directory, nodes, edges, "corridor")


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> TransitPlan:
    directory = tmp_path_factory.mktemp("transit")
    return make_bus_lines(corridor(directory), BEGIN, END, seed=7, out_dir=directory / "out")


@pytest.fixture(scope="module")
def sumo_run(plan: TransitPlan, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """SUMO runs the generated buses alone; stop and position (fcd) outputs kept."""
    directory = tmp_path_factory.mktemp("sumo-run")
    out = {"stops": directory / "stops.xml", "fcd": directory / "fcd.xml"}
    done = subprocess.run(
        [
            sumo_binary("sumo"),
            "-n",
            str(plan.net_file),
            "-a",
            str(plan.additional_file),
            "-r",
            str(plan.route_file),
            "-b",
            str(int(BEGIN)),
            "-e",
            str(int(END + 900)),
            "--stop-output",
            str(out["stops"]),
            "--fcd-output",
            str(out["fcd"]),
            "--no-step-log",
            "--seed",
            "1",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return out


# --------------------------------------------------------------------------- the plan


def test_lines_run_through_the_signals_with_stops_every_few_hundred_metres(
    plan: TransitPlan,
) -> None:
    net = sumolib.net.readNet(str(plan.net_file))
    assert plan.lines[0].signals == ("J1", "J2", "J3")  # the first line runs the avenue
    assert {s for line in plan.lines for s in line.signals} == {"J1", "J2", "J3"}
    for line in plan.lines:
        assert line.signals
        assert 300 <= line.headway_s <= 600
        for variant in line.variants:
            assert all(net.getEdge(e).allows("bus") for e in variant.edges)
            gaps = [b - a for a, b in zip(variant.stop_dists, variant.stop_dists[1:], strict=False)]
            assert gaps and all(100.0 <= g <= 560.0 for g in gaps), gaps
    assert {v.direction_id for line in plan.lines for v in line.variants} == {0, 1}
    called = {st.stop_id for trip in plan.trips for st in trip.stop_times}
    assert called == {s.stop_id for s in plan.stops}  # no stop without a bus, no bus to nowhere
    for stop in plan.stops:
        lane = net.getLane(stop.lane_id)
        assert 0.0 <= stop.start_pos < stop.end_pos <= lane.getLength()
        assert lane.allows("bus")


def test_trips_follow_the_headway_and_the_timetable_moves_forward(plan: TransitPlan) -> None:
    for line in plan.lines:
        for direction in {v.direction_id for v in line.variants}:
            departs = [
                t.depart
                for t in plan.trips
                if t.route_id == line.route_id and t.direction_id == direction
            ]
            assert departs and all(BEGIN <= d < END for d in departs)
            assert {b - a for a, b in zip(departs, departs[1:], strict=False)} <= {line.headway_s}
    for trip in plan.trips:
        times = trip.stop_times
        assert [st.sequence for st in times] == list(range(1, len(times) + 1))
        assert all(st.arrival <= st.departure for st in times)
        assert all(a.departure < b.arrival for a, b in zip(times, times[1:], strict=False))


def test_same_seed_same_feed_other_seed_other_timetable(tmp_path: Path, plan: TransitPlan) -> None:
    again = make_bus_lines(plan.net_file, BEGIN, END, seed=7, out_dir=tmp_path / "a")
    other = make_bus_lines(plan.net_file, BEGIN, END, seed=8, out_dir=tmp_path / "b")
    assert again.gtfs_path.read_bytes() == plan.gtfs_path.read_bytes()
    assert again.route_file.read_text() == plan.route_file.read_text()
    assert [t.depart for t in other.trips] != [t.depart for t in plan.trips]


# --------------------------------------------------------------------------- GTFS


def test_gtfs_round_trip_through_gtfs_kit(plan: TransitPlan) -> None:
    import gtfs_kit

    feed = gtfs_kit.read_feed(plan.gtfs_path, dist_units="m")
    problems = validate_gtfs(plan.gtfs_path)
    assert not [p for p in problems if p["type"] == "error"], problems
    assert plan.validation == tuple(problems)

    stops = feed.stops.set_index("stop_id")
    assert set(stops.index) == {s.stop_id for s in plan.stops}
    for s in plan.stops:
        assert stops.loc[s.stop_id, "stop_lat"] == pytest.approx(s.lat, abs=1e-6)
        assert stops.loc[s.stop_id, "stop_lon"] == pytest.approx(s.lon, abs=1e-6)
    assert set(feed.routes["route_id"]) == {line.route_id for line in plan.lines}
    trips = feed.trips.set_index("trip_id")
    assert set(trips.index) == {t.trip_id for t in plan.trips}
    for t in plan.trips:
        assert trips.loc[t.trip_id, "route_id"] == t.route_id
        assert int(trips.loc[t.trip_id, "direction_id"]) == t.direction_id
    read_back = read_schedules(plan.gtfs_path)
    for trip_id, times in plan.schedules().items():
        assert [(s.stop_id, s.sequence, s.arrival, s.departure) for s in read_back[trip_id]] == [
            (s.stop_id, s.sequence, s.arrival, s.departure) for s in times
        ]
        assert [s.dist_m for s in read_back[trip_id]] == pytest.approx([s.dist_m for s in times])


def test_network_without_projection_sits_at_the_phnom_penh_origin(plan: TransitPlan) -> None:
    lon0, lat0 = DEFAULT_ORIGIN
    for stop in plan.stops:
        assert abs(stop.lon - lon0) < 0.02 and abs(stop.lat - lat0) < 0.01
    net = sumolib.net.readNet(str(plan.net_file))
    lon, lat = to_lonlat(net, 1000.0, 0.0)  # 1 km east of the origin
    assert lat == pytest.approx(lat0)
    assert (lon - lon0) * 111_320 * 0.9797 == pytest.approx(1000.0, rel=1e-3)


def test_resco_network_uses_its_own_projection(tmp_path: Path) -> None:
    scenario = get_scenario("cologne3")
    plan = make_bus_lines(scenario.net_file, scenario.begin, scenario.end, 3, tmp_path)
    assert len(plan.lines) >= 2
    assert all(50.8 < s.lat < 51.1 and 6.8 < s.lon < 7.1 for s in plan.stops)  # Cologne
    assert not [p for p in plan.validation if p["type"] == "error"]


def test_gtfs_times_past_midnight() -> None:
    assert gtfs_time(25200) == "07:00:00"
    assert gtfs_time(90061) == "25:01:01"
    assert parse_gtfs_time("25:01:01") == 90061
    assert parse_gtfs_time(" 7:05:09") == 25509


# --------------------------------------------------------------------------- SUMO


def test_sumo_buses_carry_the_gtfs_ids(plan: TransitPlan) -> None:
    root = ET.parse(plan.route_file).getroot()
    vehicles = root.findall("vehicle")
    assert [v.get("id") for v in vehicles] == [t.trip_id for t in plan.trips]
    for vehicle, trip in zip(vehicles, plan.trips, strict=True):
        assert vehicle.get("line") == trip.route_id
        stops = vehicle.findall("stop")
        assert [s.get("busStop") for s in stops] == [st.stop_id for st in trip.stop_times]
        assert [int(s.get("until")) for s in stops] == [st.departure for st in trip.stop_times]
    stop_ids = {s.get("id") for s in ET.parse(plan.additional_file).getroot()}
    assert stop_ids == {s.stop_id for s in plan.stops}


def test_sumo_buses_stop_at_every_stop_and_keep_the_timetable(
    plan: TransitPlan, sumo_run: dict[str, Path]
) -> None:
    served = {(i.get("id"), i.get("busStop")): i for i in ET.parse(sumo_run["stops"]).getroot()}
    for trip in plan.trips:
        for st in trip.stop_times:
            info = served.get((trip.trip_id, st.stop_id))
            assert info is not None, f"{trip.trip_id} did not stop at {st.stop_id}"
            assert float(info.get("ended")) >= st.departure  # never leaves before the timetable
            started = float(info.get("started"))
            assert float(info.get("arrivalDelay")) == pytest.approx(started - st.arrival)
            assert abs(started - st.arrival) < 120  # buses alone keep close to the timetable


def test_delay_from_a_gps_fix_matches_the_stop_record(
    plan: TransitPlan, sumo_run: dict[str, Path]
) -> None:
    """A bus standing at a stop, seen only by its x/y, gets the delay the stop record implies."""
    net = sumolib.net.readNet(str(plan.net_file))
    fcd = {
        (v.get("id"), float(step.get("time"))): v
        for step in ET.parse(sumo_run["fcd"]).getroot()
        for v in step
    }
    checked = 0
    for info in ET.parse(sumo_run["stops"]).getroot():
        trip = plan.trip(info.get("id"))
        st = next(s for s in trip.stop_times if s.stop_id == info.get("busStop"))
        now = float(info.get("started")) + 1.0
        row = fcd[(trip.trip_id, now)]
        lon, lat = to_lonlat(net, float(row.get("x")), float(row.get("y")))
        variant = plan.variant(trip.trip_id)
        distance = distance_along_shape(variant.shape, lon, lat)
        on_edge = variant.distance_at(row.get("lane").rsplit("_", 1)[0], float(row.get("pos")))
        assert distance == pytest.approx(on_edge, abs=3.0)
        expected = max(now - st.departure, 0.0) if now >= st.arrival else now - st.arrival
        assert estimate_delay(trip.stop_times, now, distance_m=distance) == pytest.approx(expected)
        checked += 1
    assert checked == sum(len(t.stop_times) for t in plan.trips)


# --------------------------------------------------------------------------- bad input


def test_network_where_buses_may_not_drive(tmp_path: Path) -> None:
    net = corridor(tmp_path, allow="passenger")
    with pytest.raises(NoBusRouteError, match="vClass 'bus'"):
        make_bus_lines(net, BEGIN, END, 1, tmp_path / "out")


def test_network_too_short_for_a_line(tmp_path: Path) -> None:
    nodes = '  <node id="A" x="0" y="0"/>\n  <node id="B" x="120" y="0"/>\n'
    edges = '  <edge id="AB" from="A" to="B" numLanes="1"/>\n  <edge id="BA" from="B" to="A" numLanes="1"/>\n'
    net = _netconvert(tmp_path, nodes, edges)
    with pytest.raises(NoBusRouteError, match=r"longest found: 120 m"):
        make_bus_lines(net, BEGIN, END, 1, tmp_path / "out")
    assert not (tmp_path / "out" / "gtfs.zip").exists()  # nothing half-written


def test_missing_or_corrupt_network(tmp_path: Path) -> None:
    with pytest.raises(NetworkFileError, match="does not exist"):
        make_bus_lines(tmp_path / "nope.net.xml", BEGIN, END, 1, tmp_path)
    broken = tmp_path / "broken.net.xml"
    broken.write_text("<net><edge id='a'")
    with pytest.raises(NetworkFileError, match="cannot be read"):
        make_bus_lines(broken, BEGIN, END, 1, tmp_path)
    other = tmp_path / "routes.xml"
    other.write_text("<routes/>")
    with pytest.raises(NetworkFileError, match="has no edges"):
        make_bus_lines(other, BEGIN, END, 1, tmp_path)
