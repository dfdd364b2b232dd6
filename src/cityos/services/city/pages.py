"""The city's own dashboard pages: the district at a glance (``overview``) and the
indicators (``indicators``).

The basic plan's page (``plan``: the needs survey answered by the planner) is in
:mod:`.plan_page`.

The overview draws everything in the hub that has a location and that some service knows
how to name, coloured by what matters to an operator (congestion, crowding, PM2.5); the
indicators page computes the ISO 37120 / 37122 / U4SSC set over the last 365 days from the
hub, as ``cityos indicators report`` does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cityos.services.base import Page, Panel

from .indicators import compute_report
from .indicators_data import CityData, value_of
from .indicators_model import Period
from .plan_page import pages as plan_pages

# type -> the map layer it is drawn in (what a service writes, in the hub's shared names)
LAYERS: dict[str, str] = {
    "Building": "building",
    "RoadSegment": "road",
    "FlowZone": "crowd",
    "TrafficFlowObserved": "traffic",
    "TrafficSignal": "signal",
    "GtfsStop": "bus stop",
    "Vehicle": "bus",
    "ACMeasurement": "meter",
    "EVChargingStation": "charger",
    "AirQualityObserved": "air",
    "Device": "camera",
    "Alert": "alert",
}
PER_TYPE = 1000  # an overview draws at most this many of a type
FREE_FLOW_KMH = 40.0  # the district's free-flow speed: slower is redder


def _level(etype: str, entity: dict[str, Any]) -> float | None:
    """0 (calm) to 1 (bad), for the types that have a state worth colouring."""
    if etype == "TrafficFlowObserved":
        if value_of(entity, "congested") is True:
            return 1.0
        speed = value_of(entity, "averageVehicleSpeed")
        if isinstance(speed, int | float):
            return min(max(1.0 - speed / FREE_FLOW_KMH, 0.0), 1.0)
    if etype == "AirQualityObserved":
        pm25 = value_of(entity, "pm25")
        if isinstance(pm25, int | float):
            return min(max(pm25 / 75.0, 0.0), 1.0)  # 75 µg/m³: WHO interim target 1
    if etype == "FlowZone":
        level = value_of(entity, "crowdLevel") or value_of(entity, "level")
        if isinstance(level, int | float):
            return min(max(float(level), 0.0), 1.0)
    return None


def _is_camera(entity: dict[str, Any]) -> bool:
    category = value_of(entity, "category") or value_of(entity, "deviceCategory") or ""
    text = " ".join(category) if isinstance(category, list) else str(category)
    return "camera" in text.lower() or "camera" in entity["id"].lower()


def _features(data: CityData) -> tuple[list[dict[str, Any]], dict[str, int]]:
    features: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for etype, layer in LAYERS.items():
        entities = data.entities(etype)[:PER_TYPE]
        if etype == "Device":
            entities = [e for e in entities if _is_camera(e)]
        if entities:
            counts[etype] = len(entities)
        for e in entities:
            geometry = value_of(e, "location")
            if not isinstance(geometry, dict):
                continue
            feature: dict[str, Any] = {
                "geometry": geometry,
                "layer": layer,
                "label": str(value_of(e, "name") or e["id"]),
            }
            level = _level(etype, e)
            if level is not None:
                feature["level"] = level
            features.append(feature)
    return features, counts


def overview(client: Any) -> list[Panel]:
    """The district map and the count of what the hub holds, by kind."""
    data = CityData(client)
    features, counts = _features(data)
    if not counts:
        return [
            Panel(
                "The district",
                "text",
                "The hub holds nothing with a location yet. Load a district "
                "(`cityos demo`, or `cityos load FILE`) or connect devices through the IoT "
                "Agent API; the map fills in as entities arrive.",
            )
        ]
    flows = data.entities("TrafficFlowObserved")
    congested = sum(1 for f in flows if (_level("TrafficFlowObserved", f) or 0) >= 0.6)
    air = [value_of(a, "pm25") for a in data.entities("AirQualityObserved")]
    pm = [v for v in air if isinstance(v, int | float)]
    metrics = [
        {"label": "Traffic sensors", "value": len(flows)},
        {
            "label": "Congested now",
            "value": (100.0 * congested / len(flows)) if flows else None,
            "unit": "%",
        },
        {
            "label": "PM2.5, worst station",
            "value": max(pm) if pm else None,
            "unit": "µg/m³",
        },
        {"label": "Open alerts", "value": len(data.entities("Alert"))},
    ]
    table = {
        "columns": ["kind", "layer", "count"],
        "rows": [[t, LAYERS[t], n] for t, n in sorted(counts.items())],
    }
    return [
        Panel("Now", "metrics", metrics, wide=True),
        Panel("The district", "map", {"features": features}),
        Panel("What the hub holds", "table", table),
    ]


def indicators(client: Any) -> list[Panel]:
    """The indicators over the 365 days to now, with the ones still lacking data named."""
    rows = compute_report(client, Period.year_to(datetime.now(UTC)))
    got = [r.as_dict() for r in rows if r.outcome.status == "ok"]
    missing = [r.as_dict() for r in rows if r.outcome.status != "ok"]
    panels = [
        Panel(
            "Indicators",
            "metrics",
            [
                {"label": "Computed", "value": len(got)},
                {"label": "Waiting for data", "value": len(missing)},
            ],
            wide=True,
        ),
        Panel(
            "Computed from the hub",
            "table",
            {
                "columns": ["id", "standard", "indicator", "value", "unit"],
                "rows": [[d["id"], d["standard"], d["name"], d["value"], d["unit"]] for d in got],
            },
            wide=True,
        ),
    ]
    if missing:
        panels.append(
            Panel(
                "Not yet computable",
                "table",
                {
                    "columns": ["id", "standard", "indicator", "what is missing"],
                    "rows": [[d["id"], d["standard"], d["name"], d["why"]] for d in missing],
                },
                wide=True,
            )
        )
    return panels


def pages() -> list[Page]:
    return [
        Page(
            slug="overview",
            title="Overview",
            panels=overview,
            watch=tuple(LAYERS),
            reads=tuple(LAYERS),
            order=0,
        ),
        Page(
            slug="indicators",
            title="Indicators",
            panels=indicators,
            watch=("KeyPerformanceIndicator",),
            reads=("KeyPerformanceIndicator",),
            order=90,
        ),
        *plan_pages(),
    ]
