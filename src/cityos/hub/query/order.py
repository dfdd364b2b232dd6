"""``orderBy`` (NGSI-LD v1.9.1 clause 4.23): parse it, and compile it to SQL ``ORDER BY`` keys.

Syntax: criteria separated by ``,``, each ``path`` or ``path;asc`` / ``path;desc``. A path is
an entity member (``id``, ``type``, ``createdAt``, ``modifiedAt``) or an attribute path as in
the q language (``name``, ``name.subProperty``, ``name.observedAt``, ``address[city]``).

Ordering happens in the database so that ``limit``/``offset`` page through one stable order.
An attribute's value is its first instance's ``value`` (``object``, ``vocab`` for the other
attribute types); ascending, numbers sort before strings (descending, the reverse), strings in
code-point order on both engines; entities without the value sort last whatever the direction;
ties keep insertion order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, Literal

from cityos.hub.errors import BadRequestData
from cityos.hub.query.model import ORDER_FIELDS, AttrPath, Exists, OrderKey
from cityos.hub.query.q import MEMBER_SUBS, parse_q

Dialect = Literal["sqlite", "postgresql"]
MAX_KEYS = 16  # hardening: each key is a few SQL expressions per row sorted
_PAYLOADS = ("value", "object", "vocab")


def parse_order_by(text: str) -> tuple[OrderKey, ...]:
    """The criteria of an ``orderBy`` value (terms not yet expanded); BadRequestData if malformed."""
    items = text.split(",")
    if len(items) > MAX_KEYS:
        raise BadRequestData(f"orderBy: at most {MAX_KEYS} criteria")
    return tuple(_parse_item(item.strip()) for item in items)


def _parse_item(item: str) -> OrderKey:
    target, sep, direction = item.partition(";")
    target = target.strip()
    direction = direction.strip()
    if direction not in ("asc", "desc") and (sep or direction):
        raise BadRequestData(f"orderBy: direction must be asc or desc, not {direction[:32]!r}")
    if not target:
        raise BadRequestData("orderBy: an empty criterion")
    desc = direction == "desc"
    if target in ORDER_FIELDS:
        return OrderKey(field=target, descending=desc)
    try:
        parsed = parse_q(target)
    except BadRequestData as exc:
        raise BadRequestData(f"orderBy: {target[:64]!r} is not an attribute path") from exc
    if not isinstance(parsed, Exists):
        raise BadRequestData(f"orderBy: {target[:64]!r} is not an attribute path")
    return OrderKey(path=parsed.path, descending=desc)


def expand_order(keys: tuple[OrderKey, ...], expand: Callable[[str], str]) -> tuple[OrderKey, ...]:
    """The criteria with attribute and sub-attribute terms expanded to IRIs."""

    def one(key: OrderKey) -> OrderKey:
        if key.path is None:
            return key
        p = key.path
        subs = tuple(s if s in MEMBER_SUBS else expand(s) for s in p.sub)
        return replace(key, path=AttrPath(expand(p.attr), subs, p.compound))

    return tuple(one(k) for k in keys)


# ---------------------------------------------------------------------------- SQL


def _steps(key: OrderKey) -> list[list[str | int]] | None:
    """The JSON paths (as key lists from the document root) whose first present one holds
    the key's value; None when the path can never hold one."""
    if key.field is not None:
        if key.field == "type":
            return [["type", 0]]
        return [[key.field]]
    assert key.path is not None
    base: list[str | int] = ["attrs", key.path.attr, 0]
    for n, sub in enumerate(key.path.sub):
        if sub in MEMBER_SUBS:
            if n != len(key.path.sub) - 1 or key.path.compound:
                return None
            return [[*base, sub]]
        base.append(sub)
    payloads = ("value",) if key.path.compound else _PAYLOADS
    return [[*base, payload, *key.path.compound] for payload in payloads]


def _sq_path(steps: list[str | int]) -> str:
    out = "$"
    for s in steps:
        if isinstance(s, int):
            out += f"[{s}]"
        else:
            if '"' in s or "\\" in s:
                raise BadRequestData(f"orderBy: name {s[:64]!r} must not contain '\"' or '\\'")
            out += f'."{s}"'
    return out


def _of_type(only_on: tuple[str, ...], dialect: Dialect, doc: str) -> tuple[str, list[Any]]:
    if dialect == "postgresql":
        return f"COALESCE(({doc} -> 'type') ?| %s::text[], FALSE)", [list(only_on)]
    marks = ",".join("?" * len(only_on))
    sql = f"EXISTS (SELECT 1 FROM json_each({doc}, '$.type') AS ty WHERE ty.value IN ({marks}))"
    return sql, list(only_on)


def _value(key: OrderKey, dialect: Dialect, doc: str) -> tuple[str, list[Any]]:
    """An SQL expression for the key's value: JSON (jsonb) on PostgreSQL, an SQL scalar on
    SQLite, NULL where the entity has none."""
    paths = _steps(key)
    if paths is None or key.only_on == ():
        return "NULL", []
    if dialect == "sqlite":
        parts = [f"json_extract({doc}, ?)" for _ in paths]
        params: list[Any] = [_sq_path(p) for p in paths]
    else:
        parts = [f"({doc} #> %s::text[])" for _ in paths]
        params = [[str(s) for s in p] for p in paths]
    sql = parts[0] if len(parts) == 1 else f"COALESCE({', '.join(parts)})"
    if key.only_on:
        cond, cparams = _of_type(key.only_on, dialect, doc)
        sql, params = f"(CASE WHEN {cond} THEN {sql} END)", [*cparams, *params]
    return sql, params


def compile_order(
    keys: tuple[OrderKey, ...], dialect: Dialect, doc: str, tiebreak: str
) -> tuple[str, list[Any]]:
    """`` ORDER BY …`` (with a leading space) and its parameters; ``tiebreak`` (the insertion
    key column) ends it so equal keys page in a stable order."""
    terms: list[str] = []
    params: list[Any] = []
    for key in keys:
        x, p = _value(key, dialect, doc)
        direction = " DESC" if key.descending else ""
        if dialect == "sqlite":
            missing = f"({x} IS NULL)"
            rank = f"CASE typeof({x}) WHEN 'integer' THEN 0 WHEN 'real' THEN 0 WHEN 'text' THEN 1 ELSE 2 END"
            terms += [missing, f"{rank}{direction}", f"{x}{direction}"]
            params += [*p, *p, *p]
        else:
            missing = f"COALESCE(jsonb_typeof({x}) = 'null', TRUE)"
            rank = f"CASE jsonb_typeof({x}) WHEN 'number' THEN 0 WHEN 'string' THEN 1 ELSE 2 END"
            number = f"(CASE WHEN jsonb_typeof({x}) = 'number' THEN ({x})::numeric END){direction}"
            text = f"(({x}) #>> '{{}}') COLLATE \"C\"{direction}"
            terms += [missing, f"{rank}{direction}", number, text]
            params += [*p, *p, *p, *p, *p]
    terms.append(tiebreak)
    return " ORDER BY " + ", ".join(terms), params
