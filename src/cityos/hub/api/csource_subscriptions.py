"""/csourceSubscriptions: subscriptions to context source registrations (clause 5.11);
what they match and how they are told is in :mod:`cityos.hub.csource_notify`."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cityos.hub import csource_notify
from cityos.hub.api.common import (
    JSONLD,
    context_link_headers,
    context_url_for_response,
    endpoint,
    hub_of,
    int_param,
    json_response,
    location,
    path_param,
    read_body,
    resolve_context,
    response_media,
    tenant_of,
    validate_uri,
)
from cityos.hub.api.contexts import name_compound_context
from cityos.hub.errors import AlreadyExists, BadRequestData, NonexistentTenant, ResourceNotFound
from cityos.hub.implicit_contexts import IMPLICIT_KEY
from cityos.hub.ldcontext import Context
from cityos.hub.model import now_iso, to_hub_time
from cityos.hub.subscriptions import STATUS_FIELDS, parse_subscription

BASE = "/ngsi-ld/v1/csourceSubscriptions"
KIND = csource_notify.KIND
SYSTEM = ("createdAt", "modifiedAt")


def _parse(body: Any, ctx: Context, request: Request, sub_id: str | None = None) -> dict[str, Any]:
    """The stored form: an entity subscription's checks, csf and temporalQ, delivery
    status under ``notification`` (clause 5.2.14), no entity-outbox counters."""
    allow_private = hub_of(request).settings.notify_private_allowed()
    doc = parse_subscription(body, ctx, sub_id=sub_id, allow_private=allow_private)
    csource_notify.check_extras(body)
    for key in ("timesSent", "timesFailed", "notificationTrigger"):  # not of csource ones
        if key not in body:
            doc.pop(key, None)
    # isActive as the client wrote it (absent means true), as for entity subscriptions
    doc["status"] = "active" if doc.get("isActive", True) else "paused"
    if "expiresAt" in body:
        try:
            expires = to_hub_time(str(body["expiresAt"]))
        except ValueError:
            raise BadRequestData("expiresAt is not an ISO 8601 date-time") from None
        if expires <= now_iso():
            doc["status"] = "expired"
    doc["@context"] = ctx.source
    doc["modifiedAt"] = now_iso()
    return doc


def _read_tenant(request: Request) -> str:
    tenant = tenant_of(request, read=False)
    hub = hub_of(request)
    if tenant and not hub.store.tenant_exists(tenant) and not hub.store.list_docs(KIND, tenant):
        raise NonexistentTenant(f"tenant {tenant!r} does not exist")
    return tenant


def _out(request: Request, doc: dict[str, Any], media: str) -> dict[str, Any]:
    sys_attrs = "sysAttrs" in request.query_params.get("options", "").split(",")
    hidden = ("@context", IMPLICIT_KEY)
    body = {k: v for k, v in doc.items() if k not in hidden and (sys_attrs or k not in SYSTEM)}
    if "jsonldContext" not in body and doc.get(IMPLICIT_KEY):
        body["jsonldContext"] = doc[IMPLICIT_KEY]
    status = csource_notify.delivery_status(hub_of(request), _tenant_now(request), doc["id"])
    body["notification"] = {**body["notification"], **status}
    if media == JSONLD:
        body["@context"] = doc.get("@context") or context_url_for_response(request)
    return body


def _tenant_now(request: Request) -> str:
    return tenant_of(request, read=False)


def _get(request: Request, tenant: str) -> dict[str, Any]:
    sid = validate_uri(path_param(request, "subscription_id"), "subscription id")
    doc = hub_of(request).store.get_doc(KIND, tenant, sid)
    if doc is None:
        raise ResourceNotFound(f"csource subscription {sid} not found")
    return doc


@endpoint
async def create_csource_subscription(request: Request) -> Response:
    tenant = tenant_of(request, read=False)
    body = await read_body(request)
    ctx = resolve_context(request, body)
    doc = _parse(body, ctx, request)
    hub = hub_of(request)
    if hub.store.get_doc(KIND, tenant, doc["id"]) is not None:
        raise AlreadyExists(f"csource subscription {doc['id']} already exists")
    name_compound_context(request, doc)
    hub.store.put_doc(KIND, tenant, doc["id"], doc)
    csource_notify.notify_initial(hub, tenant, doc)
    csource_notify.start_periodic(hub, tenant, doc)
    return Response(status_code=201, headers=location(BASE, doc["id"]))


@endpoint
async def list_csource_subscriptions(request: Request) -> Response:
    media = response_media(request)
    tenant = _read_tenant(request)
    hub = hub_of(request)
    limit = int_param(request, "limit", hub.settings.default_page_size)
    offset = int_param(request, "offset", 0)
    if limit > hub.settings.max_page_size:
        raise BadRequestData(f"limit must be at most {hub.settings.max_page_size}")
    subs = sorted(hub.store.list_docs(KIND, tenant), key=lambda d: d.get("createdAt", ""))
    page = subs[offset : offset + limit]
    headers = context_link_headers(request, media)
    headers["NGSILD-Results-Count"] = str(len(subs))
    return json_response([_out(request, d, media) for d in page], media_type=media, headers=headers)


@endpoint
async def retrieve_csource_subscription(request: Request) -> Response:
    media = response_media(request)
    tenant = _read_tenant(request)
    doc = _get(request, tenant)
    return json_response(
        _out(request, doc, media), media_type=media, headers=context_link_headers(request, media)
    )


@endpoint
async def update_csource_subscription(request: Request) -> Response:
    tenant = _read_tenant(request)
    current = _get(request, tenant)
    body = await read_body(request)
    if not isinstance(body, dict) or not body:
        raise BadRequestData("a subscription fragment must be a non-empty JSON object")
    if body.get("id", current["id"]) != current["id"]:
        raise BadRequestData("the id of a subscription cannot change")
    hub = hub_of(request)
    ctx = (
        resolve_context(request, body)
        if "@context" in body or request.headers.get("link")
        else hub.contexts.resolve(current.get("@context"))
    )
    internal = ("@context", "modifiedAt", "status", IMPLICIT_KEY)
    merged = {k: v for k, v in current.items() if k not in internal}
    for key, value in body.items():
        if key == "@context" or key in STATUS_FIELDS:
            continue
        if value is None and key not in ("type", "notification"):
            merged.pop(key, None)
        else:
            merged[key] = value
    doc = _parse(merged, ctx, request, sub_id=current["id"])
    doc["createdAt"] = current.get("createdAt", now_iso())
    name_compound_context(request, doc)
    hub.store.put_doc(KIND, tenant, doc["id"], doc)
    csource_notify.notify_initial(hub, tenant, doc)  # what matches it now (clause 5.11.7)
    csource_notify.start_periodic(hub, tenant, doc)
    return Response(status_code=204)


@endpoint
async def delete_csource_subscription(request: Request) -> Response:
    tenant = _read_tenant(request)
    doc = _get(request, tenant)
    csource_notify.forget(hub_of(request), tenant, doc["id"])
    return Response(status_code=204)
