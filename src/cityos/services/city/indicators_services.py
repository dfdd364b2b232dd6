"""Safety, governance and utility indicators: cameras, security alerts, privacy requests,
crowding, waste containers, water meters."""

from __future__ import annotations

from collections import Counter

from shapely.geometry import Point
from shapely.ops import unary_union

from .indicators_data import CityData, metres, number_of, point, refs, time_of, value_of, words
from .indicators_energy import buildings
from .indicators_model import (
    DAYS_PER_YEAR,
    CityFacts,
    Indicator,
    Measured,
    Outcome,
    Period,
    Read,
    nothing,
    share,
)

CAMERA_CATEGORY = "camera"  # the safety service's deviceCategory
CAMERA_RANGE_M = 30.0  # the radius a street camera watches (no field of view in the hub)
EQUIPMENT_FAULTS = frozenset({"cameraDisconnected"})  # security alerts that are no incident
REQUEST_KINDS = ("access", "erasure")
CROWDED = 0.8  # occupancy from which the flows service calls a zone-hour "high"


def cameras(data: CityData) -> list[tuple[float, float]]:
    """Where the city's cameras are (Device, deviceCategory camera, a Point location)."""
    return [
        p
        for d in data.entities("Device")
        if CAMERA_CATEGORY in words(d, "deviceCategory") and (p := point(d)) is not None
    ]


def camera_area_coverage(data: CityData, facts: CityFacts, period: Period) -> Outcome:
    where = cameras(data)
    if not where:
        return nothing(
            "Device", why="no camera (Device with deviceCategory camera and a location) in the hub"
        )
    area = facts.require("area_km2")
    origin = where[0]
    discs = [Point(*metres(origin, p)).buffer(CAMERA_RANGE_M, quad_segs=32) for p in where]
    watched_km2 = unary_union(discs).area / 1e6
    return Measured(
        min(100.0, 100.0 * watched_km2 / area), {"cameras": len(where), "watched_km2": watched_km2}
    )


def security_alerts_per_100k(data: CityData, facts: CityFacts, period: Period) -> Outcome:
    alerts = [
        a
        for a in data.entities("Alert")
        if str(value_of(a, "category", "")) == "security"
        and str(value_of(a, "subCategory", "")) not in EQUIPMENT_FAULTS
        and period.contains(time_of(a, "dateIssued"))
    ]
    if not alerts and not cameras(data) and not data.entities("FlowZone"):
        return nothing(
            "Device",
            "FlowZone",
            why="nothing watches for incidents: no camera "
            "(Device) and no crowd zone (FlowZone) in the hub",
        )
    people = facts.require("population")
    per_year = len(alerts) * DAYS_PER_YEAR / period.days
    kinds = Counter(str(value_of(a, "subCategory", "")) for a in alerts)
    return Measured(per_year * 100_000 / people, {"alerts": len(alerts), "by_kind": dict(kinds)})


def privacy_requests_answered(data: CityData, facts: CityFacts, period: Period) -> Outcome:
    actions = data.entities("PrivacyAction")
    if not actions and not data.entities("PrivacyDataset"):
        return nothing(
            "PrivacyAction",
            "PrivacyDataset",
            why="the privacy layer has recorded "
            "nothing in the hub (no PrivacyDataset, no PrivacyAction)",
        )
    answered = Counter(
        str(value_of(a, "actionKind"))
        for a in actions
        if value_of(a, "actionKind") in REQUEST_KINDS and period.contains(time_of(a, "dateIssued"))
    )
    return Measured(float(sum(answered.values())), {"by_kind": dict(answered)})


def crowded_zone_hours(data: CityData, facts: CityFacts, period: Period) -> Outcome:
    hours = [
        number_of(h, "occupancy")
        for h in data.entities("CrowdLevel")
        if period.contains(time_of(h, "dateObservedFrom"))
    ]
    known = [o for o in hours if o is not None]
    if not known:
        return nothing(
            "CrowdLevel",
            why="no CrowdLevel zone-hour in the period (the flows service writes them)",
        )
    return share(sum(1 for o in known if o >= CROWDED), len(known))


def waste_telemonitoring(data: CityData, facts: CityFacts, period: Period) -> Outcome:
    containers = data.entities("WasteContainer")
    if not containers:
        return nothing("WasteContainer")
    live = sum(1 for c in containers if data.reported(c, ["fillingLevel"], period))
    return share(live, len(containers))


