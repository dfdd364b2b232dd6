"""/csourceRegistrations: register, discover, retrieve, update, delete context sources
(clauses 5.9 and 5.10); the model and matching are in :mod:`cityos.hub.csources`."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cityos.hub import csources
from cityos.hub.api.common import (
    JSONLD,
    context_link_headers,
    context_url_for_response,
    endpoint,
    hub_of,
    json_response,
    location,
    page_links,
    path_param,
    read_body,
    resolve_context,
    response_media,
    tenant_of,
    validate_uri,
)
from cityos.hub.api.params import entity_query
from cityos.hub.csource_notify import registration_changed
from cityos.hub.errors import AlreadyExists, BadRequestData, NonexistentTenant, ResourceNotFound
from cityos.hub.ldcontext import Context
from cityos.hub.model import to_hub_time
from cityos.hub.query.q import expand_q, parse_q

BASE = "/ngsi-ld/v1/csourceRegistrations"
TIMERELS = ("before", "after", "between")


def _read_tenant(request: Request) -> str:
    """The tenant of a read: 404 when it holds neither entities nor registrations."""
    tenant = tenant_of(request, read=False)
    hub = hub_of(request)
    if (
        tenant
        and not hub.store.tenant_exists(tenant)
        and not hub.store.list_docs(csources.KIND, tenant)
    ):
        raise NonexistentTenant(f"tenant {tenant!r} does not exist")
    return tenant


def _render(request: Request, doc: dict[str, Any], ctx: Context, media: str) -> dict[str, Any]:
    sys_attrs = "sysAttrs" in request.query_params.get("options", "").split(",")
    body = csources.render_registration(doc, ctx, sys_attrs=sys_attrs)
    if media == JSONLD:
        body["@context"] = context_url_for_response(request)
    return body


def _get(request: Request, tenant: str) -> dict[str, Any]:
    rid = validate_uri(path_param(request, "registration_id"), "registration id")
    doc = hub_of(request).store.get_doc(csources.KIND, tenant, rid)
    if doc is None:
        raise ResourceNotFound(f"context source registration {rid} not found")
    return doc


@endpoint
async def create_registration(request: Request) -> Response:
    tenant = tenant_of(request, read=False)
    body = await read_body(request)
    ctx = resolve_context(request, body)
    doc = csources.parse_registration(body, ctx)
    hub = hub_of(request)
    if hub.store.get_doc(csources.KIND, tenant, doc["id"]) is not None:
        raise AlreadyExists(f"context source registration {doc['id']} already exists")
    doc["@context"] = ctx.source
    hub.store.put_doc(csources.KIND, tenant, doc["id"], doc)
    registration_changed(hub, tenant, None, doc)
    return Response(status_code=201, headers=location(BASE, doc["id"]))


@endpoint
async def retrieve_registration(request: Request) -> Response:
    media = response_media(request)
    tenant = _read_tenant(request)
    ctx = resolve_context(request)
    doc = _get(request, tenant)
    return json_response(
        _render(request, doc, ctx, media),
        media_type=media,
        headers=context_link_headers(request, media),
    )


def _temporal(request: Request) -> csources.TemporalFilter | None:
    p = request.query_params
    timerel = p.get("timerel")
    if timerel is None:
        if p.get("timeAt") is not None:
            raise BadRequestData("timeAt needs timerel")
        return None
    if timerel not in TIMERELS:
        raise BadRequestData(f"timerel must be one of {', '.join(TIMERELS)}")

    def at(name: str) -> str:
        raw = p.get(name)
        if raw is None:
            raise BadRequestData(f"timerel={timerel} needs {name}")
        try:
            return to_hub_time(raw)
        except ValueError:
            raise BadRequestData(f"{name} {raw!r} is not an ISO 8601 date-time") from None

    prop = p.get("timeproperty", "observedAt")
    if prop not in ("observedAt", "createdAt", "modifiedAt"):
        raise BadRequestData("timeproperty must be observedAt, createdAt or modifiedAt")
    end = at("endTimeAt") if timerel == "between" else None
    return csources.TemporalFilter(timerel, at("timeAt"), end, prop)


def registration_filter(request: Request, ctx: Context) -> csources.RegistrationFilter:
    """The discovery query of GET /csourceRegistrations (clause 6.8.3.2), checked."""
    query = entity_query(request, ctx, require_filter=False)
    f = csources.RegistrationFilter(
        types=query.types,
        ids=query.ids,
        id_pattern=query.id_pattern,
        attrs=query.attrs,
        q=query.q,
        geo=query.geo,
        temporal=_temporal(request),
    )
    if (raw := request.query_params.get("csf")) is not None:
        f.csf = expand_q(parse_q(raw), ctx.expand_term)
    if all(
        v is None for v in (f.types, f.ids, f.id_pattern, f.attrs, f.q, f.csf, f.geo, f.temporal)
    ):
        raise BadRequestData(
            "a context source discovery needs at least one of type, id, idPattern, attrs, q,"
            " csf, a geo-query or a temporal query"
        )
    return f


@endpoint
async def query_registrations(request: Request) -> Response:
    media = response_media(request)
    tenant = _read_tenant(request)
    ctx = resolve_context(request)
    f = registration_filter(request, ctx)
    query = entity_query(request, ctx, require_filter=False)
    docs = sorted(
        hub_of(request).store.list_docs(csources.KIND, tenant), key=lambda d: d["createdAt"]
    )
    found = [d for d in docs if csources.matches(d, f)]
    page = found[query.offset : query.offset + query.limit]
    headers = context_link_headers(request, media)
    if query.count:
        headers["NGSILD-Results-Count"] = str(len(found))
    links = page_links(request, BASE, query.offset, query.limit, len(found))
    if links:
        headers["Link"] = ", ".join([*links, *([headers["Link"]] if "Link" in headers else [])])
    return json_response(
        [_render(request, d, ctx, media) for d in page], media_type=media, headers=headers
    )


@endpoint
async def update_registration(request: Request) -> Response:
    tenant = _read_tenant(request)
    current = _get(request, tenant)
    body = await read_body(request)
    hub = hub_of(request)
    ctx = (
        resolve_context(request, body)
        if (isinstance(body, dict) and "@context" in body) or request.headers.get("link")
        else hub.contexts.resolve(current.get("@context"))
    )
    doc = csources.merge_fragment(current, body, ctx)
    doc["@context"] = current.get("@context")
    hub.store.put_doc(csources.KIND, tenant, doc["id"], doc)
    registration_changed(hub, tenant, current, doc)
    return Response(status_code=204)


@endpoint
async def delete_registration(request: Request) -> Response:
    tenant = _read_tenant(request)
    doc = _get(request, tenant)
    hub = hub_of(request)
    hub.store.delete_doc(csources.KIND, tenant, doc["id"])
    registration_changed(hub, tenant, doc, None)
    return Response(status_code=204)
