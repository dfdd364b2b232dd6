"""/entityOperations: batch create, upsert, update, merge, delete and query (clause 5.6.7–5.6.10).

Each entity is checked on its own: one that fails validation is reported in ``errors`` and
never reaches the store, the rest are written in one transaction.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cityos.hub.access import restrict_query, visible_all
from cityos.hub.api.common import (
    GEOJSON,
    _media,
    endpoint,
    entity_response,
    hub_of,
    json_response,
    options_of,
    read_body,
    resolve_context,
    response_media,
    store_call,
    tenant_of,
)
from cityos.hub.api.entities import with_geo_context
from cityos.hub.api.linked import render_joined
from cityos.hub.api.params import (
    MAX_JOIN_LEVEL,
    RenderOptions,
    expand_name,
    render_options,
)
from cityos.hub.api.query_body import query_from_body
from cityos.hub.entities import BatchResult
from cityos.hub.errors import BadRequestData, NgsiLdError
from cityos.hub.federation import include
from cityos.hub.ldcontext import Context
from cityos.hub.representation import (
    parse_attributes,
    parse_entity,
    parse_types,
    render_entity,
    render_geojson_collection,
)
from cityos.hub.representation.join import JOINS
from cityos.hub.representation.names import check_uri


async def _entities_body(request: Request) -> tuple[list[Any], Context | None]:
    body = await read_body(request)
    if not isinstance(body, list):
        raise BadRequestData("a batch body must be a JSON array")
    limit = hub_of(request).settings.max_batch_entities
    if len(body) > limit:
        raise BadRequestData(f"{len(body)} entities is over the batch limit of {limit}")
    if not body:
        raise BadRequestData("the batch is empty")
    ld = _media(request.headers.get("content-type")) == "application/ld+json"
    if ld and request.headers.get("link"):  # clause 6.3.5: one place for the @context
        raise BadRequestData(
            "with application/ld+json the @context goes in the body, not a Link header"
        )
    shared = None if ld else resolve_context(request, None)
    return body, shared


def _context_for(request: Request, item: Any, shared: Context | None) -> Context:
    if shared is not None:
        if isinstance(item, dict) and "@context" in item:  # this entity's error (207)
            raise BadRequestData("an @context in the body needs Content-Type application/ld+json")
        return shared
    if not isinstance(item, dict) or "@context" not in item:
        raise BadRequestData("with application/ld+json every entity needs its own @context")
    return hub_of(request).contexts.resolve(item["@context"])


def _parse_all(
    request: Request, items: list[Any], shared: Context | None, *, partial: bool
) -> tuple[list[dict[str, Any]], list[tuple[str, NgsiLdError]]]:
    good: list[dict[str, Any]] = []
    errors: list[tuple[str, NgsiLdError]] = []
    for n, item in enumerate(items):
        eid = (
            item.get("id")
            if isinstance(item, dict) and isinstance(item.get("id"), str)
            else f"#{n}"
        )
        try:
            if not isinstance(item, dict):
                raise BadRequestData(f"batch item {n} is not a JSON object")
            ctx = _context_for(request, item, shared)
            if partial:
                check_uri(item.get("id"), f"batch item {n}")
                ent: dict[str, Any] = {"id": item["id"], "attrs": parse_attributes(item, ctx)}
                if "type" in item:
                    ent["type"] = parse_types(item["type"], ctx, f"batch item {n}")
            else:
                ent = parse_entity(item, ctx)
            limit = hub_of(request).settings.max_attributes
            if len(ent["attrs"]) > limit:
                raise BadRequestData(f"{len(ent['attrs'])} attributes is over the limit of {limit}")
            good.append(ent)
        except NgsiLdError as err:
            errors.append((eid, err))
    return good, errors


def _result(
    result: BatchResult, errors: list[tuple[str, NgsiLdError]], ok: Response, path: str
) -> Response:
    all_errors = errors + result.errors
    if not all_errors:
        return ok
    return json_response(
        {
            "success": result.success,
            "errors": [{"entityId": eid, "error": err.to_problem(path)} for eid, err in all_errors],
        },
        207,
    )


@endpoint
async def batch_create(request: Request) -> Response:
    tenant = tenant_of(request, read=False)
    items, shared = await _entities_body(request)
    good, errors = _parse_all(request, items, shared, partial=False)
    result = (
        await store_call(request, hub_of(request).entities.batch_create, tenant, good)
        if good
        else BatchResult()
    )
    return _result(result, errors, json_response(result.success, 201), request.url.path)


@endpoint
async def batch_upsert(request: Request) -> Response:
    tenant = tenant_of(request, read=False)
    opts = options_of(request)
    if opts - {"replace", "update"} or opts == {"replace", "update"}:
        raise BadRequestData(f"options must be replace or update, not {','.join(sorted(opts))}")
    items, shared = await _entities_body(request)
    update = "update" in opts
    good, errors = _parse_all(request, items, shared, partial=False)
    svc = hub_of(request).entities
    result = (
        await store_call(request, svc.batch_upsert, tenant, good, replace=not update)
        if good
        else BatchResult()
    )
    ok = json_response(result.created, 201) if result.created else Response(status_code=204)
    return _result(result, errors, ok, request.url.path)


@endpoint
async def batch_update(request: Request) -> Response:
    tenant = tenant_of(request, read=True)
    opts = options_of(request)
    if opts - {"noOverwrite"}:
        raise BadRequestData(f"unknown option(s) {','.join(sorted(opts))}; only noOverwrite")
    items, shared = await _entities_body(request)
    good, errors = _parse_all(request, items, shared, partial=True)
    result = (
        await store_call(
            request,
            hub_of(request).entities.batch_update,
            tenant,
            good,
            no_overwrite="noOverwrite" in opts,
        )
        if good
        else BatchResult()
    )
    return _result(result, errors, Response(status_code=204), request.url.path)


@endpoint
async def batch_merge(request: Request) -> Response:
    tenant = tenant_of(request, read=True)
    items, shared = await _entities_body(request)
    good, errors = _parse_all(request, items, shared, partial=True)
    result = (
        await store_call(request, hub_of(request).entities.batch_merge, tenant, good)
        if good
        else BatchResult()
    )
    return _result(result, errors, Response(status_code=204), request.url.path)


@endpoint
async def batch_delete(request: Request) -> Response:
    tenant = tenant_of(request, read=True)
    body = await read_body(request)
    if not isinstance(body, list) or not body:
        raise BadRequestData("batch delete takes a non-empty JSON array of entity ids")
    good: list[str] = []
    errors: list[tuple[str, NgsiLdError]] = []
    for n, eid in enumerate(body):
        try:
            good.append(check_uri(eid, f"batch item {n}"))
        except NgsiLdError as err:
            errors.append((eid if isinstance(eid, str) else f"#{n}", err))
    result = (
        await store_call(request, hub_of(request).entities.batch_delete, tenant, good)
        if good
        else BatchResult()
    )
    return _result(result, errors, Response(status_code=204), request.url.path)


def _query_join(body: dict[str, Any], opts: RenderOptions) -> None:
    """The Query's own ``join``/``joinLevel`` members (clause 5.2.23), over the URL's."""
    if "join" in body:
        if body["join"] not in (*JOINS, "@none"):
            raise BadRequestData(f"join must be inline, flat or @none, not {body['join']!r}")
        opts.join = None if body["join"] == "@none" else body["join"]
    if "joinLevel" in body:
        level = body["joinLevel"]
        if (
            isinstance(level, bool)
            or not isinstance(level, int)
            or not 1 <= level <= MAX_JOIN_LEVEL
        ):
            raise BadRequestData(f"joinLevel must be an integer from 1 to {MAX_JOIN_LEVEL}")
        opts.join_level = level


@endpoint
async def batch_query(request: Request) -> Response:
    """POST /entityOperations/query: the Query data type in the body (clause 5.2.23)."""
    tenant = tenant_of(request, read=True)
    media = response_media(request, geo=True)
    body = await read_body(request)
    if not isinstance(body, dict) or body.get("type") != "Query":
        raise BadRequestData('the body must be a Query object: {"type": "Query", ...}')
    ctx = resolve_context(request, body)
    query = query_from_body(request, body, ctx)
    if "attrs" in body:  # here they select entities (those with one of them)
        if not isinstance(body["attrs"], list):
            raise BadRequestData("attrs must be an array of attribute names")
        query.attrs = [expand_name(ctx, a, "attrs: attribute") for a in body["attrs"]]
    opts = render_options(request, ctx)
    _query_join(body, opts)
    result = await store_call(request, hub_of(request).store.query, tenant, restrict_query(query))
    headers = {"NGSILD-Results-Count": str(result.count)} if query.count else {}
    found = await include(request, tenant, restrict_query(query), visible_all(result.entities))
    if media == GEOJSON:
        geo = render_geojson_collection(found, ctx, geoproperty=opts.geoproperty, **opts.kwargs())
        return entity_response(request, with_geo_context(request, geo), media, headers=headers)
    if opts.join:
        out = render_joined(request, tenant, found, ctx, opts)
    else:
        out = [render_entity(e, ctx, **opts.kwargs()) for e in found]
    if opts.pick or opts.omit:  # an entity left with no member is not listed
        out = [e for e in out if e]
    return entity_response(request, out, media, headers=headers)
