"""/entities and their attributes (ETSI GS CIM 009, clauses 5.6 and 5.7)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cityos.hub.access import restrict_query, visible, visible_all
from cityos.hub.api.common import (
    GEOJSON,
    JSON,
    JSONLD,
    MERGE_PATCH,
    context_url_for_response,
    endpoint,
    entity_response,
    flag,
    hub_of,
    json_response,
    location,
    options_of,
    path_param,
    read_body,
    resolve_context,
    response_media,
    store_call,
    tenant_of,
    validate_uri,
)
from cityos.hub.api.linked import render_joined
from cityos.hub.api.params import entity_query, names_param, render_options
from cityos.hub.entities import UpdateResult
from cityos.hub.errors import BadRequestData, InvalidRequest, ResourceNotFound
from cityos.hub.federation import include, include_one
from cityos.hub.ldcontext import Context
from cityos.hub.representation import (
    parse_attributes,
    parse_entity,
    parse_partial_instance,
    parse_scope,
    parse_types,
    render_entity,
    render_geojson_collection,
    render_geojson_feature,
)

BASE = "/ngsi-ld/v1"
# Entity members that a path's {attr} may name but that are not attributes.
_NOT_ATTRIBUTES = frozenset({"id", "type", "scope", "@context"})


def _entity_id(request: Request) -> str:
    return validate_uri(path_param(request, "entity_id"), "entity id")


def _check_attr_count(request: Request, n: int) -> None:
    limit = hub_of(request).settings.max_attributes
    if n > limit:
        raise BadRequestData(f"{n} attributes is over the limit of {limit} per entity")


def _body_object(body: Any, what: str) -> dict[str, Any]:
    """A body that is not even a JSON object is a malformed request (InvalidRequest)."""
    if not isinstance(body, dict):
        raise InvalidRequest(f"{what} must be a JSON object")
    return body


def _types_and_scope(
    body: dict[str, Any], ctx: Context, eid: str
) -> tuple[list[str] | None, list[str] | None]:
    """The ``type`` and ``scope`` members of an attribute fragment: not attributes, but
    changes to the entity's types (added) and scope (clause 4.18)."""
    types = parse_types(body["type"], ctx, f"entity {eid!r}") if "type" in body else None
    scope = parse_scope(body["scope"], f"entity {eid!r}") if "scope" in body else None
    return types, scope


def update_result_response(result: UpdateResult, ctx: Context) -> Response:
    """204 when everything was updated, else 207 with what was not (clause 5.2.18)."""
    if not result.not_updated:
        return Response(status_code=204)
    body = {
        "updated": [ctx.compact_iri(a) for a in result.updated],
        "notUpdated": [
            {"attributeName": ctx.compact_iri(a), "reason": why} for a, why in result.not_updated
        ],
    }
    return json_response(body, 207)


