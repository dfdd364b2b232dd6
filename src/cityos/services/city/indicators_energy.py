"""Energy indicators: meters, buildings, chargers, generation, schedules, street lights."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from .indicators_data import (
    CityData,
    area_m2,
    number_of,
    refs,
    time_of,
    words,
)
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

# Smart Data Models Building categories (OpenStreetMap's building=* values).
PUBLIC = frozenset(
    {"public", "civic", "government", "townhall", "school", "kindergarten", "college",
     "university", "hospital", "fire_station", "library"}
)  # fmt: skip
RESIDENTIAL = frozenset(
    {"residential", "apartments", "house", "detached", "dormitory", "terrace", "bungalow",
     "semidetached_house", "houseboat", "farm"}
)  # fmt: skip
RENEWABLE_SOURCES = ("solarPowerGenerated", "eolicPowerGenerated", "hydroPowerGenerated")


# -- shared ---------------------------------------------------------------------------------
def buildings(data: CityData, categories: frozenset[str] | None = None) -> list[dict[str, Any]]:
    """The Building entities, those with one of ``categories`` when given."""
    out = data.entities("Building")
    if categories is None:
        return out
    return [b for b in out if words(b, "category") & categories]


def meters_by_building(data: CityData) -> dict[str, list[dict[str, Any]]]:
    """The electricity meters (ACMeasurement) of each building they refer to (refBuilding)."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for meter in data.entities("ACMeasurement"):
        for building in refs(meter, "refBuilding"):
            out[building].append(meter)
    return out


def annual_kwh(data: CityData, meter: dict[str, Any], period: Period) -> float | None:
    """A meter's consumption per year, from the period's readings: the slope of its energy
    register (totalActiveEnergyImport, kWh) when two readings are apart, else its mean
    power (totalActivePower, kW) × 8760 h; None when it reported neither."""
    energy = data.numbers(meter, "totalActiveEnergyImport", period)
    if len(energy) >= 2:
        (t0, e0), (t1, e1) = energy[0], energy[-1]
        hours = (t1 - t0).total_seconds() / 3600.0
        if hours > 0 and e1 >= e0:
            return (e1 - e0) / hours * HOURS_PER_YEAR
    power = [kw for _, kw in data.numbers(meter, "totalActivePower", period) if kw >= 0]
    if power:
        return sum(power) / len(power) * HOURS_PER_YEAR
    return None


def floor_area_m2(building: dict[str, Any]) -> float:
    """Gross floor area: footprint × floors above ground (1 when not given)."""
    floors = number_of(building, "floorsAboveGround") or 1.0
    return area_m2(building) * max(floors, 1.0)


def city_kwh(data: CityData, period: Period) -> tuple[float, int, int]:
    """The metered consumption per year (kWh), how many meters gave it, of how many."""
    meters = data.entities("ACMeasurement")
    yearly = [annual_kwh(data, m, period) for m in meters]
    known = [y for y in yearly if y is not None]
    return sum(known), len(known), len(meters)


# -- the indicators -------------------------------------------------------------------------
def electricity_per_capita(data: CityData, facts: CityFacts, period: Period) -> Outcome:
    kwh, used, total = city_kwh(data, period)
    if not used:
        return nothing("ACMeasurement", why=_no_meter_readings(total))
    return Measured(
        kwh / facts.require("population"), {"kwh_per_year": kwh, "meters": used, "of": total}
    )


def _no_meter_readings(total: int) -> str:
    if not total:
        return "no electricity meter (ACMeasurement) in the hub"
    return (
        f"none of the {total} ACMeasurement meters reported totalActiveEnergyImport or "
        "totalActivePower in the period"
    )


def renewable_share(data: CityData, facts: CityFacts, period: Period) -> Outcome:
    generators = data.entities("GreenEnergyMeasurement")
    if not generators:
        return nothing(
            "GreenEnergyMeasurement",
            why="no renewable generation (GreenEnergyMeasurement) in the hub",
        )
    mean_kw = 0.0
    for g in generators:
        for source in RENEWABLE_SOURCES:
            kw = [v for _, v in data.numbers(g, source, period)]
            mean_kw += sum(kw) / len(kw) if kw else 0.0
    kwh, used, total = city_kwh(data, period)
    if not used or kwh <= 0:
        return nothing("ACMeasurement", why=_no_meter_readings(total))
    return share(mean_kw * HOURS_PER_YEAR, kwh, generators=len(generators), meters=used)


