"""A short-term crowd forecast: seasonal exponential smoothing with a daily season.

For each zone and hour of the day, the level is smoothed over the past days' people
present at that hour, ``level ← α·observed + (1 − α)·level`` (oldest first); the forecast
of an hour is its slot's level. With one past day it is the seasonal naive forecast (the
same hour yesterday). Chosen because crowds in a district repeat by hour of day and it
needs nothing but the hub's own history; it does not see events, holidays or weekdays
(a weekly season needs weeks of data: docs/services/flows.md).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import quote

from .entities import FORECAST, LEVEL, hub_time, level_from, zone_id
from .model import HourLevel, level_name
from .zones import ZoneMap

METHOD = "seasonal exponential smoothing (daily season)"


def smooth(series: Iterable[float], alpha: float) -> float | None:
    """The smoothed level of a series (oldest first); None when it is empty."""
    level: float | None = None
    for x in series:
        level = x if level is None else alpha * x + (1 - alpha) * level
    return level


def levels_since(client: Any, since: datetime, until: datetime) -> list[HourLevel]:
    q = f"dateObservedFrom>={hub_time(since)};dateObservedFrom<{hub_time(until)}"
    found = client.query(type=LEVEL, q=q, limit=1_000_000, fmt="keyValues")
    return [level_from(e) for e in found]


def forecast(
    history: Iterable[HourLevel],
    zones: ZoneMap,
    now: datetime,
    tz: tzinfo,
    *,
    alpha: float = 0.5,
    hours: int = 24,
) -> dict[str, list[dict[str, Any]]]:
    """Per zone, the next ``hours`` whole hours after ``now``: people present expected."""
    if not 0 < alpha <= 1:
        raise ValueError(f"forecast_alpha {alpha}: a weight in (0, 1]")
    slots: dict[tuple[str, int], list[tuple[datetime, int]]] = defaultdict(list)
    for h in history:
        slots[(h.zone, h.start.astimezone(tz).hour)].append((h.start, h.present))
    first = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    out: dict[str, list[dict[str, Any]]] = {}
    for zone in zones.zones.values():
        rows = []
        for k in range(hours):
            start = first + timedelta(hours=k)
            seen = sorted(slots.get((zone.id, start.astimezone(tz).hour), []))
            level = smooth((p for _, p in seen), alpha)
            if level is None:
                continue
            occupancy = level / zone.capacity if zone.capacity else 0.0
            rows.append(
                {
                    "start": hub_time(start),
                    "peoplePresent": round(level),
                    "occupancy": round(occupancy, 4),
                    "crowdLevel": level_name(occupancy),
                }
            )
        out[zone.id] = rows
    return out


def forecast_entities(
    forecasts: dict[str, list[dict[str, Any]]], issued: datetime, alpha: float
) -> list[dict[str, Any]]:
    def p(v: Any) -> dict[str, Any]:
        return {"type": "Property", "value": v}

    return [
        {
            "id": f"urn:ngsi-ld:{FORECAST}:{quote(zone, safe='')}",
            "type": FORECAST,
            "refFlowZone": {"type": "Relationship", "object": zone_id(zone)},
            "zoneCode": p(zone),
            "method": p(f"{METHOD}, alpha={alpha}"),
            "dateIssued": p(hub_time(issued)),
            "hours": {"type": "JsonProperty", "json": rows},
        }
        for zone, rows in forecasts.items()
        if rows
    ]
