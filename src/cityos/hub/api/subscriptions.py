"""/subscriptions: create, list, retrieve, update, delete (clause 5.8)."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cityos.hub.access import (
    OWNER_KEY,
    may_manage_subscription,
    scope_subscription,
    subscription_for_caller,
    subscription_owner,
)
from cityos.hub.api.common import (
    JSON,
    JSONLD,
    MERGE_PATCH,
    body_media,
    context_url_for_response,
    context_value,
    endpoint,
    hub_of,
    int_param,
    is_uri,
    json_response,
    location,
    options_of,
    page_links,
    path_param,
    read_body,
    resolve_context,
    response_media,
    tenant_of,
    validate_uri,
)
from cityos.hub.api.contexts import name_compound_context
from cityos.hub.errors import (
    AlreadyExists,
    BadRequestData,
    NgsiLdError,
    ResourceNotFound,
    UnsupportedMediaType,
)
from cityos.hub.implicit_contexts import IMPLICIT_KEY
from cityos.hub.ldcontext import CORE_CONTEXT_URL, check_context_url, link_header_for
from cityos.hub.subscriptions import (
    NOTIFICATION_STATUS_FIELDS,
    STATUS_FIELDS,
    parse_subscription,
    subscription_status,
)

BASE = "/ngsi-ld/v1/subscriptions"
# a subscription fragment: JSON, JSON-LD, or a JSON merge patch (clause 6.3.4)
_PATCH_MEDIA = (JSON, JSONLD, MERGE_PATCH)


def _in_callers_terms(request: Request, doc: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """The subscription with its type and attribute names in the caller's @context (the
    ``Link`` header, else the core context; clause 5.8.3), and that @context. Written with
    the same @context, or one the hub cannot resolve any more: as stored."""
    mine = doc.get("@context")
    wanted = context_value(request, None)
    one = mine[0] if isinstance(mine, list) and len(mine) == 1 else mine
    if wanted == one or (wanted is None and mine is None):
        return doc, mine
    contexts = hub_of(request).contexts
    try:
        theirs, ours = contexts.resolve(mine), contexts.resolve(wanted)
    except NgsiLdError:
        return doc, mine

    def term(name: str) -> str:
        return ours.compact_iri(theirs.expand_term(name))

    out = dict(doc)
    if isinstance(doc.get("entities"), list):
        out["entities"] = [
            {**e, "type": _TYPE_TOKEN.sub(lambda m: term(m.group(0)), e["type"])}
            if isinstance(e, dict) and isinstance(e.get("type"), str)
            else e
            for e in doc["entities"]
        ]
    if isinstance(doc.get("watchedAttributes"), list):
        out["watchedAttributes"] = [term(a) for a in doc["watchedAttributes"]]
    note = doc.get("notification")
    if isinstance(note, dict) and isinstance(note.get("attributes"), list):
        out["notification"] = {**note, "attributes": [term(a) for a in note["attributes"]]}
    geo = doc.get("geoQ")
    if isinstance(geo, dict) and isinstance(geo.get("geoproperty"), str):
        out["geoQ"] = {**geo, "geoproperty": term(geo["geoproperty"])}
    return out, wanted or CORE_CONTEXT_URL


# the names in a type expression (``A|B``, ``(A;B),C``): everything but its operators
_TYPE_TOKEN = re.compile(r"[^|,;()\s]+")


def _out(
    doc: dict[str, Any], media: str, *, sys_attrs: bool = False, context: Any = None
) -> dict[str, Any]:
    """The subscription as the caller is shown it (no owner record; another's endpoint
    credentials redacted), with its @context where the media type wants it.

    Delivery's counters are kept at the top of the stored document (one cheap update per
    notification) but shown where clause 5.2.14 puts them, under ``notification``, with
    ``notification.status`` ok/failed; the top-level ``status`` is the subscription's own
    (active, paused, expired). ``createdAt``/``modifiedAt`` only with ``options=sysAttrs``."""
    shown = subscription_for_caller(doc)
    hidden = {"@context", IMPLICIT_KEY, *STATUS_FIELDS, *NOTIFICATION_STATUS_FIELDS}
    if not sys_attrs:
        hidden |= {"createdAt", "modifiedAt"}
    body = {k: v for k, v in shown.items() if k not in hidden}
    body["status"] = subscription_status(doc)
    if "jsonldContext" not in body and doc.get(IMPLICIT_KEY):
        body["jsonldContext"] = doc[IMPLICIT_KEY]  # the one URL of a compound @context
    notification = dict(shown.get("notification") or {})
    for key in NOTIFICATION_STATUS_FIELDS:
        if doc.get(key):  # a counter at 0, a date never set: not shown
            notification[key] = doc[key]
    if "lastNotification" in doc:  # ok/failed: how the latest attempt went
        failed = doc.get("lastFailure", "") > doc.get("lastSuccess", "")
        notification["status"] = "failed" if failed else "ok"
    body["notification"] = notification
    if media == JSONLD:
        body["@context"] = context if context is not None else doc.get("@context")
    return body


@endpoint
async def create_subscription(request: Request) -> Response:
    tenant = tenant_of(request, read=False)
    body = _no_owner(await read_body(request))
    ctx = resolve_context(request, body)
    hub = hub_of(request)
    await _check_jsonld_context(request, body)
    doc = scope_subscription(
        parse_subscription(body, ctx, allow_private=hub.settings.notify_private_allowed()), ctx
    )
    if hub.store.get_subscription(tenant, doc["id"]) is not None:
        raise AlreadyExists(f"subscription {doc['id']} already exists")
    owner = subscription_owner()
    if owner is not None:  # kept in the stored document, never rendered
        doc[OWNER_KEY] = owner
    name_compound_context(request, doc)
    hub.store.put_subscription(tenant, doc)
    hub.subscriptions.invalidate()
    return Response(status_code=201, headers=location(BASE, doc["id"]))


@endpoint
async def list_subscriptions(request: Request) -> Response:
    tenant = tenant_of(request, read=True)
    media = response_media(request)
    limit = int_param(request, "limit", hub_of(request).settings.default_page_size)
    offset = int_param(request, "offset", 0)
    sys_attrs = "sysAttrs" in options_of(request)
    subs = [
        doc
        for _, doc in hub_of(request).store.list_subscriptions(tenant)
        if may_manage_subscription(doc)  # another's subscriptions are not listed or counted
    ]
    page = subs[offset : offset + limit]
    headers = {"NGSILD-Results-Count": str(len(subs))}
    links = page_links(request, BASE, offset, limit, len(subs))
    if media != JSONLD:  # the terms' @context (clause 6.3.5), beside the pages
        links.append(link_header_for(context_url_for_response(request)))
    if links:
        headers["Link"] = ", ".join(links)
    shown = [_in_callers_terms(request, d) for d in page]
    return json_response(
        [_out(d, media, sys_attrs=sys_attrs, context=c) for d, c in shown],
        media_type=media,
        headers=headers,
    )


def _get(request: Request, tenant: str) -> dict[str, Any]:
    sid = validate_uri(path_param(request, "subscription_id"), "subscription id")
    doc = hub_of(request).store.get_subscription(tenant, sid)
    if doc is None or not may_manage_subscription(doc):  # another's: as if it did not exist
        raise ResourceNotFound(f"subscription {sid} not found")
    return doc


async def _check_jsonld_context(request: Request, body: Any) -> None:
    """``jsonldContext`` (clause 5.2.12): a URL the hub can resolve now (LdContextNotAvailable,
    503, when it cannot be had; 400 when it is no @context), so notifications never fail on
    it later. Fetched off the event loop."""
    url = body.get("jsonldContext") if isinstance(body, dict) else None
    if not isinstance(url, str) or not is_uri(url):
        return  # absent, or parse_subscription's 400
    contexts = hub_of(request).contexts
    check_context_url(url)
    await contexts.prepare(url)
    contexts.resolve(url)


def _no_owner(body: Any) -> Any:
    """A body may not name the owner (the hub records who made the subscription) nor the
    implicit @context (the hub makes it)."""
    for key in (OWNER_KEY, IMPLICIT_KEY):
        if isinstance(body, dict) and key in body:
            raise BadRequestData(f"{key} is set by the hub, not by a request")
    return body


@endpoint
async def retrieve_subscription(request: Request) -> Response:
    tenant = tenant_of(request, read=True)
    media = response_media(request)
    sys_attrs = "sysAttrs" in options_of(request)
    doc = _get(request, tenant)  # the caller's to see, before anything waits on it
    deliverer = getattr(request.app.state, "deliverer", None)
    if deliverer is not None and await deliverer.settled(tenant, doc["id"]):
        doc = _get(request, tenant)  # a notification was being sent: as it ended
    shown, context = _in_callers_terms(request, doc)
    headers = None
    if media != JSONLD:  # plain JSON: the @context its terms are read with, as a Link
        implicit = shown.get(IMPLICIT_KEY) if context is shown.get("@context") else None
        headers = {"Link": link_header_for(implicit or _link_target(context, request))}
    return json_response(
        _out(shown, media, sys_attrs=sys_attrs, context=context), media_type=media, headers=headers
    )


def _link_target(context: Any, request: Request) -> str:
    """One URL for the subscription's terms: its @context when that is one URL, else the
    request's (a Link header cannot carry an inline or compound @context)."""
    if isinstance(context, list) and len(context) == 1:
        context = context[0]
    return context if isinstance(context, str) else context_url_for_response(request)


