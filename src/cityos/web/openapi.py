"""The OpenAPI 3.1 document of the routes the hub serves, generated from the route table."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import cityos
from cityos.hub.api import PREFIX, ROUTES

_QUERY_PARAMS = {
    "type": "Entity type(s): a type expression (`A,B`, `A;B`, `(A|B);C`)",
    "id": "Comma-separated entity ids",
    "idPattern": "Regular expression an entity id must match in full",
    "attrs": "Attributes to return (and entities must have at least one)",
    "pick": "Entity members to keep (id, type, attribute names)",
    "omit": "Entity members to drop",
    "q": "NGSI-LD query language expression",
    "georel": "Geo relation: near;maxDistance==m, near;minDistance==m, within, contains, intersects, equals, disjoint, overlaps",
    "geometry": "Point, LineString, Polygon, MultiPoint, MultiLineString, MultiPolygon",
    "coordinates": "GeoJSON coordinates of the query geometry (lon, lat)",
    "geoproperty": "The GeoProperty to test (default location)",
    "geometryProperty": "The GeoProperty used as the GeoJSON geometry",
    "scopeQ": "Scope query (`/a/b`, `/a/#`, `/a/+/c`, `;`, `|`)",
    "limit": "Page size",
    "offset": "Page start",
    "count": "true: return the total in the NGSILD-Results-Count header",
    "options": "keyValues | concise | sysAttrs | noOverwrite | replace | update",
    "format": "normalized | concise | keyValues",
    "lang": "Language to pick from LanguageProperties",
    "datasetId": "The instance of a multi-attribute",
    "deleteAll": "true: delete every instance of the attribute",
    "details": "true: detailed listing",
    "kind": "Hosted | Cached | ImplicitlyCreated",
    "timerel": "before | after | between",
    "timeAt": "ISO 8601 date-time",
    "endTimeAt": "ISO 8601 date-time (timerel=between)",
    "timeproperty": "observedAt (default) | modifiedAt | createdAt",
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
        "limit",
        "offset",
        "count",
        "options",
        "format",
        "lang",
    ],
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
    ("/entityOperations/query", "POST"): ["limit", "offset", "count", "options", "format", "lang"],
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
    ],
    ("/temporal/entities/{entity_id}", "GET"): [
        "attrs",
        "options",
        "timerel",
        "timeAt",
        "endTimeAt",
        "timeproperty",
        "lastN",
        "aggrMethods",
        "aggrPeriodDuration",
    ],
    ("/subscriptions", "GET"): ["limit", "offset"],
    ("/types", "GET"): ["details"],
    ("/attributes", "GET"): ["details"],
    ("/jsonldContexts", "GET"): ["details", "kind"],
}

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


def _default_success(method: str) -> dict[str, str]:
    return {"200": "OK"} if method == "GET" else {"204": "Done"}


@cache
def openapi_document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    problem_ref = {"$ref": "#/components/schemas/ProblemDetails"}
    from cityos.devices.api import ROUTES as DEVICE_ROUTES

    for path, method, _handler, summary in [*ROUTES, *DEVICE_ROUTES]:
        params: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"{(\w+)}", path)
        ]
        params += [
            {
                "name": "NGSILD-Tenant",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
            },
            {
                "name": "Link",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": "The @context, for application/json bodies and responses",
            },
        ]
        params += [
            {
                "name": n,
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
                "description": _QUERY_PARAMS[n],
            }
            for n in _PARAMS_BY_OP.get((path, method), [])
        ]
        responses: dict[str, Any] = {}
        for code, desc in (_SUCCESS.get((path, method)) or _default_success(method)).items():
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
                "content": {"application/problem+json": {"schema": problem_ref}},
            }
        op: dict[str, Any] = {
            "summary": summary,
            "operationId": f"{method.lower()}_{re.sub(r'[^a-zA-Z]+', '_', path).strip('_')}",
            "parameters": params,
            "responses": responses,
        }
        if method in ("POST", "PUT", "PATCH"):
            op["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {"schema": {"type": ["object", "array"]}},
                    "application/ld+json": {"schema": {"type": ["object", "array"]}},
                },
            }
        full = path if path.startswith("/iot") else PREFIX + path
        paths.setdefault(full, {})[method.lower()] = op
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
    for extra, summary, media in (
        ("/services/traffic/gtfs-rt/vehicle-positions", "GTFS-realtime VehiclePositions",
         "application/x-protobuf"),
        ("/services/traffic/gtfs-rt/trip-updates", "GTFS-realtime TripUpdates",
         "application/x-protobuf"),
        ("/services/traffic/gtfs", "The static GTFS feed (zip)", "application/zip"),
    ):  # fmt: skip
        content: dict[str, Any] = {media: {"schema": {"type": "string", "format": "binary"}}}
        if "gtfs-rt" in extra:
            content["application/json"] = {"schema": {"type": "object"}}  # ?format=json
        paths[extra] = {
            "get": {
                "summary": summary,
                "operationId": "get_" + re.sub(r"[^a-zA-Z]+", "_", extra).strip("_"),
                "parameters": [
                    {"name": "NGSILD-Tenant", "in": "header", "required": False,
                     "schema": {"type": "string"}},
                    {"name": "format", "in": "query", "required": False,
                     "schema": {"type": "string", "enum": ["json"]}},
                ],
                "responses": {
                    "200": {"description": "OK", "content": content},
                    **{
                        code: {"description": desc,
                               "content": {"application/problem+json": {"schema": problem_ref}}}
                        for code, desc in (
                            ("400", "Bad request (e.g. a malformed tenant)"),
                            ("401", "No valid credentials (when authentication is required)"),
                            ("403", "Forbidden"),
                            ("404", "Unknown tenant, or no static feed registered for it"),
                            ("429", "Too many requests (rate limit)"),
                        )
                    },
                },
            }
        }  # fmt: skip
    return {
        "openapi": "3.1.0",
        "info": {"title": "CityOS hub — NGSI-LD API", "version": cityos.__version__},
        "paths": paths,
        "components": {"schemas": {"ProblemDetails": _PROBLEM}},
    }
