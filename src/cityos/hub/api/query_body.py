"""The NGSI-LD Query data type (clause 5.2.23) as an EntityQuery: what the POST forms of a
query send in their body instead of the URL (``entities``, ``q``, ``geoQ``, ``scopeQ``);
paging (``limit``, ``offset``, ``count``) stays in the URL."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from cityos.hub.api.common import flag, hub_of, int_param
from cityos.hub.api.orderby import order_param
from cityos.hub.api.params import expand_name, type_param
from cityos.hub.errors import BadRequestData, TooManyResults
from cityos.hub.ldcontext import Context
from cityos.hub.model import DEFAULT_GEOPROPERTY
from cityos.hub.query.geo import parse_geo_query
from cityos.hub.query.model import EntityQuery, TypeOr
from cityos.hub.query.q import expand_q, parse_q, parse_scope_q
from cityos.hub.query.regex import client_regex
from cityos.hub.representation.names import check_uri


def query_from_body(request: Request, body: dict[str, Any], ctx: Context) -> EntityQuery:
    """The entities a Query body selects; its ``attrs`` are left to the caller (they select
    entities in one API and attributes in another)."""
    query = EntityQuery(order=order_param(request, ctx))  # orderBy stays in the URL
    selectors = body.get("entities") or []
    if not isinstance(selectors, list):
        raise BadRequestData("entities must be a list of entity selectors")
    types, ids = [], []
    for sel in selectors:
        if not isinstance(sel, dict):
            raise BadRequestData("each entity selector must be an object")
        if "type" in sel:
            types.append(type_param(str(sel["type"]), ctx, "entity selector"))
        if "id" in sel:
            ids.append(check_uri(sel["id"], "entity selector"))
        if "idPattern" in sel:
            query.id_pattern = str(sel["idPattern"])
            client_regex(query.id_pattern, "idPattern")
    if types:
        query.types = types[0] if len(types) == 1 else TypeOr(tuple(types))
    if ids:
        query.ids = ids
    if "q" in body:
        query.q = expand_q(parse_q(str(body["q"])), ctx.expand_term)
    if "scopeQ" in body:
        query.scope = parse_scope_q(str(body["scopeQ"]))
    if "geoQ" in body:
        g = body["geoQ"]
        if not isinstance(g, dict):
            raise BadRequestData("geoQ must be an object")
        gp = g.get("geoproperty")
        query.geo = parse_geo_query(
            str(g.get("georel", "")),
            str(g.get("geometry", "")),
            g.get("coordinates", ""),
            expand_name(ctx, gp, "geoQ.geoproperty") if gp else DEFAULT_GEOPROPERTY,
        )
    settings = hub_of(request).settings
    query.limit = int_param(request, "limit", settings.default_page_size)
    query.offset = int_param(request, "offset", 0)
    query.count = flag(request, "count")
    if query.limit > settings.max_page_size:
        raise TooManyResults(
            f"limit {query.limit} is over the maximum page size of {settings.max_page_size}"
        )
    return query
