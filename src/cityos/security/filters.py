"""Filters as if the attributes a caller may not read did not exist, entity by entity.

A filter on an attribute (``q``, ``attrs``, a geo-query's GeoProperty) must not answer
"yes" or "no" about a value the caller may not see. Readability depends on the entity's
types (a role may read ``secret`` of type A and not of type B), so each attribute of a
filter is judged per type:

- readable on every type the caller may query: the filter is left as it is;
- readable on none: it is renamed to an attribute no entity has (``attr==x`` matches
  nothing, ``!attr`` everything);
- readable on some types only: each test of it is guarded by "the entity has one of those
  types" (:class:`OfType`), so on an entity of any other type the test behaves exactly as
  for an absent attribute — ``!attr`` included, since the guard sits inside the negation.

Everything stays one database query, so pages and counts are right. An attribute is
readable on an entity when one of the entity's types makes it readable — the rule
:func:`cityos.security.scope.visible` renders by.
"""

from __future__ import annotations

from dataclasses import replace

from cityos.hub.query.model import (
    And,
    AttrPath,
    Comparison,
    EntityQuery,
    Exists,
    Not,
    OfType,
    Or,
    OrderKey,
    QExpr,
    TypeAnd,
    TypeExpr,
    TypeName,
    TypeOr,
)
from cityos.security.policy import View

HIDDEN = "urn:cityos:hidden-attribute"  # no entity has it: a filter on a hidden attribute
EVERYWHERE = None  # readable_on: readable on every type the caller may query


def readable_on(view: View, attr: str) -> tuple[str, ...] | None:
    """The types on which ``view`` lets ``attr`` be read: None on every queried type, ()
    on none."""
    common = view.attrs.get("*", frozenset())
    if common is None or attr in common:
        return EVERYWHERE
    on = tuple(sorted(t for t, s in view.attrs.items() if t != "*" and (s is None or attr in s)))
    if not view.all_types and view.types <= set(on):  # the query is narrowed to these
        return EVERYWHERE
    return on


def hide_filters(query: EntityQuery, view: View) -> EntityQuery:
    """``query`` with its ``q``, ``attrs`` and geo-query judged per type as above."""
    if view.everything:
        return query
    query = _hide_geo(query, view)
    query = _hide_attrs(query, view)
    if query.q is not None:
        query = replace(query, q=hide_q(query.q, view))
    if query.order:
        query = replace(query, order=tuple(_hide_order(k, view) for k in query.order))
    return query


def _hide_order(key: OrderKey, view: View) -> OrderKey:
    """An orderBy criterion that sorts by an attribute only where the caller may read it
    (elsewhere as if absent: last); an order must not rank by a hidden value. The entity's
    ``modifiedAt`` is left out: it would tell when a hidden attribute last changed."""
    if key.path is None:
        return replace(key, only_on=()) if key.field == "modifiedAt" else key
    on = readable_on(view, key.path.attr)
    return key if on is EVERYWHERE else replace(key, only_on=on)


def hide_q(expr: QExpr, view: View) -> QExpr:
    """A q tree whose every test of an attribute holds only where the caller may read it."""
    if isinstance(expr, Comparison | Exists):
        return _guard(expr, readable_on(view, expr.path.attr))
    if isinstance(expr, Not):
        return Not(hide_q(expr.expr, view))
    if isinstance(expr, And):
        return And(tuple(hide_q(e, view) for e in expr.items))
    if isinstance(expr, Or):
        return Or(tuple(hide_q(e, view) for e in expr.items))
    return expr


def _guard(test: Comparison | Exists, on: tuple[str, ...] | None) -> QExpr:
    if on is EVERYWHERE:
        return test
    if not on:
        return replace(test, path=AttrPath(HIDDEN, test.path.sub, test.path.compound))
    return And((OfType(on), test))


def _hide_attrs(query: EntityQuery, view: View) -> EntityQuery:
    """``attrs`` selects entities having one of them: a hidden one selects nothing."""
    if not query.attrs:
        return query
    places = {a: readable_on(view, a) for a in query.attrs}
    if all(on is EVERYWHERE for on in places.values()):
        return query
    tests = tuple(_guard(Exists(AttrPath(a)), on) for a, on in places.items())
    having: QExpr = tests[0] if len(tests) == 1 else Or(tests)
    q = having if query.q is None else And((query.q, having))
    return replace(query, attrs=None, q=q)


def _hide_geo(query: EntityQuery, view: View) -> EntityQuery:
    """A geo-query needs its GeoProperty: only the types on which it may be read match."""
    if query.geo is None:
        return query
    on = readable_on(view, query.geo.geoproperty)
    if on is EVERYWHERE:
        return query
    allowed: TypeExpr = TypeName(HIDDEN)
    if on:
        allowed = TypeName(on[0]) if len(on) == 1 else TypeOr(tuple(TypeName(t) for t in on))
    types = allowed if query.types is None else TypeAnd((query.types, allowed))
    return replace(query, types=types)
