"""Crowd level per zone and local hour, from the counters and the Wi-Fi stays.

People present at the end of an hour = entries − exits accumulated since local midnight
(never below zero): the counters at a zone's entrances count both ways. Wi-Fi gives a
second, independent figure — devices seen in the hour — kept beside it, not mixed in.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, tzinfo
from typing import Any

from .days import day_bounds, hours
from .entities import COMMUTER, COUNT, hub_time, parse_time, presence_from
from .model import HourLevel, Presence
from .zones import ZoneMap


def readings_of_day(client: Any, day: date, tz: tzinfo) -> list[dict[str, Any]]:
    start, end = day_bounds(day, tz)
    q = f"dateObservedFrom>={hub_time(start)};dateObservedFrom<{hub_time(end)}"
    return client.query(type=COUNT, q=q, limit=1_000_000, fmt="keyValues")


def presences_overlapping(client: Any, day: date, tz: tzinfo) -> list[Presence]:
    start, end = day_bounds(day, tz)
    q = f'source=="wifi";date<{hub_time(end)};dateLastSeen>={hub_time(start)}'
    found = client.query(type=COMMUTER, q=q, limit=1_000_000, fmt="keyValues")
    return [presence_from(e) for e in found]


def hour_levels(
    zones: ZoneMap,
    day: date,
    tz: tzinfo,
    readings: list[dict[str, Any]],
    presences: list[Presence],
    *,
    until: datetime | None = None,
) -> list[HourLevel]:
    """Every zone's hours of ``day`` (up to the hour that holds ``until``, if given)."""
    slots = hours(day, tz)
    if until is not None:
        slots = [s for s in slots if s[0] <= until]
    first = hours(day, tz)[0][0]
    flows: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
    for r in readings:
        slot = int((parse_time(r["dateObservedFrom"]) - first).total_seconds() // 3600)
        if not 0 <= slot < len(slots) or r.get("zoneCode") not in zones.zones:
            continue
        flows[(r["zoneCode"], slot)][0 if r["direction"] == "inbound" else 1] += int(
            r["peopleCount"]
        )
    out = []
    for zone in zones.zones.values():
        present = 0
        mine = [p for p in presences if p.zone == zone.id]
        for i, (start, end) in enumerate(slots):
            entries, exits = flows.get((zone.id, i), (0, 0))
            present = max(0, present + entries - exits)
            devices = sum(1 for p in mine if p.first < end and p.last >= start)
            out.append(
                HourLevel(zone.id, start, end, entries, exits, present, zone.capacity, devices)
            )
    return out
