"""Compile q and scopeQ trees to SQL ``WHERE`` fragments over a stored-form JSON document.

The fragments give exactly the answers of :mod:`cityos.hub.query.evaluate` (property-tested
in ``tests/hub/query/test_sql_equivalence.py``). Every value and every JSON path travels as
a bound parameter; attribute IRIs only ever appear inside JSON-path strings, quoted.

SQLite (TEXT JSON, JSON1): a comparison first looks at the fixed path of the default case —
the first instance's ``value`` (or member / compound key) — with ``json_type``/``json_extract``
and only falls back to ``json_each`` over all instances when that value does not decide the
answer alone (more than one instance, a non-scalar value, another payload key). SQLite
caches the parsed document across the calls of one row, so the fast path costs a few
microseconds. Regex needs :func:`register_sqlite_functions` on the connection.

PostgreSQL (JSONB): one ``jsonb_path_exists`` per comparison with the value passed in
``vars`` (``lax`` mode unwraps array payloads; compound steps are guarded with ``.type()``
so arrays are not unwrapped where the Python semantics do not). Regex uses ``like_regex``
(PostgreSQL's POSIX engine).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from typing import Any, Literal

from cityos.hub.errors import BadRequestData
from cityos.hub.query import regex
from cityos.hub.query.model import (
    And,
    AttrPath,
    Comparison,
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
)
from cityos.hub.query.q import MEMBER_SUBS

Dialect = Literal["sqlite", "postgresql"]
Fragment = tuple[str, list[Any]]

# ---------------------------------------------------------------------------- shared helpers


def _key(name: str) -> str:
    """A JSON-path member step ``."name"``; names with a double quote cannot be addressed."""
    if '"' in name or "\\" in name:
        raise BadRequestData(f"attribute or key name {name!r} must not contain '\"' or '\\'")
    return f'."{name}"'


def _split(path: AttrPath) -> tuple[list[str], str | None] | None:
    """(sub-attribute steps, member name) or None when the path can never match."""
    subs: list[str] = []
    for n, sub in enumerate(path.sub):
        if sub in MEMBER_SUBS:
            if n != len(path.sub) - 1 or path.compound:
                return None
            return subs, sub
        subs.append(sub)
    return subs, None


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "num"
    if isinstance(v, str):
        return "str"
    raise BadRequestData(f"q: cannot compare with {v!r}")


_ORDER_OPS = (">", ">=", "<", "<=")

# A test on one candidate: ("eq", value) / ("ord", op, value) / ("re", pattern) / ("any",)
Test = tuple[Any, ...]


def _positive(cmp: Comparison) -> tuple[Test, bool]:
    """The ANY-test of a comparison and whether the result is negated (``!=``, ``!~=``)."""
    if cmp.op in ("==", "!="):
        return ("eq", cmp.value), cmp.op == "!="
    if cmp.op in ("~=", "!~="):
        return ("re", cmp.value), cmp.op == "!~="
    if cmp.op in _ORDER_OPS:
        return ("ord", cmp.op, cmp.value), False
    raise BadRequestData(f"q: unknown operator {cmp.op!r}")


# ---------------------------------------------------------------------------- SQLite

_SQ_TYPES = {"num": ("integer", "real"), "str": ("text",)}
_SQ_SCALARS = "('integer','real','text','true','false')"
_SQ_VALUE_KEY = (
    "CASE json_extract(i.value, ?) WHEN 'Relationship' THEN 'object' "
    "WHEN 'LanguageProperty' THEN 'languageMap' WHEN 'ListProperty' THEN 'valueList' "
    "WHEN 'ListRelationship' THEN 'objectList' WHEN 'VocabProperty' THEN 'vocab' "
    "WHEN 'JsonProperty' THEN 'json' ELSE 'value' END"
)


def _sq_scalar_test(v: Any, op: str, x: Fragment, t: str | None) -> Fragment | bool:
    """``x op v`` for one scalar; ``t`` is the known json_type of x, or None (use c.type)."""
    k = _kind(v)
    if k == "bool":
        if op != "=":
            return False
        want = "true" if v else "false"
        if t is not None:
            return t == want
        return f"c.type = '{want}'", []
    types = _SQ_TYPES[k]
    if t is not None:
        return (f"{x[0]} {op} ?", [*x[1], v]) if t in types else False
    in_types = ",".join(f"'{s}'" for s in types)
    return f"(c.type IN ({in_types}) AND {x[0]} {op} ?)", [*x[1], v]


def _sq_test(test: Test, x: Fragment, t: str | None) -> Fragment | bool:
    """The candidate test on ``x`` (an SQL expression with its parameters)."""
    kind = test[0]
    if kind == "any":
        return True
    if kind == "re":
        if t is not None:
            return (f"{x[0]} REGEXP ?", [*x[1], test[1]]) if t == "text" else False
        return f"(c.type = 'text' AND {x[0]} REGEXP ?)", [*x[1], test[1]]
    if kind == "ord":
        return _sq_scalar_test(test[2], test[1], x, t)
    v = test[1]
    if isinstance(v, Range):
        lo = _sq_scalar_test(v.low, ">=", x, t)
        hi = _sq_scalar_test(v.high, "<=", x, t)
        return _and(lo, hi, "sqlite")
    if isinstance(v, list):
        return _or([_sq_scalar_test(item, "=", x, t) for item in v], "sqlite")
    return _sq_scalar_test(v, "=", x, t)


def _const(b: bool, dialect: Dialect) -> str:
    if dialect == "sqlite":
        return "1" if b else "0"
    return "TRUE" if b else "FALSE"


def _and(a: Fragment | bool, b: Fragment | bool, dialect: Dialect) -> Fragment | bool:
    if a is False or b is False:
        return False
    if a is True:
        return b
    if b is True:
        return a
    return f"({a[0]} AND {b[0]})", a[1] + b[1]


def _and_all(items: list[Fragment | bool]) -> Fragment | bool:
    """One flat ``(a AND b AND c)``: folding with :func:`_and` nests a parenthesis per term,
    and SQLite's parser overflowed at about 64 terms (a 500 for a long ``q``)."""
    if any(i is False for i in items):
        return False
    frags = [i for i in items if i is not True]
    if not frags:
        return True
    if len(frags) == 1:
        return frags[0]
    return "(" + " AND ".join(f[0] for f in frags) + ")", [p for f in frags for p in f[1]]