def smart_water_meter_share(data: CityData, facts: CityFacts, period: Period) -> Outcome:
    all_buildings = buildings(data)
    if not all_buildings:
        return nothing("Building")
    meters = data.entities("WaterConsumptionObserved")
    if not meters:
        return nothing("WaterConsumptionObserved")
    metered = {b for m in meters for b in refs(m, "refBuilding")}
    return share(sum(1 for b in all_buildings if b["id"] in metered), len(all_buildings))


SERVICES: tuple[Indicator, ...] = (
    Indicator(
        key="camera-area-coverage",
        name="City area covered by digital surveillance cameras",
        standards=("ISO 37122:2019 15.x",),
        unit="%",
        formula=f"100 × area of the union of {CAMERA_RANGE_M:g} m discs around the cameras "
        "(Device, deviceCategory camera) / city area",
        reads=(Read("Device", ("deviceCategory", "location")),),
        compute=camera_area_coverage,
        theme="safety",
        facts=("area_km2",),
        reference_note="ISO 37122:2019 section 15 (safety) has 'percentage of city area "
        "covered by digital surveillance cameras'; sub-clause number (15.x) not verified. "
        f"The hub has no field of view: each camera watches {CAMERA_RANGE_M:g} m around it.",
    ),
    Indicator(
        key="security-alerts-per-100k",
        name="Security incidents detected per 100 000 population",
        standards=("CityOS",),
        unit="alerts/year per 100 000",
        formula="Alerts of category security issued in the period (not camera faults) × "
        "365 / days × 100 000 / population",
        reads=(
            Read("Alert", ("category", "subCategory", "dateIssued")),
            Read("Device", ("deviceCategory",)),
            Read("FlowZone"),
        ),
        compute=security_alerts_per_100k,
        theme="safety",
        facts=("population",),
        reference_note="what the cameras and crowd counting raised (overcrowding, loitering, "
        "restricted areas), not recorded crime (ISO 37120 section 15)",
    ),
    Indicator(
        key="privacy-requests-answered",
        name="Data-subject requests answered",
        standards=("CityOS",),
        unit="requests",
        formula="PrivacyActions of kind access or erasure dated in the period",
        reads=(Read("PrivacyAction", ("actionKind", "dateIssued")), Read("PrivacyDataset")),
        compute=privacy_requests_answered,
        theme="governance",
        reference_note="the privacy layer records a request when it answers it; requests "
        "received but not yet answered are not in the hub",
    ),
    Indicator(
        key="crowded-zone-hours",
        name="Zone-hours at high crowding",
        standards=("CityOS",),
        unit="%",
        formula=f"100 × CrowdLevel zone-hours of the period with occupancy ≥ {CROWDED:g} / "
        "all of them",
        reads=(Read("CrowdLevel", ("occupancy", "dateObservedFrom")),),
        compute=crowded_zone_hours,
        theme="safety",
    ),
    Indicator(
        key="waste-container-telemonitoring",
        name="Waste containers with telemonitoring",
        standards=("ISO 37122:2019 16.x",),
        unit="%",
        formula="100 × WasteContainers reporting fillingLevel in the period / WasteContainers",
        reads=(Read("WasteContainer", ("fillingLevel",)),),
        compute=waste_telemonitoring,
        theme="utilities",
        reference_note="ISO 37122:2019 section 16 (solid waste) has 'percentage of waste "
        "drop-off centres (containers) equipped with telemonitoring'; sub-clause number (16.x) "
        "not verified.",
    ),
    Indicator(
        key="smart-water-meter-share",
        name="Buildings with a smart water meter",
        standards=("U4SSC EC/ICT/Water and sanitation: Smart water meters", "ISO 37122:2019 23.x"),
        unit="%",
        formula="100 × Buildings a WaterConsumptionObserved refers to (refBuilding) / Buildings",
        reads=(Read("Building"), Read("WaterConsumptionObserved", ("refBuilding",))),
        compute=smart_water_meter_share,
        theme="utilities",
        reference_note="ISO 37122:2019 section 23 (water) has a smart water meter indicator; "
        "sub-clause number (23.x) not verified. The link to the building (refBuilding) is a "
        "CityOS convention.",
    ),
)
