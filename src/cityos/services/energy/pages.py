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
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from cityos.hub.errors import Forbidden, ResourceNotFound
from cityos.services.base import Page, Panel
from cityos.twin.context import DISTRICT_TERMS

LIMIT = 1000  # entities read per type and context
CHART_METERS = 200  # meters whose history the load chart sums
HISTORY_LIMIT = 1000  # instances read per meter
WINDOW = timedelta(hours=6)  # the chart's span, back from the newest reading
MAX_ALERTS = 50
STEPS_MIN = (1, 5, 15, 30, 60, 180, 360, 1440)  # chart bucket widths, minutes
MAX_BUCKETS = 48

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
    hub = _Reader(client)
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
    hub: _Reader,
    meters: list[dict[str, Any]],
    buildings: list[dict[str, Any]],
    chargers: list[dict[str, Any]],
    plans: list[dict[str, Any]],
    events: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    n_meters = hub.total("ACMeasurement", len(meters))
    metered = {str(b) for m in meters if (b := _value(m, "refBuilding"))}
    n_buildings = hub.count("Building")  # read with name or location only: count them all
    figure: dict[str, Any] = {"label": "Buildings metered", "value": len(metered),
                              "hint": f"{n_meters} meters (ACMeasurement)"}  # fmt: skip
    if n_buildings:
        figure["unit"] = f"of {n_buildings}"
    out.append(figure)
    loads = [p for m in meters if (p := _number(m, "totalActivePower")) is not None]
    if loads:
        out.append(
            {"label": "District load now", "value": round(sum(loads), 1), "unit": "kW",
             "hint": f"latest reading of {len(loads)} meters"}
        )  # fmt: skip
    if chargers:
        charging = [c for c in chargers if _charging(c)]
        drawn = sum(_number(c, "powerKw") or 0.0 for c in charging)
        connected = sum(1 for c in chargers if _value(c, "connected") is True)
        out.append(
            {"label": "Chargers charging", "value": len(charging),
             "unit": f"of {len(chargers)}",
             "hint": f"{drawn:g} kW drawn; {connected} connected to the central system"}
        )  # fmt: skip
    if plans:
        latest = max(plans, key=lambda p: str(_value(p, "day") or ""))
        peak, base = _number(latest, "peak_kw"), _number(latest, "peak_kw_no_control")
        when = f"{_value(latest, 'day')} ({_value(latest, 'status')})"
        out.append(
            {"label": "Planned peak", "value": None if peak is None else round(peak, 1),
             "unit": "kW",
             "hint": when if base is None else f"{base:g} kW without batteries; {when}"}
        )  # fmt: skip
    if events:
        states = Counter(str(_value(e, "status") or "unknown") for e in events)
        out.append(
            {"label": "Demand-response events", "value": len(events),
             "hint": ", ".join(f"{n} {s}" for s, n in sorted(states.items()))}
        )  # fmt: skip
    return out


def _charging(charger: dict[str, Any]) -> bool:
    """In an active transaction and drawing: OCPP's chargingState says so, or its power."""
    if _value(charger, "transactionStatus") != "active":
        return False
    state = _value(charger, "chargingState")
    if state is not None:
        return state == "Charging"
    return (_number(charger, "powerKw") or 0.0) > 0


