"""The traffic service's page of the operations dashboard: what the detectors, signals and
buses report, read back from the hub the way any viewer may read it.

The sample district and Smart Data Models feeds name their types in the Smart Data Models
terms, while the service writes signals, buses and alerts in the core context: the same
short name is two IRIs, so each type is asked for in both (once where they agree) and
merged by id. Every read is one query of at most ``LIMIT`` entities, plus the history of a
few flows for the chart, so a page view stays cheap whatever the city's size.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from cityos.services.base import Page, Panel
from cityos.services.pagekit import (
    Reader,
    bucket,
    local,
    number,
    observed,
    time_text,
    value,
)

from .signalservice import segment_entity

CHART_FLOWS = 12  # flows whose history the chart averages
HISTORY_LIMIT = 2000  # instances read per flow
WINDOW = timedelta(hours=6)  # the chart's span, back from the newest reading
JAM_LEVEL = 0.7  # the service's jam threshold (congestion.JamWatch's ``enter``)
TOP_FLOWS = 10
MAX_ALERTS = 50

WATCH = ("TrafficFlowObserved", "RoadSegment", "TrafficSignal", "Vehicle", "Alert")
READS = (*WATCH, "GtfsStop")

HOW = {
    "TrafficFlowObserved": "no detector readings (TrafficFlowObserved): load the sample "
    "district with `cityos demo`, run a scenario through the hub with `cityos traffic run "
    "--scenario NAME --through-hub DATABASE_URL`, or provision the city's detectors in the "
    "`traffic-detectors` service group",
    "RoadSegment": "no road segments (RoadSegment): `cityos demo` loads the district's streets",
    "TrafficSignal": "no signals (TrafficSignal): `cityos traffic signals --out FILE` writes "
    "the signals file; set services.traffic.signals to it and run `cityos serve`",
    "Vehicle": "no buses (Vehicle): run `cityos traffic run --through-hub DATABASE_URL "
    "--buses FOLDER`, or connect the on-board units (`transit-vehicles` service group)",
}


def pages() -> list[Page]:
    """The traffic page of the operations dashboard."""
    return [
        Page(
            slug="traffic",
            title="Traffic",
            panels=panels,
            watch=WATCH,
            reads=READS,
            order=20,
        )
    ]


def panels(client: Any) -> list[Panel]:
    """The page's panels for the viewer's ``client`` (a HubClient of their tenant)."""
    hub = Reader(client, history_limit=HISTORY_LIMIT)
    flows = hub.entities("TrafficFlowObserved")
    segments = hub.entities("RoadSegment")
    signals = hub.entities("TrafficSignal")
    stops = hub.entities("GtfsStop")
    buses = [v for v in hub.entities("Vehicle") if _is_bus(v)]
    alerts = hub.entities("Alert", q='category=="traffic"', terms=("category",))
    missing = [
        HOW[t]
        for t, found in (
            ("TrafficFlowObserved", flows),
            ("RoadSegment", segments),
            ("TrafficSignal", signals),
            ("Vehicle", buses),
        )
        if not found
    ]
    if not (flows or segments or signals or buses or alerts):
        return [Panel("No traffic data yet", "text", "This tenant has " + "; ".join(missing) + ".")]
    levels = _levels(flows, segments)
    out = [Panel("Traffic now", "metrics", _metrics(hub, flows, levels, signals, buses), wide=True)]
    features = _features(segments, flows, levels, signals, stops, buses)
    if features:
        out.append(Panel("District map", "map", {"features": features}, wide=True))
    if chart := _chart(hub, flows):
        what = "Speed" if chart["unit"] == "km/h" else "Detector counts"
        out.append(Panel(f"{what} over time (UTC)", "chart", chart))
    if flows:
        out.append(Panel("Most congested flows", "table", _table(flows, levels, segments)))
    out.append(Panel("Traffic alerts", "alerts", _alerts(alerts)))
    if missing:
        text = "; ".join(missing)
        out.append(Panel("Not reported yet", "text", text[0].upper() + text[1:] + "."))
    return out


# -- figures ---------------------------------------------------------------------------------
def _metrics(
    hub: Reader,
    flows: list[dict[str, Any]],
    levels: dict[str, float],
    signals: list[dict[str, Any]],
    buses: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    n = hub.total("TrafficFlowObserved", len(flows))
    out: list[dict[str, Any]] = [
        {"label": "Flows observed", "value": n, "hint": "TrafficFlowObserved detectors"}
    ]
    judged = [_congested(f, levels.get(f["id"])) for f in flows]
    known = [c for c in judged if c is not None]
    if known:
        share = 100.0 * sum(known) / len(known)
        out.append(
            {"label": "Congested", "value": round(share, 1), "unit": "%",
             "hint": f"{sum(known)} of {len(known)} flows"}
        )  # fmt: skip
    speeds = [s for f in flows if (s := _speed(f)) is not None]
    if speeds:
        out.append(
            {"label": "Mean speed", "value": round(sum(speeds) / len(speeds), 1), "unit": "km/h",
             "hint": f"over {len(speeds)} detectors"}
        )  # fmt: skip
    if signals:
        adaptive = sum(1 for s in signals if isinstance(value(s, "setPhase"), dict))
        out.append(
            {"label": "Signals under adaptive control", "value": adaptive,
             "unit": f"of {len(signals)}", "hint": "given a setPhase by the service"}
        )  # fmt: skip
    delays = [d for b in buses if (d := number(b, "delay")) is not None]
    if delays:
        out.append(
            {"label": "Mean bus delay", "value": round(sum(delays) / len(delays)), "unit": "s",
             "hint": f"{len(delays)} of {len(buses)} buses reporting"}
        )  # fmt: skip
    return out


def _congested(flow: dict[str, Any], level: float | None) -> bool | None:
    """The detector's own verdict; without one, the service's jam threshold on its level."""
    flag = value(flow, "congested")
    if isinstance(flag, bool):
        return flag
    return None if level is None else level >= JAM_LEVEL


def _levels(flows: list[dict[str, Any]], segments: list[dict[str, Any]]) -> dict[str, float]:
    """Congestion 0..1 per flow: the speed lost against its segment's limit, else its
    segment's congestion index (the service's own segments), else its congested flag."""
    limits = {s["id"]: number(s, "maximumAllowedSpeed") for s in segments}
    index = {s["id"]: number(s, "congestionIndex") for s in segments}
    out: dict[str, float] = {}
    for f in flows:
        seg = _segment_id(f)
        speed, limit = _speed(f), limits.get(seg)
        flag = value(f, "congested")
        if speed is not None and limit:
            out[f["id"]] = min(1.0, max(0.0, 1.0 - speed / limit))
        elif index.get(seg) is not None:
            out[f["id"]] = min(1.0, max(0.0, float(index[seg])))  # type: ignore[arg-type]
        elif isinstance(flag, bool):
            out[f["id"]] = 1.0 if flag else 0.0
    return out


def _segment_id(flow: dict[str, Any]) -> str:
    """The RoadSegment a flow measures: a relationship (the district), or the SUMO edge the
    service's detectors name, whose segment the service writes as ``RoadSegment:traffic:``."""
    ref = flow.get("refRoadSegment")
    if not isinstance(ref, dict):
        return ""
    if "object" in ref:
        return str(ref["object"])
    return segment_entity(str(ref.get("value", "")))


