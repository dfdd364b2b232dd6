"""The traffic page of the operations dashboard, on a tiny city written by hand: the district's
detectors and streets in Smart Data Models terms, the service's signals, segments, buses and
alerts as the service writes them (core context), and every figure worked out here."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from cityos.config import Settings
from cityos.hub.client import HubClient
from cityos.hub.core import Hub
from cityos.plug import PANEL_KINDS, Panel
from cityos.services.traffic import SERVICE, Alert, Decision
from cityos.services.traffic.congestion import SegmentReading
from cityos.services.traffic.pages import panels
from cityos.services.traffic.signalservice import (
    HubSignalService,
    Wiring,
    segment_entity,
    signal_entity,
    sim_iso,
    vehicle_entity,
)
from cityos.twin.context import DISTRICT_TERMS

T0 = 7 * 3600.0  # 07:00 of the service's simulated day
SEG_A, SEG_B = "urn:ngsi-ld:RoadSegment:a", "urn:ngsi-ld:RoadSegment:b"
LINE_A = {"type": "LineString", "coordinates": [[104.92, 11.57], [104.93, 11.57]]}
LINE_B = {"type": "LineString", "coordinates": [[104.93, 11.57], [104.93, 11.58]]}


def prop(value: Any, at: float | None = None, unit: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "Property", "value": value}
    if at is not None:
        out["observedAt"] = sim_iso(at)
    if unit:
        out["unitCode"] = unit
    return out


def point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}}


@pytest.fixture
def client(tmp_path: Any) -> Iterator[HubClient]:
    hub = Hub(Settings(database_url=f"sqlite:///{tmp_path}/hub.db"))
    yield HubClient(hub)
    hub.close()


def put(client: HubClient, *entities: dict[str, Any]) -> None:
    """One write each (update, keeping the rest): a second one of an entity is its history."""
    for e in entities:
        client.upsert([e], replace=False)


def flow(local: str, seg: str, speed: float, congested: bool, at: float) -> dict[str, Any]:
    """A district detector (twin/sensors.py): a point on its segment, speed and a verdict."""
    return {
        "id": f"urn:ngsi-ld:TrafficFlowObserved:{local}",
        "type": "TrafficFlowObserved",
        "refRoadSegment": {"type": "Relationship", "object": seg},
        "location": point(104.925, 11.57),
        "intensity": prop(600, at),
        "averageVehicleSpeed": prop(speed, at, "KMH"),
        "congested": prop(congested, at),
    }


@pytest.fixture
def city(client: HubClient) -> HubClient:
    """Two streets (limit 40 km/h) with three detectors, one with ten minutes of history;
    one junction of the service's own, two signals, two buses, a stop and two alerts."""
    sdm = client.for_context(DISTRICT_TERMS)
    put(
        sdm,
        *(
            {
                "id": seg,
                "type": "RoadSegment",
                "name": prop(name),
                "location": {"type": "GeoProperty", "value": line},
                "maximumAllowedSpeed": prop(40, unit="KMH"),
            }
            for seg, name, line in ((SEG_A, "Norodom Blvd", LINE_A), (SEG_B, "Street 19", LINE_B))
        ),  # fmt: skip
        {
            "id": "urn:ngsi-ld:GtfsStop:wat-phnom",
            "type": "GtfsStop",
            "name": prop("Wat Phnom"),
            "location": point(104.9236, 11.5758),
        },  # fmt: skip
        flow("a-1", SEG_A, 30.0, False, T0),
        flow("a-1", SEG_A, 20.0, False, T0 + 300),
        flow("a-1", SEG_A, 10.0, True, T0 + 600),  # 1 - 10/40: level 0.75
        flow("a-2", SEG_A, 31.0, False, T0 + 600),  # 0.225
        flow("b-1", SEG_B, 40.0, False, T0 + 600),  # 0
    )
    # the service's own detector (signalservice.provision): the SUMO edge as text, no flag
    put(
        client,
        {
            "id": "urn:ngsi-ld:TrafficFlowObserved:J1:g0",
            "type": "TrafficFlowObserved",
            "refRoadSegment": prop("e1"),
            "intensity": prop(4, T0 + 600),
            "averageVehicleSpeed": prop(5.0, T0 + 600, "KMH"),
        },  # fmt: skip
        *(
            {
                "id": signal_entity(tls),
                "type": "TrafficSignal",
                "name": prop(tls),
                "currentPhase": prop(0),
                "setPhase": prop(""),
                "location": point(lon, 11.57),
            }
            for tls, lon in (("J1", 104.93), ("J2", 104.92))
        ),  # fmt: skip
        *(
            {
                "id": vehicle_entity(trip),
                "type": "Vehicle",
                "vehicleType": prop("bus"),
                "tripId": prop(trip, T0 + 600),
                "routeId": prop("L1"),
                "location": point(104.926, 11.571),
                "delay": prop(delay, T0 + 600, "SEC"),
            }
            for trip, delay in (("t1", 60), ("t2", 120))
        ),  # fmt: skip
        {
            "id": "urn:ngsi-ld:Vehicle:car",
            "type": "Vehicle",
            "vehicleType": prop("car"),
            "location": point(104.927, 11.572),
        },  # fmt: skip
        {
            "id": "urn:ngsi-ld:Alert:energy:x",
            "type": "Alert",
            "category": prop("energy"),
            "severity": prop("high"),
            "description": prop("not traffic"),
        },  # fmt: skip
    )
    service = HubSignalService(client, Wiring(), {})
    service.road_segments({"e1": SegmentReading("e1", 0.9, 1.5, 4, 4, 60.0)}, {"e1"}, T0 + 600)
    service.command([Decision("J1", 2, 10.0)])  # J1 adaptive, J2 not yet
    service.jam_alert("e1", "jam", SegmentReading("e1", 0.9, 1.5, 4, 4, 60.0), T0 + 600)
    service.raise_alert(Alert("J2", "fallback", "J2 detectors silent: fixed plan", T0 + 300))
    return client


