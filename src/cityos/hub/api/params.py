"""Query-string parameters of entity retrieval and query, checked and expanded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from cityos.hub.api.common import (
    csv_param,
    flag,
    hub_of,
    int_param,
    options_of,
    validate_uri,
)
from cityos.hub.api.orderby import order_param
from cityos.hub.errors import BadRequestData, InvalidRequest, TooManyResults
from cityos.hub.ldcontext import Context
from cityos.hub.model import DEFAULT_GEOPROPERTY, MAX_NAME_BYTES, check_size
from cityos.hub.query.geo import parse_geo_query
from cityos.hub.query.model import EntityQuery, TypeExpr
from cityos.hub.query.q import expand_q, expand_types, parse_q, parse_scope_q, parse_type_expr
from cityos.hub.query.regex import client_regex
from cityos.hub.representation.join import JOINS
from cityos.hub.representation.projection import Projection, parse_projection

FORMATS = {
    "normalized": "normalized",
    "concise": "concise",
    "keyValues": "keyValues",
    "simplified": "keyValues",
}


def expand_name(ctx: Context, term: str, what: str) -> str:
    """A type or attribute name from the query string, expanded; the names' size limit is
    checked as written and as expanded, as on a write (docs/api.md, "Limits")."""
    if not isinstance(term, str) or not term:
        raise BadRequestData(f"{what} must be a non-empty string")
    check_size(term, MAX_NAME_BYTES, what)
    return check_size(ctx.expand_term(term), MAX_NAME_BYTES, f"{what} (expanded)")


def names_param(request: Request, name: str, ctx: Context) -> list[str] | None:
    """A comma-separated list of attribute names (``attrs``), each expanded and checked."""
    terms = csv_param(request, name)
    if terms is None:
        return None
    out = [expand_name(ctx, term, f"parameter {name}: attribute") for term in terms]
    for term, iri in zip(terms, out, strict=True):
        if iri.startswith("@"):  # id, type: JSON-LD keywords, never attribute names
            raise BadRequestData(f"parameter {name}: {term!r} is not an attribute name")
    return out


def projection_param(request: Request, name: str) -> Projection | None:
    """``pick``/``omit``: a projection of terms as written (compared before compaction),
    nested per Relationship for linked entities; malformed is BadRequestData (400)."""
    raw = request.query_params.getlist(name)
    if not raw:
        return None
    proj = parse_projection(",".join(raw), name)
    for term in _all_terms(proj):
        check_size(term, MAX_NAME_BYTES, f"parameter {name}: attribute")
    return proj


def _all_terms(proj: Projection) -> list[str]:
    return [*proj.members, *(t for sub in proj.nested.values() for t in _all_terms(sub))]


def check_pick_omit(
    pick: Projection | None, omit: Projection | None, attrs: list[str] | None
) -> None:
    """``pick``, ``omit`` and ``attrs`` exclude each other (BadRequestData)."""
    given = [name for name, v in (("pick", pick), ("omit", omit), ("attrs", attrs)) if v]
    if len(given) > 1:
        raise BadRequestData(f"{' and '.join(given)} cannot be used together")


def format_of(request: Request) -> str:
    """The representation: ``format`` wins over a format in ``options`` (clause 6.3.7); an
    unknown option or format is InvalidRequest."""
    opts = options_of(request)
    fmt_param = request.query_params.get("format")
    if fmt_param is not None:
        if fmt_param not in FORMATS:
            raise InvalidRequest(f"unknown format {fmt_param!r}")
        opts = {o for raw in request.query_params.getlist("options") for o in raw.split(",")}
        opts = {o.strip() for o in opts if o.strip()}
    unknown = opts - set(FORMATS) - {"sysAttrs", "count"}  # options=count: see entity_query
    if unknown:
        raise InvalidRequest(f"unknown option(s): {', '.join(sorted(unknown))}")
    if fmt_param is not None:
        return FORMATS[fmt_param]
    chosen = {FORMATS[o] for o in opts if o in FORMATS}
    if len(chosen) > 1:
        raise BadRequestData(f"conflicting representation options: {', '.join(sorted(opts))}")
    return chosen.pop() if chosen else "normalized"


def join_param(request: Request) -> tuple[str | None, int]:
    """``join`` (inline, flat, or @none) and ``joinLevel`` (default 1)."""
    join = request.query_params.get("join")
    if join is not None and join not in (*JOINS, "@none"):
        raise BadRequestData(f"parameter join must be inline, flat or @none, not {join!r}")
    level = int_param(request, "joinLevel", 1, low=1)
    if level > MAX_JOIN_LEVEL:
        raise BadRequestData(f"joinLevel {level} is over the maximum of {MAX_JOIN_LEVEL}")
    return (None if join == "@none" else join), level


MAX_JOIN_LEVEL = 10


def type_param(raw: str, ctx: Context, what: str = "parameter type") -> TypeExpr:
    """A type expression (``type=A,B``, ``A;B``), each name expanded and size-checked."""
    return expand_types(parse_type_expr(raw), lambda t: expand_name(ctx, t, f"{what}: type"))


@dataclass
class RenderOptions:
    fmt: str = "normalized"
    sys_attrs: bool = False
    attrs: set[str] | None = None  # expanded IRIs
    pick: Projection | None = None  # terms as the client wrote them
    omit: Projection | None = None
    lang: str | None = None
    geoproperty: str = DEFAULT_GEOPROPERTY
    join: str | None = None  # inline | flat
    join_level: int = 1
    datasets: set[str | None] | None = None  # datasetId filter; None: the default instance

    def kwargs(self) -> dict[str, Any]:
        return {
            "fmt": self.fmt,
            "sys_attrs": self.sys_attrs,
            "attrs": self.attrs,
            "pick": self.pick,
            "omit": self.omit,
            "lang": self.lang,
            "datasets": self.datasets,
        }


def render_options(request: Request, ctx: Context) -> RenderOptions:
    fmt = format_of(request)
    opts = options_of(request)
    attrs = names_param(request, "attrs", ctx)
    pick = projection_param(request, "pick")
    omit = projection_param(request, "omit")
    check_pick_omit(pick, omit, attrs)
    join, join_level = join_param(request)
    datasets = csv_param(request, "datasetId")
    geoprop = request.query_params.get("geometryProperty")
    return RenderOptions(
        fmt=fmt,
        join=join,
        join_level=join_level,
        datasets=None
        if datasets is None
        else {None if d == "@none" else validate_uri(d, "datasetId") for d in datasets},
        sys_attrs="sysAttrs" in opts,
        attrs=set(attrs) if attrs else None,
        pick=pick or None,
        omit=omit or None,
        lang=request.query_params.get("lang"),
        geoproperty=expand_name(ctx, geoprop, "parameter geometryProperty")
        if geoprop
        else DEFAULT_GEOPROPERTY,
    )


def entity_query(request: Request, ctx: Context, *, require_filter: bool = True) -> EntityQuery:
    """Build an EntityQuery from GET /entities parameters (clause 6.4.3.2)."""
    p = request.query_params
    settings = hub_of(request).settings
    query = EntityQuery()
    if (raw := p.get("type")) is not None:
        query.types = type_param(raw, ctx)
    if (ids := csv_param(request, "id")) is not None:
        query.ids = [validate_uri(i, "id") for i in ids]
    if (pattern := p.get("idPattern")) is not None:
        client_regex(pattern, "idPattern")
        query.id_pattern = pattern
    attrs = names_param(request, "attrs", ctx)
    pick = csv_param(request, "pick")
    if attrs:
        query.attrs = attrs
    if (raw := p.get("q")) is not None:
        query.q = expand_q(parse_q(raw), ctx.expand_term)
    if (raw := p.get("scopeQ")) is not None:
        query.scope = parse_scope_q(raw)
    georel = p.get("georel")
    geometry = p.get("geometry")
    coords = p.get("coordinates")
    if georel or geometry or coords:
        if not (georel and geometry and coords):
            raise BadRequestData("a geo-query needs georel, geometry and coordinates together")
        gp = p.get("geoproperty")
        query.geo = parse_geo_query(
            georel,
            geometry,
            coords,
            expand_name(ctx, gp, "parameter geoproperty") if gp else DEFAULT_GEOPROPERTY,
        )
    query.limit = int_param(request, "limit", settings.default_page_size)
    query.offset = int_param(request, "offset", 0)
    # count=true, or options=count as older clients send it (Orion-LD takes both)
    query.count = flag(request, "count") or "count" in options_of(request)
    if query.limit > settings.max_page_size:
        raise TooManyResults(
            f"limit {query.limit} is over the maximum page size of {settings.max_page_size}"
        )
    if query.limit == 0 and not query.count:
        raise BadRequestData("limit=0 is only allowed with count=true")
    # ids alone are not enough (clause 6.4.3.2; as for the temporal query): they narrow a
    # query by type, attributes, q, geoQ or scopeQ
    has_filter = any(
        x is not None
        for x in (
            query.types,
            query.id_pattern,
            query.attrs,
            query.q,
            query.geo,
            query.scope,
        )
    ) or bool(pick)
    # local=true (clause 6.3.18): only this broker's entities, so no filter is needed
    if require_filter and not has_filter and not flag(request, "local"):
        raise BadRequestData(
            "a query needs at least one of type, idPattern, attrs, q, geoQ or scopeQ"
            " (or local=true); id only narrows one"
        )
    query.order = order_param(request, ctx)
    return query