def _or(items: list[Fragment | bool], dialect: Dialect) -> Fragment | bool:
    if any(i is True for i in items):
        return True
    frags = [i for i in items if i is not False]
    if not frags:
        return False
    if len(frags) == 1:
        return frags[0]
    return "(" + " OR ".join(f[0] for f in frags) + ")", [p for f in frags for p in f[1]]


def _sq_paths(doc: str, path: AttrPath, subs: list[str], member: str | None) -> dict[str, Any]:
    ap = "$.attrs" + _key(path.attr)
    rel = "$" + "".join(_key(s) for s in subs)
    compound = "".join(_key(k) for k in path.compound)
    if member is not None:
        fast = f"{ap}[0]{rel[1:]}.{member}"
    else:
        fast = f"{ap}[0]{rel[1:]}.value{compound}"
    return {"ap": ap, "rel": rel, "compound": compound, "fast": fast}


def _sq_general(
    doc: str, path: AttrPath, subs: list[str], member: str | None, test: Test
) -> Fragment | bool:
    """EXISTS over all instances and all candidates of each."""
    p = _sq_paths(doc, path, subs, member)
    cond = _sq_test(test, ("c.atom", []), None)
    if cond is False:
        return False
    params: list[Any] = [p["ap"]]
    if member is not None:
        source = "json_each(i.value, ?)"
        params.append(p["rel"] + "." + member)
        keyfilter = "typeof(c.key) <> 'text'"
    else:
        source = f"json_each(i.value, ? || {_SQ_VALUE_KEY} || ?)"
        params += [p["rel"] + ".", p["rel"] + ".type", p["compound"]]
        if path.compound:
            keyfilter = "typeof(c.key) <> 'text'"
        else:
            keyfilter = "(typeof(c.key) <> 'text' OR json_extract(i.value, ?) = 'LanguageProperty')"
    where = f"c.type IN {_SQ_SCALARS} AND {keyfilter}"
    if member is None and not path.compound:
        params.append(p["rel"] + ".type")
    if cond is not True:
        where += f" AND {cond[0]}"
        params += cond[1]
    sql = f"EXISTS (SELECT 1 FROM json_each({doc}, ?) AS i, {source} AS c WHERE {where})"
    return sql, params