def _table(
    flows: list[dict[str, Any]], levels: dict[str, float], segments: list[dict[str, Any]]
) -> dict[str, Any]:
    names = {s["id"]: value(s, "name") for s in segments}
    ranked = sorted(flows, key=lambda f: (-levels.get(f["id"], -1.0), f["id"]))[:TOP_FLOWS]
    rows = []
    for f in ranked:
        level = levels.get(f["id"])
        rows.append(
            [
                local(f["id"]),
                names.get(_segment_id(f)) or value(f, "refRoadSegment"),
                _speed(f),
                value(f, "intensity"),
                None if level is None else round(100 * level),
                value(f, "congested"),
            ]
        )
    columns = ["flow", "road", "speed (km/h)", "intensity", "congestion (%)", "congested"]
    return {"columns": columns, "rows": rows}


def _features(
    segments: list[dict[str, Any]],
    flows: list[dict[str, Any]],
    levels: dict[str, float],
    signals: list[dict[str, Any]],
    stops: list[dict[str, Any]],
    buses: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    out = []
    for layer, entities in (
        ("road", segments),
        ("traffic", flows),
        ("signal", signals),
        ("bus stop", stops),
        ("bus", buses),
    ):
        for e in entities:
            geometry = value(e, "location")
            if not isinstance(geometry, dict) or "coordinates" not in geometry:
                continue
            feature = {"geometry": geometry, "layer": layer, "label": _label(layer, e)}
            level = levels.get(e["id"]) if layer == "traffic" else None
            if layer == "road" and (index := number(e, "congestionIndex")) is not None:
                level = min(1.0, max(0.0, index))
            if level is not None:
                feature["level"] = round(level, 3)
            out.append(feature)
    return out


def _label(layer: str, e: dict[str, Any]) -> str:
    name = str(value(e, "name") or local(e["id"]))
    if layer == "traffic" and (speed := _speed(e)) is not None:
        return f"{name}: {speed:g} km/h"
    if layer == "bus" and (delay := number(e, "delay")) is not None:
        return f"{value(e, 'routeId') or name}: {delay:+.0f} s"
    return name


def _chart(hub: Reader, flows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Mean speed (or intensity) over the last hours of a spread sample of flows."""
    attr, name, unit = "averageVehicleSpeed", "mean speed", "km/h"
    measured = [f for f in flows if observed(f, attr) is not None]
    if not measured:  # detectors that count but give no speed
        attr, name, unit = "intensity", "mean intensity", "vehicles"
        measured = [f for f in flows if observed(f, attr) is not None]
    if not measured:
        return None
    step = max(1, len(measured) / CHART_FLOWS)
    sample = [measured[int(i * step)] for i in range(min(CHART_FLOWS, len(measured)))]
    newest = max(t for f in sample if (t := observed(f, attr)) is not None)
    histories = [hub.history(f, attr, newest - WINDOW, minimum=0) for f in sample]
    buckets = bucket(histories)
    if buckets is None:
        return None
    labels, per_flow = buckets
    values = []
    for column in zip(*per_flow, strict=True):
        seen = [v for v in column if v is not None]
        values.append(round(sum(seen) / len(seen), 2) if seen else None)
    label = f"{name} ({len(sample)} of {len(flows)} flows)" if len(sample) < len(flows) else name
    return {"x": labels, "series": [{"name": label, "values": values}], "unit": unit}


def _alerts(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = [
        {
            "id": a["id"],
            "category": value(a, "subCategory") or value(a, "category"),
            "severity": value(a, "severity") or "informational",
            "description": value(a, "description") or "",
            "time": time_text(value(a, "dateIssued")),
            "where": str(value(a, "alertSource") or "").removeprefix("urn:ngsi-ld:") or None,
        }
        for a in alerts
    ]
    rows.sort(key=lambda r: r["time"] or "", reverse=True)
    return rows[:MAX_ALERTS]


def _is_bus(vehicle: dict[str, Any]) -> bool:
    return value(vehicle, "vehicleType") == "bus" or "tripId" in vehicle


def _speed(flow: dict[str, Any]) -> float | None:
    """Its mean speed (km/h) now: None when the detector has seen nobody since it last
    measured one (an older ``observedAt`` than its count's), or reports a negative one."""
    speed = number(flow, "averageVehicleSpeed")
    at, counted = observed(flow, "averageVehicleSpeed"), observed(flow, "intensity")
    if speed is None or speed < 0 or (at and counted and at < counted):
        return None
    return speed