def smart_meter_share(data: CityData, facts: CityFacts, period: Period) -> Outcome:
    all_buildings = buildings(data)
    if not all_buildings:
        return nothing("Building")
    if not data.entities("ACMeasurement"):
        return nothing("ACMeasurement")
    metered = meters_by_building(data)
    count = sum(1 for b in all_buildings if b["id"] in metered)
    return share(count, len(all_buildings))


def residential_electricity_access(data: CityData, facts: CityFacts, period: Period) -> Outcome:
    homes = buildings(data, RESIDENTIAL)
    if not homes:
        return nothing(
            "Building",
            why="no residential Building (category residential, apartments, house ...) in the hub",
        )
    if not data.entities("ACMeasurement"):
        return nothing("ACMeasurement")
    metered = meters_by_building(data)
    return share(sum(1 for b in homes if b["id"] in metered), len(homes))


def chargers_per_registered_ev(data: CityData, facts: CityFacts, period: Period) -> Outcome:
    stations = data.entities("EVChargingStation")
    if not stations:
        return nothing("EVChargingStation")
    evs = facts.require("registered_electric_vehicles")
    return Measured(len(stations) / evs, {"stations": len(stations), "registered_evs": evs})


def chargers_per_100k(data: CityData, facts: CityFacts, period: Period) -> Outcome:
    stations = data.entities("EVChargingStation")
    if not stations:
        return nothing("EVChargingStation")
    people = facts.require("population")
    return Measured(len(stations) * 100_000 / people, {"stations": len(stations)})


def public_building_intensity(data: CityData, facts: CityFacts, period: Period) -> Outcome:
    metered = meters_by_building(data)
    kwh = area = 0.0
    counted = 0
    for b in buildings(data, PUBLIC):
        floor = floor_area_m2(b)
        yearly = [annual_kwh(data, m, period) for m in metered.get(b["id"], [])]
        known = [y for y in yearly if y is not None]
        if floor > 0 and known:
            kwh += sum(known)
            area += floor
            counted += 1
    if not counted:
        return nothing(
            "Building",
            "ACMeasurement",
            why="no public Building (category public, "
            "school, hospital ...) with a footprint and a meter reading in the period",
        )
    return Measured(kwh / area, {"kwh_per_year": kwh, "floor_area_m2": area, "buildings": counted})


def peak_demand(data: CityData, facts: CityFacts, period: Period) -> Outcome:
    hours: dict[datetime, float] = defaultdict(float)
    meters = data.entities("ACMeasurement")
    for meter in meters:
        per_hour: dict[datetime, list[float]] = defaultdict(list)
        for at, kw in data.numbers(meter, "totalActivePower", period):
            per_hour[at.replace(minute=0, second=0, microsecond=0)].append(kw)
        for hour, kws in per_hour.items():
            hours[hour] += sum(kws) / len(kws)
    if not hours:
        return nothing(
            "ACMeasurement",
            why=_no_meter_readings(len(meters)).replace("totalActiveEnergyImport or ", ""),
        )
    hour = max(hours, key=lambda h: hours[h])
    return Measured(hours[hour], {"hour": hour.strftime("%Y-%m-%dT%H:00Z"), "meters": len(meters)})


def planned_peak_reduction(data: CityData, facts: CityFacts, period: Period) -> Outcome:
    cuts = []
    for s in data.entities("EnergySchedule"):
        if refs(s, "refBuilding"):
            continue  # a building's schedule; the district's has the peaks
        day = time_of(s, "day")
        base, planned = number_of(s, "peak_kw_no_control"), number_of(s, "peak_kw")
        if period.contains(day) and base and planned is not None and base > 0:
            cuts.append(100.0 * (base - planned) / base)
    if not cuts:
        return nothing(
            "EnergySchedule",
            why="no district EnergySchedule (peak_kw, "
            "peak_kw_no_control) for a day in the period: run `cityos energy plan`",
        )
    return Measured(sum(cuts) / len(cuts), {"days": len(cuts)})