def _sq_any(
    doc: str, path: AttrPath, subs: list[str], member: str | None, test: Test
) -> Fragment | bool:
    """Some candidate passes ``test``: the first instance decides when it is the only one
    and holds a scalar at the fixed path; otherwise (NULL) the general EXISTS runs."""
    p = _sq_paths(doc, path, subs, member)
    general = _sq_general(doc, path, subs, member, test)
    if general is False:
        return False
    x: Fragment = (f"json_extract({doc}, ?)", [p["fast"]])
    single = f"json_array_length({doc}, ?) = 1"
    whens: list[str] = []
    params: list[Any] = [p["fast"]]
    for t in ("integer", "real", "text", "true", "false"):
        cond = _sq_test(test, x, t)
        if cond is True:
            whens.append(f"WHEN '{t}' THEN 1")
        elif cond is False:
            whens.append(f"WHEN '{t}' THEN CASE WHEN {single} THEN 0 END")
            params.append(p["ap"])
        else:
            whens.append(f"WHEN '{t}' THEN CASE WHEN {cond[0]} THEN 1 WHEN {single} THEN 0 END")
            params += [*cond[1], p["ap"]]
    sql = f"COALESCE(CASE json_type({doc}, ?) {' '.join(whens)} END, {general[0]})"
    return sql, params + general[1]


def _sq_exists(doc: str, path: AttrPath, subs: list[str], member: str | None) -> Fragment:
    p = _sq_paths(doc, path, subs, member)
    if not path.sub and not path.compound:
        return f"(json_type({doc}, ?) IS NOT NULL)", [p["ap"]]
    if member is not None:
        target = "?"
        tparams: list[Any] = [p["rel"] + "." + member]
        fast = p["fast"]
    elif path.compound:
        target = f"? || {_SQ_VALUE_KEY} || ?"
        tparams = [p["rel"] + ".", p["rel"] + ".type", p["compound"]]
        fast = p["fast"]
    else:
        target = "?"
        tparams = [p["rel"]]
        fast = p["ap"] + "[0]" + p["rel"][1:]
    sql = (
        f"(json_type({doc}, ?) IS NOT NULL OR (COALESCE(json_array_length({doc}, ?), 0) > 1 AND "
        f"EXISTS (SELECT 1 FROM json_each({doc}, ?) AS i WHERE json_type(i.value, {target}) IS NOT NULL)))"
    )
    return sql, [fast, p["ap"], p["ap"], *tparams]


# ---------------------------------------------------------------------------- PostgreSQL

_PG_PAYLOADS = ("value", "object", "valueList", "objectList", "vocab", "json")
_PG_COMPOUND_PAYLOADS = ("value", "json", "languageMap")


def _jp_string(s: str) -> str:
    """A jsonpath string literal (JSON escapes are valid jsonpath escapes)."""
    return json.dumps(s, ensure_ascii=True)


def _pg_cond(test: Test, vars_: dict[str, Any]) -> str:
    """A jsonpath filter predicate on ``@`` for one candidate."""

    def var(v: Any) -> str:
        _kind(v)
        name = f"v{len(vars_)}"
        vars_[name] = v
        return "$" + name

    kind = test[0]
    if kind == "any":
        return '(@.type() == "number" || @.type() == "string" || @.type() == "boolean")'
    if kind == "re":
        return f"(@ like_regex {_jp_string(test[1])})"
    if kind == "ord":
        return f"(@ {test[1]} {var(test[2])})"
    v = test[1]
    if isinstance(v, Range):
        return f"(@ >= {var(v.low)} && @ <= {var(v.high)})"
    if isinstance(v, list):
        return "(" + " || ".join(f"@ == {var(item)}" for item in v) + ")"
    return f"(@ == {var(v)})"


def _pg_compound_guard(payload: str, keys: tuple[str, ...]) -> str:
    """``.type() == "object"`` at each step, so lax mode never unwraps an array on the way."""
    steps = [f"@.{payload}"]
    for k in keys[:-1]:
        steps.append(steps[-1] + _key(k))
    return " && ".join(f'{s}.type() == "object"' for s in steps)