def _table(chargers: list[dict[str, Any]]) -> dict[str, Any]:
    columns = ["charger", "status", "connected", "transaction", "charging state",
               "power (kW)", "session (kWh)", "register (kWh)"]  # fmt: skip
    rows = [
        [
            _local(c["id"]),
            _value(c, "status"),
            _value(c, "connected"),
            _value(c, "transactionStatus"),
            _value(c, "chargingState"),
            _number(c, "powerKw"),
            _number(c, "transactionEnergyKwh"),
            _number(c, "energyImportedKwh"),
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
            geometry = _value(e, "location")
            if not isinstance(geometry, dict) or "coordinates" not in geometry:
                continue
            label = str(_value(e, "name") or _local(e["id"]))
            power = _number(e, "totalActivePower" if layer == "meter" else "powerKw")
            if layer != "building" and power is not None:
                label += f": {power:g} kW"
            out.append({"geometry": geometry, "layer": layer, "label": label})
    return out


def _chart(hub: _Reader, meters: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The district's load over the last hours: each meter's mean per bucket, carried
    forward over a bucket it missed, summed."""
    measured = [m for m in meters if _observed(m, "totalActivePower") is not None]
    if not measured:
        return None
    sample = measured[:CHART_METERS]
    newest = max(t for m in sample if (t := _observed(m, "totalActivePower")) is not None)
    histories = [hub.history(m, "totalActivePower", newest - WINDOW) for m in sample]
    buckets = _bucket(histories)
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
            "category": _value(a, "subCategory") or _value(a, "category"),
            "severity": _value(a, "severity") or "informational",
            "description": _value(a, "description") or "",
            "time": _time_text(_value(a, "dateIssued")),
            "where": str(_value(a, "alertSource") or "").removeprefix("urn:ngsi-ld:") or None,
        }
        for a in alerts
    ]
    rows.sort(key=lambda r: r["time"] or "", reverse=True)
    return rows[:MAX_ALERTS]


# -- reading the hub -------------------------------------------------------------------------
class _Reader:
    """The viewer's client in the core context, the Smart Data Models terms and its own;
    each type asked once per distinct IRI, entities merged by id."""

    def __init__(self, client: Any) -> None:
        self.views: list[Any] = []
        for ctx in (None, DISTRICT_TERMS, client.context):
            if all(ctx != v.context for v in self.views):
                self.views.append(client if ctx == client.context else client.for_context(ctx))
        self.view_of: dict[str, Any] = {}
        self.full: dict[str, bool] = {}  # type -> some query hit LIMIT

    def _distinct(self, etype: str, terms: Iterable[str]) -> list[Any]:
        seen, out = set(), []
        for view in self.views:
            key = tuple(view.ctx.expand_term(t) for t in (etype, *terms))
            if key not in seen:
                seen.add(key)
                out.append(view)
        return out

    def entities(
        self,
        etype: str,
        q: str | None = None,
        terms: Iterable[str] = (),
        attrs: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for view in self._distinct(etype, (*terms, *(attrs or ()))):
            page = view.query(type=etype, q=q, attrs=attrs, limit=LIMIT)
            self.full[etype] = self.full.get(etype, False) or len(page) >= LIMIT
            for e in page:
                if e["id"] not in found:
                    found[e["id"]] = e
                    self.view_of[e["id"]] = view
        return list(found.values())

    def total(self, etype: str, read: int) -> int:
        """How many there are: what was read, or counted when a query was cut at LIMIT."""
        return self.count(etype) if self.full.get(etype) else read

    def count(self, etype: str) -> int:
        return sum(view.count(type=etype) for view in self._distinct(etype, ()))

    def history(
        self, entity: dict[str, Any], attr: str, after: datetime
    ) -> list[tuple[datetime, float]]:
        view = self.view_of[entity["id"]]
        try:
            rows = view.history(entity["id"], attr, after=_iso(after), limit=HISTORY_LIMIT)
        except (ResourceNotFound, Forbidden):  # hidden from this viewer since it was read
            return []
        out = []
        for at, value in rows:
            when = _parse_time(at)
            number = _as_number(value)
            if when is not None and number is not None:
                out.append((when, number))
        return out


def _bucket(
    histories: list[list[tuple[datetime, float]]],
) -> tuple[list[str], list[list[float | None]]] | None:
    """Each history's mean per time bucket (None where it has none), on shared labels; None
    when the histories hold fewer than two instants."""
    times = {t for h in histories for t, _ in h}
    if len(times) < 2:
        return None
    t0, t1 = min(times), max(times)
    span_min = (t1 - t0).total_seconds() / 60
    width = next((w for w in STEPS_MIN if span_min / w < MAX_BUCKETS), STEPS_MIN[-1])
    size = timedelta(minutes=width)
    start = t0 - (t0 - datetime(2000, 1, 1, tzinfo=UTC)) % size
    n = int((t1 - start) / size) + 1
    fmt = "%H:%M" if t1 - t0 < timedelta(days=1) else "%d %b %H:%M"
    labels = [(start + i * size).strftime(fmt) for i in range(n)]
    out: list[list[float | None]] = []
    for h in histories:
        sums, counts = [0.0] * n, [0] * n
        for t, v in h:
            i = int((t - start) / size)
            sums[i] += v
            counts[i] += 1
        out.append([s / c if c else None for s, c in zip(sums, counts, strict=True)])
    return labels, out


# -- attributes ------------------------------------------------------------------------------
def _value(entity: dict[str, Any], attr: str) -> Any:
    a = entity.get(attr)
    if not isinstance(a, dict):
        return None
    return a.get("value", a.get("object"))


def _number(entity: dict[str, Any], attr: str) -> float | None:
    return _as_number(_value(entity, attr))


def _as_number(v: Any) -> float | None:
    return None if isinstance(v, bool) or not isinstance(v, int | float) else float(v)


def _observed(entity: dict[str, Any], attr: str) -> datetime | None:
    a = entity.get(attr)
    return _parse_time(a.get("observedAt")) if isinstance(a, dict) else None


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, dict):  # {"@type": "DateTime", "@value": ...}
        value = value.get("@value")
    if not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _time_text(value: Any) -> str | None:
    t = _parse_time(value)
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if t else None


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _local(entity_id: str) -> str:
    """``urn:ngsi-ld:Type:local`` -> ``local`` (the rest unchanged)."""
    parts = entity_id.split(":", 3)
    return unquote(parts[3]) if len(parts) == 4 and parts[0] == "urn" else entity_id
