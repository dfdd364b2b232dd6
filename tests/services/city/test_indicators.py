"""Each indicator's formula on a tiny city whose answer is worked out by hand here.

Every test builds its own hub (SQLite in ``tmp_path``) with only the entities the indicator
reads, written through a HubClient as the services write them (history by ``observedAt``),
and checks the value — or the "no data" that names what is missing.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cityos.config import Settings
from cityos.hub.client import HubClient
from cityos.hub.core import Hub
from cityos.services.city.indicators import (
    INDICATORS,
    CityFacts,
    Measured,
    NoData,
    Period,
    compute_report,
    facts_from_hub,
    indicator,
)
from cityos.services.city.indicators_data import SDM_CONTEXT
from cityos.services.city.indicators_model import IndicatorError
from cityos.twin.geo import offset

PERIOD = Period(datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
T0 = datetime(2026, 6, 1, tzinfo=UTC)
BEFORE = "2025-06-01T00:00:00Z"  # a reading older than the period
ORIGIN = (104.92, 11.57)
FACTS = CityFacts("Tiny", population=1000, area_km2=4.0, registered_electric_vehicles=60)


def at(hours: float = 0.0) -> str:
    return (T0 + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


def prop(value: Any, when: str | None = None, unit: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "Property", "value": value}
    if when:
        out["observedAt"] = when
    if unit:
        out["unitCode"] = unit
    return out


def rel(target: str | list[str]) -> dict[str, Any]:
    return {"type": "Relationship", "object": target}


def when(iso: str) -> dict[str, Any]:
    return prop({"@type": "DateTime", "@value": iso})


def point(east: float = 0.0, north: float = 0.0) -> dict[str, Any]:
    lon, lat = offset(ORIGIN, east, north)
    return {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}}


def rectangle(width: float, depth: float, east: float = 0.0, north: float = 0.0) -> dict:
    """A width × depth (m) rectangle whose first corner is ``east``/``north`` of ORIGIN."""
    a = offset(ORIGIN, east, north)
    corners = [offset(a, 0, 0), offset(a, width, 0), offset(a, width, depth), offset(a, 0, depth)]
    ring = [list(c) for c in [*corners, corners[0]]]
    return {"type": "GeoProperty", "value": {"type": "Polygon", "coordinates": [ring]}}


def urn(kind: str, local: str) -> str:
    return f"urn:ngsi-ld:{kind}:{local}"


def entity(kind: str, local: str, **attrs: Any) -> dict[str, Any]:
    return {"id": urn(kind, local), "type": kind, **attrs}


class City:
    """A hub with a handful of entities and the indicators over it."""

    def __init__(self, tmp_path: Any) -> None:
        self.hub = Hub(Settings(database_url=f"sqlite:///{tmp_path}/hub.db"))
        self.client = HubClient(self.hub)

    def put(self, *entities: dict[str, Any], sdm: bool = False) -> None:
        """Write (update, keeping what is there), in the core or the Smart Data Models terms."""
        client = self.client.for_context(SDM_CONTEXT) if sdm else self.client
        for e in entities:  # one at a time: a second instance of one entity is its history
            client.upsert([e], replace=False)

    def value(self, key: str, facts: CityFacts = FACTS) -> float:
        out = indicator(key).evaluate(self.client, PERIOD, facts)
        assert isinstance(out, Measured), out
        return out.value

    def no_data(self, key: str, facts: CityFacts = FACTS) -> NoData:
        out = indicator(key).evaluate(self.client, PERIOD, facts)
        assert isinstance(out, NoData), out
        return out


@pytest.fixture
def city(tmp_path: Any) -> Any:
    c = City(tmp_path)
    yield c
    c.hub.close()


def buildings(city: City, *specs: tuple[str, list[str]], sdm: bool = True) -> None:
    city.put(*(entity("Building", b, category=prop(cats)) for b, cats in specs), sdm=sdm)


# -- the list itself ---------------------------------------------------------------------------
def test_at_least_thirty_indicators_come_from_the_standards_each_fully_declared() -> None:
    keys = [i.key for i in INDICATORS]
    assert len(keys) == len(set(keys))
    standard = [i for i in INDICATORS if any(s.split()[0] in ("ISO", "U4SSC") for s in i.standards)]
    assert len(standard) >= 30
    for i in INDICATORS:
        assert i.name and i.unit and i.formula and i.reads and i.theme, i.key
        # an unverified clause number is said to be unverified
        if any(".x" in s for s in i.standards):
            assert "not verified" in i.reference_note, i.key


def test_every_indicator_says_what_is_missing_on_an_empty_hub(city: City) -> None:
    rows = compute_report(city.client, PERIOD, FACTS)
    assert len(rows) == len(INDICATORS)
    for row in rows:
        assert isinstance(row.outcome, NoData), row.indicator.key
        assert row.outcome.why and row.outcome.missing, row.indicator.key


def test_a_missing_city_fact_is_no_data_naming_it_and_how_to_give_it(city: City) -> None:
    city.put(entity("EVChargingStation", "c1"))
    out = city.no_data("ev-chargers-per-100k", CityFacts())
    assert out.missing == ("population",)
    assert "--population" in out.why
    assert city.no_data("camera-area-coverage", CityFacts()).missing == ("area_km2",)


def test_city_facts_refuse_nonsense_and_come_from_a_city_entity(city: City) -> None:
    with pytest.raises(IndicatorError, match="population must be a positive number"):
        CityFacts(population=0)
    city.put(entity("City", "tiny", name=prop("Tiny"), population=prop(5000), area=prop(2.5)))
    facts = facts_from_hub(city.client)
    assert (facts.name, facts.population, facts.area_km2) == ("Tiny", 5000, 2.5)
    # what the caller gives wins
    assert facts_from_hub(city.client, CityFacts(population=7)).population == 7


def test_a_period_must_end_after_it_starts() -> None:
    with pytest.raises(IndicatorError, match="end after"):
        Period.parse("2026-02-01", "2026-01-01")
    with pytest.raises(IndicatorError, match="ISO 8601"):
        Period.parse("yesterday", None)
    assert Period.parse("2026-01-01", "2027-01-01").days == 365


# -- energy ------------------------------------------------------------------------------------
def test_electricity_per_capita_from_energy_registers_and_mean_power(city: City) -> None:
    # meter a: its register rose 100 kWh in 10 h -> 87 600 kWh a year
    city.put(entity("ACMeasurement", "a", totalActiveEnergyImport=prop(1000, at(0))))
    city.put(entity("ACMeasurement", "a", totalActiveEnergyImport=prop(1100, at(10))))
    # meter b: power only, 2 and 4 kW -> 3 kW × 8760 h = 26 280 kWh a year
    city.put(entity("ACMeasurement", "b", totalActivePower=prop(2.0, at(0))))
    city.put(entity("ACMeasurement", "b", totalActivePower=prop(4.0, at(1))))
    # meter c: a reading before the period only -> not counted
    city.put(entity("ACMeasurement", "c", totalActivePower=prop(50.0, BEFORE)))
    assert city.value("electricity-consumption-per-capita") == pytest.approx(113.88)


def test_electricity_without_readings_in_the_period_is_no_data(city: City) -> None:
    city.put(entity("ACMeasurement", "c", totalActivePower=prop(50.0, BEFORE)))
    out = city.no_data("electricity-consumption-per-capita")
    assert out.missing == ("ACMeasurement",)
    assert "none of the 1 ACMeasurement meters reported" in out.why


def test_renewable_share_is_mean_generation_over_mean_consumption(city: City) -> None:
    assert city.no_data("renewable-energy-share").missing == ("GreenEnergyMeasurement",)
    city.put(entity("GreenEnergyMeasurement", "pv", solarPowerGenerated=prop(40.0, at(0))))
    city.put(entity("GreenEnergyMeasurement", "pv", solarPowerGenerated=prop(60.0, at(1))))
    city.put(entity("ACMeasurement", "m", totalActivePower=prop(200.0, at(0))))
    assert city.value("renewable-energy-share") == pytest.approx(25.0)


def test_smart_meters_and_metered_homes_across_contexts(city: City) -> None:
    # the buildings in Smart Data Models terms (as the district), the meters in core terms
    buildings(city, ("b1", ["residential"]), ("b2", ["apartments"]), ("b3", ["residential"]),
              ("b4", ["school"]))  # fmt: skip
    assert city.no_data("smart-electricity-meter-share").missing == ("ACMeasurement",)
    for meter, building in (("a", "b1"), ("b", "b2"), ("c", "b2")):
        city.put(entity("ACMeasurement", meter, refBuilding=rel(urn("Building", building))))
    assert city.value("smart-electricity-meter-share") == pytest.approx(50.0)  # b1, b2 of 4
    assert city.value("residential-electricity-access") == pytest.approx(200 / 3)  # b1, b2 of 3


def test_chargers_per_registered_ev_and_per_100k(city: City) -> None:
    city.put(*(entity("EVChargingStation", f"c{k}") for k in range(3)))
    assert city.value("ev-chargers-per-registered-ev") == pytest.approx(3 / 60)
    assert city.value("ev-chargers-per-100k", CityFacts(population=200_000)) == pytest.approx(1.5)
    out = city.no_data("ev-chargers-per-registered-ev", CityFacts(population=1))
    assert out.missing == ("registered_electric_vehicles",)


def test_public_building_energy_per_floor_area(city: City) -> None:
    # a school: 20 m × 50 m footprint, 2 floors = 2000 m²; its meter draws 10 kW all year
    city.put(
        entity("Building", "school", category=prop(["school"]), floorsAboveGround=prop(2),
               location=rectangle(20, 50)),
        entity("Building", "shop", category=prop(["retail"]), location=rectangle(10, 10, 100)),
        sdm=True,
    )  # fmt: skip
    city.put(
        entity("ACMeasurement", "s", refBuilding=rel(urn("Building", "school")),
               totalActivePower=prop(10.0, at())),
        entity("ACMeasurement", "x", refBuilding=rel(urn("Building", "shop")),
               totalActivePower=prop(99.0, at())),
    )  # fmt: skip
    assert city.value("public-building-energy-intensity") == pytest.approx(87_600 / 2000, rel=1e-3)


def test_peak_demand_sums_the_meters_hour_by_hour(city: City) -> None:
    for meter, hours_kw in (("a", ((10, 10.0), (10.5, 20.0), (11, 5.0))),
                            ("b", ((10.25, 30.0), (11.75, 50.0)))):  # fmt: skip
        for h, kw in hours_kw:
            city.put(entity("ACMeasurement", meter, totalActivePower=prop(kw, at(h))))
    # 10:00: 15 + 30 = 45 kW; 11:00: 5 + 50 = 55 kW
    out = indicator("peak-electricity-demand").evaluate(city.client, PERIOD, FACTS)
    assert out.value == pytest.approx(55.0)
    assert out.detail["hour"] == "2026-06-01T11:00Z"


def test_planned_peak_reduction_is_the_mean_over_the_days(city: City) -> None:
    def schedule(day: str, base: float, planned: float, **more: Any) -> dict[str, Any]:
        return entity("EnergySchedule", f"district:{day}", day=prop(day),
                      peak_kw=prop(planned), peak_kw_no_control=prop(base), **more)  # fmt: skip

    city.put(
        schedule("2026-03-01", 100, 80),  # 20 %
        schedule("2026-03-02", 200, 150),  # 25 %
        schedule("2025-03-01", 100, 0),  # before the period
        {**schedule("2026-03-03", 100, 0), "id": urn("EnergySchedule", "home:2026-03-03"),
         "refBuilding": rel(urn("Building", "b1"))},  # a building's: left out
    )  # fmt: skip
    assert city.value("planned-peak-reduction") == pytest.approx(22.5)


def test_demand_response_counts_event_buildings_and_sheds(city: City) -> None:
    buildings(city, *((f"b{k}", ["residential"]) for k in range(1, 5)))
    assert city.no_data("demand-response-share").missing == ("DemandResponseEvent",)
    city.put(
        entity("DemandResponseEvent", "e1",
               refBuilding=rel([urn("Building", "b1"), urn("Building", "b2")])),
        entity("Building", "b3", demandResponseShed=prop(5.0)),
    )  # fmt: skip
    assert city.value("demand-response-share") == pytest.approx(75.0)


def test_managed_street_lights(city: City) -> None:
    city.put(
        entity("Streetlight", "l1", refStreetlightControlCabinet=rel(urn("Cabinet", "c"))),
        entity("Streetlight", "l2", refStreetlightGroup=rel(urn("StreetlightGroup", "g"))),
        entity("Streetlight", "l3", powerState=prop("on", at())),
        entity("Streetlight", "l4", powerState=prop("on", BEFORE)),
    )
    assert city.value("managed-street-lighting") == pytest.approx(75.0)


# -- environment -------------------------------------------------------------------------------
def test_pm25_is_the_mean_of_the_stations_means(city: City) -> None:
    def station(local: str, value: float, when: str, unit: str = "GQ") -> dict[str, Any]:
        return entity("AirQualityObserved", local, pm25=prop(value, when, unit))

    city.put(station("s1", 10.0, at(0)), sdm=True)
    city.put(station("s1", 20.0, at(1)), sdm=True)  # s1: 15
    city.put(station("s2", 30.0, at(0)), sdm=True)  # s2: 30
    city.put(station("s3", 999.0, at(0), unit="GP"), sdm=True)  # another unit: left out
    city.put(station("s4", 500.0, BEFORE), sdm=True)  # before the period
    assert city.value("pm25-concentration") == pytest.approx(22.5)
    out = city.no_data("so2-concentration")
    assert out.missing == ("AirQualityObserved",) and "so2" in out.why


def test_air_quality_stations_per_km2_count_the_live_ones(city: City) -> None:
    city.put(
        entity("AirQualityObserved", "s1", pm25=prop(10.0, at())),
        entity("AirQualityObserved", "s2", no2=prop(10.0, at())),
        entity("AirQualityObserved", "s3", pm10=prop(10.0, BEFORE)),
        sdm=True,
    )
    assert city.value("air-quality-stations-per-km2") == pytest.approx(2 / 4.0)


def test_road_co2_per_capita_and_per_vehicle_hour(city: City) -> None:
    def interval(local: str, start: str, end: str, co2: float, vh: float) -> dict[str, Any]:
        return entity("TrafficEmissionObserved", local, dateObservedFrom=when(start),
                      dateObservedTo=when(end), co2=prop(co2, unit="KGM"),
                      vehicleHours=prop(vh))  # fmt: skip

    city.put(
        interval("a", at(0), at(1), 100.0, 50.0),
        interval("b", at(0.5), at(1.5), 50.0, 25.0),  # overlaps a: 1.5 h observed in all
        interval("old", "2025-01-01T00:00:00Z", "2025-01-01T01:00:00Z", 1e6, 1.0),
    )
    # 150 kg in 1.5 h -> 876 t a year, for 1000 people
    assert city.value("road-transport-co2-per-capita") == pytest.approx(0.876)
    assert city.value("co2-per-vehicle-hour") == pytest.approx(2.0)


def test_public_buildings_monitoring_indoor_air(city: City) -> None:
    buildings(city, ("town-hall", ["government"]), ("school", ["school"]), ("shop", ["retail"]))
    assert city.no_data("public-buildings-indoor-air-monitoring").missing == (
        "IndoorEnvironmentObserved",
    )
    city.put(entity("IndoorEnvironmentObserved", "i", refBuilding=rel(urn("Building", "school"))))
    assert city.value("public-buildings-indoor-air-monitoring") == pytest.approx(50.0)


def test_green_area_per_100k(city: City) -> None:
    city.put(
        entity("Park", "p", location=rectangle(100, 100)),  # 1 ha
        entity("Garden", "g", location=rectangle(50, 20, 500)),  # 0.1 ha
    )
    got = city.value("green-area-per-100k", CityFacts(population=11_000))
    assert got == pytest.approx(1.1 * 100_000 / 11_000, rel=1e-3)


# -- mobility ----------------------------------------------------------------------------------
def test_adaptive_signals_are_the_commanded_or_declared_ones(city: City) -> None:
    city.put(
        entity("TrafficSignal", "t1", setPhase=prop({})),
        entity("TrafficSignal", "t2", setPhase=prop({}), setPhase_status=prop("OK")),
        entity("TrafficSignal", "t3", controlMode=prop("adaptive")),
        entity("TrafficSignal", "t4", controlMode=prop("fixedTime")),
    )
    assert city.value("adaptive-traffic-signal-share") == pytest.approx(75.0)


def test_monitored_streets_weigh_segments_by_length(city: City) -> None:
    city.put(
        entity("RoadSegment", "s1", length=prop(100.0)),
        entity("RoadSegment", "s2", length=prop(300.0)),
        sdm=True,
    )
    assert city.no_data("traffic-monitored-street-share").missing == ("TrafficFlowObserved",)
    city.put(
        entity("TrafficFlowObserved", "f1", refRoadSegment=rel(urn("RoadSegment", "s1")),
               intensity=prop(12, at())),
        entity("TrafficFlowObserved", "f2", refRoadSegment=rel(urn("RoadSegment", "s2")),
               intensity=prop(12, BEFORE)),
        sdm=True,
    )  # fmt: skip
    assert city.value("traffic-monitored-street-share") == pytest.approx(25.0)


def bus(local: str, **attrs: Any) -> dict[str, Any]:
    return entity("Vehicle", local, vehicleType=prop("bus"), **attrs)


def test_realtime_lines_are_routes_with_a_bus_reporting(city: City) -> None:
    assert city.no_data("realtime-transit-line-share").missing == ("GtfsRoute",)
    city.put(*(entity("GtfsRoute", r) for r in ("r1", "r2", "r3")))
    city.put(
        bus("v1", routeId=prop("r1"), location={**point(), "observedAt": at()}),
        bus("v2", routeId=prop("r2"), location={**point(), "observedAt": BEFORE}),
    )
    assert city.value("realtime-transit-line-share") == pytest.approx(100 / 3)


def test_fares_give_unified_stops_cashless_share_and_trips(city: City) -> None:
    city.put(*(entity("GtfsStop", f"s{k}", location=point(k * 100)) for k in range(1, 5)), sdm=True)

    def fare(stop: str, day: str, riders: int, cashless: int) -> dict[str, Any]:
        return entity("FareCollectionObserved", f"{stop}:{day}",
                      refStop=rel(urn("GtfsStop", stop)),
                      dateObservedFrom=when(f"{day}T00:00:00+07:00"),
                      passengerCount=prop(riders), cashlessCount=prop(cashless))  # fmt: skip

    city.put(
        fare("s1", "2026-03-01", 100, 60),
        fare("s2", "2026-03-01", 50, 0),
        fare("s1", "2026-03-02", 150, 90),
        fare("s3", "2025-03-01", 999, 999),  # before the period
    )
    assert city.value("unified-payment-stop-share") == pytest.approx(25.0)  # s1 of 4
    assert city.value("cashless-fare-share") == pytest.approx(50.0)  # 150 of 300
    # 300 boardings in 2 days -> 54 750 a year, for 1000 people
    assert city.value("transit-trips-per-capita") == pytest.approx(54.75)


def test_homes_within_500_m_of_a_stop(city: City) -> None:
    city.put(entity("GtfsStop", "s", location=point(0, 0)), sdm=True)

    def house(local: str, use: str, east: float, north: float = 0.0) -> dict[str, Any]:
        """A 10 m square building whose centre is 5 m east and north of (east, north)."""
        return entity("Building", local, category=prop([use]),
                      location=rectangle(10, 10, east, north))  # fmt: skip

    city.put(
        house("h1", "residential", 100),  # 105 m away
        house("h2", "apartments", 600),  # 605 m
        house("h3", "residential", 0, 440),  # 445 m
        house("o", "office", 0),  # not a home
        sdm=True,
    )
    assert city.value("transit-access-500m") == pytest.approx(200 / 3)


def test_travel_time_index_against_the_speed_limit(city: City) -> None:
    city.put(
        entity("RoadSegment", "a", length=prop(1000.0), maximumAllowedSpeed=prop(50.0)),
        entity("RoadSegment", "b", length=prop(500.0), maximumAllowedSpeed=prop(30.0)),
        sdm=True,
    )
    for local, seg, speed, hour in (
        ("fa", "a", 25.0, 0),
        ("fa", "a", 50.0, 1),
        ("fb", "b", 30.0, 0),
    ):
        city.put(
            entity("TrafficFlowObserved", local, refRoadSegment=rel(urn("RoadSegment", seg)),
                   averageVehicleSpeed=prop(speed, at(hour))),
            sdm=True,
        )  # fmt: skip
    # a: mean(1000/25, 1000/50) = 30 against 1000/50 = 20; b: 500/30 against 500/30
    expected = (30 + 500 / 30) / (20 + 500 / 30)
    assert city.value("travel-time-index") == pytest.approx(expected)


def test_average_bus_delay_and_clean_buses(city: City) -> None:
    city.put(bus("v1", tripId=prop("t1"), delay=prop(60, at(0)), fuelType=prop("electric")))
    city.put(bus("v1", delay=prop(120, at(1))))
    city.put(bus("v2", delay=prop(-30, at(0)), fuelType=prop("diesel")))
    city.put(bus("v3", fuelType=prop("hydrogen")), bus("v4"))
    city.put(entity("Vehicle", "car", vehicleType=prop("car"), delay=prop(999, at())))
    assert city.value("average-bus-delay") == pytest.approx(50.0)
    assert city.value("clean-energy-bus-share") == pytest.approx(200 / 3)


def test_parking_with_realtime_availability_and_epayment(city: City) -> None:
    city.put(
        entity("OffStreetParking", "a", totalSpotNumber=prop(100),
               availableSpotNumber=prop(40, at()),
               acceptedPaymentMethod=prop(["Cash", "DirectDebit"])),
        entity("OffStreetParking", "b", totalSpotNumber=prop(300),
               availableSpotNumber=prop(40, BEFORE), acceptedPaymentMethod=prop(["Cash"])),
        entity("ParkingSpot", "p1", status=prop("free", at())),
        entity("ParkingSpot", "p2", status=prop("free", BEFORE)),
    )  # fmt: skip
    assert city.value("realtime-parking-share") == pytest.approx(100 * 101 / 402)
    assert city.value("epayment-parking-share") == pytest.approx(25.0)


# -- safety, governance, utilities -----------------------------------------------------------
def camera(local: str, east: float) -> dict[str, Any]:
    return entity("Device", local, deviceCategory=prop(["camera"]), location=point(east))


def test_camera_coverage_is_the_union_of_their_discs(city: City) -> None:
    city.put(camera("c1", 0), camera("c2", 1000), camera("c3", 1000))  # c3 watches as c2
    city.put(entity("Device", "meter", deviceCategory=prop(["meter"]), location=point(500)))
    watched_m2 = 2 * math.pi * 30.0**2
    got = city.value("camera-area-coverage", CityFacts(area_km2=0.01))
    assert got == pytest.approx(100 * watched_m2 / 10_000, rel=2e-3)
    assert city.value("camera-area-coverage", CityFacts(area_km2=1e-4)) == 100.0  # capped


def test_security_alerts_per_100k_leave_out_camera_faults(city: City) -> None:
    assert city.no_data("security-alerts-per-100k").missing == ("Device", "FlowZone")
    city.put(camera("c1", 0))

    def alert(local: str, category: str, sub: str, issued: str) -> dict[str, Any]:
        return entity("Alert", local, category=prop(category), subCategory=prop(sub),
                      dateIssued=when(issued))  # fmt: skip

    city.put(
        alert("a1", "security", "loitering", at()),
        alert("a2", "security", "overcrowding", at(5)),
        alert("a3", "security", "cameraDisconnected", at()),
        alert("a4", "traffic", "trafficJam", at()),
        alert("a5", "security", "loitering", BEFORE),
    )
    assert city.value("security-alerts-per-100k", CityFacts(population=100_000)) == pytest.approx(
        2.0
    )


def test_privacy_requests_answered(city: City) -> None:
    assert city.no_data("privacy-requests-answered").missing == ("PrivacyAction", "PrivacyDataset")
    city.put(entity("PrivacyDataset", "wifi"))
    assert city.value("privacy-requests-answered") == 0.0  # the layer runs; nobody asked

    def action(local: str, kind: str, issued: str) -> dict[str, Any]:
        return entity("PrivacyAction", local, actionKind=prop(kind), dateIssued=prop(issued))

    city.put(
        action("a", "access", "2026-03-01T00:00:00.000000Z"),
        action("b", "erasure", "2026-04-01T00:00:00.000000Z"),
        action("c", "retention", "2026-04-01T00:00:00.000000Z"),
        action("d", "access", "2025-04-01T00:00:00.000000Z"),
    )
    assert city.value("privacy-requests-answered") == 2.0


def test_crowded_zone_hours(city: City) -> None:
    for k, occupancy in enumerate((0.9, 0.5, 1.2, 0.1)):
        start = (T0 + timedelta(hours=k)).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
        city.put(entity("CrowdLevel", f"z:{k}", occupancy=prop(occupancy),
                        dateObservedFrom=prop(start)))  # fmt: skip
    city.put(entity("CrowdLevel", "z:old", occupancy=prop(2.0), dateObservedFrom=prop(BEFORE)))
    assert city.value("crowded-zone-hours") == pytest.approx(50.0)


def test_waste_containers_and_water_meters(city: City) -> None:
    city.put(
        entity("WasteContainer", "w1", fillingLevel=prop(0.4, at())),
        entity("WasteContainer", "w2", fillingLevel=prop(0.4, BEFORE)),
    )
    assert city.value("waste-container-telemonitoring") == pytest.approx(50.0)
    buildings(city, *((f"b{k}", ["residential"]) for k in range(1, 5)))
    assert city.no_data("smart-water-meter-share").missing == ("WaterConsumptionObserved",)
    city.put(entity("WaterConsumptionObserved", "m", refBuilding=rel(urn("Building", "b1"))))
    assert city.value("smart-water-meter-share") == pytest.approx(25.0)
