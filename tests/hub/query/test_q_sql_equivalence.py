"""The SQL compilers give exactly the Python evaluator's answers (SQLite and PostgreSQL).

Random stored-form entities (numbers, strings incl. non-ASCII, booleans, datetimes,
relationships, multi-instances with datasetId, sub-attributes, compound values, language
maps, lists) and random q / scopeQ trees; every query's SQL result set must equal the set
the evaluator selects.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cityos.hub.query.evaluate import match_q, match_scope
from cityos.hub.query.model import (
    And,
    AttrPath,
    Comparison,
    Exists,
    Not,
    Or,
    Range,
    ScopeAnd,
    ScopeMatch,
    ScopeOr,
)
from cityos.hub.query.sql import (
    compile_attrs_any,
    compile_q,
    compile_scope,
    register_sqlite_functions,
)

ATTRS = ["https://ex.org/temp", "https://ex.org/ns#it's", "urn:x:rel"]
SUB = "https://ex.org/sub"
KEYS = ["k", "j"]
DATES = ["2020-01-01T00:00:00.000000Z", "2021-06-01T12:30:00.000000Z"]
STRINGS = ["a", "b", "ab", "Z", "é", "Ω", "urn:x:1", "urn:x:2", *DATES]
NUMBERS = [-3, 0, 2, 2.0, 0.5, 7, -1.5]
REGEXES = ["^a", "b$", "a.b", "[ab]+", "é", "^(a|b)$", "x*", "urn:x:[0-9]", "T12"]

scalars = st.one_of(st.sampled_from(NUMBERS), st.sampled_from(STRINGS), st.booleans())
numbers = st.sampled_from(NUMBERS)
strings = st.sampled_from(STRINGS)

compound = st.recursive(
    scalars | st.lists(scalars, max_size=3),
    lambda inner: st.dictionaries(st.sampled_from(KEYS), inner, max_size=2),
    max_leaves=5,
)
values = scalars | st.lists(scalars, max_size=3) | compound


@st.composite
def instances(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(
            ["Property", "Property", "Relationship", "LanguageProperty", "ListProperty"]
        )
    )
    inst: dict[str, Any] = {"type": kind}
    if kind == "Property":
        inst["value"] = draw(values)
    elif kind == "Relationship":
        objs = st.sampled_from(["urn:x:1", "urn:x:2"])
        inst["object"] = draw(objs | st.lists(objs, min_size=1, max_size=2))
    elif kind == "LanguageProperty":
        inst["languageMap"] = draw(
            st.dictionaries(st.sampled_from(["en", "km"]), strings, min_size=1)
        )
    else:
        inst["valueList"] = draw(st.lists(scalars, max_size=3))
    if draw(st.booleans()):
        inst["observedAt"] = draw(st.sampled_from(DATES))
    if draw(st.booleans()):
        inst["unitCode"] = draw(st.sampled_from(["CEL", "MTR"]))
    if depth == 0 and draw(st.booleans()):
        inst[SUB] = draw(instances(depth=1))
    return inst


@st.composite
def entities(draw: st.DrawFn) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from(ATTRS), unique=True, max_size=3)):
        insts = draw(st.lists(instances(), min_size=1, max_size=3))
        for n, inst in enumerate(insts[1:], start=1):
            inst["datasetId"] = f"urn:ds:{n}"
        if draw(st.booleans()) and len(insts) > 1:
            insts[0]["datasetId"] = "urn:ds:0"
        attrs[name] = insts
    ent: dict[str, Any] = {"id": "urn:e", "type": ["https://ex.org/T"], "attrs": attrs}
    return ent


paths = st.builds(
    AttrPath,
    attr=st.sampled_from(ATTRS),
    sub=st.sampled_from(
        [(), (), (SUB,), ("observedAt",), ("unitCode",), ("datasetId",), (SUB, "observedAt")]
    ),
    compound=st.sampled_from([(), (), ("k",), ("k", "j")]),
)

ranges = st.builds(Range, numbers, numbers) | st.builds(Range, strings, strings)
eq_values = scalars | st.lists(scalars, min_size=2, max_size=3) | ranges
comparisons = st.one_of(
    st.builds(Comparison, paths, st.sampled_from(["==", "!="]), eq_values),
    st.builds(Comparison, paths, st.sampled_from([">", ">=", "<", "<="]), numbers | strings),
    st.builds(Comparison, paths, st.sampled_from(["~=", "!~="]), st.sampled_from(REGEXES)),
)
leaves = comparisons | st.builds(Exists, paths)
q_exprs = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.builds(Not, inner),
        st.builds(lambda xs: And(tuple(xs)), st.lists(inner, min_size=2, max_size=3)),
        st.builds(lambda xs: Or(tuple(xs)), st.lists(inner, min_size=2, max_size=3)),
    ),
    max_leaves=4,
)

scope_patterns = st.sampled_from(["/a", "/a/b", "/a/#", "/a/+/c", "/#", "/b/+", "/a/b/#", "/c"])
scope_exprs = st.recursive(
    st.builds(ScopeMatch, scope_patterns),
    lambda inner: st.one_of(
        st.builds(lambda xs: ScopeAnd(tuple(xs)), st.lists(inner, min_size=2, max_size=2)),
        st.builds(lambda xs: ScopeOr(tuple(xs)), st.lists(inner, min_size=2, max_size=2)),
    ),
    max_leaves=3,
)


# ---------------------------------------------------------------------------- engines


class SqliteTable:
    def __init__(self) -> None:
        self.conn = sqlite3.connect(":memory:")
        register_sqlite_functions(self.conn)
        self.conn.execute("CREATE TABLE e (pk INTEGER PRIMARY KEY, doc TEXT NOT NULL)")

    def load(self, ents: list[dict[str, Any]]) -> None:
        self.conn.execute("DELETE FROM e")
        self.conn.executemany(
            "INSERT INTO e VALUES (?, ?)", [(i, json.dumps(e)) for i, e in enumerate(ents)]
        )

    def select(self, fragment: tuple[str, list[Any]]) -> set[int]:
        sql, params = fragment
        return {r[0] for r in self.conn.execute(f"SELECT pk FROM e WHERE {sql}", params)}


class PostgresTable:
    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute("CREATE TEMP TABLE e (pk INT PRIMARY KEY, doc JSONB NOT NULL)")

    def load(self, ents: list[dict[str, Any]]) -> None:
        self.conn.execute("TRUNCATE e")
        with self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO e VALUES (%s, %s::jsonb)",
                [(i, json.dumps(e)) for i, e in enumerate(ents)],
            )

    def select(self, fragment: tuple[str, list[Any]]) -> set[int]:
        sql, params = fragment
        return {r[0] for r in self.conn.execute(f"SELECT pk FROM e WHERE {sql}", params)}


@pytest.fixture(scope="module")
def sqlite_table() -> SqliteTable:
    return SqliteTable()


@pytest.fixture(scope="module")
def pg_table(postgres_url: str) -> Iterator[PostgresTable]:
    table = PostgresTable(postgres_url)
    yield table
    table.conn.close()


SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def check_q(table: Any, dialect: str, ents: list[dict[str, Any]], exprs: list[Any]) -> None:
    table.load(ents)
    for expr in exprs:
        want = {i for i, e in enumerate(ents) if match_q(e, expr)}
        got = table.select(compile_q(expr, dialect, "doc"))  # type: ignore[arg-type]
        assert got == want, f"{dialect} disagrees with the evaluator on {expr!r}"


def check_scope(table: Any, dialect: str, ents: list[dict[str, Any]], exprs: list[Any]) -> None:
    table.load(ents)
    for expr in exprs:
        want = {i for i, e in enumerate(ents) if match_scope(e, expr)}
        got = table.select(compile_scope(expr, dialect, "doc"))  # type: ignore[arg-type]
        assert got == want, f"{dialect} disagrees with the evaluator on {expr!r}"


def check_attrs(table: Any, dialect: str, ents: list[dict[str, Any]], attrs: list[str]) -> None:
    table.load(ents)
    want = {i for i, e in enumerate(ents) if any(a in e["attrs"] for a in attrs)}
    assert table.select(compile_attrs_any(attrs, dialect, "doc")) == want  # type: ignore[arg-type]


entity_lists = st.lists(entities(), min_size=1, max_size=8)
scoped_lists = st.lists(
    st.builds(
        lambda scope: {"id": "urn:e", "attrs": {}, **({"scope": scope} if scope else {})},
        st.lists(st.sampled_from(["/a", "/a/b", "/a/b/c", "/b/x", "/a/x/c", "/ab"]), max_size=2),
    ),
    min_size=1,
    max_size=8,
)
SCOPE_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
q_lists = st.lists(q_exprs, min_size=1, max_size=4)


@SETTINGS
@given(ents=entity_lists, exprs=q_lists)
def test_sqlite_q_equals_evaluator(sqlite_table: SqliteTable, ents: list, exprs: list) -> None:
    check_q(sqlite_table, "sqlite", ents, exprs)


@SCOPE_SETTINGS
@given(ents=scoped_lists, exprs=st.lists(scope_exprs, min_size=1, max_size=4))
def test_sqlite_scope_equals_evaluator(sqlite_table: SqliteTable, ents: list, exprs: list) -> None:
    check_scope(sqlite_table, "sqlite", ents, exprs)


@SCOPE_SETTINGS
@given(ents=entity_lists, attrs=st.lists(st.sampled_from(ATTRS), max_size=2))
def test_sqlite_attrs_any(sqlite_table: SqliteTable, ents: list, attrs: list) -> None:
    check_attrs(sqlite_table, "sqlite", ents, attrs)


@pytest.mark.postgres
@SETTINGS
@given(ents=entity_lists, exprs=q_lists)
def test_postgres_q_equals_evaluator(pg_table: PostgresTable, ents: list, exprs: list) -> None:
    check_q(pg_table, "postgresql", ents, exprs)


@pytest.mark.postgres
@SCOPE_SETTINGS
@given(ents=scoped_lists, exprs=st.lists(scope_exprs, min_size=1, max_size=4))
def test_postgres_scope_equals_evaluator(pg_table: PostgresTable, ents: list, exprs: list) -> None:
    check_scope(pg_table, "postgresql", ents, exprs)


@pytest.mark.postgres
@SCOPE_SETTINGS
@given(ents=entity_lists, attrs=st.lists(st.sampled_from(ATTRS), max_size=2))
def test_postgres_attrs_any(pg_table: PostgresTable, ents: list, attrs: list) -> None:
    check_attrs(pg_table, "postgresql", ents, attrs)


def test_sql_text_never_contains_attribute_names_or_values() -> None:
    expr = And(
        (
            Comparison(AttrPath("https://ex.org/ns#it's"), "==", "O'Brien; DROP TABLE e"),
            Exists(AttrPath("urn:x:rel", ("https://ex.org/sub",))),
        )
    )
    for dialect in ("sqlite", "postgresql"):
        sql, params = compile_q(expr, dialect, "doc")  # type: ignore[arg-type]
        assert "O'Brien" not in sql and "it's" not in sql and "urn:x:rel" not in sql
        assert any("O'Brien" in json.dumps(p) for p in params)
