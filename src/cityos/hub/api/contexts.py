"""/jsonldContexts: list, serve, host and delete @context documents (clause 5.13)."""

from __future__ import annotations

import uuid

from starlette.requests import Request
from starlette.responses import Response

from cityos.hub.api.common import (
    endpoint,
    flag,
    hub_of,
    json_response,
    path_param,
    read_body,
)
from cityos.hub.errors import BadRequestData, ResourceNotFound
from cityos.hub.ldcontext import CORE_CONTEXT_URL, core_document
from cityos.hub.model import now_iso
from cityos.hub.store.base import StoredContext

BASE = "/ngsi-ld/v1/jsonldContexts"


def _served_url(request: Request, ctx_id: str) -> str:
    return str(request.base_url).rstrip("/") + f"{BASE}/{ctx_id}"


@endpoint
async def list_contexts(request: Request) -> Response:
    stored = hub_of(request).store.list_contexts()
    kind = request.query_params.get("kind")
    if kind and kind not in ("Hosted", "Cached", "ImplicitlyCreated"):
        raise BadRequestData(f"kind must be Hosted, Cached or ImplicitlyCreated, not {kind!r}")
    entries = [{"url": CORE_CONTEXT_URL, "id": "core", "kind": "Cached", "createdAt": None}]
    for c in stored:
        k = "Hosted" if c.kind == "hosted" else "Cached"
        url = _served_url(request, c.id) if c.kind == "hosted" else c.url
        entries.append({"url": url, "id": c.id, "kind": k, "createdAt": c.created_at})
    if kind:
        entries = [e for e in entries if e["kind"] == kind]
    if flag(request, "details"):
        return json_response(
            [
                {
                    "URL": e["url"],
                    "localId": e["id"],
                    "kind": e["kind"],
                    "createdAt": e["createdAt"],
                }
                for e in entries
            ]
        )
    return json_response([e["url"] for e in entries])


@endpoint
async def add_context(request: Request) -> Response:
    body = await read_body(request, allow=("application/json", "application/ld+json"))
    if not isinstance(body, dict) or "@context" not in body:
        raise BadRequestData('the body must be a JSON-LD document: {"@context": {...}}')
    hub = hub_of(request)
    # Check it is a processable context before keeping it.
    hub.contexts.resolve(body["@context"])
    ctx_id = uuid.uuid4().hex
    url = _served_url(request, ctx_id)
    hub.store.put_context(StoredContext(ctx_id, url, body, "hosted", now_iso()))
    return Response(status_code=201, headers={"Location": f"{BASE}/{ctx_id}"})


@endpoint
async def serve_context(request: Request) -> Response:
    ctx_id = path_param(request, "context_id")
    if ctx_id == "core":
        return json_response(core_document(), media_type="application/ld+json")
    found = hub_of(request).store.get_context(ctx_id)
    if found is None:
        raise ResourceNotFound(f"no @context with id {ctx_id}")
    return json_response(found.body, media_type="application/ld+json")


@endpoint
async def delete_context(request: Request) -> Response:
    ctx_id = path_param(request, "context_id")
    if ctx_id == "core":
        raise BadRequestData("the core @context cannot be deleted")
    hub = hub_of(request)
    found = hub.store.get_context(ctx_id)
    if found is None:
        raise ResourceNotFound(f"no @context with id {ctx_id}")
    hub.store.delete_context(ctx_id)
    hub.contexts.invalidate()
    return Response(status_code=204)
