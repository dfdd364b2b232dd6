"""/temporal/entities: the history the hub keeps of every attribute (clause 5.7.3, 5.7.4)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cityos.hub.access import (
    Forbidden,
    check_history,
    raw_history_allowed,
    readable_attrs,
    restrict_query,
    visible,
    visible_all,
)
from cityos.hub.api.common import (
    INT_PARAM_MAX,
    csv_param,
    endpoint,
    entity_response,
    flag,
    hub_of,
    location,
    path_param,
    read_body,
    resolve_context,
    response_media,
    tenant_of,
    validate_uri,
)
from cityos.hub.api.params import (
    check_pick_omit,
    entity_query,
    expand_name,
    names_param,
    projection_param,
)
from cityos.hub.api.query_body import query_from_body
from cityos.hub.errors import BadRequestData, InvalidRequest, ResourceNotFound
from cityos.hub.ldcontext import Context
from cityos.hub.model import now_iso
from cityos.hub.query.model import EntityQuery
from cityos.hub.representation import (
    parse_attribute,
    parse_partial_instance,
    parse_types,
    validate_stored_instance,
)
from cityos.hub.representation.names import check_name, parse_scope
from cityos.hub.representation.projection import Projection
from cityos.hub.representation.temporal import (
    display_time,
    normalized_attribute,
    simplified_attribute,
)
from cityos.hub.store.base import Store
from cityos.hub.temporal import (
    AGGREGATIONS,
    TimeWindow,
    aggregate,
    history_entity,
    parse_duration,
    parse_instance_urn,
    parse_window,
    to_points,
)
from cityos.hub.temporal_page import Series, keep_last, paginate

MAX_HISTORY_ROWS = 100_000  # per entity and request; a larger window needs paging by time
_MODES = ("normalized", "temporalValues", "aggregatedValues")


@dataclass(frozen=True)
class TemporalOptions:
    """What a temporal read asked for, from the URL (and the body of a POST query)."""

    window: TimeWindow
    last_n: int | None
    mode: str  # one of _MODES
    sys_attrs: bool
    aggr_methods: list[str] | None
    aggr_period: timedelta | None
    attrs: list[str] | None  # expanded IRIs
    dataset_ids: list[str] | None  # "@none": the default instance
    pick: Projection | None
    omit: Projection | None


def _temporal_options(
    request: Request,
    ctx: Context,
    temporal_q: dict[str, Any] | None = None,
    attrs: list[str] | None = None,
) -> TemporalOptions:
    """The URL's parameters; a POST query's ``temporalQ`` and ``attrs`` stand in for theirs."""
    p = request.query_params
    tq = temporal_q if temporal_q is not None else p
    window = parse_window(
        tq.get("timerel"), tq.get("timeAt"), tq.get("endTimeAt"), tq.get("timeproperty")
    )
    raw_last_n = tq.get("lastN")
    last_n = None if raw_last_n is None else _positive(raw_last_n, "lastN")
    mode, opts = _mode(request)
    methods = csv_param(request, "aggrMethods")
    if mode == "aggregatedValues" and not methods:
        raise BadRequestData("options=aggregatedValues needs aggrMethods")
    if methods:
        bad = [m for m in methods if m not in AGGREGATIONS]
        if bad:
            raise BadRequestData(f"unknown aggrMethods {bad}; use {', '.join(AGGREGATIONS)}")
    period = parse_duration(p["aggrPeriodDuration"]) if p.get("aggrPeriodDuration") else None
    if attrs is None:
        attrs = names_param(request, "attrs", ctx)
    pick = projection_param(request, "pick")
    omit = projection_param(request, "omit")
    check_pick_omit(pick, omit, attrs)
    return TemporalOptions(
        window=window,
        last_n=last_n,
        mode=mode,
        sys_attrs="sysAttrs" in opts,
        aggr_methods=methods if mode == "aggregatedValues" else None,
        aggr_period=period,
        attrs=attrs or None,
        dataset_ids=_dataset_ids(request),
        pick=pick,
        omit=omit,
    )


def _mode(request: Request) -> tuple[str, set[str]]:
    """The representation and the options: ``format`` wins over ``options`` (clause 6.3.7);
    aggrMethods alone asks for aggregates too."""
    opts = {
        o.strip()
        for raw in request.query_params.getlist("options")
        for o in raw.split(",")
        if o.strip()
    }
    unknown = opts - {*_MODES, "sysAttrs", "count"}
    if unknown:
        raise InvalidRequest(
            f"unknown option(s) for the temporal API: {', '.join(sorted(unknown))}"
        )
    fmt = request.query_params.get("format")
    if fmt is not None:
        if fmt not in _MODES:
            raise InvalidRequest(f"format must be one of {', '.join(_MODES)}, not {fmt!r}")
        return fmt, opts
    chosen = opts & {"temporalValues", "aggregatedValues"}
    if len(chosen) > 1:
        raise BadRequestData("options temporalValues and aggregatedValues exclude each other")
    if chosen:
        return chosen.pop(), opts
    return ("aggregatedValues" if request.query_params.get("aggrMethods") else "normalized"), opts


def _dataset_ids(request: Request) -> list[str] | None:
    """``datasetId``: URIs, or ``@none`` for the default instance (clause 4.5.5)."""
    ids = csv_param(request, "datasetId")
    for dataset_id in ids or []:
        if dataset_id != "@none":
            validate_uri(dataset_id, "datasetId")
    return ids


def _positive(raw: Any, name: str) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise BadRequestData(f"parameter {name} must be an integer, not {raw!r}") from None
    if not 1 <= value <= INT_PARAM_MAX:
        raise BadRequestData(f"parameter {name} must be between 1 and {INT_PARAM_MAX}")
    return value


def _instance_limit(request: Request) -> int:
    """The setting temporal_instance_limit (at least 1)."""
    return max(1, hub_of(request).settings.temporal_instance_limit)


def _action(opts: TemporalOptions) -> str:
    """Aggregates are their own action (a researcher may have them and nothing else)."""
    return "aggregate" if opts.aggr_methods else "read"


@dataclass
class _Found:
    """One entity of a temporal read: its instances, and the options that apply to it."""

    entity: dict[str, Any]
    opts: TemporalOptions
    series: Series


def _collect(
    request: Request, tenant: str, entity: dict[str, Any], opts: TemporalOptions
) -> _Found:
    attrs = opts.attrs
    keep = readable_attrs(entity["type"], _action(opts))
    if keep is not None:  # the history of attributes the caller may not read stays out
        attrs = sorted(keep if attrs is None else keep.intersection(attrs))
    if opts.aggr_methods and not raw_history_allowed(entity):
        opts = _coarse(opts, hub_of(request).settings.min_aggregation_period_s)
    window = opts.window
    rows = (
        hub_of(request).store.history(
            tenant,
            entity["id"],
            limit=MAX_HISTORY_ROWS,
            attrs=attrs,
            time_property="observedAt" if window.time_property == "observedAt" else "recordedAt",
            after=window.after,
            before=window.before,
        )
        if attrs != []
        else []
    )
    series = keep_last(to_points(rows, window.time_property, opts.dataset_ids), opts.last_n)
    return _Found(entity, opts, series)


def _paginate(request: Request, found: list[_Found], opts: TemporalOptions) -> str | None:
    if opts.aggr_methods:  # aggregates are a handful of buckets, not instances
        return None
    return paginate([f.series for f in found], _instance_limit(request), opts.last_n, opts.window)


def _body(found: _Found, ctx: Context) -> dict[str, Any]:
    entity, opts = found.entity, found.opts
    select = _Select(ctx, opts.pick, opts.omit)
    out: dict[str, Any] = {}
    if select.keeps("id"):
        out["id"] = entity["id"]
    types = [ctx.compact_iri(t) for t in entity["type"]]
    if select.keeps("type"):
        out["type"] = types[0] if len(types) == 1 else types
    if opts.sys_attrs:
        for key in ("createdAt", "modifiedAt"):
            if key in entity and select.keeps(key):
                out[key] = display_time(entity[key])
    for attr, points in found.series.items():
        term = ctx.compact_iri(attr)
        if not select.keeps(term, attr):
            continue
        if not points:  # all cut by pagination: the attribute is there, its instances later
            out[term] = [] if opts.mode == "normalized" else _empty(entity, attr)
        elif opts.aggr_methods:
            kind = points[-1].row.instance.get("type", "Property")
            out[term] = {
                "type": kind,
                **aggregate(points, opts.window, opts.aggr_methods, opts.aggr_period),
            }
        elif opts.mode == "temporalValues":
            out[term] = simplified_attribute(points, ctx)
        else:
            out[term] = normalized_attribute(points, ctx, sys_attrs=opts.sys_attrs)
    return out


def _empty(entity: dict[str, Any], attr: str) -> dict[str, Any]:
    """A simplified attribute none of whose instances is in this page."""
    current = entity["attrs"].get(attr) or [{}]
    return simplified_attribute([], kind=current[0].get("type", "Property"))


class _Select:
    """``pick``/``omit`` on the top-level members of a temporal entity (clause 4.21)."""

    def __init__(self, ctx: Context, pick: Projection | None, omit: Projection | None):
        self.pick = None if pick is None else self._names(ctx, pick)
        self.omit = set() if omit is None else self._names(ctx, omit)

    @staticmethod
    def _names(ctx: Context, proj: Projection) -> set[str]:
        return {n for term in proj for n in (term, ctx.expand_term(term))}

    def keeps(self, *names: str) -> bool:
        if any(n in self.omit for n in names):
            return False
        return self.pick is None or any(n in self.pick for n in names)


def _coarse(opts: TemporalOptions, minimum: int) -> TemporalOptions:
    """Aggregates for a caller that may aggregate but not read: no raw series through a
    small or shifted bucket. The period must be a whole multiple of ``minimum`` seconds
    (403 otherwise, as for lastN), and the buckets lie on that grid from the epoch (the
    window widened to it), so no two requests' buckets differ by less than ``minimum``."""
    if minimum <= 0:  # the minimum turned off
        return opts
    period = opts.aggr_period
    step = period.total_seconds() if period else 0.0
    if opts.last_n is not None:
        raise Forbidden("lastN is not allowed on aggregates of data this caller may not read")
    if step < minimum or step % minimum:
        raise Forbidden(
            f"aggrPeriodDuration must be a whole multiple of {minimum} s (PT{minimum}S) for "
            "data this caller may aggregate but not read"
        )
    window = opts.window
    coarse = replace(
        window,
        after=_on_grid(window.after, step, up=False),
        before=None if window.before is None else _on_grid(window.before, step, up=True),
    )
    return replace(opts, window=coarse, aggr_period=timedelta(seconds=step))


