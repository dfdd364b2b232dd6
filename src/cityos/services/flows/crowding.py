"""Crowding alerts: a zone whose people present reach ``alert_ratio`` of its capacity.

An ``Alert`` (FIWARE dataModel.Alert) with category ``security``: in the Smart Data Models
list, crowds that endanger people (crushes, civil disorder) sit with security, while
``traffic`` is about vehicles on roads. Its subCategory ``overcrowding`` extends that
model's list. One alert per zone and hour (a fixed id), so building a day again changes it
instead of adding another.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from .entities import ALERT, hub_time, zone_id
from .model import HourLevel

CATEGORY = "security"
SUBCATEGORY = "overcrowding"


def severity(occupancy: float) -> str:
    if occupancy >= 1.2:
        return "critical"
    if occupancy >= 1.0:
        return "high"
    return "medium"


def crowding_alerts(levels: list[HourLevel], ratio: float) -> list[dict[str, Any]]:
    """An Alert entity for every zone-hour at or over ``ratio`` of capacity."""
    out = []
    for h in levels:
        if h.capacity <= 0 or h.occupancy < ratio:
            continue
        stamp = h.start.strftime("%Y%m%dT%H")
        out.append(
            {
                "id": f"urn:ngsi-ld:{ALERT}:flows:{quote(h.zone, safe='')}:{stamp}",
                "type": ALERT,
                "category": {"type": "Property", "value": CATEGORY},
                "subCategory": {"type": "Property", "value": SUBCATEGORY},
                "severity": {"type": "Property", "value": severity(h.occupancy)},
                "description": {
                    "type": "Property",
                    "value": f"zone {h.zone}: about {h.present} people for a capacity of "
                    f"{h.capacity} ({h.occupancy:.0%})",
                },
                "dateIssued": {"type": "Property", "value": hub_time(h.end)},
                "validFrom": {"type": "Property", "value": hub_time(h.start)},
                "validTo": {"type": "Property", "value": hub_time(h.end)},
                "alertSource": {"type": "Relationship", "object": zone_id(h.zone)},
            }
        )
    return out
