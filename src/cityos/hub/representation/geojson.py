"""Entities as GeoJSON (GS CIM 009 v1.8 clause 4.5.16, ``Accept: application/geo+json``).

An entity becomes a Feature whose ``geometry`` is the value of one GeoProperty (``location``
unless the client names another with ``geometryProperty``) and whose ``properties`` are the
entity as :func:`render_entity` writes it, minus ``id`` (which moves up to the Feature).
The geometry comes from the stored entity, so it is there even when ``attrs``/``pick``
leave the GeoProperty out of ``properties``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cityos.hub.model import DEFAULT_GEOPROPERTY, Entity, default_instance
from cityos.hub.representation.names import is_geometry
from cityos.hub.representation.render import Format, TermCompactor, render_entity


def entity_geometry(entity: Entity, geoproperty: str = DEFAULT_GEOPROPERTY) -> Any:
    """The GeoJSON geometry of ``geoproperty``'s default (else first) instance, or None."""
    instances = entity.get("attrs", {}).get(geoproperty) or []
    if not instances:
        return None
    inst = default_instance(instances) or instances[0]
    value = inst.get("value")
    return value if inst.get("type") == "GeoProperty" and is_geometry(value) else None


def render_geojson_feature(
    entity: Entity,
    ctx: TermCompactor,
    *,
    geoproperty: str = DEFAULT_GEOPROPERTY,
    fmt: Format = "normalized",
    sys_attrs: bool = False,
    attrs: set[str] | None = None,
    pick: Iterable[str] | None = None,
    omit: Iterable[str] | None = None,
    lang: str | None = None,
    datasets: set[str | None] | None = None,
) -> dict[str, Any]:
    """One entity as a GeoJSON Feature (``geoproperty`` is an expanded IRI)."""
    properties = render_entity(
        entity,
        ctx,
        fmt=fmt,
        sys_attrs=sys_attrs,
        attrs=attrs,
        pick=pick,
        omit=omit,
        lang=lang,
        datasets=datasets,
    )
    feature: dict[str, Any] = {}
    if "id" in properties:
        feature["id"] = properties.pop("id")
    feature["type"] = "Feature"
    feature["geometry"] = entity_geometry(entity, geoproperty)
    feature["properties"] = properties
    return feature


def render_geojson_collection(
    entities: Iterable[Entity], ctx: TermCompactor, **options: Any
) -> dict[str, Any]:
    """Several entities as a FeatureCollection; ``options`` as for the Feature."""
    return {
        "type": "FeatureCollection",
        "features": [render_geojson_feature(e, ctx, **options) for e in entities],
    }