@endpoint
async def update_subscription(request: Request) -> Response:
    tenant = tenant_of(request, read=True)
    media = body_media(request)
    if media not in _PATCH_MEDIA:  # 415 before looking the subscription up (clause 6.3.4)
        raise UnsupportedMediaType(
            f"Content-Type {media or '(none)'}: use {' or '.join(_PATCH_MEDIA)}"
        )
    current = _get(request, tenant)
    body = _no_owner(await read_body(request, allow=_PATCH_MEDIA))
    if not isinstance(body, dict):
        raise BadRequestData("a subscription fragment must be a JSON object")
    if body.get("id") not in (None, current["id"]):
        raise BadRequestData("the id of a subscription cannot change")
    hub = hub_of(request)
    ctx = (
        resolve_context(request, body)
        if "@context" in body or request.headers.get("link")
        else hub.contexts.resolve(current.get("@context"))
    )
    internal = ("@context", "modifiedAt", OWNER_KEY, IMPLICIT_KEY)
    merged = {k: v for k, v in current.items() if k not in internal}
    merged.update({k: v for k, v in body.items() if k != "@context" and k not in STATUS_FIELDS})
    if "isActive" in body:
        merged["status"] = "active" if body["isActive"] else "paused"
    kept_expiry = None if "expiresAt" in body else merged.pop("expiresAt", None)
    await _check_jsonld_context(request, body)
    doc = scope_subscription(
        parse_subscription(
            merged, ctx, sub_id=current["id"], allow_private=hub.settings.notify_private_allowed()
        ),
        ctx,
    )
    if kept_expiry is not None:  # only a new expiresAt is judged against the clock
        doc["expiresAt"] = kept_expiry
    for key in NOTIFICATION_STATUS_FIELDS:  # an update does not reset delivery's counters
        if key in current:
            doc[key] = current[key]
    if OWNER_KEY in current:  # an update, even an administrator's, keeps the owner
        doc[OWNER_KEY] = current[OWNER_KEY]
    name_compound_context(request, doc)
    hub.store.put_subscription(tenant, doc)
    hub.subscriptions.invalidate()
    return Response(status_code=204)


@endpoint
async def delete_subscription(request: Request) -> Response:
    tenant = tenant_of(request, read=True)
    doc = _get(request, tenant)
    hub = hub_of(request)
    hub.store.delete_subscription(tenant, doc["id"])
    hub.subscriptions.invalidate()
    return Response(status_code=204)