def demand_response_share(data: CityData, facts: CityFacts, period: Period) -> Outcome:
    all_buildings = buildings(data)
    if not all_buildings:
        return nothing("Building")
    enrolled = {b["id"] for b in all_buildings if "demandResponseShed" in b}
    for event in data.entities("DemandResponseEvent"):
        enrolled.update(refs(event, "refBuilding"))
    if not enrolled and not data.entities("DemandResponseEvent"):
        return nothing("DemandResponseEvent")
    count = sum(1 for b in all_buildings if b["id"] in enrolled)
    return share(count, len(all_buildings))


def managed_street_lighting(data: CityData, facts: CityFacts, period: Period) -> Outcome:
    lights = data.entities("Streetlight")
    if not lights:
        return nothing("Streetlight")
    managed = sum(
        1
        for light in lights
        if refs(light, "refStreetlightControlCabinet")
        or refs(light, "refStreetlightGroup")
        or data.reported(light, ["powerState"], period)
    )
    return share(managed, len(lights))


_METER = Read("ACMeasurement", ("refBuilding", "totalActiveEnergyImport", "totalActivePower"))
_BUILDING = Read("Building", ("category",))
ISO_NOTE = "clause numbers as CityOS reads the published editions; check against yours"

ENERGY: tuple[Indicator, ...] = (
    Indicator(
        key="electricity-consumption-per-capita",
        name="Electricity consumption per capita",
        standards=("U4SSC EN/Energy: Electricity consumption", "ISO 37120:2018 7.1 (partial)"),
        unit="kWh/year per capita",
        formula="Σ meters' yearly kWh (energy-register slope, else mean kW × 8760 h) / population",
        reads=(_METER,),
        compute=electricity_per_capita,
        theme="energy",
        facts=("population",),
        reference_note="ISO 37120:2018 7.1 counts all end-use energy (GJ); the hub meters "
        "electricity only, so this is its electrical part. Unmetered buildings are not counted.",
    ),
    Indicator(
        key="renewable-energy-share",
        name="Share of electricity from renewable sources",
        standards=("ISO 37120:2018 7.2", "U4SSC EN/Energy: Renewable energy consumption"),
        unit="%",
        formula="100 × Σ generators' mean (solar+eolic+hydro) kW × 8760 h / metered kWh per year",
        reads=(Read("GreenEnergyMeasurement", RENEWABLE_SOURCES), _METER),
        compute=renewable_share,
        theme="energy",
        reference_note="electricity only (the standard counts all end-use energy); " + ISO_NOTE,
    ),
    Indicator(
        key="smart-electricity-meter-share",
        name="Buildings with a smart electricity meter",
        standards=(
            "ISO 37122:2019 7.x",
            "U4SSC EC/ICT/Electricity supply: Smart electricity meters",
        ),
        unit="%",
        formula="100 × Buildings that an ACMeasurement refers to (refBuilding) / Buildings",
        reads=(_BUILDING, Read("ACMeasurement", ("refBuilding",))),
        compute=smart_meter_share,
        theme="energy",
        reference_note="ISO 37122:2019 section 7 (energy) has 'percentage of buildings in the "
        "city with smart energy meters'; its sub-clause number (7.x) is not verified. A meter "
        "that reports to the hub is counted as smart.",
    ),
    Indicator(
        key="residential-electricity-access",
        name="Residential buildings with an electricity service",
        standards=("ISO 37120:2018 7.3 (proxy)",),
        unit="%",
        formula="100 × residential Buildings with a meter (ACMeasurement refBuilding) / "
        "residential Buildings",
        reads=(_BUILDING, Read("ACMeasurement", ("refBuilding",))),
        compute=residential_electricity_access,
        theme="energy",
        reference_note="the standard counts people with authorised service; buildings stand in "
        "for households, and only connections metered in the hub are seen. " + ISO_NOTE,
    ),
    Indicator(
        key="ev-chargers-per-registered-ev",
        name="EV charging stations per registered electric vehicle",
        standards=("ISO 37122:2019 7.x",),
        unit="stations per EV",
        formula="EVChargingStation entities / registered electric vehicles (city fact)",
        reads=(Read("EVChargingStation"),),
        compute=chargers_per_registered_ev,
        theme="energy",
        facts=("registered_electric_vehicles",),
        reference_note="ISO 37122:2019 section 7 (energy) has 'number of electric vehicle "
        "charging stations per registered electric vehicle'; sub-clause number (7.x) not verified.",
    ),
    Indicator(
        key="ev-chargers-per-100k",
        name="EV charging stations per 100 000 population",
        standards=("CityOS",),
        unit="stations per 100 000",
        formula="EVChargingStation entities × 100 000 / population",
        reads=(Read("EVChargingStation"),),
        compute=chargers_per_100k,
        theme="energy",
        facts=("population",),
        reference_note="per-population companion of the ISO 37122 per-EV indicator, for cities "
        "that do not know their registered EVs",
    ),
    Indicator(
        key="public-building-energy-intensity",
        name="Electricity consumption of public buildings per floor area",
        standards=("ISO 37120:2018 7.x", "U4SSC EN/Energy: Public building energy consumption"),
        unit="kWh/m² per year",
        formula="Σ public buildings' meters' yearly kWh / Σ their floor area (footprint × "
        "floorsAboveGround), metered public buildings only",
        reads=(Read("Building", ("category", "location", "floorsAboveGround")), _METER),
        compute=public_building_intensity,
        theme="energy",
        reference_note="ISO 37120:2018 section 7 has 'final energy consumption of public "
        "buildings per year' (in GJ/m²; 1 kWh = 0.0036 GJ); sub-clause number (7.x) not verified; "
        "electricity only.",
    ),
    Indicator(
        key="peak-electricity-demand",
        name="Peak metered electricity demand",
        standards=("CityOS",),
        unit="kW",
        formula="max over hours of Σ meters' mean totalActivePower in that hour",
        reads=(Read("ACMeasurement", ("totalActivePower",)),),
        compute=peak_demand,
        theme="energy",
        reference_note="what the energy service shaves (its peak_kw KPI); a meter silent in an "
        "hour adds nothing to it",
    ),
    Indicator(
        key="planned-peak-reduction",
        name="Peak reduction planned by the energy service",
        standards=("CityOS",),
        unit="%",
        formula="mean over the period's days of 100 × (peak_kw_no_control − peak_kw) / "
        "peak_kw_no_control of the district EnergySchedule",
        reads=(Read("EnergySchedule", ("day", "peak_kw", "peak_kw_no_control")),),
        compute=planned_peak_reduction,
        theme="energy",
    ),
    Indicator(
        key="demand-response-share",
        name="Buildings taking part in demand response",
        standards=("U4SSC EC/ICT/Electricity supply: Demand response penetration",),
        unit="%",
        formula="100 × Buildings named by a DemandResponseEvent (refBuilding) or carrying a "
        "demandResponseShed / Buildings",
        reads=(_BUILDING, Read("DemandResponseEvent", ("refBuilding",))),
        compute=demand_response_share,
        theme="energy",
        reference_note="U4SSC counts customers with demand-response capability; the hub knows "
        "those that took part in an event (a lower bound)",
    ),
    Indicator(
        key="managed-street-lighting",
        name="Street lights under a light management system",
        standards=("ISO 37122:2019 7.x",),
        unit="%",
        formula="100 × Streetlights with a control cabinet or group, or reporting powerState "
        "in the period / Streetlights",
        reads=(
            Read(
                "Streetlight", ("refStreetlightControlCabinet", "refStreetlightGroup", "powerState")
            ),
        ),
        compute=managed_street_lighting,
        theme="energy",
        reference_note="ISO 37122:2019 section 7 has 'percentage of street lighting managed by "
        "a light performance management system'; sub-clause number (7.x) not verified.",
    ),
)

__all__ = ["ENERGY", "PUBLIC", "RESIDENTIAL", "buildings", "floor_area_m2", "meters_by_building"]
