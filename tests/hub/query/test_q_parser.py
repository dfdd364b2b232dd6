"""The q, type and scopeQ parsers: the trees they build and the errors they give."""

from __future__ import annotations

import pytest

from cityos.hub.errors import BadRequestData, TooComplexQuery
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
    TypeAnd,
    TypeName,
    TypeOr,
)
from cityos.hub.query.q import expand_q, expand_types, parse_q, parse_scope_q, parse_type_expr


def cmp(attr: str, op: str, value: object, sub: tuple = (), compound: tuple = ()) -> Comparison:
    return Comparison(AttrPath(attr, sub, compound), op, value)


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("temperature>20", cmp("temperature", ">", 20)),
        ("temperature>=20.5", cmp("temperature", ">=", 20.5)),
        ("a<-3", cmp("a", "<", -3)),
        ("a<=1e3", cmp("a", "<=", 1000.0)),
        ("a!=1", cmp("a", "!=", 1)),
        ('name=="Central Market"', cmp("name", "==", "Central Market")),
        ('name=="say \\"hi\\" \\u00e9"', cmp("name", "==", 'say "hi" é')),
        ("open==true", cmp("open", "==", True)),
        ("open!=false", cmp("open", "!=", False)),
        ("a==1,2,3", cmp("a", "==", [1, 2, 3])),
        ('a=="x","y"', cmp("a", "==", ["x", "y"])),
        ("a==1..5", cmp("a", "==", Range(1, 5))),
        ("a!=1.5..2.5", cmp("a", "!=", Range(1.5, 2.5))),
        ('a=="a".."m"', cmp("a", "==", Range("a", "m"))),
        ("d>2024-01-02", cmp("d", ">", "2024-01-02")),
        ("t<12:30:00", cmp("t", "<", "12:30:00")),
        (
            "a.observedAt>=2020-01-01T00:00:00Z",
            cmp("a", ">=", "2020-01-01T00:00:00.000000Z", sub=("observedAt",)),
        ),
        (
            "a.observedAt<2020-01-01T07:00:00+07:00",
            cmp("a", "<", "2020-01-01T00:00:00.000000Z", sub=("observedAt",)),
        ),
        (
            "a==2020-01-01T00:00:00Z..2020-02-01T00:00:00.5Z",
            cmp("a", "==", Range("2020-01-01T00:00:00.000000Z", "2020-02-01T00:00:00.500000Z")),
        ),
        ("owner==urn:ngsi-ld:Person:p1", cmp("owner", "==", "urn:ngsi-ld:Person:p1")),
        ("ref==https://ex.org/a,urn:x:1", cmp("ref", "==", ["https://ex.org/a", "urn:x:1"])),
        ("name~=^Cen.*t$", cmp("name", "~=", "^Cen.*t$")),
        ("name!~=(a|b)x", cmp("name", "!~=", "(a|b)x")),
        ('name~="a;b|c"', cmp("name", "~=", "a;b|c")),
        ('temp.unitCode=="CEL"', cmp("temp", "==", "CEL", sub=("unitCode",))),
        ("temp.accuracy.value>1", cmp("temp", ">", 1, sub=("accuracy", "value"))),
        ('address[city]=="PP"', cmp("address", "==", "PP", compound=("city",))),
        ("address[a.b]==1", cmp("address", "==", 1, compound=("a", "b"))),
        ("address[a][b]==1", cmp("address", "==", 1, compound=("a", "b"))),
        ("x.sub[a.b]==1", cmp("x", "==", 1, sub=("sub",), compound=("a", "b"))),
        ('schema:name=="x"', cmp("schema:name", "==", "x")),
        (
            "https://ex.org/v1.2/temp.observedAt>2020-01-01",
            cmp("https://ex.org/v1.2/temp", ">", "2020-01-01", sub=("observedAt",)),
        ),
        ("https://ex.org==1", cmp("https://ex.org", "==", 1)),
        ("https://ex.org/ns#temp>1", cmp("https://ex.org/ns#temp", ">", 1)),
        ("speed", Exists(AttrPath("speed"))),
        ("!speed", Not(Exists(AttrPath("speed")))),
        ("speed.observedAt", Exists(AttrPath("speed", ("observedAt",)))),
    ],
)
def test_parse_terms(text: str, tree: object) -> None:
    assert parse_q(text) == tree


