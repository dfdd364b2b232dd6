"""Evaluate parsed queries over stored-form entities in Python.

This is the reference semantics: the SQL compilers in :mod:`cityos.hub.query.sql` are
property-tested against it, and subscriptions use it directly on one entity.

Semantics of ``q`` (documented choices where the spec leaves room):

* An attribute is a list of instances; a comparison holds if ANY *candidate value* of ANY
  instance satisfies it.
* Candidate values of an instance: the scalar payload (``value`` of a Property/GeoProperty,
  ``object`` of a Relationship, ``valueList``/``objectList``/``vocab``/``json``), or each
  scalar element when the payload is an array, or each scalar value of a LanguageProperty's
  ``languageMap``. Compound (object) payloads yield no candidates: address them with
  ``attr[key]``. Nested arrays are not searched. JSON ``null`` is never a candidate.
* ``attr.observedAt`` (and unitCode, datasetId, createdAt, modifiedAt, objectType) compares
  that member; ``attr.sub`` compares the sub-attribute's candidates; ``attr[a.b]`` walks
  into the (object) payload and takes the candidates found there.
* Kinds: numbers compare with numbers, strings with strings (datetimes are strings),
  booleans only with ``==``/``!=``; a candidate of another kind never satisfies ``==``,
  ``<``, ``~=`` ...
* ``!=`` and ``!~=`` are the negation of ``==``/``~=`` *among entities whose path has at
  least one candidate*: ``a!=5`` holds when ``a`` has a value and none of its candidates
  equals 5 (so a string-valued ``a`` satisfies ``a!=5``); an absent ``a`` never does.
  A value list ``a!=1,2`` means none-of; a range ``a!=1..5`` means no candidate in range.
* ``~=`` is ``re.search`` run on RE2 (query/regex.py: linear time, no back-references or
  look-around). The SQLite store registers the same function; PostgreSQL uses its own
  (POSIX ARE) engine, so only the common subset (literals, ``.``, ``*``,
  ``+``, ``?``, ``^``, ``$``, ``[...]``, ``(a|b)``) is portable.
* Existence (bare ``attr``, ``attr.sub``, ``attr[a.b]``) holds when the member/key is
  present in some instance, whatever its value (even ``null``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cityos.hub.model import VALUE_KEY, Entity
from cityos.hub.query import regex
from cityos.hub.query.geo import geo_match
from cityos.hub.query.model import (
    And,
    AttrPath,
    Comparison,
    EntityQuery,
    Exists,
    Not,
    OfType,
    Or,
    QExpr,
    Range,
    ScopeAnd,
    ScopeExpr,
    ScopeMatch,
    ScopeOr,
    TypeAnd,
    TypeExpr,
    TypeName,
    TypeOr,
)
from cityos.hub.query.q import MEMBER_SUBS

_MISSING = object()


def _kind(v: Any) -> str | None:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "num"
    if isinstance(v, str):
        return "str"
    return None


def payload_key(instance: dict[str, Any]) -> str:
    """The member holding an instance's payload (``value`` for unknown types)."""
    return VALUE_KEY.get(instance.get("type", "Property"), "value")


def _scalars(v: Any) -> Iterator[Any]:
    if isinstance(v, list):
        for item in v:
            if _kind(item) is not None:
                yield item
    elif _kind(v) is not None:
        yield v


def _walk(inst: dict[str, Any], path: AttrPath) -> tuple[Any, str | None]:
    """Follow ``path.sub`` from an instance: (sub-attribute instance, None) or (member value, name).

    Returns (_MISSING, None) when the path does not lead anywhere in this instance. A member
    such as ``observedAt`` must be the last step and cannot carry a compound path.
    """
    node: Any = inst
    for n, sub in enumerate(path.sub):
        if not isinstance(node, dict) or sub not in node:
            return _MISSING, None
        node = node[sub]
        if sub in MEMBER_SUBS:
            if n != len(path.sub) - 1 or path.compound:
                return _MISSING, None
            return node, sub
    if not isinstance(node, dict):
        return _MISSING, None
    return node, None


def _targets_in(node: Any, path: AttrPath) -> Iterator[Any]:
    """The value a compound path reaches inside the payload of a (sub-)attribute instance."""
    value = node.get(payload_key(node), _MISSING)
    for k in path.compound:
        if not isinstance(value, dict) or k not in value:
            return
        value = value[k]
    if value is not _MISSING:
        yield value


def _targets(entity: Entity, path: AttrPath) -> Iterator[tuple[Any, bool]]:
    """Each JSON value the path reaches, with whether it is a languageMap payload."""
    for inst in entity.get("attrs", {}).get(path.attr, ()):
        node, member = _walk(inst, path)
        if node is _MISSING:
            continue
        if member is not None:
            yield node, False
            continue
        is_map = payload_key(node) == "languageMap" and not path.compound
        for value in _targets_in(node, path):
            yield value, is_map


def candidates(entity: Entity, path: AttrPath) -> Iterator[Any]:
    """Every scalar candidate value the path reaches (see the module docstring)."""
    for value, is_language_map in _targets(entity, path):
        if is_language_map and isinstance(value, dict):
            for v in value.values():
                if _kind(v) is not None:
                    yield v
        else:
            yield from _scalars(value)


