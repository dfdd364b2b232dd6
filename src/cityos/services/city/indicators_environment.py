"""Environment indicators: air quality, traffic emissions, indoor monitoring, green area."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .indicators_data import CityData, area_m2, number_of, refs, time_of
from .indicators_energy import PUBLIC, buildings
from .indicators_model import (
    HOURS_PER_YEAR,
    CityFacts,
    Indicator,
    Measured,
    Outcome,
    Period,
    Read,
    nothing,
    share,
)

POLLUTANTS = ("pm25", "pm10", "no2", "so2", "o3")
MICROGRAMS = ("GQ", None)  # UN/CEFACT GQ: µg/m³; no unitCode: the Smart Data Models default


def _station_means(data: CityData, attr: str, period: Period) -> tuple[list[float], int]:
    """Each AirQualityObserved station's mean of ``attr`` over the period (µg/m³ readings
    only), and how many stations reported it in another unit (left out)."""
    means, other_unit = [], 0
    for station in data.entities("AirQualityObserved"):
        if attr not in station:
            continue
        unit = station[attr].get("unitCode") if isinstance(station[attr], dict) else None
        if unit not in MICROGRAMS:
            other_unit += 1
            continue
        readings = [v for _, v in data.numbers(station, attr, period) if v >= 0]
        if readings:
            means.append(sum(readings) / len(readings))
    return means, other_unit


def pollutant_mean(attr: str):  # type: ignore[no-untyped-def]
    """The compute function of a pollutant's period mean."""

    def compute(data: CityData, facts: CityFacts, period: Period) -> Outcome:
        means, other_unit = _station_means(data, attr, period)
        if not means:
            extra = f" ({other_unit} in a unit other than µg/m³)" if other_unit else ""
            return nothing(
                "AirQualityObserved",
                why=f"no AirQualityObserved station reported {attr} in the period{extra}",
            )
        return Measured(sum(means) / len(means), {"stations": len(means)})

    return compute


def stations_per_km2(data: CityData, facts: CityFacts, period: Period) -> Outcome:
    stations = data.entities("AirQualityObserved")
    live = [s for s in stations if data.reported(s, [p for p in POLLUTANTS if p in s], period)]
    if not stations:
        return nothing("AirQualityObserved")
    area = facts.require("area_km2")
    return Measured(len(live) / area, {"stations": len(live), "of": len(stations)})


def _emissions(data: CityData, period: Period) -> list[tuple[datetime, datetime, dict[str, Any]]]:
    """The TrafficEmissionObserved intervals lying in the period."""
    out = []
    for e in data.entities("TrafficEmissionObserved"):
        start, end = time_of(e, "dateObservedFrom"), time_of(e, "dateObservedTo")
        if start and end and end > start and period.contains(start) and end <= period.end:
            out.append((start, end, e))
    return out


def _covered_hours(intervals: list[tuple[datetime, datetime]]) -> float:
    """The length of the union of the intervals, hours."""
    total, reach = 0.0, None
    for start, end in sorted(intervals):
        if reach is None or start > reach:
            total += (end - start).total_seconds()
            reach = end
        elif end > reach:
            total += (end - reach).total_seconds()
            reach = end
    return total / 3600.0


def road_co2_per_capita(data: CityData, facts: CityFacts, period: Period) -> Outcome:
    rows = _emissions(data, period)
    kg = sum(number_of(e, "co2") or 0.0 for _, _, e in rows)
    hours = _covered_hours([(s, t) for s, t, _ in rows])
    if not rows or hours <= 0:
        return nothing(
            "TrafficEmissionObserved",
            why="no TrafficEmissionObserved interval in "
            "the period (the traffic service writes them)",
        )
    tonnes_per_year = kg / hours * HOURS_PER_YEAR / 1000.0
    people = facts.require("population")
    return Measured(
        tonnes_per_year / people,
        {"co2_kg": kg, "hours_observed": hours, "tonnes_per_year": tonnes_per_year},
    )


def co2_per_vehicle_hour(data: CityData, facts: CityFacts, period: Period) -> Outcome:
    rows = _emissions(data, period)
    kg = sum(number_of(e, "co2") or 0.0 for _, _, e in rows)
    vehicle_hours = sum(number_of(e, "vehicleHours") or 0.0 for _, _, e in rows)
    if vehicle_hours <= 0:
        return nothing(
            "TrafficEmissionObserved",
            why="no TrafficEmissionObserved with vehicleHours in the period",
        )
    return Measured(kg / vehicle_hours, {"co2_kg": kg, "vehicle_hours": vehicle_hours})


def indoor_air_public_buildings(data: CityData, facts: CityFacts, period: Period) -> Outcome:
    public = buildings(data, PUBLIC)
    if not public:
        return nothing(
            "Building", why="no public Building (category public, school, hospital ...) in the hub"
        )
    sensors = data.entities("IndoorEnvironmentObserved")
    if not sensors:
        return nothing("IndoorEnvironmentObserved")
    watched = {b for e in sensors for b in refs(e, "refBuilding")}
    return share(sum(1 for b in public if b["id"] in watched), len(public))


