"""The ``orderBy`` URL parameter of the entity and temporal queries (v1.9.1 clause 4.23).

Parsed once here for every query route, so each sorts by the same rules
(:mod:`cityos.hub.query.order`), with the caller's ``@context`` expanding attribute terms.
"""

from __future__ import annotations

from starlette.requests import Request

from cityos.hub.ldcontext import Context
from cityos.hub.query.model import OrderKey
from cityos.hub.query.order import expand_order, parse_order_by


def order_param(request: Request, ctx: Context) -> tuple[OrderKey, ...]:
    """The expanded criteria of ``orderBy`` (none: insertion order); 400 if malformed."""
    raw = request.query_params.get("orderBy")
    if raw is None:
        return ()
    return expand_order(parse_order_by(raw), ctx.expand_term)
