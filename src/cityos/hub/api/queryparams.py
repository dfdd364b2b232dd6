"""The query parameters each NGSI-LD operation takes (GS CIM 009 v1.8 clause 6).

Any other parameter is an InvalidRequest (400): a misspelt ``attrs`` or ``limit`` silently
ignored would answer a different question than the one asked. An operation not listed here
is not checked (yet); the table grows with the operations, one row per handler name.
"""

from __future__ import annotations

from starlette.requests import Request

from cityos.hub.errors import InvalidRequest

# GET /entities and POST /entityOperations/query (clause 6.4.3.2)
_QUERY = frozenset(
    {
        "id",
        "type",
        "idPattern",
        "attrs",
        "pick",
        "omit",
        "q",
        "csf",
        "geometry",
        "georel",
        "coordinates",
        "geoproperty",
        "geometryProperty",
        "lang",
        "scopeQ",
        "options",
        "format",
        "limit",
        "offset",
        "count",
        "local",
        "via",
        "join",
        "joinLevel",
        "containedBy",
        "datasetId",
        "entityMap",
        "collect",
        "expandValues",
        "jsonKeys",
        "orderBy",  # v1.9.1 clause 4.23
    }
)
# GET /temporal/entities (clause 6.18.3.2): the query's and the temporal ones
_TEMPORAL = _QUERY | {
    "timerel",
    "timeAt",
    "endTimeAt",
    "timeproperty",
    "lastN",
    "aggrMethods",
    "aggrPeriodDuration",
}
_PAGE = frozenset({"limit", "offset", "count"})

ALLOWED: dict[str, frozenset[str]] = {
    "create_entity": frozenset({"local"}),
    "query_entities": _QUERY,
    "purge_entities": (_QUERY - {"orderBy"}) | {"keep", "drop"},  # DELETE /entities (v1.9)
    "create_temporal": frozenset({"local"}),
    "query_temporal": _TEMPORAL,
    "list_types": frozenset({"details", "local", "via"}) | _PAGE,
    "create_subscription": frozenset(),
    "list_subscriptions": _PAGE | {"options"},
    "retrieve_subscription": frozenset({"options"}),
    "update_subscription": frozenset(),
    "delete_subscription": frozenset(),
    "list_contexts": frozenset({"details", "kind"}),
    "serve_context": frozenset({"details"}),
    "add_context": frozenset(),
    "delete_context": frozenset({"reload"}),
}


def check_query_params(handler: str, request: Request) -> None:
    """InvalidRequest when ``request`` carries a parameter ``handler`` does not take."""
    allowed = ALLOWED.get(handler)
    if allowed is None:
        return
    unknown = sorted({k for k in request.query_params if k not in allowed})
    if unknown:
        shown = ", ".join(repr(k[:64]) for k in unknown[:5])
        raise InvalidRequest(f"unknown query parameter(s) for this operation: {shown}")
