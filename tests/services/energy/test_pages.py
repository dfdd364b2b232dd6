"""The energy page of the operations dashboard, on a tiny district written by hand: buildings
and a meter in Smart Data Models terms (the sample district's), a meter as the OpenADR VTN
writes it, chargers through the OCPP central system's own methods, a battery plan from the
planner, and every figure worked out here."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from cityos.config import Settings
from cityos.hub.client import HubClient
from cityos.hub.core import Hub
from cityos.plug import PANEL_KINDS, Panel
from cityos.services.energy.ocpp import CentralSystem
from cityos.services.energy.ocpp_model import POWER, iso_z
from cityos.services.energy.pages import panels
from cityos.services.energy.planner import DayPlan, schedule_entities
from cityos.services.energy.service import SERVICE
from cityos.twin.context import DISTRICT_TERMS

T0 = datetime(2026, 11, 30, 11, 0, tzinfo=UTC)
B = [f"urn:ngsi-ld:Building:b{i}" for i in (1, 2, 3)]
SQUARE = {"type": "Polygon", "coordinates": [[[104.92, 11.57], [104.921, 11.57],
                                              [104.921, 11.571], [104.92, 11.57]]]}  # fmt: skip


def at(minutes: float) -> str:
    return iso_z(T0 + timedelta(minutes=minutes))


def kw(value: float, minutes: float) -> dict[str, Any]:
    return {"type": "Property", "value": value, "observedAt": at(minutes), "unitCode": "KWT"}


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


def charge(system: CentralSystem, cp: str, event: str, state: str, watts: float) -> None:
    """A TransactionEvent as the station sends it, with its power sample."""
    sample = {"measurand": POWER, "value": watts, "unit_of_measure": {"unit": "W"}}
    system.record_transaction(
        cp, event, at(0), {"transaction_id": f"{cp}-tx", "charging_state": state}, 1,
        [{"timestamp": at(0), "sampled_value": [sample]}],
    )  # fmt: skip


@pytest.fixture
def district(client: HubClient) -> HubClient:
    """Three buildings; b1's district meter (10 kW, then 14 two minutes on), b2's VEN meter
    (5 kW a minute in); three chargers, one charging at 7.4 kW; a fallback battery plan
    (which raises its Alert, in the district's terms as the demo writes it); one event."""
    sdm = client.for_context(DISTRICT_TERMS)
    put(
        sdm,
        *(
            {
                "id": b,
                "type": "Building",
                "name": {"type": "Property", "value": f"house {b[-1]}"},
                "location": {"type": "GeoProperty", "value": SQUARE},
            }
            for b in B
        ),  # fmt: skip
        {
            "id": "urn:ngsi-ld:ACMeasurement:meter-b1",
            "type": "ACMeasurement",
            "refBuilding": {"type": "Relationship", "object": B[0]},
            "location": point(104.9205, 11.5705),
            "totalActivePower": kw(10.0, 0),
        },  # fmt: skip
        {
            "id": "urn:ngsi-ld:ACMeasurement:meter-b1",
            "type": "ACMeasurement",
            "totalActivePower": kw(14.0, 2),
        },
    )
    # the VTN's meter for b2's VEN (openadr.Vtn._meter_entity): core context, no location
    put(
        client,
        {
            "id": "urn:ngsi-ld:ACMeasurement:openadr-ven-b2",
            "type": "ACMeasurement",
            "totalActivePower": kw(5.0, 1),
            "refBuilding": {"type": "Relationship", "object": B[1]},
        },  # fmt: skip
    )
    system = CentralSystem(client, port=0)
    for cp in ("c1", "c2", "c3"):
        system.record_boot(cp, {"vendor_name": "ACME", "model": "AC22"}, "PowerUp")
    system.record_status("c1", "Occupied", at(0), 1)
    charge(system, "c1", "Started", "Charging", 7400)
    system.record_status("c2", "Available", at(0), 1)
    charge(system, "c3", "Started", "Charging", 11000)
    charge(system, "c3", "Ended", "EVConnected", 0)
    put(client, {"id": "urn:ngsi-ld:EVChargingStation:c1", "type": "EVChargingStation",
                 "location": point(104.9207, 11.5707)})  # fmt: skip
    plan = DayPlan(date(2026, 12, 1), B[:1], ["meter-b1"], np.zeros((1, 24)), None,
                   reason="no plan within the feeder limit",
                   summary={"peak_kw": 30.0, "peak_kw_no_control": 30.0})  # fmt: skip
    sdm.upsert(schedule_entities(plan))
    put(client, {"id": "urn:ngsi-ld:DemandResponseEvent:e1", "type": "DemandResponseEvent",
                 "status": {"type": "Property", "value": "requested"},
                 "refBuilding": {"type": "Relationship", "object": B[:2]}})  # fmt: skip
    return client


def by_kind(found: list[Panel]) -> dict[str, list[Panel]]:
    """The panels by kind, each checked against the shape the Panel docstring gives."""
    out: dict[str, list[Panel]] = {}
    for p in found:
        assert isinstance(p, Panel) and p.kind in PANEL_KINDS
        if p.kind == "metrics":
            assert all({"label", "value"} <= set(m) for m in p.data)
        elif p.kind == "table":
            assert all(len(row) == len(p.data["columns"]) for row in p.data["rows"])
        elif p.kind == "chart":
            assert all(len(s["values"]) == len(p.data["x"]) for s in p.data["series"])
        elif p.kind == "map":
            assert all(f["geometry"]["type"] and f["layer"] for f in p.data["features"])
        elif p.kind == "alerts":
            keys = {"id", "category", "severity", "description", "time"}
            assert all(keys <= set(a) for a in p.data)
        else:
            assert isinstance(p.data, str)
        out.setdefault(p.kind, []).append(p)
    return out


def metrics(found: dict[str, list[Panel]]) -> dict[str, dict[str, Any]]:
    return {m["label"]: m for m in found["metrics"][0].data}


def test_the_page_is_in_the_plug() -> None:
    (page,) = SERVICE.pages()
    assert (page.slug, page.order, page.panels) == ("energy", 30, panels)
    assert {"ACMeasurement", "EVChargingStation", "DemandResponseEvent"} <= set(page.watch)
    assert set(page.watch) <= set(page.reads) and "Building" in page.reads


def test_an_empty_hub_says_what_is_missing_and_how_to_get_it(client: HubClient) -> None:
    (only,) = panels(client)
    assert only.kind == "text"
    assert "ACMeasurement" in only.data and "cityos demo" in only.data
    assert "ocpp_port" in only.data and "cityos energy plan" in only.data


def test_the_figures_come_from_both_vocabularies(district: HubClient) -> None:
    found = metrics(by_kind(panels(district)))
    metered = found["Buildings metered"]
    assert (metered["value"], metered["unit"], metered["hint"]) == (
        2, "of 3", "2 meters (ACMeasurement)"
    )  # fmt: skip
    assert found["District load now"]["value"] == 14.0 + 5.0
    charging = found["Chargers charging"]
    assert (charging["value"], charging["unit"]) == (1, "of 3")
    assert charging["hint"].startswith("7.4 kW drawn")
    assert found["Planned peak"]["value"] == 30.0
    assert "2026-12-01 (fallback)" in found["Planned peak"]["hint"]
    assert (found["Demand-response events"]["value"],
            found["Demand-response events"]["hint"]) == (1, "1 requested")  # fmt: skip


def test_the_load_chart_sums_the_meters_carrying_each_forward(district: HubClient) -> None:
    (chart,) = by_kind(panels(district))["chart"]
    assert (chart.data["x"], chart.data["unit"]) == (["11:00", "11:01", "11:02"], "kW")
    (series,) = chart.data["series"]
    assert series["values"] == [10.0, 15.0, 19.0]


def test_the_charger_table_says_what_each_station_does(district: HubClient) -> None:
    (table,) = by_kind(panels(district))["table"]
    rows = {r[0]: dict(zip(table.data["columns"], r, strict=True)) for r in table.data["rows"]}
    assert list(rows) == ["c1", "c2", "c3"]
    assert (rows["c1"]["status"], rows["c1"]["transaction"], rows["c1"]["power (kW)"]) == (
        "Occupied", "active", 7.4
    )  # fmt: skip
    assert (rows["c2"]["status"], rows["c2"]["transaction"]) == ("Available", None)
    assert (rows["c3"]["transaction"], rows["c3"]["power (kW)"]) == ("ended", 0.0)


def test_the_map_has_buildings_meters_and_chargers_where_they_are(district: HubClient) -> None:
    (m,) = by_kind(panels(district))["map"]
    features = m.data["features"]
    # the VEN's meter and two chargers carry no location: not drawn
    assert Counter(f["layer"] for f in features) == {"building": 3, "meter": 1, "charger": 1}
    (meter,) = [f for f in features if f["layer"] == "meter"]
    assert meter["geometry"] == {"type": "Point", "coordinates": [104.9205, 11.5705]}
    assert meter["label"] == "meter-b1: 14 kW"


def test_the_plans_alert_shows_in_whichever_terms_it_was_written(district: HubClient) -> None:
    (alerts,) = by_kind(panels(district))["alerts"]
    (alert,) = alerts.data
    assert (alert["category"], alert["severity"]) == ("scheduleFallback", "high")
    assert alert["description"] == "no plan within the feeder limit"


def test_a_role_that_may_read_only_chargers_gets_a_smaller_page(
    viewer, district: HubClient
) -> None:
    with viewer("EVChargingStation"):
        found = by_kind(panels(district))
    figures = metrics(found)
    assert figures["Buildings metered"]["value"] == 0
    assert figures["Chargers charging"]["value"] == 1
    assert "District load now" not in figures and "chart" not in found
    assert {f["layer"] for f in found["map"][0].data["features"]} == {"charger"}
    assert found["alerts"][0].data == []
    assert "ACMeasurement" in found["text"][0].data