def _pg_jsonpath(
    path: AttrPath, subs: list[str], member: str | None, test: Test | None
) -> tuple[str, dict[str, Any]]:
    """A lax jsonpath that yields an item iff some candidate passes ``test`` (None: exists)."""
    vars_: dict[str, Any] = {}
    base = "lax $.attrs" + _key(path.attr) + "[*]" + "".join(_key(s) for s in subs)
    if member is not None:
        base += "." + member
        if test is None:
            return base, vars_
        return f"{base} ? {_pg_cond(test, vars_)}", vars_
    if path.compound:
        compound = "".join(_key(k) for k in path.compound)
        alts = []
        for payload in _PG_COMPOUND_PAYLOADS:
            target = f"@.{payload}{compound}"
            inner = (
                f"exists({target})"
                if test is None
                else f"exists({target} ? {_pg_cond(test, vars_)})"
            )
            alts.append(f"({_pg_compound_guard(payload, path.compound)} && {inner})")
        return f"{base} ? ({' || '.join(alts)})", vars_
    if test is None:
        return base, vars_
    cond = _pg_cond(test, vars_)
    alts = [f"exists(@.{payload} ? {cond})" for payload in _PG_PAYLOADS]
    alts.append(f'(@.languageMap.type() == "object" && exists(@.languageMap.* ? {cond}))')
    return f"{base} ? ({' || '.join(alts)})", vars_


def _pg_exists_call(doc: str, jsonpath: str, vars_: dict[str, Any]) -> Fragment:
    return f"jsonb_path_exists({doc}, %s::jsonpath, %s::jsonb)", [jsonpath, json.dumps(vars_)]


# ---------------------------------------------------------------------------- q


def _comparison(cmp: Comparison, dialect: Dialect, doc: str) -> Fragment | bool:
    split = _split(cmp.path)
    if split is None:
        return False
    subs, member = split
    test, negated = _positive(cmp)
    if dialect == "sqlite":
        pos = _sq_any(doc, cmp.path, subs, member, test)
        if not negated:
            return pos
        has = _sq_any(doc, cmp.path, subs, member, ("any",))
    else:
        pos = _pg_exists_call(doc, *_pg_jsonpath(cmp.path, subs, member, test))
        if not negated:
            return pos
        has = _pg_exists_call(doc, *_pg_jsonpath(cmp.path, subs, member, ("any",)))
    if pos is False:
        return has
    if has is False:
        return False
    assert has is not True and pos is not True
    return f"({has[0]} AND NOT {pos[0]})", has[1] + pos[1]


def _exists(path: AttrPath, dialect: Dialect, doc: str) -> Fragment | bool:
    split = _split(path)
    if split is None:
        return False
    subs, member = split
    if dialect == "sqlite":
        return _sq_exists(doc, path, subs, member)
    if not path.sub and not path.compound:
        _key(path.attr)
        return f"COALESCE(({doc} -> 'attrs') ? %s, FALSE)", [path.attr]
    return _pg_exists_call(doc, *_pg_jsonpath(path, subs, member, None))


def _of_type(types: tuple[str, ...], dialect: Dialect, doc: str) -> Fragment | bool:
    """The document's ``type`` list holds one of ``types``."""
    if not types:
        return False
    if dialect == "postgresql":
        return f"COALESCE(({doc} -> 'type') ?| %s::text[], FALSE)", [list(types)]
    marks = ",".join("?" * len(types))
    sql = f"EXISTS (SELECT 1 FROM json_each({doc}, '$.type') AS ty WHERE ty.value IN ({marks}))"
    return sql, list(types)


def _compile(expr: QExpr, dialect: Dialect, doc: str) -> Fragment | bool:
    if isinstance(expr, Comparison):
        return _comparison(expr, dialect, doc)
    if isinstance(expr, Exists):
        return _exists(expr.path, dialect, doc)
    if isinstance(expr, Not):
        inner = _compile(expr.expr, dialect, doc)
        if isinstance(inner, bool):
            return not inner
        return f"(NOT {inner[0]})", inner[1]
    if isinstance(expr, And):
        return _and_all([_compile(item, dialect, doc) for item in expr.items])
    if isinstance(expr, Or):
        return _or([_compile(item, dialect, doc) for item in expr.items], dialect)
    if isinstance(expr, OfType):
        return _of_type(expr.types, dialect, doc)
    raise TypeError(f"not a q expression: {expr!r}")


def _check_dialect(dialect: str) -> None:
    if dialect not in ("sqlite", "postgresql"):
        raise ValueError(f"unknown SQL dialect {dialect!r}")


def _finish(frag: Fragment | bool, dialect: Dialect) -> Fragment:
    if isinstance(frag, bool):
        return _const(frag, dialect), []
    return frag


