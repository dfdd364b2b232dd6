"""Dwell times per zone and day, from the Wi-Fi stays (last seen − first seen)."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from datetime import date
from typing import Any
from urllib.parse import quote

from .entities import DWELL, zone_id
from .model import Presence

# the histogram's bins, in minutes: [low, high)
BINS: tuple[tuple[int, int | None], ...] = (
    (0, 15),
    (15, 30),
    (30, 60),
    (60, 120),
    (120, 240),
    (240, None),
)


def bin_label(low: int, high: int | None) -> str:
    return f"{low}-{high}min" if high is not None else f"{low}+min"


LABELS = tuple(bin_label(lo, hi) for lo, hi in BINS)


def bin_of(minutes: float) -> str:
    for (low, high), label in zip(BINS, LABELS, strict=True):
        if minutes >= low and (high is None or minutes < high):
            return label
    return LABELS[0]


def dwell_stats(presences: Iterable[Presence]) -> dict[str, dict[str, Any]]:
    """Per zone: devices, median and mean minutes, and the histogram."""
    by_zone: dict[str, list[float]] = defaultdict(list)
    for p in presences:
        by_zone[p.zone].append(p.minutes)
    out = {}
    for zone, minutes in sorted(by_zone.items()):
        hist = dict.fromkeys(LABELS, 0)
        for m in minutes:
            hist[bin_of(m)] += 1
        out[zone] = {
            "devices": len(minutes),
            "medianMinutes": round(statistics.median(minutes), 1),
            "meanMinutes": round(statistics.fmean(minutes), 1),
            "histogram": hist,
        }
    return out


def dwell_entities(day: date, stats: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    def p(v: Any) -> dict[str, Any]:
        return {"type": "Property", "value": v}

    return [
        {
            "id": f"urn:ngsi-ld:{DWELL}:{quote(zone, safe='')}:{day.isoformat()}",
            "type": DWELL,
            "refFlowZone": {"type": "Relationship", "object": zone_id(zone)},
            "zoneCode": p(zone),
            "day": p(day.isoformat()),
            "devices": p(s["devices"]),
            "medianMinutes": p(s["medianMinutes"]),
            "meanMinutes": p(s["meanMinutes"]),
            "histogram": {"type": "JsonProperty", "json": s["histogram"]},
        }
        for zone, s in stats.items()
    ]
