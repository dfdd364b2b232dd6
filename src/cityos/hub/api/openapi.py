"""OpenAPI 3.1 path items generated from a route table: the hub's NGSI-LD routes, and the
builder other parts (the IoT agent's ``/iot`` routes) use for theirs. The web app merges
them with every registered part's own into ``/openapi.json`` (cityos.web.openapi)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import cityos
from cityos.hub.api import PREFIX, ROUTES
from cityos.hub.ldcontext import CORE_CONTEXT_URL, link_header_for
from cityos.hub.model import MAX_ID_BYTES

_QUERY_PARAMS = {
    "type": "Entity type(s): a type expression (`A,B`, `A;B`, `(A|B);C`)",
    "id": "Comma-separated entity ids",
    "idPattern": "Regular expression an entity id must match in full",
    "attrs": "Attributes to return (and entities must have at least one)",
    "pick": "Entity members to keep (id, type, attribute names)",
    "omit": "Entity members to drop",
    "q": "NGSI-LD query language expression",
    "csf": "Query over a context source registration's own properties (q syntax)",
    "georel": "Geo relation: near;maxDistance==m, near;minDistance==m, within, contains, intersects, equals, disjoint, overlaps",
    "geometry": "Point, LineString, Polygon, MultiPoint, MultiLineString, MultiPolygon",
    "coordinates": "GeoJSON coordinates of the query geometry (lon, lat)",
    "geoproperty": "The GeoProperty to test (default location)",
    "geometryProperty": "The GeoProperty used as the GeoJSON geometry",
    "scopeQ": "Scope query (`/a/b`, `/a/#`, `/a/+/c`, `;`, `|`)",
    "orderBy": "Sort keys (v1.9.1): `path[;asc|;desc]`, comma-separated; path id, type, createdAt, modifiedAt or an attribute path",
    "limit": "Page size",
    "offset": "Page start",
    "count": "true: return the total in the NGSILD-Results-Count header",
    "options": "keyValues | concise | sysAttrs | noOverwrite | replace | update",
    "format": "normalized | concise | keyValues",
    "lang": "Language to pick from LanguageProperties",
    "datasetId": "The instance of a multi-attribute",
    "deleteAll": "true: delete every instance of the attribute",
    "keep": "Purge: the attributes kept (the others are deleted)",
    "drop": "Purge: the attributes deleted (the entities stay)",
    "details": "true: detailed listing",
    "kind": "Hosted | Cached | ImplicitlyCreated",
    "reload": "true: fetch a cached @context again instead of deleting it",
    "timerel": "before | after | between",
    "timeAt": "ISO 8601 date-time",
    "endTimeAt": "ISO 8601 date-time (timerel=between)",
    "timeproperty": "observedAt (default) | modifiedAt | createdAt | deletedAt",
    "lastN": "only the last N instances of each attribute",
    "aggrMethods": "totalCount, distinctCount, sum, avg, min, max, stddev, sumsq",
    "aggrPeriodDuration": "ISO 8601 duration of an aggregation bucket (PT15M, P1D)",
}

_PARAMS_BY_OP = {
    ("/entities", "GET"): [
        "type",
        "id",
        "idPattern",
        "attrs",
        "pick",
        "omit",
        "q",
        "georel",
        "geometry",
        "coordinates",
        "geoproperty",
        "geometryProperty",
        "scopeQ",
        "orderBy",
        "limit",
        "offset",
        "count",
        "options",
        "format",
        "lang",
    ],
    ("/entities", "DELETE"): ["type", "id", "idPattern", "q", "scopeQ", "keep", "drop"],
    ("/entities/{entity_id}", "GET"): [
        "attrs",
        "pick",
        "omit",
        "options",
        "format",
        "lang",
        "geometryProperty",
    ],
    ("/entities/{entity_id}/attrs", "POST"): ["options"],
    ("/entities/{entity_id}/attrs/{attr}", "DELETE"): ["datasetId", "deleteAll"],
    ("/entityOperations/upsert", "POST"): ["options"],
    ("/entityOperations/update", "POST"): ["options"],
    ("/entityOperations/query", "POST"): [
        "limit",
        "offset",
        "count",
        "orderBy",
        "options",
        "format",
        "lang",
    ],
    ("/temporal/entities", "GET"): [
        "type",
        "id",
        "idPattern",
        "attrs",
        "q",
        "georel",
        "geometry",
        "coordinates",
        "geoproperty",
        "scopeQ",
        "orderBy",
        "limit",
        "offset",
        "count",
        "options",
        "timerel",
        "timeAt",
        "endTimeAt",
        "timeproperty",
        "lastN",
        "aggrMethods",
        "aggrPeriodDuration",
        "datasetId",
        "pick",
        "omit",
    ],
    ("/temporal/entities/{entity_id}", "GET"): [
        "attrs",
        "datasetId",
        "pick",
        "omit",
        "options",
        "timerel",
        "timeAt",
        "endTimeAt",
        "timeproperty",
        "lastN",
        "aggrMethods",
        "aggrPeriodDuration",
    ],
    ("/temporal/entityOperations/query", "POST"): [
        "limit",
        "offset",
        "count",
        "orderBy",
        "options",
        "datasetId",
        "aggrMethods",
        "aggrPeriodDuration",
    ],
    ("/subscriptions", "GET"): ["limit", "offset", "options"],
    ("/subscriptions/{subscription_id}", "GET"): ["options"],
    ("/types", "GET"): ["details"],
    ("/attributes", "GET"): ["details"],
    ("/jsonldContexts", "GET"): ["details", "kind"],
    ("/jsonldContexts/{context_id}", "GET"): ["details"],
    ("/jsonldContexts/{context_id}", "DELETE"): ["reload"],
    ("/csourceRegistrations", "GET"): [
        "type",
        "id",
        "idPattern",
        "attrs",
        "q",
        "csf",
        "georel",
        "geometry",
        "coordinates",
        "geoproperty",
        "timerel",
        "timeAt",
        "endTimeAt",
        "timeproperty",
        "limit",
        "offset",
        "count",
        "options",
    ],
    ("/csourceRegistrations/{registration_id}", "GET"): ["options"],
    ("/csourceSubscriptions", "GET"): ["limit", "offset"],
}

# over the broker's instance limit a temporal read is cut (clause 6.3.10)
_TEMPORAL_PAGES = {"200": "The history", "206": "Part of it: Content-Range says which"}
_SUCCESS = {
    ("/entities", "POST"): {"201": "Created; Location names the entity"},
    ("/entities/{entity_id}/attrs", "POST"): {"204": "All appended", "207": "Some not appended"},
    ("/entities/{entity_id}/attrs", "PATCH"): {"204": "All updated", "207": "Some not updated"},
    ("/entityOperations/create", "POST"): {"201": "Ids created", "207": "Partial success"},
    ("/entityOperations/upsert", "POST"): {
        "201": "Ids created",
        "204": "All updated",
        "207": "Partial success",
    },
    ("/entityOperations/update", "POST"): {"204": "All updated", "207": "Partial success"},
    ("/entityOperations/merge", "POST"): {"204": "All merged", "207": "Partial success"},
    ("/entityOperations/delete", "POST"): {"204": "All deleted", "207": "Partial success"},
    ("/jsonldContexts", "POST"): {"201": "Hosted; Location names it"},
    ("/subscriptions", "POST"): {"201": "Created; Location names it"},
    ("/csourceRegistrations", "POST"): {"201": "Registered; Location names it"},
    ("/csourceSubscriptions", "POST"): {"201": "Created; Location names it"},
    ("/entityOperations/query", "POST"): {"200": "The entities"},
    ("/temporal/entities", "POST"): {"201": "Created; Location names it", "204": "Added"},
    ("/temporal/entities", "GET"): _TEMPORAL_PAGES,
    ("/temporal/entities/{entity_id}", "GET"): _TEMPORAL_PAGES,
    ("/temporal/entityOperations/query", "POST"): _TEMPORAL_PAGES,
}

_PROBLEM = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
}


# -- what the document promises is accepted (schemathesis' positive-data check, ST202) ----
# Each schema below is a subset of what the validation takes, never more: ids and names at
# most the identifier limits (docs/api.md, "Limits"), in ASCII so characters are bytes.
_ID = {
    "type": "string",
    "pattern": r"^[A-Za-z][A-Za-z0-9+.-]*:[A-Za-z0-9:._~-]+$",
    "maxLength": MAX_ID_BYTES,
}
# A term: expanded with the core @vocab (under 64 bytes) it stays within MAX_NAME_BYTES.
_NAME = {"type": "string", "pattern": r"^[A-Za-z][A-Za-z0-9_]*$", "maxLength": 256}
_TEXT = {"type": "string", "pattern": r"^[A-Za-z0-9 .,_-]*$", "maxLength": 256}
ID_SCHEMA, NAME_SCHEMA = _ID, _NAME  # for the parts documenting their routes
_ENTITY_SELECTORS = {  # a subscription's or a query's entities: type, optionally id
    "type": "array",
    "minItems": 1,
    "maxItems": 3,
    "items": {
        "type": "object",
        "required": ["type"],
        "properties": {"type": _NAME, "id": _ID},
        "additionalProperties": False,
    },
}
_DATETIME = {
    "type": "string",
    "pattern": r"^20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z$",
}
_SCALAR = {
    "anyOf": [
        _TEXT,
        {"type": "integer", "minimum": -(2**53), "maximum": 2**53},
        {"type": "number", "minimum": -1e15, "maximum": 1e15},
        {"type": "boolean"},
    ]
}
_PROPERTY = {
    "type": "object",
    "required": ["type", "value"],
    "properties": {"type": {"const": "Property"}, "value": _SCALAR},
    "additionalProperties": False,
}
_POINT = {
    "type": "object",
    "required": ["type", "coordinates"],
    "properties": {
        "type": {"const": "Point"},
        "coordinates": {
            "type": "array",
            "minItems": 2,
            "maxItems": 2,
            "items": {"type": "number", "minimum": -90, "maximum": 90},
        },
    },
    "additionalProperties": False,
}
_GEO_PROPERTY = {
    "type": "object",
    "required": ["type", "value"],
    "properties": {"type": {"const": "GeoProperty"}, "value": _POINT},
    "additionalProperties": False,
}
_SCOPE = {"type": "string", "pattern": r"^(/[A-Za-z0-9_-]{1,32}){1,4}$"}
# Keys that are not plain attributes: the core GeoProperties, and JSON-LD's own keywords
# (an @context belongs in an application/ld+json body, never in application/json).
_ENTITY_MEMBERS: dict[str, Any] = {
    "location": _GEO_PROPERTY,
    "observationSpace": _GEO_PROPERTY,
    "operationSpace": _GEO_PROPERTY,
    "scope": _SCOPE,
    "@context": False,
    "@id": False,
    "@type": False,
    "createdAt": False,
    "modifiedAt": False,
    "deletedAt": False,
}


def _entity(*, id_required: bool = True, type_required: bool = True) -> dict[str, Any]:
    """An entity (or a fragment of one): id, type and Property attributes."""
    required = [k for k, r in (("id", id_required), ("type", type_required)) if r]
    return {
        "type": "object",
        "required": required,
        "properties": {"id": _ID, "type": _NAME, **_ENTITY_MEMBERS},
        "propertyNames": {"pattern": r"^[A-Za-z][A-Za-z0-9_]*$", "maxLength": 64},
        "additionalProperties": _PROPERTY,
        "maxProperties": 24,
    }


def _attrs(min_properties: int = 1) -> dict[str, Any]:
    """Attributes only (append, update): no id, type or scope."""
    return {
        "type": "object",
        "properties": {**_ENTITY_MEMBERS, "id": False, "type": False, "scope": False},
        "propertyNames": {"pattern": r"^[A-Za-z][A-Za-z0-9_]*$", "maxLength": 64},
        "additionalProperties": _PROPERTY,
        "minProperties": min_properties,
        "maxProperties": 24,
    }


_TEMPORAL_PROPERTY = {
    "type": "object",
    "required": ["type", "value", "observedAt"],
    "properties": {"type": {"const": "Property"}, "value": _SCALAR, "observedAt": _DATETIME},
    "additionalProperties": False,
}
_NO_GEO = {k: False for k in _ENTITY_MEMBERS}


def _temporal(*, entity: bool) -> dict[str, Any]:
    """History to add: Property instances that say when they were observed."""
    head = {"id": _ID, "type": _NAME} if entity else {"id": False, "type": False}
    return {
        "type": "object",
        "required": ["id", "type"] if entity else [],
        "properties": {**_NO_GEO, **head},
        "propertyNames": {"pattern": r"^[A-Za-z][A-Za-z0-9_]*$", "maxLength": 64},
        "additionalProperties": _TEMPORAL_PROPERTY,
        "minProperties": 3 if entity else 1,
        "maxProperties": 24,
    }


_SUBSCRIPTION = {
    "type": "object",
    "required": ["entities", "notification"],
    "properties": {
        "id": _ID,
        "type": {"const": "Subscription"},
        "entities": _ENTITY_SELECTORS,
        "isActive": {"type": "boolean"},
        "notification": {
            "type": "object",
            "required": ["endpoint"],
            "properties": {
                "format": {"enum": ["normalized", "keyValues", "concise"]},
                "endpoint": {
                    "type": "object",
                    "required": ["uri"],
                    "properties": {"uri": {"const": "http://127.0.0.1:9/notify"}},
                    "additionalProperties": False,
                },
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}

# Request bodies by operation (application/json); the rest take any object or array.
_BODIES: dict[tuple[str, str], Any] = {
    ("/entities", "POST"): _entity(),
    ("/entities/{entity_id}", "PUT"): _entity(id_required=False)
    | {"properties": {**_ENTITY_MEMBERS, "type": _NAME, "id": False}},
    ("/entities/{entity_id}", "PATCH"): _entity(id_required=False, type_required=False)
    | {"properties": {**_ENTITY_MEMBERS, "type": _NAME, "id": False}},
    ("/entities/{entity_id}/attrs", "POST"): _attrs(),
    ("/entities/{entity_id}/attrs", "PATCH"): _attrs(),
    ("/entities/{entity_id}/attrs/{attr}", "PUT"): _PROPERTY,
    ("/entities/{entity_id}/attrs/{attr}", "PATCH"): {
        "type": "object",
        "required": ["value"],
        "properties": {"value": _SCALAR},
        "additionalProperties": False,
    },
    ("/entityOperations/create", "POST"): {
        "type": "array",
        "minItems": 1,
        "maxItems": 5,
        "items": _entity(),
    },
    ("/entityOperations/upsert", "POST"): {
        "type": "array",
        "minItems": 1,
        "maxItems": 5,
        "items": _entity(),
    },
    ("/entityOperations/update", "POST"): {
        "type": "array",
        "minItems": 1,
        "maxItems": 5,
        "items": _entity(type_required=False),
    },
    ("/entityOperations/merge", "POST"): {
        "type": "array",
        "minItems": 1,
        "maxItems": 5,
        "items": _entity(type_required=False),
    },
    ("/entityOperations/delete", "POST"): {
        "type": "array",
        "minItems": 1,
        "maxItems": 5,
        "items": _ID,
    },
    ("/entityOperations/query", "POST"): {
        "type": "object",
        "required": ["type", "entities"],
        "properties": {
            "type": {"const": "Query"},
            "entities": _ENTITY_SELECTORS,
            "attrs": {"type": "array", "maxItems": 3, "items": _NAME},
        },
        "additionalProperties": False,
    },
    ("/temporal/entityOperations/query", "POST"): {
        "type": "object",
        "required": ["type", "entities"],
        "properties": {
            "type": {"const": "Query"},
            "entities": _ENTITY_SELECTORS,
            "attrs": {"type": "array", "maxItems": 3, "items": _NAME},
            "temporalQ": {
                "type": "object",
                "properties": {
                    "timerel": {"enum": ["before", "after"]},
                    "timeAt": _DATETIME,
                    "lastN": {"type": "integer", "minimum": 1, "maximum": 1000},
                },
                "required": ["timerel", "timeAt"],
                "additionalProperties": False,
            },
        },
        "additionalProperties": False,
    },
    ("/temporal/entities", "POST"): _temporal(entity=True),
    ("/temporal/entities/{entity_id}/attrs", "POST"): _temporal(entity=False),
    ("/temporal/entities/{entity_id}/attrs/{attr}/{instance_id}", "PATCH"): {
        "type": "object",
        "required": ["value"],
        "properties": {"value": _SCALAR},
        "additionalProperties": False,
    },
    ("/jsonldContexts", "POST"): {
        "type": "object",
        "required": ["@context"],
        "properties": {
            "@context": {
                "type": "object",
                "propertyNames": {"pattern": r"^[A-Za-z][A-Za-z0-9_]{0,31}$"},
                "additionalProperties": {
                    "type": "string",
                    "pattern": r"^https://example\.org/[a-z]{1,16}$",
                },
                "minProperties": 1,
                "maxProperties": 5,
            }
        },
        "additionalProperties": False,
    },
    ("/subscriptions", "POST"): _SUBSCRIPTION,
    ("/csourceSubscriptions", "POST"): _SUBSCRIPTION,
    ("/csourceSubscriptions/{subscription_id}", "PATCH"): {
        "type": "object",
        "required": ["isActive"],
        "properties": {"isActive": {"type": "boolean"}},
        "additionalProperties": False,
    },
    ("/csourceRegistrations", "POST"): {
        "type": "object",
        "required": ["type", "information", "endpoint"],
        "properties": {
            "id": _ID,
            "type": {"const": "ContextSourceRegistration"},
            "information": {
                "type": "array",
                "minItems": 1,
                "maxItems": 3,
                "items": {
                    "type": "object",
                    "required": ["entities"],
                    "properties": {"entities": _ENTITY_SELECTORS},
                    "additionalProperties": False,
                },
            },
            "endpoint": {"const": "http://127.0.0.1:9/source"},
            "mode": {"enum": ["inclusive", "exclusive", "redirect", "auxiliary"]},
        },
        "additionalProperties": False,
    },
    ("/csourceRegistrations/{registration_id}", "PATCH"): {
        "type": "object",
        "required": ["endpoint"],
        "properties": {"endpoint": {"const": "http://127.0.0.1:9/moved"}},
        "additionalProperties": False,
    },
    ("/subscriptions/{subscription_id}", "PATCH"): {
        "type": "object",
        "properties": {
            "isActive": {"type": "boolean"},
            "throttling": {"type": "integer", "minimum": 0, "maximum": 3600},
        },
        "additionalProperties": False,
        "minProperties": 1,
    },
}

# Query parameters' schemas (a subset of what each takes); others are free strings.
_FLAG = {"type": "string", "enum": ["true", "false"]}
_QUERY_SCHEMAS: dict[str, Any] = {
    "type": _NAME,
    "id": _ID,
    "idPattern": {"type": "string", "pattern": r"^[A-Za-z0-9:_-]{1,64}$"},
    "attrs": _NAME,
    "pick": _NAME,
    "q": {"type": "string", "pattern": r"^[a-z][A-Za-z0-9_]{0,31}(==|!=|>=|<=|<|>)[0-9]{1,9}$"},
    "scopeQ": _SCOPE,
    "orderBy": {
        "type": "string",
        "pattern": r"^(id|type|createdAt|[a-z][A-Za-z0-9_]{0,31})(;(asc|desc))?$",
    },
    "limit": {"type": "integer", "minimum": 1, "maximum": 100},
    "offset": {"type": "integer", "minimum": 0, "maximum": 100000},
    "count": _FLAG,
    "lang": {"type": "string", "pattern": r"^[a-z]{2}$"},
    "geometryProperty": {"const": "location"},
    "datasetId": _ID,
    "deleteAll": _FLAG,
    "keep": _NAME,
    "drop": _NAME,
    "details": _FLAG,
    "kind": {"enum": ["Hosted", "Cached", "ImplicitlyCreated"]},
    "timeproperty": {"enum": ["observedAt", "modifiedAt", "createdAt", "deletedAt"]},
    "lastN": {"type": "integer", "minimum": 1, "maximum": 1000},
    "timeAt": _DATETIME,
    "aggrMethods": {
        "enum": ["totalCount", "distinctCount", "sum", "avg", "min", "max", "stddev", "sumsq"]
    },
    "aggrPeriodDuration": {"enum": ["PT15M", "PT1H", "P1D"]},
}
# options= per operation (one value; values that need another parameter left out)
_OPTIONS: dict[tuple[str, str], list[str]] = {
    ("/entities", "GET"): ["keyValues", "concise", "sysAttrs", "normalized"],
    ("/entities/{entity_id}", "GET"): ["keyValues", "concise", "sysAttrs", "normalized"],
    ("/entities/{entity_id}/attrs", "POST"): ["noOverwrite"],
    ("/entityOperations/upsert", "POST"): ["replace", "update"],
    ("/entityOperations/update", "POST"): ["noOverwrite"],
    ("/entityOperations/query", "POST"): ["keyValues", "concise", "sysAttrs", "normalized"],
    ("/temporal/entities", "GET"): ["temporalValues", "sysAttrs"],
    ("/temporal/entities/{entity_id}", "GET"): ["temporalValues", "sysAttrs"],
    ("/temporal/entityOperations/query", "POST"): ["temporalValues", "sysAttrs"],
    ("/csourceRegistrations", "GET"): ["sysAttrs"],
    ("/csourceRegistrations/{registration_id}", "GET"): ["sysAttrs"],
}
# Parameters that only make sense together, or exclude each other, are documented but not
# offered as free parameters: omit (with pick), the geo-query triple, timerel's pair.
_NOT_FREE = {
    "omit",
    "pick",
    "timeAt",
    "georel",
    "geometry",
    "coordinates",
    "geoproperty",
    "timerel",
    "endTimeAt",
    "format",
}
_PATH_SCHEMAS: dict[str, Any] = {
    "entity_id": _ID,
    "subscription_id": _ID,
    "registration_id": _ID,
    "attr": _NAME,
    "type": _NAME,
    "instance_id": {"type": "string", "pattern": r"^urn:ngsi-ld:attribute:instance:[0-9]{1,9}$"},
    "context_id": {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,128}$"},
}
TENANT_HEADER = {
    "name": "NGSILD-Tenant",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,64}$"},
}


def _query_param(name: str, path: str, method: str, docs: RouteDocs) -> dict[str, Any] | None:
    if name in _NOT_FREE:
        return None
    schema = docs.query_schemas.get(name, {"type": "string"})
    if name == "options":
        values = _OPTIONS.get((path, method))
        if not values:
            return None
        schema = {"enum": values}
    required = name in docs.required or (name == "type" and (path, method) in _TYPE_REQUIRED)
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": schema,
        "description": docs.query_params[name]
        + (
            " (required here; the API also takes id, idPattern, attrs, q or scopeQ)"
            if required
            else ""
        ),
    }


# A query needs a filter; the document asks for type (the others would do as well).
_TYPE_REQUIRED = {
    ("/entities", "GET"),
    ("/temporal/entities", "GET"),
    ("/csourceRegistrations", "GET"),  # discovery needs a filter
}


def _default_success(method: str) -> dict[str, str]:
    return {"200": "OK"} if method == "GET" else {"204": "Done"}


class RouteDocs:
    """What a route table needs documented beyond its (path, method, handler, summary)
    rows: the hub's tables, with a part's own merged over them."""

    def __init__(
        self,
        *,
        prefix: str = "",
        params_by_op: Mapping[tuple[str, str], list[str]] | None = None,
        query_params: Mapping[str, str] | None = None,
        query_schemas: Mapping[str, Any] | None = None,
        path_schemas: Mapping[str, Any] | None = None,
        success: Mapping[tuple[str, str], dict[str, str]] | None = None,
        bodies: Mapping[tuple[str, str], Any] | None = None,
        required: Iterable[str] = (),
    ) -> None:
        self.prefix = prefix
        self.params_by_op = {**_PARAMS_BY_OP, **(params_by_op or {})}
        self.query_params = {**_QUERY_PARAMS, **(query_params or {})}
        self.query_schemas = {**_QUERY_SCHEMAS, **(query_schemas or {})}
        self.path_schemas = {**_PATH_SCHEMAS, **(path_schemas or {})}
        self.success = {**_SUCCESS, **(success or {})}
        self.bodies = {**_BODIES, **(bodies or {})}
        self.required = frozenset(required)


def operations(
    routes: Iterable[tuple[str, str, Any, str]], docs: RouteDocs
) -> dict[str, dict[str, Any]]:
    """OpenAPI path items for a route table of (path, method, handler, summary) rows."""
    paths: dict[str, dict[str, Any]] = {}
    for path, method, _handler, summary in routes:
        params: list[dict[str, Any]] = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": docs.path_schemas.get(name, {"type": "string"}),
            }
            for name in re.findall(r"{(\w+)}", path)
        ]
        params += [
            TENANT_HEADER,
            {
                "name": "Link",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "enum": [link_header_for(CORE_CONTEXT_URL)]},
                "description": "The @context, for application/json bodies and responses",
            },
        ]
        params += [
            q
            for n in docs.params_by_op.get((path, method), [])
            if (q := _query_param(n, path, method, docs)) is not None
        ]
        responses: dict[str, Any] = {}
        for code, desc in (docs.success.get((path, method)) or _default_success(method)).items():
            body = (
                {
                    "content": {
                        "application/json": {"schema": {}},
                        "application/ld+json": {"schema": {}},
                    }
                }
                if code in ("200", "207")
                else {}
            )
            responses[code] = {"description": desc, **body}
        for code, desc in (
            ("400", "Bad request"),
            ("401", "No valid credentials (when authentication is required)"),
            ("403", "Forbidden, or a query too complex (TooComplexQuery, TooManyResults)"),
            ("404", "Not found"),
            ("406", "Not acceptable"),
            ("409", "Already exists"),
            ("413", "Body too large"),
            ("415", "Unsupported media type"),
            ("422", "Operation not supported"),
            ("429", "Too many requests (rate limit)"),
            ("503", "@context not available"),
        ):
            responses[code] = {
                "description": desc,
                "content": {"application/problem+json": {"schema": PROBLEM_REF}},
            }
        op: dict[str, Any] = {
            "summary": summary,
            "operationId": f"{method.lower()}_{re.sub(r'[^a-zA-Z]+', '_', path).strip('_')}",
            "parameters": params,
            "responses": responses,
        }
        if method in ("POST", "PUT", "PATCH"):
            body_schema = docs.bodies.get((path, method), {"type": ["object", "array"]})
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": body_schema}},
            }
        paths.setdefault(docs.prefix + path, {})[method.lower()] = op
    return paths


PROBLEM_REF = {"$ref": "#/components/schemas/ProblemDetails"}


def simple_get(path: str, summary: str, content: str = "application/json") -> dict[str, Any]:
    """The path item of a plain GET answering JSON (or ``content``), with the usual problems."""
    return {
        "get": {
            "summary": summary,
            "operationId": "get_" + re.sub(r"[^a-zA-Z]+", "_", path).strip("_"),
            "parameters": [TENANT_HEADER],
            "responses": {
                "200": {"description": "OK", "content": {content: {"schema": {}}}},
                **{
                    code: {
                        "description": desc,
                        "content": {"application/problem+json": {"schema": PROBLEM_REF}},
                    }
                    for code, desc in (
                        ("401", "No valid credentials (when authentication is required)"),
                        ("403", "Forbidden"),
                        ("429", "Too many requests (rate limit)"),
                    )
                },
            },
        }
    }


def hub_paths() -> dict[str, dict[str, Any]]:
    """The hub's own path items: the NGSI-LD API, /version, /health and /openapi.json."""
    paths = operations(ROUTES, RouteDocs(prefix=PREFIX))
    for extra, summary in (
        ("/version", "Version"),
        ("/health", "Health"),
        ("/openapi.json", "This document"),
    ):
        paths[extra] = {
            "get": {
                "summary": summary,
                "operationId": "get_" + extra.strip("/").replace(".", "_"),
                "responses": {
                    "200": {"description": "OK", "content": {"application/json": {"schema": {}}}}
                },
            }
        }
    return paths


def document(paths: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """The whole OpenAPI document around ``paths``."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "CityOS hub — NGSI-LD API", "version": cityos.__version__},
        "paths": dict(paths),
        "components": {"schemas": {"ProblemDetails": _PROBLEM}},
    }