def compile_q(expr: QExpr, dialect: Dialect, doc: str) -> Fragment:
    """SQL boolean expression (never NULL) and its parameters for an expanded q tree.

    ``doc`` is the SQL expression of the stored-form document column (TEXT JSON on SQLite,
    JSONB on PostgreSQL). Placeholders are ``?`` (sqlite3) or ``%s`` (psycopg 3).
    """
    _check_dialect(dialect)
    return _finish(_compile(expr, dialect, doc), dialect)


# ---------------------------------------------------------------------------- scope


def _scope_regex(pattern: str) -> str:
    """An anchored regex (valid in Python and POSIX ARE) for a pattern with ``+``/``#``."""
    segs = pattern[1:].split("/")
    tail = ""
    if segs[-1] == "#":
        segs = segs[:-1]
        tail = "(/.*)?"
    body = "".join("/[^/]+" if s == "+" else "/" + re.escape(s) for s in segs)
    return f"^{body}{tail}$"


def _scope_match(pattern: str, dialect: Dialect, doc: str) -> Fragment:
    ph = "?" if dialect == "sqlite" else "%s"
    if dialect == "sqlite":
        head = f"EXISTS (SELECT 1 FROM json_each({doc}, '$.scope') AS s WHERE s.type = 'text' AND "
        col = "s.value"
    else:
        head = (
            "EXISTS (SELECT 1 FROM jsonb_array_elements_text(CASE jsonb_typeof("
            f"{doc} -> 'scope') WHEN 'array' THEN {doc} -> 'scope' END) AS s(v) WHERE "
        )
        col = "s.v"
    if pattern == "/#":
        cond, params = f"substr({col}, 1, 1) = '/'", []
    elif "+" not in pattern.split("/") and pattern.endswith("/#"):
        prefix = pattern[:-1]  # "/a/"
        cond = f"({col} = {ph} OR substr({col}, 1, {ph}) = {ph})"
        params = [prefix[:-1], len(prefix), prefix]
    elif "+" in pattern.split("/") or pattern.endswith("/#"):
        op = "REGEXP" if dialect == "sqlite" else "~"
        cond, params = f"{col} {op} {ph}", [_scope_regex(pattern)]
    else:
        if dialect == "postgresql":
            return f"COALESCE(({doc} -> 'scope') ? %s, FALSE)", [pattern]
        cond, params = f"{col} = ?", [pattern]
    return head + cond + ")", params


def compile_scope(expr: ScopeExpr, dialect: Dialect, doc: str) -> Fragment:
    """SQL for a scopeQ tree over the document's top-level ``scope`` list."""
    _check_dialect(dialect)

    def walk(e: ScopeExpr) -> Fragment | bool:
        if isinstance(e, ScopeMatch):
            return _scope_match(e.pattern, dialect, doc)
        if isinstance(e, ScopeAnd):
            result: Fragment | bool = True
            for item in e.items:
                result = _and(result, walk(item), dialect)
            return result
        if isinstance(e, ScopeOr):
            return _or([walk(i) for i in e.items], dialect)
        raise TypeError(f"not a scope expression: {e!r}")

    return _finish(walk(expr), dialect)


# ---------------------------------------------------------------------------- attrs


def compile_attrs_any(attrs: list[str], dialect: Dialect, doc: str) -> Fragment:
    """The entity has at least one of ``attrs`` (expanded IRIs)."""
    _check_dialect(dialect)
    if not attrs:
        return _const(False, dialect), []
    if dialect == "postgresql":
        return f"COALESCE(({doc} -> 'attrs') ?| %s, FALSE)", [list(attrs)]
    parts = [f"json_type({doc}, ?) IS NOT NULL" for _ in attrs]
    return "(" + " OR ".join(parts) + ")", ["$.attrs" + _key(a) for a in attrs]


# ---------------------------------------------------------------------------- SQLite functions


def _regexp(pattern: Any, value: Any) -> int:
    if not isinstance(pattern, str) or not isinstance(value, str):
        return 0
    return int(regex.search(pattern, value))


def register_sqlite_functions(conn: sqlite3.Connection) -> None:
    """Install ``regexp(pattern, value)`` (``re.search`` on RE2, query/regex.py) used by ``x REGEXP pattern``."""
    conn.create_function("regexp", 2, _regexp, deterministic=True)


# Kept for callers that want the Python regex the SQL uses.
regexp_function: Callable[[Any, Any], int] = _regexp
