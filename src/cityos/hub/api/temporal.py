"""/temporal/entities: the history the hub keeps of every attribute (clause 5.7.3, 5.7.4)."""

from __future__ import annotations

import math
from dataclasses import replace
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
)
from cityos.hub.api.common import (
    csv_param,
    endpoint,
    entity_response,
    hub_of,
    int_param,
    location,
    options_of,
    path_param,
    read_body,
    resolve_context,
    response_media,
    tenant_of,
    validate_uri,
)
from cityos.hub.api.params import entity_query
from cityos.hub.errors import BadRequestData, ResourceNotFound
from cityos.hub.ldcontext import Context
from cityos.hub.model import now_iso
from cityos.hub.representation import (
    parse_attribute,
    parse_partial_instance,
    parse_types,
    validate_stored_instance,
)
from cityos.hub.store.base import Store
from cityos.hub.temporal import (
    AGGREGATIONS,
    TimeWindow,
    history_entity,
    parse_duration,
    parse_instance_urn,
    parse_window,
    temporal_entity,
)

MAX_HISTORY_ROWS = 100_000  # per entity and request; a larger window needs paging by time


def _temporal_options(request: Request) -> dict[str, Any]:
    p = request.query_params
    window = parse_window(
        p.get("timerel"), p.get("timeAt"), p.get("endTimeAt"), p.get("timeproperty")
    )
    last_n = int_param(request, "lastN", 0, low=1) if p.get("lastN") is not None else None
    opts = options_of(request)
    unknown = opts - {"temporalValues", "aggregatedValues", "sysAttrs", "count"}
    if unknown:
        raise BadRequestData(
            f"unknown option(s) for the temporal API: {', '.join(sorted(unknown))}"
        )
    methods = csv_param(request, "aggrMethods")
    if "aggregatedValues" in opts and not methods:
        raise BadRequestData("options=aggregatedValues needs aggrMethods")
    if methods:
        bad = [m for m in methods if m not in AGGREGATIONS]
        if bad:
            raise BadRequestData(f"unknown aggrMethods {bad}; use {', '.join(AGGREGATIONS)}")
    period = parse_duration(p["aggrPeriodDuration"]) if p.get("aggrPeriodDuration") else None
    return {
        "window": window,
        "last_n": last_n,
        "simplified": "temporalValues" in opts,
        "aggr_methods": methods,
        "aggr_period": period,
    }


def _rows(
    request: Request, tenant: str, entity_id: str, attrs: list[str] | None, window: TimeWindow
):  # type: ignore[no-untyped-def]
    return hub_of(request).store.history(
        tenant,
        entity_id,
        limit=MAX_HISTORY_ROWS,
        attrs=attrs,
        time_property="observedAt" if window.time_property == "observedAt" else "recordedAt",
        after=window.after,
        before=window.before,
    )


def _action(opts: dict[str, Any]) -> str:
    """Aggregates are their own action (a researcher may have them and nothing else)."""
    return "aggregate" if opts.get("aggr_methods") else "read"


def _render(
    request: Request,
    tenant: str,
    entity: dict[str, Any],
    ctx: Context,
    opts: dict[str, Any],
    attrs: list[str] | None,
) -> dict[str, Any]:
    keep = readable_attrs(entity["type"], _action(opts))
    if keep is not None:  # the history of attributes the caller may not read stays out
        attrs = sorted(keep if attrs is None else keep.intersection(attrs))
    if opts["aggr_methods"] and not raw_history_allowed(entity):
        opts = _coarse(opts, hub_of(request).settings.min_aggregation_period_s)
    rows = _rows(request, tenant, entity["id"], attrs, opts["window"]) if attrs != [] else []
    types = [ctx.compact_iri(t) for t in entity["type"]]
    return temporal_entity(
        entity["id"], types[0] if len(types) == 1 else types, rows, ctx.compact_iri, **opts
    )