def green_area_per_100k(data: CityData, facts: CityFacts, period: Period) -> Outcome:
    areas = [e for t in ("Park", "Garden") for e in data.entities(t)]
    hectares = sum(area_m2(e) for e in areas) / 10_000
    if not areas or hectares <= 0:
        return nothing("Park", "Garden", why="no Park or Garden with a Polygon location in the hub")
    people = facts.require("population")
    return Measured(hectares * 100_000 / people, {"hectares": hectares, "areas": len(areas)})


_AIR_NOTE = (
    "mean over stations of each station's mean of its readings in the period "
    "(the standard's annual mean when the period is a year)"
)


def _pollutant(key: str, attr: str, name: str, clause: str, note: str = "") -> Indicator:
    return Indicator(
        key=key,
        name=name,
        standards=(f"ISO 37120:2018 {clause}", "U4SSC EN/Environment/Air quality: Air pollution"),
        unit="µg/m³",
        formula=f"mean over AirQualityObserved stations of their mean {attr} in the period",
        reads=(Read("AirQualityObserved", (attr,)),),
        compute=pollutant_mean(attr),
        theme="environment",
        reference_note=_AIR_NOTE + (f"; {note}" if note else ""),
    )


_UNVERIFIED = "sub-clause number as CityOS reads ISO 37120:2018 section 8; not verified"

ENVIRONMENT: tuple[Indicator, ...] = (
    _pollutant(
        "pm25-concentration", "pm25", "Fine particulate matter (PM2.5) concentration", "8.1"
    ),
    _pollutant("pm10-concentration", "pm10", "Particulate matter (PM10) concentration", "8.2"),
    _pollutant("no2-concentration", "no2", "Nitrogen dioxide (NO2) concentration", "8.4"),
    _pollutant(
        "so2-concentration", "so2", "Sulphur dioxide (SO2) concentration", "8.5", _UNVERIFIED
    ),
    _pollutant("o3-concentration", "o3", "Ozone (O3) concentration", "8.6", _UNVERIFIED),
    Indicator(
        key="air-quality-stations-per-km2",
        name="Real-time air quality monitoring stations per km²",
        standards=("ISO 37122:2019 8.x",),
        unit="stations per km²",
        formula="AirQualityObserved stations reporting a pollutant in the period / area (km²)",
        reads=(Read("AirQualityObserved", POLLUTANTS),),
        compute=stations_per_km2,
        theme="environment",
        facts=("area_km2",),
        reference_note="ISO 37122:2019 section 8 has 'number of real-time remote air quality "
        "monitoring stations per square kilometre'; sub-clause number (8.x) not verified.",
    ),
    Indicator(
        key="road-transport-co2-per-capita",
        name="Road traffic CO2 emissions per capita",
        standards=(
            "ISO 37120:2018 8.3 (partial)",
            "U4SSC EN/Environment/Air quality: GHG emissions (partial)",
        ),
        unit="t CO2/year per capita",
        formula="Σ co2 (kg) of the period's TrafficEmissionObserved / hours they cover × 8760 "
        "/ 1000 / population",
        reads=(Read("TrafficEmissionObserved", ("co2", "dateObservedFrom", "dateObservedTo")),),
        compute=road_co2_per_capita,
        theme="environment",
        facts=("population",),
        reference_note="the standard counts every sector's greenhouse gases (CO2e); the hub "
        "has road traffic's CO2 only, scaled to a year from the hours observed",
    ),
    Indicator(
        key="co2-per-vehicle-hour",
        name="Road traffic CO2 per vehicle-hour",
        standards=("CityOS",),
        unit="kg CO2 per vehicle-hour",
        formula="Σ co2 (kg) / Σ vehicleHours of the period's TrafficEmissionObserved",
        reads=(Read("TrafficEmissionObserved", ("co2", "vehicleHours")),),
        compute=co2_per_vehicle_hour,
        theme="environment",
        reference_note="per vehicle-hour, not per vehicle-km: the traffic service records the "
        "time vehicles spent in a district, not the distance",
    ),
    Indicator(
        key="public-buildings-indoor-air-monitoring",
        name="Public buildings monitoring indoor air quality",
        standards=("ISO 37122:2019 8.x",),
        unit="%",
        formula="100 × public Buildings an IndoorEnvironmentObserved refers to (refBuilding) / "
        "public Buildings",
        reads=(
            Read("Building", ("category",)),
            Read("IndoorEnvironmentObserved", ("refBuilding",)),
        ),
        compute=indoor_air_public_buildings,
        theme="environment",
        reference_note="ISO 37122:2019 section 8 has 'percentage of public buildings equipped "
        "for monitoring indoor air quality'; sub-clause number (8.x) not verified. The link "
        "to the building (refBuilding) is a CityOS convention.",
    ),
    Indicator(
        key="green-area-per-100k",
        name="Green area per 100 000 population",
        standards=(
            "ISO 37120:2018 21.x",
            "U4SSC EN/Environment/Public space and nature: Green areas",
        ),
        unit="ha per 100 000",
        formula="Σ area of Park and Garden polygons (ha) × 100 000 / population",
        reads=(Read("Park", ("location",)), Read("Garden", ("location",))),
        compute=green_area_per_100k,
        theme="environment",
        facts=("population",),
        reference_note="ISO 37120:2018 section 21 (urban planning) has 'green area (hectares) "
        "per 100 000 population'; sub-clause number not verified.",
    ),
)

__all__ = ["ENVIRONMENT", "POLLUTANTS"]
