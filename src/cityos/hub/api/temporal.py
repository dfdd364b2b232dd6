"""/temporal/entities: the history the hub keeps of every attribute (clause 5.7.3, 5.7.4)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cityos.hub.api.common import (
    csv_param,
    endpoint,
    entity_response,
    hub_of,
    int_param,
    options_of,
    path_param,
    resolve_context,
    response_media,
    tenant_of,
    validate_uri,
)
from cityos.hub.api.params import entity_query
from cityos.hub.errors import BadRequestData, ResourceNotFound
from cityos.hub.ldcontext import Context
from cityos.hub.temporal import (
    AGGREGATIONS,
    TimeWindow,
    parse_duration,
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
    unknown = opts - {"temporalValues", "aggregatedValues", "sysAttrs"}
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


def _render(
    request: Request,
    tenant: str,
    entity: dict[str, Any],
    ctx: Context,
    opts: dict[str, Any],
    attrs: list[str] | None,
) -> dict[str, Any]:
    rows = _rows(request, tenant, entity["id"], attrs, opts["window"])
    types = [ctx.compact_iri(t) for t in entity["type"]]
    return temporal_entity(
        entity["id"], types[0] if len(types) == 1 else types, rows, ctx.compact_iri, **opts
    )


@endpoint
async def retrieve_temporal(request: Request) -> Response:
    tenant = tenant_of(request, read=True)
    media = response_media(request)
    ctx = resolve_context(request)
    eid = validate_uri(path_param(request, "entity_id"), "entity id")
    opts = _temporal_options(request)
    attrs = [ctx.expand_term(a) for a in csv_param(request, "attrs") or []] or None
    entity = hub_of(request).store.get_entity(tenant, eid)
    if entity is None:
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
    result = hub_of(request).store.query(tenant, query)
    body = [_render(request, tenant, e, ctx, opts, attrs) for e in result.entities]
    headers = {"NGSILD-Results-Count": str(result.count)} if query.count else {}
    return entity_response(request, body, media, headers=headers)