def test_and_binds_tighter_than_or() -> None:
    a, b, c = (Exists(AttrPath(n)) for n in "abc")
    assert parse_q("a;b|c") == Or((And((a, b)), c))
    assert parse_q("a|b;c") == Or((a, And((b, c))))
    assert parse_q("(a|b);c") == And((Or((a, b)), c))
    assert parse_q("((a))") == a
    assert parse_q("a==1;(b>2|!c)") == And((cmp("a", "==", 1), Or((cmp("b", ">", 2), Not(c)))))


@pytest.mark.parametrize(
    ("text", "position", "expected"),
    [
        ("", 0, "an expression"),
        ("a==", 3, "a value"),
        ("a==foo", 3, "quoted"),
        ("a>true", 1, "'==' or '!='"),
        ("a>1,2", 1, "'==' or '!='"),
        ("a>1..2", 1, "'==' or '!='"),
        ("a==1..x", 3, "a number"),
        ('a==1.."x"', 3, "a number"),
        ("(a", 2, "')'"),
        ("a)", 1, "logical operator"),
        ("a b", 2, "an operator"),
        ("a;;b", 2, "an attribute name"),
        ("!a==1", 2, "no comparison"),
        ('a=="open', 3, "closing"),
        ("a[x", 3, "']'"),
        ("a[]==1", 2, "compound keys"),
        ("a[x].b==1", 4, "operator after a compound"),
        ("a>2020-13-45", 2, "Invalid date"),
    ],
)
def test_parse_errors_give_position_and_expectation(
    text: str, position: int, expected: str
) -> None:
    with pytest.raises(BadRequestData) as err:
        parse_q(text)
    if "Invalid date" in expected:
        assert "2020-13-45" in err.value.detail
    else:
        assert f"position {position}" in err.value.detail
        assert expected in err.value.detail


def test_invalid_regex_is_bad_request() -> None:
    with pytest.raises(BadRequestData, match="regular expression"):
        parse_q("a~=(unclosed")


def test_limits_raise_too_complex() -> None:
    with pytest.raises(TooComplexQuery):
        parse_q("a==1;" * 1000 + "a==1")
    with pytest.raises(TooComplexQuery):
        parse_q("(" * 33 + "a" + ")" * 33)
    assert parse_q("(" * 32 + "a" + ")" * 32) == Exists(AttrPath("a"))


def test_expand_q_maps_terms_but_not_members_or_compound_keys() -> None:
    tree = parse_q('temp.observedAt>1;addr.sub[city.x]=="a"|!rel')
    expanded = expand_q(tree, lambda t: "https://ex.org/" + t)
    assert expanded == Or(
        (
            And(
                (
                    cmp("https://ex.org/temp", ">", 1, sub=("observedAt",)),
                    cmp(
                        "https://ex.org/addr",
                        "==",
                        "a",
                        sub=("https://ex.org/sub",),
                        compound=("city", "x"),
                    ),
                )
            ),
            Not(Exists(AttrPath("https://ex.org/rel"))),
        )
    )


def test_type_expressions() -> None:
    assert parse_type_expr("Building") == TypeName("Building")
    assert parse_type_expr("A,B") == TypeOr((TypeName("A"), TypeName("B")))
    assert parse_type_expr("(A;B)|https://ex.org/ns#C") == TypeOr(
        (TypeAnd((TypeName("A"), TypeName("B"))), TypeName("https://ex.org/ns#C"))
    )
    assert parse_type_expr("A;B,C") == TypeOr(
        (TypeAnd((TypeName("A"), TypeName("B"))), TypeName("C"))
    )
    assert expand_types(parse_type_expr("A|B"), str.lower) == TypeOr((TypeName("a"), TypeName("b")))
    with pytest.raises(BadRequestData, match="position 2"):
        parse_type_expr("A,")


def test_scope_queries() -> None:
    assert parse_scope_q("/a/b") == ScopeMatch("/a/b")
    assert parse_scope_q("/a/#;/b/+/c|/d") == ScopeOr(
        (ScopeAnd((ScopeMatch("/a/#"), ScopeMatch("/b/+/c"))), ScopeMatch("/d"))
    )
    assert parse_scope_q("/#") == ScopeMatch("/#")
    for bad in ("a/b", "/a/#/b", "/a//b", "/a/b+", "/"):
        with pytest.raises(BadRequestData, match="scopeQ"):
            parse_scope_q(bad)
