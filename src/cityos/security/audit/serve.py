"""Serving the log under ``/audit/…`` (RFC 9162 proofs) and signing a tree head
periodically during the app's lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from cityos.security.audit.errors import AuditError
from cityos.security.audit.keys import _b64, head_json
from cityos.security.audit.log import AuditLog

log = logging.getLogger("cityos.audit")


async def run_signer(log_: AuditLog, interval_s: float) -> None:
    """Sign a tree head now and every ``interval_s`` seconds (when the log grew); for the
    app's lifespan. Logs failures and keeps going."""
    while True:
        try:
            await asyncio.to_thread(log_.sign_head)
        except Exception:
            log.exception("signing an audit tree head failed; retrying in %ss", interval_s)
        await asyncio.sleep(interval_s)


MAX_ENTRIES = 1000  # per /audit/entries page


def routes(audit: AuditLog | None = None) -> list[Any]:
    """``/audit/head``, ``/audit/key``, ``/audit/entries``, ``/audit/proof/inclusion`` and
    ``/audit/proof/consistency`` (see docs/security.md). The log is ``audit``, else the
    app's ``app.state.audit``."""
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from cityos.hub.api.common import endpoint, json_response
    from cityos.hub.errors import BadRequestData, ResourceNotFound

    def log_of(request: Request) -> AuditLog:
        return audit if audit is not None else request.app.state.audit

    def number(request: Request, name: str, default: int | None = None) -> int:
        """A non-negative integer parameter; -1 when absent and ``default`` is -1."""
        raw = request.query_params.get(name)
        if raw is None:
            if default is None:
                raise BadRequestData(f"{name} is required")
            return default
        try:
            value = int(raw)
        except ValueError:
            raise BadRequestData(f"{name} must be an integer, not {raw!r}") from None
        if value < 0:
            raise BadRequestData(f"{name} must not be negative")
        return value

    async def run(fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args)
        except AuditError as exc:
            raise BadRequestData(str(exc)) from exc

    def signed_size(lg: AuditLog) -> int:
        head = lg.latest_head()
        return head.tree_size if head is not None else lg.size()

    @endpoint
    async def get_head(request: Request) -> Response:
        head = await asyncio.to_thread(log_of(request).latest_head)
        if head is None:
            raise ResourceNotFound("the audit log has no signed tree head yet")
        return json_response(head_json(head))

    @endpoint
    async def get_key(request: Request) -> Response:
        key = await run(log_of(request).public_key)
        return json_response({"log_id": key.key_id, "public_key": key.public_pem()})

    @endpoint
    async def get_entries(request: Request) -> Response:
        lg = log_of(request)
        start = number(request, "start")
        end = number(request, "end", start + 100)
        if end < start:
            raise BadRequestData("end must not be before start")
        end = min(end, start + MAX_ENTRIES)  # a shorter page, as CT logs answer
        rows = await run(lg.entries, start, end)
        return json_response(
            {
                "entries": [
                    {
                        "seq": e.seq,
                        "time": e.time,
                        "record": e.record,
                        "leaf_hash": _b64(e.leaf_hash),
                    }
                    for e in rows
                ]
            }
        )

    @endpoint
    async def get_inclusion(request: Request) -> Response:
        lg = log_of(request)
        index = number(request, "index")
        asked = number(request, "size", -1)

        def prove() -> dict[str, Any]:
            size = asked if asked >= 0 else signed_size(lg)
            path = lg.inclusion_proof(index, size)
            leaf = lg.store.leaf_hashes(index, index + 1)
            return {
                "leaf_index": index,
                "tree_size": size,
                "leaf_hash": _b64(leaf[0]) if leaf else None,
                "root_hash": _b64(lg.root(size)),
                "inclusion_path": [_b64(h) for h in path],
            }

        return json_response(await run(prove))

    @endpoint
    async def get_consistency(request: Request) -> Response:
        lg = log_of(request)
        first = number(request, "first")
        asked = number(request, "second", -1)

        def prove() -> dict[str, Any]:
            second = asked if asked >= 0 else signed_size(lg)
            path = lg.consistency_proof(first, second)
            return {"first": first, "second": second, "consistency": [_b64(h) for h in path]}

        return json_response(await run(prove))

    return [
        Route("/audit/head", get_head, methods=["GET"]),
        Route("/audit/key", get_key, methods=["GET"]),
        Route("/audit/entries", get_entries, methods=["GET"]),
        Route("/audit/proof/inclusion", get_inclusion, methods=["GET"]),
        Route("/audit/proof/consistency", get_consistency, methods=["GET"]),
    ]
