"""The energy service's page of the operations dashboard: the district's meters, chargers,
battery plan and demand response, read back from the hub the way any viewer may read it.

The sample district names its meters and buildings in the Smart Data Models terms, while
the central system (OCPP), the VTN (OpenADR) and the planner write in the core context: the
same short name is two IRIs, so each type is asked for in both (once where they agree) and
merged by id. Every read is one query of at most ``LIMIT`` entities, plus the meters' recent
history for the load chart, so a page view stays cheap.
"""

from __future__ import annotations

from collections import Counter
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

CHART_METERS = 200  # meters whose history the load chart sums
HISTORY_LIMIT = 1000  # instances read per meter
WINDOW = timedelta(hours=6)  # the chart's span, back from the newest reading
MAX_ALERTS = 50

WATCH = ("ACMeasurement", "EVChargingStation", "EnergySchedule", "DemandResponseEvent", "Alert")
READS = (*WATCH, "Building")

HOW = {
    "ACMeasurement": "no electricity meters (ACMeasurement): load the sample district with "
    "`cityos demo`, or let buildings report through OpenADR (their VENs' usage reports land "
    "on the meter entities)",
    "EVChargingStation": "no chargers (EVChargingStation): set services.energy.ocpp_port and "
    "point the stations at ws://HOST:PORT/ocpp/STATION-ID (OCPP 2.0.1) under `cityos serve`",
    "EnergySchedule": "no battery plan (EnergySchedule): `cityos energy plan --day YYYY-MM-DD` "
    "plans a day from the meters' history",
    "DemandResponseEvent": "no demand-response events (DemandResponseEvent): the OpenADR VTN "
    "records one for every shed it requests",
}


def pages() -> list[Page]:
    """The energy page of the operations dashboard."""
    return [
        Page(
            slug="energy",
            title="Energy",
            panels=panels,
            watch=WATCH,
            reads=READS,
            order=30,
        )
    ]


def panels(client: Any) -> list[Panel]:
    """The page's panels for the viewer's ``client`` (a HubClient of their tenant)."""
    hub = Reader(client, history_limit=HISTORY_LIMIT)
    meters = hub.entities("ACMeasurement")
    buildings = hub.entities("Building", attrs=["name", "location"])
    chargers = hub.entities("EVChargingStation")
    # only the district's schedule has peak_kw (a building's carries 24-hour arrays)
    plans = hub.entities("EnergySchedule", q="peak_kw>=0", terms=("peak_kw",))
    events = hub.entities("DemandResponseEvent")
    alerts = hub.entities("Alert", q='category=="energy"', terms=("category",))
    missing = [
        HOW[t]
        for t, found in (
            ("ACMeasurement", meters),
            ("EVChargingStation", chargers),
            ("EnergySchedule", plans),
            ("DemandResponseEvent", events),
        )
        if not found
    ]
    if not (meters or buildings or chargers or plans or events or alerts):
        return [Panel("No energy data yet", "text", "This tenant has " + "; ".join(missing) + ".")]
    figures = _metrics(hub, meters, buildings, chargers, plans, events)
    out = [Panel("Energy now", "metrics", figures, wide=True)]
    if chart := _chart(hub, meters):
        out.append(Panel("District load (UTC)", "chart", chart))
    if chargers:
        out.append(Panel("Chargers", "table", _table(chargers)))
    features = _features(buildings, meters, chargers)
    if features:
        out.append(Panel("Meters and chargers", "map", {"features": features}, wide=True))
    out.append(Panel("Energy alerts", "alerts", _alerts(alerts)))
    if missing:
        text = "; ".join(missing)
        out.append(Panel("Not reported yet", "text", text[0].upper() + text[1:] + "."))
    return out