def by_kind(found: list[Panel]) -> dict[str, list[Panel]]:
    """The panels by kind, each checked against the shape the Panel docstring gives."""
    out: dict[str, list[Panel]] = {}
    for p in found:
        assert isinstance(p, Panel) and p.kind in PANEL_KINDS
        check_shape(p)
        out.setdefault(p.kind, []).append(p)
    return out


def check_shape(p: Panel) -> None:
    if p.kind == "metrics":
        assert all({"label", "value"} <= set(m) for m in p.data)
    elif p.kind == "table":
        assert all(len(row) == len(p.data["columns"]) for row in p.data["rows"])
    elif p.kind == "chart":
        assert all(len(s["values"]) == len(p.data["x"]) for s in p.data["series"])
    elif p.kind == "map":
        for f in p.data["features"]:
            assert f["geometry"]["type"] and f["layer"]
            assert "level" not in f or 0.0 <= f["level"] <= 1.0
    elif p.kind == "alerts":
        assert all({"id", "category", "severity", "description", "time"} <= set(a) for a in p.data)
    else:
        assert isinstance(p.data, str)


def metrics(found: dict[str, list[Panel]]) -> dict[str, dict[str, Any]]:
    return {m["label"]: m for m in found["metrics"][0].data}


def test_the_page_is_in_the_plug() -> None:
    (page,) = SERVICE.pages()
    assert (page.slug, page.order, page.panels) == ("traffic", 20, panels)
    assert {"TrafficFlowObserved", "TrafficSignal", "Vehicle", "Alert"} <= set(page.watch)
    assert set(page.watch) <= set(page.reads) and "GtfsStop" in page.reads


def test_an_empty_hub_says_what_is_missing_and_how_to_get_it(client: HubClient) -> None:
    (only,) = panels(client)
    assert only.kind == "text"
    assert "TrafficFlowObserved" in only.data and "cityos demo" in only.data
    assert "cityos traffic run" in only.data and "TrafficSignal" in only.data


