"""The NGSI-LD representation layer: request bodies in, stored form, output bodies out.

* :mod:`.parse`: any input form (normalized, concise, bare values) -> stored form, validated
* :mod:`.render`: stored form -> normalized, concise or keyValues
* :mod:`.geojson`: stored form -> GeoJSON Feature / FeatureCollection
* :mod:`.names`, :mod:`.lang`: the small checks and the ``lang`` choice they share
"""

from cityos.hub.representation.geojson import (
    entity_geometry,
    render_geojson_collection,
    render_geojson_feature,
)
from cityos.hub.representation.lang import choose_language
from cityos.hub.representation.names import is_geometry, is_uri, parse_scope
from cityos.hub.representation.parse import (
    parse_attribute,
    parse_attributes,
    parse_entity,
    parse_partial_instance,
    parse_types,
    validate_stored_instance,
)
from cityos.hub.representation.render import (
    FORMATS,
    Format,
    render_attribute,
    render_entity,
    render_instance,
    simplified_value,
)

__all__ = [
    "FORMATS",
    "Format",
    "choose_language",
    "entity_geometry",
    "is_geometry",
    "is_uri",
    "parse_attribute",
    "parse_attributes",
    "parse_entity",
    "parse_partial_instance",
    "parse_scope",
    "parse_types",
    "render_attribute",
    "render_entity",
    "render_geojson_collection",
    "render_geojson_feature",
    "render_instance",
    "simplified_value",
    "validate_stored_instance",
]
