"""What the indicators read: the hub's entities through a HubClient, fetched once per
report, in every ``@context`` the city's data was written in.

The sample district and Smart Data Models feeds name their types and attributes with the
Smart Data Models IRIs (``DISTRICT_TERMS``), while the services write in the core context
(NGSI-LD's default vocabulary): the same word, "Building" or "pm25", is two IRIs. A
:class:`CityData` asks in each context and merges by entity id (the first context that
finds an entity wins), so an indicator sees both kinds with their short names.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from cityos.twin.context import DISTRICT_TERMS
from cityos.twin.geo import distance_m, ring_area_m2, to_metres

from .indicators_model import Period, iso, parse_time

PAGE = 1000
# The client's own context first (what the services write), then the Smart Data Models terms.
SDM_CONTEXT: dict[str, str] = DISTRICT_TERMS


class CityData:
    """The hub as the indicators see it: entities by type (cached), attribute histories."""

    def __init__(self, client: Any, contexts: Iterable[Any] | None = None) -> None:
        self.client = client
        wanted = [client.context, SDM_CONTEXT] if contexts is None else list(contexts)
        self.clients: list[Any] = []
        seen: list[Any] = []
        for ctx in wanted:
            if ctx in seen:
                continue
            seen.append(ctx)
            self.clients.append(client if ctx == client.context else client.for_context(ctx))
        self._types: dict[str, list[dict[str, Any]]] = {}
        self._client_of: dict[str, Any] = {}
        self._values: dict[tuple[str, str, Period], list[tuple[datetime, Any]]] = {}

    def entities(self, entity_type: str) -> list[dict[str, Any]]:
        """Every entity of the type (normalized), from every context, once each."""
        if entity_type not in self._types:
            found: dict[str, dict[str, Any]] = {}
            for client in self.clients:
                for entity in _all(client, entity_type):
                    if entity["id"] not in found:
                        found[entity["id"]] = entity
                        self._client_of[entity["id"]] = client
            self._types[entity_type] = list(found.values())
        return self._types[entity_type]

    def values(
        self, entity: dict[str, Any], attr: str, period: Period
    ) -> list[tuple[datetime, Any]]:
        """The attribute's instances observed in the period, oldest first: its history
        (the temporal API), plus the current value when that falls in the period; asked of
        the hub once per report."""
        key = (entity["id"], attr, period)
        if key not in self._values:
            self._values[key] = self._read_values(entity, attr, period)
        return self._values[key]

    def _read_values(
        self, entity: dict[str, Any], attr: str, period: Period
    ) -> list[tuple[datetime, Any]]:
        points: dict[datetime, Any] = {}
        client = self._client_of.get(entity["id"], self.client)
        if hasattr(client, "history"):  # an HTTP client without it: the current value only
            for at, value in client.history(
                entity["id"], attr, after=iso(period.start), before=iso(period.end)
            ):
                when = parse_time(at)
                if period.contains(when):
                    points[when] = value
        current = observed_at(entity, attr)
        if period.contains(current) and current not in points:
            points[current] = value_of(entity, attr)  # type: ignore[index]
        return sorted(points.items(), key=lambda p: p[0])

    def numbers(
        self, entity: dict[str, Any], attr: str, period: Period
    ) -> list[tuple[datetime, float]]:
        """:meth:`values` that are numbers (anything else is left out)."""
        out = []
        for at, value in self.values(entity, attr, period):
            number = as_number(value)
            if number is not None:
                out.append((at, number))
        return out

    def reported(self, entity: dict[str, Any], attrs: Iterable[str], period: Period) -> bool:
        """Whether one of the attributes was observed in the period (a live feed)."""
        attrs = list(attrs)
        if any(period.contains(observed_at(entity, a)) for a in attrs):
            return True
        return any(self.values(entity, a, period) for a in attrs if a in entity)


def _all(client: Any, entity_type: str) -> Iterable[dict[str, Any]]:
    offset = 0
    while True:
        page = client.query(type=entity_type, limit=PAGE, offset=offset)
        yield from page
        if len(page) < PAGE:
            return
        offset += len(page)


# -- attributes of normalized entities ----------------------------------------------------------
def value_of(entity: dict[str, Any], attr: str, default: Any = None) -> Any:
    """A Property's value or a Relationship's object (``default`` when absent)."""
    a = entity.get(attr)
    if isinstance(a, list):  # multi-attribute: the first instance
        a = a[0] if a else None
    if not isinstance(a, dict):
        return default
    if "object" in a:
        return a["object"]
    return a.get("value", default)


def observed_at(entity: dict[str, Any], attr: str) -> datetime | None:
    a = entity.get(attr)
    if isinstance(a, dict) and isinstance(a.get("observedAt"), str):
        return parse_time(a["observedAt"])
    return None


def as_time(value: Any) -> datetime | None:
    """A DateTime value (``{"@type": "DateTime", "@value": ...}`` or plain text), or None."""
    if isinstance(value, dict):
        value = value.get("@value")
    if not isinstance(value, str):
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


def time_of(entity: dict[str, Any], attr: str) -> datetime | None:
    return as_time(value_of(entity, attr))


def as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def number_of(entity: dict[str, Any], attr: str) -> float | None:
    return as_number(value_of(entity, attr))


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def refs(entity: dict[str, Any], attr: str) -> list[str]:
    """The ids a Relationship (one or a list) points at."""
    return [r for r in as_list(value_of(entity, attr)) if isinstance(r, str)]


def words(entity: dict[str, Any], attr: str) -> set[str]:
    """A text or list-of-text attribute as a set of lower-case words (categories)."""
    return {str(v).lower() for v in as_list(value_of(entity, attr))}


def local_id(entity_id: str) -> str:
    """The last part of a URN (``urn:ngsi-ld:GtfsRoute:12`` -> ``12``)."""
    from urllib.parse import unquote

    return unquote(entity_id.rsplit(":", 1)[-1])


# -- geometry -------------------------------------------------------------------------------
LonLat = tuple[float, float]


def geometry(entity: dict[str, Any]) -> dict[str, Any] | None:
    geom = value_of(entity, "location")
    return geom if isinstance(geom, dict) and "type" in geom else None


def point(entity: dict[str, Any]) -> LonLat | None:
    """The entity's position: its Point, or the centre of its Polygon's outline."""
    geom = geometry(entity)
    if geom is None:
        return None
    if geom["type"] == "Point":
        lon, lat = geom["coordinates"][:2]
        return (float(lon), float(lat))
    if geom["type"] == "Polygon" and geom["coordinates"]:
        ring = geom["coordinates"][0]
        pts = ring[:-1] if len(ring) > 1 and ring[0] == ring[-1] else ring
        return (sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts))
    return None


def area_m2(entity: dict[str, Any]) -> float:
    """The area of a Polygon or MultiPolygon location (outer rings less holes), m²; 0 else."""
    geom = geometry(entity)
    if geom is None:
        return 0.0
    polygons = {"Polygon": [geom["coordinates"]], "MultiPolygon": geom["coordinates"]}.get(
        geom["type"], []
    )
    total = 0.0
    for rings in polygons:
        if rings:
            total += ring_area_m2(_lonlat(rings[0])) - sum(
                ring_area_m2(_lonlat(r)) for r in rings[1:]
            )
    return max(total, 0.0)


def length_m(entity: dict[str, Any]) -> float:
    """A road segment's length: its ``length`` (m), else that of its LineString."""
    given = number_of(entity, "length")
    if given is not None and given > 0:
        return given
    geom = geometry(entity)
    if geom is None or geom["type"] != "LineString":
        return 0.0
    pts = _lonlat(geom["coordinates"])
    return sum(distance_m(a, b) for a, b in zip(pts, pts[1:], strict=False))


def _lonlat(coords: list[list[float]]) -> list[LonLat]:
    return [(float(c[0]), float(c[1])) for c in coords]


def metres(origin: LonLat, p: LonLat) -> tuple[float, float]:
    """(east, north) of ``p`` from ``origin``, m (flat earth: a city is small)."""
    return to_metres(origin, p)
