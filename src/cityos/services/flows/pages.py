"""The flows service's page of the operations dashboard: each zone's crowd now, on a map,
over the last hours and ranked, from what the service itself writes (``FlowZone`` and its
hourly ``CrowdLevel``).

Only zones and their hourly aggregates are read — never a commuter record
(``AnonymousCommuterId``) nor a counter's own readings — so, as the service publishes
nothing finer than a zone, nothing on the page can single out a person or a device.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from cityos.services.base import Page, Panel

from .entities import LEVEL, ZONE, hub_time, parse_time
from .model import level_name

TAIL = 500  # the newest CrowdLevels (by creation) read to find the latest hour
MAX_LEVELS = 1000  # CrowdLevels read for the hours shown
MAX_SERIES = 5  # zones drawn on the chart (the most crowded now)
ZONE_ATTRS = ["name", "zoneCode", "capacity", "location"]
LEVEL_ATTRS = ["zoneCode", "dateObservedFrom", "peopleCount", "peoplePresent", "occupancy",
               "capacity"]  # fmt: skip
NO_ZONES = (
    "No FlowZone or CrowdLevel in the hub yet. Register the zones (cityos.services.flows."
    "register_zones) and feed counts from people counters (`cityos flows ingest --counts`) "
    "or cameras on their entrances (`cityos safety run --flow-zone ...`); `cityos flows "
    "simulate --day YYYY-MM-DD` loads a synthetic day of the sample district."
)
NO_LEVELS = (
    "No CrowdLevel yet: the zones' hourly crowd is built from the counts by `cityos flows "
    "build --day YYYY-MM-DD`, and for today by the service's task under `cityos serve` "
    "(every services.flows.interval_s seconds)."
)


def _time(value: Any) -> datetime | None:
    """A time the service wrote (the hub's UTC text), in UTC; None when it is not one."""
    if isinstance(value, dict):
        value = value.get("@value")
    try:
        at = parse_time(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return None if at is None or at.tzinfo is None else at.astimezone(UTC)


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _when(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC"


def _recent_levels(client: Any, zones: int) -> list[dict[str, Any]]:
    """The CrowdLevels of the latest hours (a day, fewer when there are many zones): the
    newest created hold the latest hour, then one query on the time takes them all."""
    total = client.count(type=LEVEL)
    if not total:
        return []
    tail = client.query(type=LEVEL, attrs=["dateObservedFrom"], limit=TAIL,
                        offset=max(0, total - TAIL), fmt="keyValues")  # fmt: skip
    times = [t for e in tail if (t := _time(e.get("dateObservedFrom"))) is not None]
    if not times:
        return []
    hours = max(1, min(24, MAX_LEVELS // max(1, zones)))
    since = hub_time(max(times) - timedelta(hours=hours - 1))
    return client.query(type=LEVEL, q=f"dateObservedFrom>={since}", attrs=LEVEL_ATTRS,
                        limit=MAX_LEVELS, fmt="keyValues")  # fmt: skip


def _zone_rows(zones: list[dict[str, Any]], levels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per zone: its name, place and latest hour (None when it has none yet)."""
    rows: dict[str, dict[str, Any]] = {}
    for z in zones:
        code = str(z.get("zoneCode") or z["id"].rsplit(":", 1)[-1])
        rows[code] = {"code": code, "name": str(z.get("name") or code),
                      "capacity": _num(z.get("capacity")), "location": z.get("location"),
                      "latest": None, "at": None}  # fmt: skip
    for e in levels:
        code, at = e.get("zoneCode"), _time(e.get("dateObservedFrom"))
        if not isinstance(code, str) or at is None:
            continue
        row = rows.setdefault(code, {"code": code, "name": code, "capacity": None,
                                     "location": None, "latest": None, "at": None})  # fmt: skip
        if row["at"] is None or at > row["at"]:
            row["latest"], row["at"] = e, at
    for row in rows.values():
        latest = row["latest"] or {}
        row["present"] = _num(latest.get("peoplePresent"))
        row["capacity"] = _num(latest.get("capacity")) or row["capacity"]
        occ = _num(latest.get("occupancy"))
        if occ is None and row["present"] is not None and row["capacity"]:
            occ = row["present"] / row["capacity"]
        row["occupancy"] = occ
    return sorted(rows.values(), key=lambda r: (-(r["occupancy"] or -1.0), r["name"]))


def _metrics(rows: list[dict[str, Any]]) -> Panel:
    measured = [r for r in rows if r["present"] is not None]
    out: list[dict[str, Any]] = [{"label": "Zones", "value": len(rows)}]
    if measured:
        latest = max(r["at"] for r in measured)
        busiest = measured[0]
        out += [
            {"label": "People now", "value": int(sum(r["present"] for r in measured)),
             "hint": f"estimated in the zones, hour from {_when(latest)}"},
            {"label": "Busiest zone", "value": busiest["name"],
             "hint": f"{int(busiest['present'])} people, "
                     f"{(busiest['occupancy'] or 0):.0%} of capacity"},
            {"label": "Zones crowded", "value": sum((r["occupancy"] or 0) >= 0.8 for r in measured),
             "hint": "at 80% of capacity or more"},
        ]  # fmt: skip
    return Panel("Crowds now", "metrics", out)


def _map(rows: list[dict[str, Any]]) -> Panel | None:
    features = []
    for r in rows:
        loc = r["location"]
        if not (isinstance(loc, dict) and loc.get("type") == "Point"):
            continue
        feature: dict[str, Any] = {"geometry": loc, "layer": "crowd", "label": r["name"]}
        if r["occupancy"] is not None:
            feature["level"] = round(min(1.0, max(0.0, r["occupancy"])), 4)
            share = f"{r['occupancy']:.0%} of capacity"
            feature["label"] = f"{r['name']}: {int(r['present'] or 0)} people ({share})"
        features.append(feature)
    return Panel("Zones by crowd", "map", {"features": features}) if features else None


def _chart(rows: list[dict[str, Any]], levels: list[dict[str, Any]]) -> Panel | None:
    """People present per hour in the most crowded zones; None with fewer than two hours."""
    hours = sorted({t for e in levels if (t := _time(e.get("dateObservedFrom"))) is not None})
    if len(hours) < 2:
        return None
    index = {h: i for i, h in enumerate(hours)}
    chosen = [r for r in rows if r["present"] is not None][:MAX_SERIES]
    values: dict[str, list[Any]] = {r["code"]: [None] * len(hours) for r in chosen}
    for e in levels:
        at, code = _time(e.get("dateObservedFrom")), e.get("zoneCode")
        if at is not None and code in values:
            present = _num(e.get("peoplePresent"))
            values[code][index[at]] = None if present is None else round(present)
    series = [{"name": r["name"], "values": values[r["code"]]} for r in chosen]
    data = {"x": [f"{h:%H:%M}" for h in hours], "series": series, "unit": "people",
            "kind": "line"}  # fmt: skip
    title = f"People present per hour, {hours[0]:%Y-%m-%d %H:%M} to {hours[-1]:%H:%M} UTC"
    return Panel(title, "chart", data, wide=True)


def _table(rows: list[dict[str, Any]]) -> Panel:
    body = [
        [r["name"], None if r["present"] is None else int(r["present"]),
         None if r["capacity"] is None else int(r["capacity"]),
         None if r["occupancy"] is None else round(100 * r["occupancy"], 1),
         None if r["occupancy"] is None else level_name(r["occupancy"]),
         None if r["at"] is None else _when(r["at"])]
        for r in rows
    ]  # fmt: skip
    columns = ["Zone", "People present", "Capacity", "Occupancy (%)", "Crowd level", "Hour from"]
    return Panel("Zones by crowding", "table", {"columns": columns, "rows": body}, wide=True)


def panels(client: Any) -> list[Panel]:
    """The page, for the viewer's tenant: a few queries, whatever the hub holds."""
    zones = client.query(type=ZONE, attrs=ZONE_ATTRS, limit=MAX_LEVELS, fmt="keyValues")
    levels = _recent_levels(client, len(zones))
    if not zones and not levels:
        return [Panel("Crowd flows", "text", NO_ZONES)]
    rows = _zone_rows(zones, levels)
    found: Iterable[Panel | None] = (
        _metrics(rows),
        None if levels else Panel("Crowd levels", "text", NO_LEVELS),
        _map(rows),
        _chart(rows, levels),
        _table(rows),
    )
    return [p for p in found if p is not None]


def pages() -> list[Page]:
    return [
        Page(
            slug="flows",
            title="Crowd flows",
            panels=panels,
            watch=(LEVEL, ZONE),
            reads=(ZONE, LEVEL),
            order=40,
        )
    ]
