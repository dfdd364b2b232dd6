"""Buses in the loop: their reports through the hub, GTFS-realtime built from the hub, and
what bus priority decides."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from cityos.config import Settings
from cityos.hub.client import HubClient
from cityos.hub.core import Hub
from cityos.services.traffic import Scenario, make_controller
from cityos.services.traffic.gtfs_rt import read_trip_updates, read_vehicle_positions
from cityos.services.traffic.model import (
    Decision,
    GreenPhase,
    LaneGroup,
    LaneGroupObservation,
    Observation,
    SignalLayout,
)
from cityos.services.traffic.priority import BusPriority, BusReport
from cityos.services.traffic.sim.hubloop import run_through_hub
from cityos.services.traffic.sim.transit import TransitPlan, make_bus_lines

from .test_transit import BEGIN, corridor

END = BEGIN + 900.0


@pytest.fixture(scope="module")
def avenue(tmp_path_factory: pytest.TempPathFactory) -> tuple[Scenario, TransitPlan]:
    """The three-signal avenue with cars along and across it, and its bus lines."""
    directory = tmp_path_factory.mktemp("avenue")
    net = corridor(directory)
    routes = directory / "cars.rou.xml"
    flows = [("WJ1 J1J2 J2J3 J3E", 500), ("EJ3 J3J2 J2J1 J1W", 500)]
    flows += [(f"NJ{j}J{j} J{j}SJ{j}", 250) for j in (1, 2, 3)]
    route_xml = "".join(f'  <route id="r{i}" edges="{e}"/>\n' for i, (e, _) in enumerate(flows))
    flow_xml = "".join(
        f'  <flow id="f{i}" route="r{i}" begin="{BEGIN:g}" end="{END:g}" vehsPerHour="{n}"/>\n'
        for i, (_, n) in enumerate(flows)
    )
    routes.write_text(f"<routes>\n{route_xml}{flow_xml}</routes>\n")
    scenario = Scenario("avenue", net, (routes,), BEGIN, END)
    plan = make_bus_lines(net, BEGIN, END, seed=3, out_dir=directory / "transit")
    return scenario, plan


def test_buses_report_through_the_hub_and_gtfs_realtime_serves_them(
    avenue: tuple[Scenario, TransitPlan], tmp_path: Path
) -> None:
    scenario, plan = avenue
    settings = Settings(database_url=f"sqlite:///{tmp_path}/hub.db")
    hub = Hub(settings)
    hub.store.migrate()
    result, stats = asyncio.run(
        run_through_hub(scenario, make_controller("max-pressure"), hub, transit=plan)
    )
    assert stats.bus_reports > 0 and stats.messages_refused == 0
    buses = [v for v in HubClient(hub).query(type="Vehicle", limit=1000) if "location" in v]
    assert buses, "no bus reported into the hub"
    trips = {t.trip_id for t in plan.trips}
    for bus in buses:
        assert bus["tripId"]["value"] in trips
        assert bus["location"]["type"] == "GeoProperty"
        assert bus["vehicleType"]["value"] == "bus"

    from cityos.web.app import create_app

    # a bus whose unit reports no trip: published where it is, with no trip update, no error
    HubClient(hub).upsert(
        [
            {
                "id": "urn:ngsi-ld:Vehicle:stray",
                "type": "Vehicle",
                "name": {"type": "Property", "value": "stray"},
                "vehicleType": {"type": "Property", "value": "bus"},
                "location": {
                    "type": "GeoProperty",
                    "value": {"type": "Point", "coordinates": [104.92, 11.56]},
                    "observedAt": "2026-01-05T07:10:00Z",
                },
            }
        ]
    )
    with TestClient(create_app(settings, hub)) as client:
        r = client.get("/services/traffic/gtfs-rt/vehicle-positions")
        assert r.status_code == 200 and r.headers["content-type"] == "application/x-protobuf"
        positions = {p.vehicle_id: p for p in read_vehicle_positions(r.content)}
        assert set(positions) == {b["name"]["value"] for b in buses} | {"stray"}
        assert positions["stray"].trip_id is None
        for bus in buses:
            p = positions[bus["name"]["value"]]
            lon, lat = bus["location"]["value"]["coordinates"]
            assert (p.lon, p.lat) == pytest.approx((lon, lat), abs=1e-5)
            assert p.trip_id == bus["tripId"]["value"]
        r = client.get("/services/traffic/gtfs-rt/trip-updates")
        assert r.status_code == 200, r.text
        updates = {u.trip_id: u for u in read_trip_updates(r.content)}
        assert None not in updates and "" not in updates  # the stray bus has none
        with_delay = [b for b in buses if "delay" in b and "nextStopSequence" in b]
        assert {b["tripId"]["value"] for b in with_delay} <= set(updates)
        for bus in with_delay:
            update = updates[bus["tripId"]["value"]]
            assert update.delay_s == round(bus["delay"]["value"])
            assert update.stops[0].stop_sequence >= bus["nextStopSequence"]["value"]
        r = client.get("/services/traffic/gtfs-rt/vehicle-positions", params={"format": "json"})
        assert r.json()["header"]["gtfs_realtime_version"] == "2.0"
        r = client.get("/services/traffic/gtfs")
        assert r.status_code == 200 and r.content[:2] == b"PK"  # the static feed, a zip
    assert result.vehicles > 0


def test_without_a_registered_feed_trip_updates_say_why(tmp_path: Path) -> None:
    from cityos.web.app import create_app

    settings = Settings(database_url=f"sqlite:///{tmp_path}/empty.db")
    with TestClient(create_app(settings)) as client:
        r = client.get("/services/traffic/gtfs-rt/trip-updates")
        assert r.status_code == 404
        assert "no static GTFS feed" in r.json()["detail"]
        assert client.get("/services/traffic/gtfs-rt/vehicle-positions").status_code == 200


# ------------------------------------------------------------------------ the decisions

LAYOUT = SignalLayout(
    tls_id="J",
    program_id="0",
    groups={
        "ew": LaneGroup("ew", "approach", "WJ", ("WJ_0",)),
        "ns": LaneGroup("ns", "approach", "NJ", ("NJ_0",)),
    },
    phases=(
        GreenPhase(0, 0, "GGrr", ("ew",), ()),
        GreenPhase(1, 2, "rrGG", ("ns",), ()),
    ),
    link_count=4,
)


class Always:
    """A controller that always wants phase ``phase`` (to see what priority changes)."""

    name = "always"
    native_program = None

    def __init__(self, phase: int) -> None:
        self.phase = phase

    def setup(self, layouts: object, step_s: float) -> None: ...

    def decide(self, obs: Observation, now: float) -> Decision:
        return Decision(obs.tls_id, self.phase, 10.0, obs.observed_at)


def _obs(current: int | None) -> Observation:
    groups = {g: LaneGroupObservation(g, 2, 10.0, 1, 5.0, 100.0) for g in ("ew", "ns")}
    return Observation("J", 100.0, groups, current, 12.0)


def _bus(delay: float, lane: str = "NJ_0", distance: float = 40.0) -> BusReport:
    return BusReport("b1", "b1", "r1", 0, 0, 0, 8.0, 100.0, 0.0, "J", lane, distance, delay)


def _priority(phase: int, **options: float) -> BusPriority:
    p = BusPriority(Always(phase), **options)
    p.setup({"J": LAYOUT}, 10.0)
    return p


def test_a_late_bus_on_red_gets_an_early_green() -> None:
    p = _priority(0, late_after_s=30)
    p.request([_bus(delay=90)])
    assert p.decide(_obs(current=0), 100.0).phase == 1  # ns serves the bus's lane
    assert p.stats.early_greens == 1


def test_a_late_bus_on_green_gets_it_extended_within_the_limit() -> None:
    p = _priority(0, late_after_s=30, max_extension_s=20)
    p.request([_bus(delay=90)])
    held = [p.decide(_obs(current=1), 100.0 + 10 * k).phase for k in range(4)]
    assert held == [1, 1, 0, 0]  # two 10 s extensions, then the controller's choice again
    assert p.stats.extensions == 2


def test_buses_on_time_or_far_away_change_nothing() -> None:
    for bus in (_bus(delay=5), _bus(delay=90, distance=900), _bus(delay=90, lane="XX_0")):
        p = _priority(0, late_after_s=30)
        p.request([bus])
        assert p.decide(_obs(current=0), 100.0).phase == 0
        assert p.stats.early_greens == p.stats.extensions == 0


def test_person_weighted_priority_adds_the_bus_to_its_queue() -> None:
    seen: list[Observation] = []

    class Spy(Always):
        def decide(self, obs: Observation, now: float) -> Decision:
            seen.append(obs)
            return super().decide(obs, now)

    p = BusPriority(Spy(0), late_after_s=0, weight=12)
    p.setup({"J": LAYOUT}, 10.0)
    p.request([_bus(delay=10)])
    p.decide(_obs(current=0), 100.0)
    assert seen[0].groups["ns"].queue == 1 + 12
    assert seen[0].groups["ew"].queue == 1


def test_a_bus_with_no_trip_is_logged_once_and_the_loop_goes_on(
    avenue: tuple[Scenario, TransitPlan], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from dataclasses import replace

    from cityos.services.traffic.sim.buses import run_with_buses

    scenario, plan = avenue
    ghost = tmp_path / "ghost.rou.xml"
    ghost.write_text(
        '<routes>\n  <vType id="ghost_bus" vClass="bus"/>\n'
        f'  <vehicle id="ghost" type="ghost_bus" depart="{BEGIN + 10:g}">\n'
        '    <route edges="WJ1 J1J2 J2J3 J3E"/>\n  </vehicle>\n</routes>\n'
    )
    with_ghost = replace(scenario, route_files=(*scenario.route_files, ghost))
    with caplog.at_level("WARNING", logger="cityos.services.traffic.sim.buses"):
        out = run_with_buses(
            with_ghost,
            make_controller("max-pressure"),
            plan,
            priority=BusPriority(make_controller("max-pressure")),
        )
    said = [r.getMessage() for r in caplog.records if "ghost" in r.getMessage()]
    assert said == ["bus ghost runs no trip of the timetable: not reported"]
    assert out["buses"] == len(plan.trips)  # the timetable's buses, measured as such
    assert out["vehicles"] > 0