def test_the_figures_come_from_both_vocabularies(city: HubClient) -> None:
    found = metrics(by_kind(panels(city)))
    assert found["Flows observed"]["value"] == 4  # three district detectors, one service's
    # a-1 says congested; J1:g0 has no flag but its segment's index is 0.9 >= 0.7
    assert found["Congested"]["value"] == 50.0
    assert found["Congested"]["hint"] == "2 of 4 flows"
    assert found["Mean speed"]["value"] == (10 + 31 + 40 + 5) / 4
    assert (found["Signals under adaptive control"]["value"],
            found["Signals under adaptive control"]["unit"]) == (1, "of 2")  # fmt: skip
    assert found["Mean bus delay"]["value"] == 90
    assert found["Mean bus delay"]["hint"] == "2 of 2 buses reporting"  # the car is no bus


def test_the_map_draws_each_layer_with_congestion_levels(city: HubClient) -> None:
    (m,) = by_kind(panels(city))["map"]
    features = m.data["features"]
    # the service's own segment and detector have no location: not drawn
    assert Counter(f["layer"] for f in features) == {
        "road": 2, "traffic": 3, "signal": 2, "bus stop": 1, "bus": 2
    }  # fmt: skip
    roads = {f["label"]: f["geometry"] for f in features if f["layer"] == "road"}
    assert roads == {"Norodom Blvd": LINE_A, "Street 19": LINE_B}
    levels = {f["label"].split(":")[0]: f["level"] for f in features if f["layer"] == "traffic"}
    assert levels == {"a-1": 0.75, "a-2": 0.225, "b-1": 0.0}


def test_the_table_ranks_the_most_congested_flows(city: HubClient) -> None:
    (table,) = by_kind(panels(city))["table"]
    rows = [dict(zip(table.data["columns"], row, strict=True)) for row in table.data["rows"]]
    assert [r["flow"] for r in rows] == ["J1:g0", "a-1", "a-2", "b-1"]
    assert (rows[0]["road"], rows[0]["congestion (%)"]) == ("e1", 90)
    assert (rows[1]["road"], rows[1]["speed (km/h)"], rows[1]["congested"]) == (
        "Norodom Blvd", 10.0, True
    )  # fmt: skip


def test_the_chart_averages_the_flows_history(city: HubClient) -> None:
    (chart,) = by_kind(panels(city))["chart"]
    assert chart.data["unit"] == "km/h"
    assert chart.data["x"] == [f"07:{m:02d}" for m in range(11)]  # one-minute buckets
    (series,) = chart.data["series"]
    values = series["values"]
    assert (values[0], values[5]) == (30.0, 20.0)  # a-1 alone
    assert values[10] == (10 + 31 + 40 + 5) / 4
    assert values[1] is None


def test_the_alerts_are_the_traffic_ones_newest_first(city: HubClient) -> None:
    (alerts,) = by_kind(panels(city))["alerts"]
    assert [(a["category"], a["severity"]) for a in alerts.data] == [
        ("trafficJam", "medium"), ("signal-fallback", "high")
    ]  # fmt: skip
    assert alerts.data[0]["where"] == segment_entity("e1").removeprefix("urn:ngsi-ld:")
    assert alerts.data[1]["time"] == "2026-01-05 07:05:00Z"


def test_a_role_that_may_read_only_signals_gets_a_smaller_page(viewer, city: HubClient) -> None:
    with viewer("TrafficSignal"):
        found = by_kind(panels(city))
    figures = metrics(found)
    assert figures["Flows observed"]["value"] == 0
    assert figures["Signals under adaptive control"]["value"] == 1
    assert "Mean bus delay" not in figures and "chart" not in found and "table" not in found
    assert {f["layer"] for f in found["map"][0].data["features"]} == {"signal"}
    assert found["alerts"][0].data == []
    assert "TrafficFlowObserved" in found["text"][0].data
