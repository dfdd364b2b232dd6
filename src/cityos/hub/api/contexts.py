"""/jsonldContexts: list, serve, host and delete @context documents (clause 5.13)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cityos.hub import implicit_contexts
from cityos.hub.api.common import (
    JSON,
    endpoint,
    flag,
    hub_of,
    json_response,
    path_param,
    read_body,
)
from cityos.hub.errors import BadRequestData, InvalidRequest, ResourceNotFound
from cityos.hub.ldcontext import CORE_CONTEXT_ALIASES, CORE_CONTEXT_URL, core_document
from cityos.hub.model import now_iso
from cityos.hub.store.base import StoredContext

BASE = "/ngsi-ld/v1/jsonldContexts"
CORE_ID = "core"
# the stored kinds as clause 5.13 names them
KINDS = {"hosted": "Hosted", "cached": "Cached", "implicit": "ImplicitlyCreated"}
# the core context is built in: "created" when this process started
_CORE_SINCE = now_iso()


def served_url(request: Request, ctx_id: str) -> str:
    """The URL the hub serves a hosted (or implicitly created) @context under."""
    return str(request.base_url).rstrip("/") + f"{BASE}/{ctx_id}"


def name_compound_context(request: Request, doc: dict[str, Any]) -> None:
    """One URL for a (csource) subscription's compound @context, an implicitly created one
    (clause 5.13), for the Link header of plain-JSON notifications; called once the request
    is sure to be kept."""
    implicit_contexts.name_compound_context(
        hub_of(request).store, doc, lambda ctx_id: served_url(request, ctx_id)
    )


def _is_core(ctx_id: str) -> bool:
    """The core context answers to ``core`` and to each of its published URLs."""
    return ctx_id == CORE_ID or ctx_id in CORE_CONTEXT_ALIASES


def _core_entry() -> dict[str, Any]:
    return {"URL": CORE_CONTEXT_URL, "localId": CORE_ID, "kind": "Cached", "createdAt": _CORE_SINCE}


def _entry(request: Request, c: StoredContext) -> dict[str, Any]:
    """One @context's details (clause 5.2.38): URL, localId, kind, createdAt."""
    kind = KINDS.get(c.kind, "Cached")
    url = c.url if kind == "Cached" else served_url(request, c.id)
    return {"URL": url, "localId": c.id, "kind": kind, "createdAt": c.created_at}


def _reload(request: Request) -> bool:
    raw = request.query_params.get("reload")
    if raw not in (None, "true", "false"):
        raise BadRequestData(f"reload must be true or false, not {raw[:40]!r}")
    return raw == "true"


@endpoint
async def list_contexts(request: Request) -> Response:
    kind = request.query_params.get("kind")
    if kind and kind not in KINDS.values():
        raise BadRequestData(f"kind must be Hosted, Cached or ImplicitlyCreated, not {kind!r}")
    entries = [_core_entry()]
    entries += [_entry(request, c) for c in hub_of(request).store.list_contexts()]
    if kind:
        entries = [e for e in entries if e["kind"] == kind]
    if flag(request, "details"):
        return json_response(entries)
    return json_response([e["URL"] for e in entries])


@endpoint
async def add_context(request: Request) -> Response:
    body = await read_body(request, allow=("application/json", "application/ld+json"))
    if not isinstance(body, dict) or "@context" not in body:
        raise InvalidRequest('the body must be a JSON-LD document: {"@context": ...}')
    hub = hub_of(request)
    # Check it is a processable context before keeping it (remote parts fetched off the
    # event loop: an unreachable one is 503 LdContextNotAvailable, nothing kept).
    await hub.contexts.prepare(body["@context"])
    hub.contexts.resolve(body["@context"])
    ctx_id = uuid.uuid4().hex
    url = served_url(request, ctx_id)
    hub.store.put_context(StoredContext(ctx_id, url, body, "hosted", now_iso()))
    return Response(status_code=201, headers={"Location": f"{BASE}/{ctx_id}"})


@endpoint
async def serve_context(request: Request) -> Response:
    """The document (application/json), or with ``details=true`` what the hub knows of it."""
    ctx_id = path_param(request, "context_id")
    details = flag(request, "details")
    if _is_core(ctx_id):
        return json_response(_core_entry() if details else core_document(), media_type=JSON)
    found = hub_of(request).store.get_context(ctx_id)
    if found is None:
        raise ResourceNotFound(f"no @context with id {ctx_id}")
    return json_response(_entry(request, found) if details else found.body, media_type=JSON)


@endpoint
async def delete_context(request: Request) -> Response:
    """Delete a hosted, cached or implicitly created @context; ``reload=true`` fetches a
    cached one again instead (clause 5.13.5), which only a cached one can be."""
    ctx_id = path_param(request, "context_id")
    reload = _reload(request)
    hub = hub_of(request)
    if _is_core(ctx_id):
        if not reload:
            raise BadRequestData("the core @context cannot be deleted")
        hub.contexts.invalidate()  # built in: reloaded from the hub's own copy
        return Response(status_code=204)
    found = hub.store.get_context(ctx_id)
    if reload:
        if found is None or found.kind != "cached":
            raise BadRequestData(f"reload=true applies to a cached @context only: {ctx_id}")
        await asyncio.to_thread(hub.contexts.reload, found.url)
        return Response(status_code=204)
    if found is None:
        raise ResourceNotFound(f"no @context with id {ctx_id}")
    hub.store.delete_context(found.id)
    hub.contexts.invalidate()
    return Response(status_code=204)
