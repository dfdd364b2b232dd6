"""Linked entities for the API's retrieve and queries: join with what the caller may see."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request

from cityos.hub.access import restrict_query, visible_all
from cityos.hub.api.common import hub_of
from cityos.hub.api.params import RenderOptions
from cityos.hub.ldcontext import Context
from cityos.hub.model import Entity
from cityos.hub.query.model import EntityQuery
from cityos.hub.representation.join import join_entities


def linked_fetcher(request: Request, tenant: str) -> Callable[[list[str]], dict[str, Entity]]:
    """The entities a join links to, as the caller may see them (missing ones left out)."""

    def fetch(ids: list[str]) -> dict[str, Entity]:
        if not ids:
            return {}
        query = restrict_query(EntityQuery(ids=list(ids), limit=len(ids)))
        found = hub_of(request).store.query(tenant, query).entities
        return {e["id"]: e for e in visible_all(found)}

    return fetch


def render_joined(
    request: Request, tenant: str, entities: list[Entity], ctx: Context, opts: RenderOptions
) -> list[dict[str, Any]]:
    """``entities`` with their linked entities, per ``opts.join`` and ``opts.join_level``."""
    assert opts.join is not None
    return join_entities(
        entities,
        ctx,
        linked_fetcher(request, tenant),
        join=opts.join,
        level=opts.join_level,
        **opts.kwargs(),
    )