# -- figures ---------------------------------------------------------------------------------
def _metrics(
    hub: Reader,
    meters: list[dict[str, Any]],
    buildings: list[dict[str, Any]],
    chargers: list[dict[str, Any]],
    plans: list[dict[str, Any]],
    events: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    n_meters = hub.total("ACMeasurement", len(meters))
    metered = {str(b) for m in meters if (b := value(m, "refBuilding"))}
    n_buildings = hub.count("Building")  # read with name or location only: count them all
    figure: dict[str, Any] = {"label": "Buildings metered", "value": len(metered),
                              "hint": f"{n_meters} meters (ACMeasurement)"}  # fmt: skip
    if n_buildings:
        figure["unit"] = f"of {n_buildings}"
    out.append(figure)
    loads = [p for m in meters if (p := number(m, "totalActivePower")) is not None]
    if loads:
        out.append(
            {"label": "District load now", "value": round(sum(loads), 1), "unit": "kW",
             "hint": f"latest reading of {len(loads)} meters"}
        )  # fmt: skip
    if chargers:
        charging = [c for c in chargers if _charging(c)]
        drawn = sum(number(c, "powerKw") or 0.0 for c in charging)
        connected = sum(1 for c in chargers if value(c, "connected") is True)
        out.append(
            {"label": "Chargers charging", "value": len(charging),
             "unit": f"of {len(chargers)}",
             "hint": f"{drawn:g} kW drawn; {connected} connected to the central system"}
        )  # fmt: skip
    if plans:
        latest = max(plans, key=lambda p: str(value(p, "day") or ""))
        peak, base = number(latest, "peak_kw"), number(latest, "peak_kw_no_control")
        when = f"{value(latest, 'day')} ({value(latest, 'status')})"
        out.append(
            {"label": "Planned peak", "value": None if peak is None else round(peak, 1),
             "unit": "kW",
             "hint": when if base is None else f"{base:g} kW without batteries; {when}"}
        )  # fmt: skip
    if events:
        states = Counter(str(value(e, "status") or "unknown") for e in events)
        out.append(
            {"label": "Demand-response events", "value": len(events),
             "hint": ", ".join(f"{n} {s}" for s, n in sorted(states.items()))}
        )  # fmt: skip
    return out


def _charging(charger: dict[str, Any]) -> bool:
    """In an active transaction and drawing: OCPP's chargingState says so, or its power."""
    if value(charger, "transactionStatus") != "active":
        return False
    state = value(charger, "chargingState")
    if state is not None:
        return state == "Charging"
    return (number(charger, "powerKw") or 0.0) > 0


def _table(chargers: list[dict[str, Any]]) -> dict[str, Any]:
    columns = ["charger", "status", "connected", "transaction", "charging state",
               "power (kW)", "session (kWh)", "register (kWh)"]  # fmt: skip
    rows = [
        [
            local(c["id"]),
            value(c, "status"),
            value(c, "connected"),
            value(c, "transactionStatus"),
            value(c, "chargingState"),
            number(c, "powerKw"),
            number(c, "transactionEnergyKwh"),
            number(c, "energyImportedKwh"),
        ]
        for c in sorted(chargers, key=lambda c: c["id"])
    ]
    return {"columns": columns, "rows": rows}


def _features(
    buildings: list[dict[str, Any]], meters: list[dict[str, Any]], chargers: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    out = []
    for layer, entities in (("building", buildings), ("meter", meters), ("charger", chargers)):
        for e in entities:
            geometry = value(e, "location")
            if not isinstance(geometry, dict) or "coordinates" not in geometry:
                continue
            label = str(value(e, "name") or local(e["id"]))
            power = number(e, "totalActivePower" if layer == "meter" else "powerKw")
            if layer != "building" and power is not None:
                label += f": {power:g} kW"
            out.append({"geometry": geometry, "layer": layer, "label": label})
    return out


def _chart(hub: Reader, meters: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The district's load over the last hours: each meter's mean per bucket, carried
    forward over a bucket it missed, summed."""
    measured = [m for m in meters if observed(m, "totalActivePower") is not None]
    if not measured:
        return None
    sample = measured[:CHART_METERS]
    newest = max(t for m in sample if (t := observed(m, "totalActivePower")) is not None)
    histories = [hub.history(m, "totalActivePower", newest - WINDOW) for m in sample]
    buckets = bucket(histories)
    if buckets is None:
        return None
    labels, per_meter = buckets
    totals: list[float | None] = []
    last: list[float | None] = [None] * len(per_meter)
    for i in range(len(labels)):
        for k, series in enumerate(per_meter):
            if series[i] is not None:
                last[k] = series[i]
        known = [v for v in last if v is not None]
        totals.append(round(sum(known), 2) if known else None)
    name = "district load"
    if len(sample) < len(meters):
        name += f" ({len(sample)} of {len(meters)} meters)"
    return {"x": labels, "series": [{"name": name, "values": totals}], "unit": "kW"}


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