def _coarse(opts: dict[str, Any], minimum: int) -> dict[str, Any]:
    """Aggregates for a caller that may aggregate but not read: no raw series through a
    small or shifted bucket. The period must be a whole multiple of ``minimum`` seconds
    (403 otherwise, as for lastN), and the buckets lie on that grid from the epoch (the
    window widened to it), so no two requests' buckets differ by less than ``minimum``."""
    if minimum <= 0:  # the minimum turned off
        return opts
    period = opts["aggr_period"]
    step = period.total_seconds() if period else 0.0
    if opts["last_n"] is not None:
        raise Forbidden("lastN is not allowed on aggregates of data this caller may not read")
    if step < minimum or step % minimum:
        raise Forbidden(
            f"aggrPeriodDuration must be a whole multiple of {minimum} s (PT{minimum}S) for "
            "data this caller may aggregate but not read"
        )
    window = opts["window"]
    coarse = replace(
        window,
        after=_on_grid(window.after, step, up=False),
        before=None if window.before is None else _on_grid(window.before, step, up=True),
    )
    return {**opts, "window": coarse, "aggr_period": timedelta(seconds=step)}


def _on_grid(time: str | None, step: float, *, up: bool) -> str:
    """The time rounded to a multiple of ``step`` seconds since the epoch (None: the epoch)."""
    seconds = datetime.fromisoformat(time.replace("Z", "+00:00")).timestamp() if time else 0.0
    n = math.ceil(seconds / step) if up else math.floor(seconds / step)
    return datetime.fromtimestamp(n * step, UTC).isoformat(timespec="microseconds")[:-6] + "Z"


@endpoint
async def retrieve_temporal(request: Request) -> Response:
    tenant = tenant_of(request, read=True)
    media = response_media(request)
    ctx = resolve_context(request)
    eid = validate_uri(path_param(request, "entity_id"), "entity id")
    opts = _temporal_options(request)
    attrs = [ctx.expand_term(a) for a in csv_param(request, "attrs") or []] or None
    entity = hub_of(request).store.get_entity(tenant, eid)
    if entity is None or visible(entity, _action(opts)) is None:
        raise ResourceNotFound(f"entity {eid} not found")
    return entity_response(request, _render(request, tenant, entity, ctx, opts, attrs), media)


@endpoint
async def query_temporal(request: Request) -> Response:
    tenant = tenant_of(request, read=True)
    media = response_media(request)
    ctx = resolve_context(request)
    opts = _temporal_options(request)
    query = entity_query(request, ctx)
    attrs = query.attrs
    query.attrs = None  # in the temporal API attrs selects attributes, not entities
    query = restrict_query(query, _action(opts))
    result = hub_of(request).store.query(tenant, query)
    body = [_render(request, tenant, e, ctx, opts, attrs) for e in result.entities]
    headers = {"NGSILD-Results-Count": str(result.count)} if query.count else {}
    return entity_response(request, body, media, headers=headers)


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
    hub = hub_of(request)
    existing = hub.store.get_entity(tenant, eid)
    if existing is not None:  # past instances change no current value: checked here
        check_history(existing, attrs, "write", hide=False)
    created = hub.entities.add_temporal(tenant, eid, attrs, types=types)
    if created:
        return Response(status_code=201, headers=location("/ngsi-ld/v1/temporal/entities", eid))
    return Response(status_code=204)


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
    attr = ctx.expand_term(path_param(request, "attr"))
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
    attr = ctx.expand_term(path_param(request, "attr"))
    raw_instance = request.path_params.get("instance_id")
    instance_id = parse_instance_urn(path_param(request, "instance_id")) if raw_instance else None
    store = hub_of(request).store
    check_history(_edited(store, tenant, eid, attr), [attr], "delete")
    if store.delete_history(tenant, eid, attr, instance_id) == 0:
        raise ResourceNotFound(f"no history of {path_param(request, 'attr')} in {eid} to delete")
    return Response(status_code=204)


def _edited(store: Store, tenant: str, eid: str, attr: str) -> dict[str, Any]:
    """The entity whose history of ``attr`` is edited, for the caller's rules: as stored,
    or as its history names it when only that is left; 404 when neither exists."""
    entity = store.get_entity(tenant, eid) or history_entity(
        eid, store.history(tenant, eid, attr, limit=100)
    )
    if entity is None:
        raise ResourceNotFound(f"entity {eid} not found")
    return entity
