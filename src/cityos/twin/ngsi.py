"""Builders for NGSI-LD normalized attributes, so every generator writes the same shapes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

Entity = dict[str, Any]


def urn(entity_type: str, local_id: str) -> str:
    """``urn:ngsi-ld:<Type>:<local-id>``: the id convention of the Smart Data Models examples."""
    return f"urn:ngsi-ld:{entity_type}:{local_id}"


def iso(t: datetime) -> str:
    """The hub's timestamp format (UTC, microseconds, ``Z``), so strings sort as times."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def prop(value: Any, unit: str | None = None, observed_at: str | None = None) -> dict[str, Any]:
    """A Property; ``unit`` is a UN/CEFACT common code (``KMH``, ``KWT``, ``GQ`` …)."""
    attr: dict[str, Any] = {"type": "Property", "value": value}
    if unit is not None:
        attr["unitCode"] = unit
    if observed_at is not None:
        attr["observedAt"] = observed_at
    return attr


def rel(target: str | list[str]) -> dict[str, Any]:
    """A Relationship to one entity id or a list of them."""
    return {"type": "Relationship", "object": target}


def geo(geometry: dict[str, Any]) -> dict[str, Any]:
    """A GeoProperty holding a GeoJSON geometry."""
    return {"type": "GeoProperty", "value": geometry}


def point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}