def path_exists(entity: Entity, path: AttrPath) -> bool:
    """The attribute / sub-attribute / member / compound key is present in some instance."""
    if not path.sub and not path.compound:
        return path.attr in entity.get("attrs", {})
    for inst in entity.get("attrs", {}).get(path.attr, ()):
        node, _member = _walk(inst, path)
        if node is not _MISSING and (
            not path.compound or any(True for _ in _targets_in(node, path))
        ):
            return True
    return False


def _eq(c: Any, v: Any) -> bool:
    if isinstance(v, Range):
        return _in_range(c, v)
    if isinstance(v, list):
        return any(_eq(c, item) for item in v)
    return _kind(c) == _kind(v) and c == v


def _in_range(c: Any, r: Range) -> bool:
    k = _kind(c)
    return k in ("num", "str") and k == _kind(r.low) == _kind(r.high) and r.low <= c <= r.high


def _ordered(c: Any, op: str, v: Any) -> bool:
    k = _kind(c)
    if k not in ("num", "str") or k != _kind(v):
        return False
    if op == ">":
        return c > v
    if op == ">=":
        return c >= v
    if op == "<":
        return c < v
    return c <= v


def _regex(c: Any, pattern: str) -> bool:
    return isinstance(c, str) and regex.search(pattern, c)


def match_comparison(entity: Entity, cmp: Comparison) -> bool:
    """One ``path op value`` term."""
    values = list(candidates(entity, cmp.path))
    op, v = cmp.op, cmp.value
    if op == "==":
        return any(_eq(c, v) for c in values)
    if op == "!=":
        return bool(values) and not any(_eq(c, v) for c in values)
    if op == "~=":
        return any(_regex(c, v) for c in values)
    if op == "!~=":
        return bool(values) and not any(_regex(c, v) for c in values)
    if op in (">", ">=", "<", "<="):
        return any(_ordered(c, op, v) for c in values)
    raise ValueError(f"unknown q operator {op!r}")


def match_q(entity: Entity, expr: QExpr) -> bool:
    """Whether a stored-form entity satisfies a (expanded) q expression."""
    if isinstance(expr, Comparison):
        return match_comparison(entity, expr)
    if isinstance(expr, Exists):
        return path_exists(entity, expr.path)
    if isinstance(expr, Not):
        return not match_q(entity, expr.expr)
    if isinstance(expr, And):
        return all(match_q(entity, e) for e in expr.items)
    if isinstance(expr, Or):
        return any(match_q(entity, e) for e in expr.items)
    if isinstance(expr, OfType):
        types = entity.get("type", ())
        return any(t in expr.types for t in (types if isinstance(types, list) else [types]))
    raise TypeError(f"not a q expression: {expr!r}")


def match_types(entity: Entity, texpr: TypeExpr) -> bool:
    """Whether the entity's (expanded) types satisfy a type expression."""
    if isinstance(texpr, TypeName):
        types = entity.get("type", ())
        return texpr.name in (types if isinstance(types, list) else [types])
    if isinstance(texpr, TypeAnd):
        return all(match_types(entity, t) for t in texpr.items)
    if isinstance(texpr, TypeOr):
        return any(match_types(entity, t) for t in texpr.items)
    raise TypeError(f"not a type expression: {texpr!r}")


def scope_matches(scope: str, pattern: str) -> bool:
    """One scope string against one pattern: exact, ``/a/#`` (a and below), ``+`` one level."""
    if pattern == "/#":
        return scope.startswith("/")
    want = pattern[1:].split("/")
    have = scope[1:].split("/") if scope.startswith("/") else None
    if have is None:
        return False
    if want[-1] == "#":
        want = want[:-1]
        if len(have) < len(want):
            return False
        have = have[: len(want)]
    return len(have) == len(want) and all(w in ("+", h) for w, h in zip(want, have, strict=True))


def match_scope(entity: Entity, sexpr: ScopeExpr) -> bool:
    """Whether some scope of the entity matches each pattern as the expression demands."""
    if isinstance(sexpr, ScopeMatch):
        scopes = entity.get("scope") or []
        if isinstance(scopes, str):
            scopes = [scopes]
        return any(isinstance(s, str) and scope_matches(s, sexpr.pattern) for s in scopes)
    if isinstance(sexpr, ScopeAnd):
        return all(match_scope(entity, s) for s in sexpr.items)
    if isinstance(sexpr, ScopeOr):
        return any(match_scope(entity, s) for s in sexpr.items)
    raise TypeError(f"not a scope expression: {sexpr!r}")


def match_query(entity: Entity, query: EntityQuery) -> bool:
    """Every filter of an :class:`EntityQuery` (paging and count are the caller's)."""
    if query.ids is not None and entity.get("id") not in query.ids:
        return False
    if query.id_pattern is not None and not regex.fullmatch(query.id_pattern, entity.get("id", "")):
        return False
    if query.types is not None and not match_types(entity, query.types):
        return False
    attrs = entity.get("attrs", {})
    if query.attrs and not any(a in attrs for a in query.attrs):
        return False
    if query.q is not None and not match_q(entity, query.q):
        return False
    if query.scope is not None and not match_scope(entity, query.scope):
        return False
    if query.geo is not None:
        instances = attrs.get(query.geo.geoproperty, ())
        if not any(
            isinstance(inst.get("value"), dict) and geo_match(inst["value"], query.geo)
            for inst in instances
        ):
            return False
    return True