def with_geo_context(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """A GeoJSON Feature or FeatureCollection with the caller's @context as a member
    (clause 4.5.16): plain GeoJSON readers ignore it, JSON-LD readers need it."""
    return {**body, "@context": context_url_for_response(request)}


@endpoint
async def create_entity(request: Request) -> Response:
    tenant = tenant_of(request, read=False)
    body = _body_object(await read_body(request), "an entity")
    ctx = resolve_context(request, body)
    entity = parse_entity(body, ctx)
    _check_attr_count(request, len(entity["attrs"]))
    await store_call(request, hub_of(request).entities.create, tenant, entity)
    return Response(status_code=201, headers=location(f"{BASE}/entities", entity["id"]))


@endpoint
async def retrieve_entity(request: Request) -> Response:
    tenant = tenant_of(request, read=True)
    media = response_media(request, geo=True)
    ctx = resolve_context(request)
    opts = render_options(request, ctx)
    eid = _entity_id(request)
    local = await store_call(request, hub_of(request).store.get_entity, tenant, eid)
    entity = await include_one(request, tenant, eid, visible(local) if local else None)
    if entity is None:  # not the caller's to see: as if it did not exist
        raise ResourceNotFound(f"entity {eid} not found")
    if opts.attrs is not None and not opts.attrs & set(entity.get("attrs", {})):
        raise ResourceNotFound(f"entity {eid} has none of the attributes asked for")
    if media == GEOJSON:
        feature = render_geojson_feature(entity, ctx, geoproperty=opts.geoproperty, **opts.kwargs())
        return entity_response(request, with_geo_context(request, feature), GEOJSON)
    if opts.join:
        body: Any = render_joined(request, tenant, [entity], ctx, opts)
        shown = body[0]
        if opts.join == "inline" or len(body) == 1:  # flat with nothing linked: the entity
            body = shown
    else:
        body = shown = render_entity(entity, ctx, **opts.kwargs())
    if not shown:  # pick/omit left no member (clause 4.21)
        raise ResourceNotFound(f"entity {eid} has no member left after pick/omit")
    return entity_response(request, body, media)


@endpoint
async def query_entities(request: Request) -> Response:
    tenant = tenant_of(request, read=True)
    media = response_media(request, geo=True)
    ctx = resolve_context(request)
    opts = render_options(request, ctx)
    query = restrict_query(entity_query(request, ctx))
    result = await store_call(request, hub_of(request).store.query, tenant, query)
    found = await include(request, tenant, query, visible_all(result.entities))
    headers = {}
    if query.count:
        headers["NGSILD-Results-Count"] = str(result.count)
    if media == GEOJSON:
        body = render_geojson_collection(found, ctx, geoproperty=opts.geoproperty, **opts.kwargs())
        body = with_geo_context(request, body)
    elif opts.join:
        body = render_joined(request, tenant, found, ctx, opts)
        if opts.pick or opts.omit:  # an entity left with no member is not listed
            body = [e for e in body if e]
    else:
        body = [render_entity(e, ctx, **opts.kwargs()) for e in found]
        if opts.pick or opts.omit:  # an entity left with no member is not listed
            body = [e for e in body if e]
    return entity_response(request, body, media, headers=headers)


@endpoint
async def replace_entity(request: Request) -> Response:
    tenant = tenant_of(request, read=True)
    eid = _entity_id(request)
    body = _body_object(await read_body(request), "an entity")
    body.setdefault("id", eid)
    ctx = resolve_context(request, body)
    entity = parse_entity(body, ctx)
    _check_attr_count(request, len(entity["attrs"]))
    await store_call(request, hub_of(request).entities.replace, tenant, eid, entity)
    return Response(status_code=204)


@endpoint
async def merge_entity(request: Request) -> Response:
    tenant = tenant_of(request, read=True)
    eid = _entity_id(request)
    body = _body_object(
        await read_body(request, allow=(JSON, JSONLD, MERGE_PATCH)), "an entity fragment"
    )
    if body.get("id") not in (None, eid):
        raise BadRequestData(f"body id {body['id']} differs from the URL's {eid}")
    ctx = resolve_context(request, body)
    fragment = {"attrs": parse_attributes(body, ctx)}
    if "type" in body:
        fragment["type"] = parse_types(body["type"], ctx, f"entity {eid!r}")
    if "scope" in body:
        fragment["scope"] = parse_scope(body["scope"], f"entity {eid!r}")
    await store_call(request, hub_of(request).entities.merge, tenant, eid, fragment)
    return Response(status_code=204)


@endpoint
async def delete_entity(request: Request) -> Response:
    tenant = tenant_of(request, read=True)
    await store_call(request, hub_of(request).entities.delete, tenant, _entity_id(request))
    return Response(status_code=204)


@endpoint
async def purge_entities(request: Request) -> Response:
    """DELETE /entities (clause 5.6.21): the entities a query selects deleted, or with
    ``keep``/``drop`` only some of their attributes. Like a query it needs a filter (or
    ``local=true``); it acts only on what the caller may delete."""
    tenant = tenant_of(request, read=True)
    ctx = resolve_context(request)
    keep = names_param(request, "keep", ctx)
    drop = names_param(request, "drop", ctx)
    if keep is not None and drop is not None:
        raise BadRequestData("keep and drop cannot be used together")
    query = entity_query(request, ctx, require_filter=False)
    selectors = (query.types, query.ids, query.id_pattern, query.q, query.geo, query.scope)
    if all(x is None for x in selectors) and not flag(request, "local"):
        raise BadRequestData("a purge needs type, id, idPattern, q, geoQ or scopeQ (or local=true)")
    hub = hub_of(request)
    query.limit, query.offset, query.count = hub.settings.max_page_size, 0, False
    ids: list[str] = []
    while True:  # every match first: deleting while paging would skip rows
        page = hub.store.query(tenant, restrict_query(query, "delete")).entities
        ids += [e["id"] for e in visible_all(page, "delete")]
        if len(page) < query.limit:
            break
        query.offset += query.limit
    for start in range(0, len(ids), query.limit):
        hub.entities.purge(
            tenant,
            ids[start : start + query.limit],
            keep=None if keep is None else set(keep),
            drop=None if drop is None else set(drop),
        )
    return Response(status_code=204)


@endpoint
async def append_attrs(request: Request) -> Response:
    tenant = tenant_of(request, read=True)
    eid = _entity_id(request)
    body = _body_object(await read_body(request), "an attribute fragment")
    ctx = resolve_context(request, body)
    attrs = parse_attributes(body, ctx)
    types, scope = _types_and_scope(body, ctx, eid)
    if not attrs and types is None and scope is None:
        raise BadRequestData("no attributes to append")
    no_overwrite = "noOverwrite" in options_of(request)
    result = await store_call(
        request,
        hub_of(request).entities.append_attrs,
        tenant,
        eid,
        attrs,
        no_overwrite=no_overwrite,
        types=types,
        scope=scope,
    )
    return update_result_response(result, ctx)


@endpoint
async def update_attrs(request: Request) -> Response:
    tenant = tenant_of(request, read=True)
    eid = _entity_id(request)
    body = _body_object(await read_body(request), "an attribute fragment")
    ctx = resolve_context(request, body)
    attrs = parse_attributes(body, ctx)
    types, scope = _types_and_scope(body, ctx, eid)
    if not attrs and types is None and scope is None:
        raise BadRequestData("no attributes to update")
    result = await store_call(
        request,
        hub_of(request).entities.update_attrs,
        tenant,
        eid,
        attrs,
        types=types,
        scope=scope,
        append_missing=True,
    )
    return update_result_response(result, ctx)


@endpoint
async def partial_attr_update(request: Request) -> Response:
    tenant = tenant_of(request, read=True)
    eid = _entity_id(request)
    body = _body_object(
        await read_body(request, allow=(JSON, JSONLD, MERGE_PATCH)), "an attribute fragment"
    )
    ctx = resolve_context(request, body)
    term = path_param(request, "attr")
    attr = ctx.expand_term(term)
    # an application/ld+json body carries its @context (read above), not a sub-attribute
    fragment = {k: v for k, v in body.items() if k != "@context"}
    members = parse_partial_instance(fragment, ctx, name=term)
    await store_call(
        request, hub_of(request).entities.partial_update_attr, tenant, eid, attr, members
    )
    return Response(status_code=204)


@endpoint
async def replace_attr(request: Request) -> Response:
    """PUT /entities/{id}/attrs/{attr} (clause 5.6.19): replace one attribute whole."""
    tenant = tenant_of(request, read=True)
    eid = _entity_id(request)
    body = await read_body(request)
    ctx = resolve_context(request, body)
    term = path_param(request, "attr")
    if term in _NOT_ATTRIBUTES:
        raise BadRequestData(f"{term} is not an attribute: it cannot be replaced here")
    attrs = parse_attributes({term: body}, ctx)
    result = await store_call(request, hub_of(request).entities.update_attrs, tenant, eid, attrs)
    if result.not_updated:
        raise ResourceNotFound(f"entity {eid} has no attribute {term}: {result.not_updated[0][1]}")
    return Response(status_code=204)


@endpoint
async def delete_attr(request: Request) -> Response:
    tenant = tenant_of(request, read=True)
    eid = _entity_id(request)
    ctx = resolve_context(request)
    term = path_param(request, "attr")
    if term == "scope":  # not an attribute, but deletable like one (clause 4.18)
        await store_call(request, hub_of(request).entities.delete_scope, tenant, eid)
        return Response(status_code=204)
    attr = ctx.expand_term(term)
    ds = request.query_params.get("datasetId")
    if ds is not None:
        validate_uri(ds, "datasetId")
    await store_call(
        request,
        hub_of(request).entities.delete_attr,
        tenant,
        eid,
        attr,
        dataset_id=ds,
        delete_all=flag(request, "deleteAll"),
    )
    return Response(status_code=204)
