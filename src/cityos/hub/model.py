"""The hub's stored form of an entity: what every layer between the wire and the store passes.

The wire carries compacted NGSI-LD (short terms resolved by an ``@context``). Inside the hub
every user term is expanded to its full IRI once, at the edge, and compacted again only on
the way out with the caller's context. That makes the store context-free: two clients with
different contexts that mean the same IRI see the same data.

An entity in stored form is a plain ``dict`` (so it serialises straight to JSON)::

    {
      "id": "urn:ngsi-ld:Building:b1",            # absolute URI
      "type": ["https://smartdatamodels.org/dataModel.Building/Building"],   # expanded, >=1
      "scope": ["/KH/PhnomPenh"],                # optional, list of scope strings
      "createdAt": "2026-11-28T10:00:00.000000Z",  # system attributes, UTC, set by the hub
      "modifiedAt": "2026-11-28T10:00:00.000000Z",
      "attrs": {
        "https://smartdatamodels.org/name": [       # expanded attribute IRI -> instances
          {"type": "Property", "value": "Central Market",
           "createdAt": "...", "modifiedAt": "..."}
        ],
        "https://uri.etsi.org/ngsi-ld/location": [
          {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [104.92, 11.57]}}
        ]
      }
    }

An attribute is always a list of *instances*; more than one only for a multi-attribute,
where each instance but at most one carries a distinct ``datasetId`` (the one without is
the default instance). An instance is a dict whose NGSI-LD member keys stay as the core
keywords below (never expanded); every other key is a sub-attribute, keyed by its expanded
IRI, holding a single instance dict of the same shape.

Member keys by attribute type:

* ``Property``: ``value`` (any JSON; a compound value is kept as given — its inner keys are
  not JSON-LD expanded, as in Orion-LD), ``unitCode``
* ``Relationship``: ``object`` (URI string or list of URIs), ``objectType``
* ``GeoProperty``: ``value`` (a GeoJSON geometry)
* ``LanguageProperty``: ``languageMap`` (``{"en": "...", "km": "..."}``)
* ``JsonProperty``: ``json`` (opaque JSON)
* ``VocabProperty``: ``vocab`` (expanded IRI or list)
* ``ListProperty``: ``valueList``;  ``ListRelationship``: ``objectList``
* any of them: ``datasetId``, ``observedAt``, ``createdAt``, ``modifiedAt``, ``instanceId``

Entity ``id``, ``scope``, the core keys above and datetimes are never expanded.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from cityos.hub.errors import BadRequestData

Entity = dict[str, Any]
Instance = dict[str, Any]

ATTRIBUTE_TYPES = frozenset(
    {
        "Property",
        "Relationship",
        "GeoProperty",
        "LanguageProperty",
        "JsonProperty",
        "VocabProperty",
        "ListProperty",
        "ListRelationship",
    }
)

# The key that carries an instance's payload, by attribute type.
VALUE_KEY: dict[str, str] = {
    "Property": "value",
    "GeoProperty": "value",
    "Relationship": "object",
    "LanguageProperty": "languageMap",
    "JsonProperty": "json",
    "VocabProperty": "vocab",
    "ListProperty": "valueList",
    "ListRelationship": "objectList",
}

# Keys of an instance that are NGSI-LD members, not sub-attributes.
INSTANCE_MEMBER_KEYS = frozenset(
    {
        "type",
        "value",
        "object",
        "objectType",
        "languageMap",
        "json",
        "vocab",
        "valueList",
        "objectList",
        "datasetId",
        "observedAt",
        "unitCode",
        "createdAt",
        "modifiedAt",
        "deletedAt",
        "instanceId",
        "previousValue",
        "previousObject",
        "previousLanguageMap",
        "lang",
    }
)

# Top-level entity keys that are not attributes.
ENTITY_MEMBER_KEYS = frozenset(
    {"id", "type", "scope", "createdAt", "modifiedAt", "deletedAt", "@context", "attrs"}
)

# Identifier limits (docs/api.md, "Limits"), in bytes of UTF-8 as stored. PostgreSQL's btree
# index rows hold at most 2,704 bytes, and the widest index, history(tenant, entity_id, attr,
# seq), holds a tenant (<= 64), an id and an attribute IRI: 64 + 1,024 + 1,024 + 8 and the
# tuple headers stay well under it. Both engines answer the same 400 for anything longer.
MAX_ID_BYTES = 1024  # entity, subscription and device ids, datasetIds, URIs in ids' places
MAX_NAME_BYTES = 1024  # entity types and attribute names, after expansion to IRIs


def utf8_size(value: str) -> int:
    """Bytes of ``value`` as stored (a lone surrogate from JSON counts its 3 bytes)."""
    if value.isascii():
        return len(value)
    return len(value.encode("utf-8", "surrogatepass"))


def check_size(value: str, limit: int, what: str) -> str:
    """``value`` unless it is longer than ``limit`` bytes of UTF-8: then a 400 that names the
    limit (and shows only the start of the value, never all of it)."""
    if len(value) * 4 <= limit:  # the common case: short enough in any encoding
        return value
    size = utf8_size(value)
    if size <= limit:
        return value
    raise BadRequestData(
        f"{what} {value[:40]!r}... is {size:,} bytes long; the limit is {limit:,} bytes (UTF-8)"
    )


# Well-known expanded IRIs.
NGSILD = "https://uri.etsi.org/ngsi-ld/"
# the history keeps the scope's changes under this name, beside the attributes (clause 4.18)
SCOPE = NGSILD + "scope"
LOCATION = NGSILD + "location"
OBSERVATION_SPACE = NGSILD + "observationSpace"
OPERATION_SPACE = NGSILD + "operationSpace"
DEFAULT_GEOPROPERTY = LOCATION


def now_iso() -> str:
    """The hub's timestamp format: UTC, microseconds, ``Z`` suffix (sorts as text)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


_HUB_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def to_hub_time(value: str) -> str:
    """An ISO 8601 date-time in the hub's form (UTC, microseconds, ``Z``), so that stored
    timestamps compare correctly as text; naive times are taken as UTC. Raises ValueError."""
    if _HUB_TIME.fullmatch(value):
        datetime.fromisoformat(value[:-1])  # still a real date and time
        return value
    return _to_hub_time(value)


@lru_cache(maxsize=4096)
def _to_hub_time(value: str) -> str:
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def display_time(text: str) -> str:
    """A hub time (``…:00.000000Z``) as every API shows it: the fraction without trailing
    zeros, none when it is zero (``…:00Z``, ``…:00.5Z``). Stored times keep the hub's
    fixed form so that they compare as text; anything else is returned as it is."""
    if not text.endswith("Z") or "." not in text:
        return text
    head, _, frac = text[:-1].partition(".")
    frac = frac.rstrip("0")
    return f"{head}.{frac}Z" if frac else f"{head}Z"


def default_instance(instances: list[Instance]) -> Instance | None:
    """The instance without ``datasetId``, if any."""
    for inst in instances:
        if "datasetId" not in inst:
            return inst
    return None