def _on_grid(time: str | None, step: float, *, up: bool) -> str:
    """The time rounded to a multiple of ``step`` seconds since the epoch (None: the epoch)."""
    seconds = datetime.fromisoformat(time.replace("Z", "+00:00")).timestamp() if time else 0.0
    n = math.ceil(seconds / step) if up else math.floor(seconds / step)
    return datetime.fromtimestamp(n * step, UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def _answer(
    request: Request, body: Any, media: str, content_range: str | None, headers: dict[str, str]
) -> Response:
    if content_range is None:
        return entity_response(request, body, media, headers=headers)
    headers = {**headers, "Content-Range": content_range}
    return entity_response(request, body, media, status=206, headers=headers)


@endpoint
async def retrieve_temporal(request: Request) -> Response:
    tenant = tenant_of(request, read=True)
    media = response_media(request)
    ctx = resolve_context(request)
    eid = validate_uri(path_param(request, "entity_id"), "entity id")
    opts = _temporal_options(request, ctx)
    stored = hub_of(request).store.get_entity(tenant, eid)
    entity = None if stored is None else visible(stored, _action(opts))
    if entity is None:  # the entity as the caller may see it (its modifiedAt included)
        raise ResourceNotFound(f"entity {eid} not found")
    found = _collect(request, tenant, entity, opts)
    if opts.attrs and not found.series and not set(opts.attrs) & set(entity["attrs"]):
        raise ResourceNotFound(f"entity {eid} has none of the attributes asked for")
    content_range = _paginate(request, [found], opts)
    body = _body(found, ctx)
    if (opts.pick or opts.omit) and not body:
        raise ResourceNotFound(f"nothing of entity {eid} is left after pick/omit")
    return _answer(request, body, media, content_range, {})


@endpoint
async def query_temporal(request: Request) -> Response:
    tenant = tenant_of(request, read=True)
    media = response_media(request)
    ctx = resolve_context(request)
    opts = _temporal_options(request, ctx)
    query = entity_query(request, ctx, require_filter=False)
    query.attrs = None  # in the temporal API attrs selects attributes, not entities
    _require_filter(query, opts, flag(request, "local"))
    return _query_answer(request, tenant, ctx, media, query, opts)


@endpoint
async def query_temporal_post(request: Request) -> Response:
    """POST /temporal/entityOperations/query: the Query data type in the body, its
    ``temporalQ`` the time window (clause 5.7.4, 6.24)."""
    tenant = tenant_of(request, read=True)
    media = response_media(request)
    body = await read_body(request)
    if not isinstance(body, dict) or body.get("type") != "Query":
        raise BadRequestData('the body must be a Query object: {"type": "Query", ...}')
    ctx = resolve_context(request, body)
    temporal_q = body.get("temporalQ", {})
    if not isinstance(temporal_q, dict):
        raise BadRequestData("temporalQ must be an object")
    attrs = body.get("attrs")
    if attrs is not None and (
        not isinstance(attrs, list) or not all(isinstance(a, str) for a in attrs)
    ):
        raise BadRequestData("attrs must be a list of attribute names")
    expanded = [expand_name(ctx, a, "attrs: attribute") for a in attrs or []]
    opts = _temporal_options(request, ctx, {k: _text(v) for k, v in temporal_q.items()}, expanded)
    query = query_from_body(request, body, ctx)
    _require_filter(query, opts, flag(request, "local"))
    return _query_answer(request, tenant, ctx, media, query, opts)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _require_filter(query: EntityQuery, opts: TemporalOptions, local: bool) -> None:
    """Clause 5.7.4: a temporal query names a type, attrs, q, geoQ or scopeQ (ids alone
    are not enough), unless it is local."""
    if local or any(
        x is not None for x in (query.types, opts.attrs, query.q, query.geo, query.scope)
    ):
        return
    raise BadRequestData("a temporal query needs at least one of type, attrs, q, geoQ or scopeQ")


def _query_answer(
    request: Request,
    tenant: str,
    ctx: Context,
    media: str,
    query: EntityQuery,
    opts: TemporalOptions,
) -> Response:
    query = restrict_query(query, _action(opts))
    result = hub_of(request).store.query(tenant, query)
    seen = visible_all(result.entities, _action(opts))
    found = [_collect(request, tenant, e, opts) for e in seen]
    # an entity with no instance in the window (or of the attributes asked for) has no
    # temporal evolution to show: it is left out
    found = [f for f in found if any(f.series.values())]
    content_range = _paginate(request, found, opts)
    bodies = [_body(f, ctx) for f in found]
    if opts.pick or opts.omit:
        bodies = [b for b in bodies if b]
    headers = {"NGSILD-Results-Count": str(result.count)} if query.count else {}
    return _answer(request, bodies, media, content_range, headers)


def _temporal_attrs(
    body: dict[str, Any], ctx: Context, where: str
) -> dict[str, list[dict[str, Any]]]:
    """A temporal fragment: each attribute one instance or an array of past instances."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name, value in body.items():
        if name in ("id", "type", "@context", "scope", "createdAt", "modifiedAt"):
            continue
        iri = ctx.expand_term(name)
        items = value if isinstance(value, list) else [value]
        if not items:
            raise BadRequestData(f"{where}: attribute {name!r} has no instances")
        for n, item in enumerate(items):
            for inst in parse_attribute(iri, item, ctx, name=f"{name}[{n}]", where=where):
                if "observedAt" not in inst:
                    raise BadRequestData(
                        f"{where}: attribute {name!r} instance {n} has no observedAt"
                    )
                out.setdefault(iri, []).append(inst)
    if not out:
        raise BadRequestData(f"{where}: no attributes")
    return out


@endpoint
async def create_temporal(request: Request) -> Response:
    """POST /temporal/entities: create an entity, or add to its history (201 or 204)."""
    tenant = tenant_of(request, read=False)
    body = await read_body(request)
    if not isinstance(body, dict):
        raise BadRequestData("a temporal entity must be a JSON object")
    ctx = resolve_context(request, body)
    eid = body.get("id")
    validate_uri(eid if isinstance(eid, str) else "", "entity id")
    if "type" not in body:
        raise BadRequestData("a temporal entity needs a type")
    types = parse_types(body["type"], ctx, f"entity {eid!r}")
    attrs = _temporal_attrs(body, ctx, f"entity {eid!r}")
    scope = parse_scope(body["scope"], f"entity {eid!r}") if "scope" in body else None
    hub = hub_of(request)
    existing = hub.store.get_entity(tenant, eid)
    if existing is not None:  # past instances change no current value: checked here
        check_history(existing, attrs, "write", hide=False)
        attrs = _replace_observed(hub.store, tenant, eid, attrs)
        if not attrs:
            return Response(status_code=204)
    created = hub.entities.add_temporal(tenant, eid, attrs, types=types, scope=scope)
    if created:
        return Response(status_code=201, headers=location("/ngsi-ld/v1/temporal/entities", eid))
    return Response(status_code=204)


def _replace_observed(
    store: Store, tenant: str, eid: str, attrs: dict[str, list[dict[str, Any]]]
) -> dict[str, list[dict[str, Any]]]:
    """Clause 5.6.11 (update): an instance observed at the same time as one in the history
    (same attribute and datasetId) replaces it; the others are left to be added."""
    rows = store.history(tenant, eid, attrs=list(attrs), limit=MAX_HISTORY_ROWS)
    known = {
        (r.attr, r.dataset_id, r.observed_at): r
        for r in rows
        if r.op in ("create", "update") and r.instance_id is not None
    }
    left: dict[str, list[dict[str, Any]]] = {}
    for attr, instances in attrs.items():
        for inst in instances:
            row = known.get((attr, inst.get("datasetId"), inst.get("observedAt")))
            if row is None or row.instance_id is None:
                left.setdefault(attr, []).append(inst)
                continue
            now = now_iso()
            created = row.instance.get("createdAt", now)
            replaced = {**inst, "createdAt": created, "modifiedAt": now}
            store.update_history_instance(tenant, eid, attr, row.instance_id, replaced)
    return left


@endpoint
async def append_temporal_attrs(request: Request) -> Response:
    tenant = tenant_of(request, read=True)
    eid = validate_uri(path_param(request, "entity_id"), "entity id")
    body = await read_body(request)
    if not isinstance(body, dict):
        raise BadRequestData("a temporal fragment must be a JSON object")
    ctx = resolve_context(request, body)
    attrs = _temporal_attrs(body, ctx, f"entity {eid!r}")
    hub = hub_of(request)
    entity = hub.store.get_entity(tenant, eid)
    if entity is None:
        raise ResourceNotFound(f"entity {eid} not found")
    check_history(entity, attrs, "write")  # past instances change no current value
    hub.entities.add_temporal(tenant, eid, attrs, create=False)
    return Response(status_code=204)


@endpoint
async def patch_temporal_instance(request: Request) -> Response:
    tenant = tenant_of(request, read=True)
    eid = validate_uri(path_param(request, "entity_id"), "entity id")
    body = await read_body(request)
    if not isinstance(body, dict):
        raise BadRequestData("an attribute instance must be a JSON object")
    ctx = resolve_context(request, body)
    attr = ctx.expand_term(check_name(path_param(request, "attr"), "path"))
    instance_id = parse_instance_urn(path_param(request, "instance_id"))
    store = hub_of(request).store
    check_history(_edited(store, tenant, eid, attr), [attr], "write")
    current = next(
        (
            r
            for r in store.history(tenant, eid, attr, limit=MAX_HISTORY_ROWS)
            if r.instance_id == instance_id
        ),
        None,
    )
    if current is None:
        raise ResourceNotFound(
            f"no instance {instance_id} of {path_param(request, 'attr')} in {eid}"
        )
    members = parse_partial_instance(body, ctx)
    merged = {**current.instance, **members, "modifiedAt": now_iso()}
    validate_stored_instance(merged, name=path_param(request, "attr"))
    store.update_history_instance(tenant, eid, attr, instance_id, merged)
    return Response(status_code=204)


@endpoint
async def delete_temporal(request: Request) -> Response:
    tenant = tenant_of(request, read=True)
    eid = validate_uri(path_param(request, "entity_id"), "entity id")
    hub = hub_of(request)
    entity = hub.store.get_entity(tenant, eid)
    if entity is None:
        raise ResourceNotFound(f"entity {eid} not found")
    check_history(entity, entity["attrs"], "delete")  # the history of every attribute goes
    hub.entities.delete(tenant, eid)
    hub.store.delete_history(tenant, eid)
    return Response(status_code=204)


@endpoint
async def delete_temporal_attr(request: Request) -> Response:
    tenant = tenant_of(request, read=True)
    eid = validate_uri(path_param(request, "entity_id"), "entity id")
    ctx = resolve_context(request)
    attr = ctx.expand_term(check_name(path_param(request, "attr"), "path"))
    raw_instance = request.path_params.get("instance_id")
    instance_id = parse_instance_urn(path_param(request, "instance_id")) if raw_instance else None
    store = hub_of(request).store
    check_history(_edited(store, tenant, eid, attr), [attr], "delete")
    if instance_id is None and not flag(request, "deleteAll"):
        deleted = _delete_dataset(store, tenant, eid, attr, request.query_params.get("datasetId"))
    else:
        deleted = store.delete_history(tenant, eid, attr, instance_id)
    if deleted == 0:
        raise ResourceNotFound(f"no history of {path_param(request, 'attr')} in {eid} to delete")
    return Response(status_code=204)


def _delete_dataset(store: Store, tenant: str, eid: str, attr: str, dataset_id: str | None) -> int:
    """Clause 5.6.13: without deleteAll only the history of one instance of the attribute
    goes, the default one (no datasetId) or the one ``datasetId`` names."""
    if dataset_id is not None:
        validate_uri(dataset_id, "datasetId")
    rows = store.history(tenant, eid, attr, limit=MAX_HISTORY_ROWS)
    ids = [r.instance_id for r in rows if r.dataset_id == dataset_id and r.instance_id is not None]
    return sum(store.delete_history(tenant, eid, attr, i) for i in ids)


def _edited(store: Store, tenant: str, eid: str, attr: str) -> dict[str, Any]:
    """The entity whose history of ``attr`` is edited, for the caller's rules: as stored,
    or as its history names it when only that is left; 404 when neither exists."""
    entity = store.get_entity(tenant, eid) or history_entity(
        eid, store.history(tenant, eid, attr, limit=100)
    )
    if entity is None:
        raise ResourceNotFound(f"entity {eid} not found")
    return entity
