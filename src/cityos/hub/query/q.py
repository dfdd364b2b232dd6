"""Parsers for the NGSI-LD query languages: ``q`` (clause 4.9), type expressions (4.17), scopeQ (4.19).

Each parser is a small recursive-descent reader that reports the character position and what
it expected, so a client sees *where* its query went wrong. ``;`` (AND) binds tighter than
``|`` (OR). Values follow the spec: strings are quoted, numbers/booleans/dates/times bare,
URIs bare (for relationship targets). Unquoted datetimes are normalised to the hub's stored
timestamp format (UTC, microseconds, ``Z``; see :func:`cityos.hub.model.now_iso`) so they
compare as text with ``createdAt``/``modifiedAt``/``observedAt`` written by the hub.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime

from cityos.hub.errors import BadRequestData, TooComplexQuery
from cityos.hub.query.model import (
    And,
    AttrPath,
    Comparison,
    Exists,
    Not,
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
from cityos.hub.query.regex import client_regex

MAX_QUERY_LENGTH = 4096
MAX_DEPTH = 32
MAX_TERMS = 256  # hardening: comparisons in one q / scopeQ / type expression
# hardening: levels of alternating ';' / '|' (each is a nested SQL parenthesis; SQLite's
# parser gave up at about 20 levels: a 500 before this limit)
MAX_NESTING = 12

# Sub-path names that address a member of the instance rather than a sub-attribute.
MEMBER_SUBS = frozenset(
    {"observedAt", "unitCode", "datasetId", "createdAt", "modifiedAt", "objectType"}
)

OPERATORS = ("==", "!=", ">=", "<=", "!~=", "~=", ">", "<")
_EQUALITY_OPS = frozenset({"==", "!="})

_NAME_CHAR = re.compile(r"[\w:/#.\-@%&+$]")
_NAME_RUN = re.compile(r"[\w:/#.\-@%&+$]+")
_PLAIN_SEGMENT = re.compile(r"[\w\-]+\Z")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?\Z")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?\Z")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_TIME = re.compile(r"\d{2}:\d{2}(:\d{2}(\.\d+)?)?Z?\Z")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s\"<>]+\Z")
_UNQUOTED_VALUE = re.compile(r"[^,;|()\s\"]+")
_TYPE_NAME = re.compile(r"[^,;|()\s]+")


class _Reader:
    """Cursor over the query text with position-aware errors."""

    def __init__(self, text: str, what: str) -> None:
        if len(text) > MAX_QUERY_LENGTH:
            raise TooComplexQuery(
                f"{what} is {len(text)} characters long; the limit is {MAX_QUERY_LENGTH}"
            )
        self.s = text
        self.i = 0
        self.what = what
        self.depth = 0
        self.terms = 0

    def error(self, expected: str, at: int | None = None) -> BadRequestData:
        pos = self.i if at is None else at
        found = repr(self.s[pos : pos + 12]) if pos < len(self.s) else "the end"
        return BadRequestData(
            f"Invalid {self.what} at position {pos}: expected {expected}, found {found}"
            f" (in {self.s!r})"
        )

    def skip_ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t\r\n":
            self.i += 1

    def peek(self) -> str:
        self.skip_ws()
        return self.s[self.i] if self.i < len(self.s) else ""

    def eat(self, token: str) -> bool:
        self.skip_ws()
        if self.s.startswith(token, self.i):
            self.i += len(token)
            return True
        return False

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise TooComplexQuery(f"{self.what} nests parentheses deeper than {MAX_DEPTH} levels")

    def leave(self) -> None:
        self.depth -= 1

    def at_end(self) -> bool:
        self.skip_ws()
        return self.i >= len(self.s)


def _boolean_tree(
    reader: _Reader,
    leaf: Callable[[], object],
    and_cls: type,
    or_cls: type,
    comma_is_or: bool,
) -> object:
    """``or := and ('|' and)*``, ``and := leaf (';' leaf)*``; ``leaf`` may be ``( or )``."""

    def parse_or() -> object:
        items = [parse_and()]
        while reader.peek() == "|" or (comma_is_or and reader.peek() == ","):
            reader.i += 1
            items.append(parse_and())
        return items[0] if len(items) == 1 else or_cls(tuple(items))

    def parse_and() -> object:
        items = [parse_atom()]
        while reader.peek() == ";":
            reader.i += 1
            items.append(parse_atom())
        return items[0] if len(items) == 1 else and_cls(tuple(items))

    def parse_atom() -> object:
        if reader.peek() == "(":
            reader.i += 1
            reader.enter()
            inner = parse_or()
            if not reader.eat(")"):
                raise reader.error("')' or a logical operator (';' or '|')")
            reader.leave()
            return inner
        reader.terms += 1
        if reader.terms > MAX_TERMS:
            raise TooComplexQuery(f"{reader.what} has more than {MAX_TERMS} terms")
        return leaf()

    if reader.at_end():
        raise reader.error("an expression")
    tree = parse_or()
    if not reader.at_end():
        raise reader.error("a logical operator (';' or '|') or the end of the expression")
    if _nesting(tree, (and_cls, or_cls)) > MAX_NESTING:
        raise TooComplexQuery(
            f"{reader.what} nests ';' and '|' more than {MAX_NESTING} levels deep"
        )
    return tree


def _nesting(tree: object, kinds: tuple[type, ...]) -> int:
    """How many and/or levels deep ``tree`` is (iteratively)."""
    deepest, stack = 0, [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, kinds):
            depth += 1
            deepest = max(deepest, depth)
            stack.extend((item, depth) for item in node.items)  # type: ignore[attr-defined]
        elif hasattr(node, "expr"):  # a negation
            stack.append((node.expr, depth))
    return deepest


# ---------------------------------------------------------------------------- q


def parse_q(text: str) -> QExpr:
    """Parse an NGSI-LD ``q`` expression into a :data:`QExpr` tree (terms not yet expanded)."""
    reader = _Reader(text, "q")
    return _boolean_tree(reader, lambda: _q_term(reader), And, Or, False)  # type: ignore[return-value]


def _q_term(r: _Reader) -> QExpr:
    negated = r.eat("!")
    path = _attr_path(r)
    r.skip_ws()
    op = next((o for o in OPERATORS if r.s.startswith(o, r.i)), None)
    if op is None:
        nxt = r.peek()
        if nxt not in ("", ";", "|", ")"):
            raise r.error("an operator (== != > >= < <= ~= !~=), ';', '|' or ')'")
        return Not(Exists(path)) if negated else Exists(path)
    if negated:
        raise r.error("no comparison after a negated attribute ('!attr' tests absence)")
    op_at = r.i
    r.i += len(op)
    if op in ("~=", "!~="):
        return Comparison(path, op, _regex(r))
    value = _value_list(r, op, op_at)
    return Comparison(path, op, value)


def _attr_path(r: _Reader) -> AttrPath:
    r.skip_ws()
    start = r.i
    m = _NAME_RUN.match(r.s, r.i)
    if not m:
        raise r.error("an attribute name")
    r.i = m.end()
    segments = _split_path(m.group(), start, r)
    compound: list[str] = []
    while r.i < len(r.s) and r.s[r.i] == "[":
        close = r.s.find("]", r.i + 1)
        if close < 0:
            raise r.error("']' closing the compound value path", at=len(r.s))
        inner = r.s[r.i + 1 : close]
        keys = inner.split(".")
        if not inner or any(not k or "[" in k for k in keys):
            raise r.error("compound keys like attr[key] or attr[key1.key2]", at=r.i + 1)
        compound.extend(keys)
        r.i = close + 1
    if r.i < len(r.s) and r.s[r.i] == ".":
        raise r.error("an operator after a compound path (sub-attributes go before '[')")
    return AttrPath(segments[0], tuple(segments[1:]), tuple(compound))


def _split_path(raw: str, start: int, r: _Reader) -> list[str]:
    """Split ``attr.sub.sub`` on dots that start a new name, not dots inside an IRI.

    A dot inside an IRI's authority (``https://example.org``) or followed by something that
    is not a name (``v1.2/x``) belongs to the IRI; a dot followed by a plain name or by a
    new IRI (``scheme:``) starts the next segment.
    """
    pieces = raw.split(".")
    segments: list[str] = [pieces[0]]
    for piece in pieces[1:]:
        current = segments[-1]
        in_authority = "://" in current and "/" not in current.split("://", 1)[1]
        starts_name = bool(_PLAIN_SEGMENT.match(piece)) or bool(_SCHEME.match(piece))
        if piece and starts_name and not in_authority:
            segments.append(piece)
        else:
            segments[-1] = current + "." + piece
    for seg in segments:
        if not seg or seg.endswith(".") or seg.startswith("."):
            raise r.error("a name between dots in the attribute path", at=start)
    return segments


def _regex(r: _Reader) -> str:
    """A pattern: quoted, or bare up to a top-level ``;``/``|``/``)`` (brackets balanced)."""
    if r.peek() == '"':
        pattern = _quoted(r)
    else:
        start = r.i
        depth = 0
        in_class = False
        while r.i < len(r.s):
            c = r.s[r.i]
            if c == "\\":
                r.i += 2
                continue
            if in_class:
                in_class = c != "]"
            elif c == "[":
                in_class = True
            elif c == "(":
                depth += 1
            elif c == ")":
                if depth == 0:
                    break
                depth -= 1
            elif c in ";|" and depth == 0:
                break
            r.i += 1
        r.i = min(r.i, len(r.s))
        pattern = r.s[start : r.i]
        if not pattern:
            raise r.error("a regular expression after '~='")
    client_regex(pattern, "q")
    return pattern


def _quoted(r: _Reader) -> str:
    start = r.i
    r.i += 1
    while r.i < len(r.s):
        c = r.s[r.i]
        if c == "\\":
            r.i += 2
            continue
        if c == '"':
            r.i += 1
            try:
                return json.loads(r.s[start : r.i])
            except ValueError as exc:
                raise r.error("a valid escape sequence in the quoted string", at=start) from exc
        r.i += 1
    raise r.error("a closing '\"'", at=start)


def _value_list(r: _Reader, op: str, op_at: int) -> object:
    items = [_value_item(r)]
    while r.peek() == ",":
        r.i += 1
        items.append(_value_item(r))
    for item in items:
        kind, value = item
        if op not in _EQUALITY_OPS and (len(items) > 1 or kind in ("bool", "uri", "range")):
            what = {"bool": "a boolean", "uri": "an unquoted URI", "range": "a range"}.get(
                kind, "a value list"
            )
            raise r.error(f"'==' or '!=' before {what} (use == or != with it)", at=op_at)
        if kind == "range" and len(items) > 1:
            raise r.error("either a range or a value list, not both", at=op_at)
    if len(items) == 1:
        return items[0][1]
    return [v for _, v in items]


def _value_item(r: _Reader) -> tuple[str, object]:
    if r.peek() == '"':
        low: object = _quoted(r)
        if r.s.startswith("..", r.i):
            r.i += 2
            hk, high = _value_item(r)
            if hk != "str":
                raise r.error("a quoted string as the upper bound of a string range")
            return "range", Range(low, high)
        return "str", low
    start = r.i
    m = _UNQUOTED_VALUE.match(r.s, r.i)
    if not m:
        raise r.error("a value (number, quoted string, true/false, date/time or URI)")
    r.i = m.end()
    raw = m.group()
    if ".." in raw:
        lo_raw, _, hi_raw = raw.partition("..")
        lo, hi = _comparable(lo_raw), _comparable(hi_raw)
        if lo is not None and hi is not None:
            if lo[0] != hi[0]:
                raise r.error("range bounds of the same kind (both numbers or both dates)", start)
            return "range", Range(lo[1], hi[1])
    scalar = _scalar(raw)
    if scalar is None:
        raise r.error(
            'a number, a quoted "string", true/false, an ISO 8601 date/time or a URI', start
        )
    return scalar


_INT64 = 1 << 63


def _number(raw: str) -> int | float:
    """The value of a q number: integers beyond 64 bits compare as doubles (as stored JSON
    numbers that large do); one beyond a double is refused rather than made infinite."""
    value: int | float = float(raw) if any(c in raw for c in ".eE") else int(raw)
    if isinstance(value, int) and not -_INT64 <= value < _INT64:
        value = float(value)
    if not math.isfinite(value):
        raise BadRequestData(f"the number {raw} in q is beyond the range of a double")
    return value


def _comparable(raw: str) -> tuple[str, object] | None:
    """A number or a date/time/datetime (as text); None otherwise."""
    if _NUMBER.match(raw):
        return "num", _number(raw)
    if _DATETIME.match(raw):
        return "str", _normalise_datetime(raw)
    if _DATE.match(raw):
        try:
            date.fromisoformat(raw)
        except ValueError as exc:
            raise BadRequestData(f"Invalid date {raw!r} in q: {exc}") from exc
        return "str", raw
    if _TIME.match(raw):
        return "str", raw
    return None


def _scalar(raw: str) -> tuple[str, object] | None:
    if raw == "true":
        return "bool", True
    if raw == "false":
        return "bool", False
    comparable = _comparable(raw)
    if comparable is not None:
        return comparable
    if _URI.match(raw):
        return "uri", raw
    return None


def _normalise_datetime(raw: str) -> str:
    """ISO 8601 datetime -> the hub's text form (UTC, 6 fraction digits, ``Z``)."""
    text = raw
    m = re.match(r"(.*T\d{2}:\d{2}:\d{2})\.(\d+)(.*)", text)
    if m:  # Python 3.11 accepts at most 6 fraction digits
        text = m.group(1) + "." + (m.group(2) + "000000")[:6] + m.group(3)
    if re.search(r"[+-]\d{4}$", text):
        text = text[:-2] + ":" + text[-2:]
    try:
        dt = datetime.fromisoformat(text)
    except ValueError as exc:
        raise BadRequestData(f"Invalid date-time {raw!r} in q: {exc}") from exc
    dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---------------------------------------------------------------------------- type, scope


def parse_type_expr(text: str) -> TypeExpr:
    """Parse the ``type`` parameter: ``A,B`` or ``A|B`` (OR), ``A;B`` (AND), parentheses."""
    reader = _Reader(text, "type expression")

    def leaf() -> TypeExpr:
        reader.skip_ws()
        m = _TYPE_NAME.match(reader.s, reader.i)
        if not m:
            raise reader.error("an entity type name")
        reader.i = m.end()
        return TypeName(m.group())

    return _boolean_tree(reader, leaf, TypeAnd, TypeOr, True)  # type: ignore[return-value]


_SCOPE_SEGMENT = re.compile(r"[^/#+,;|()\s]+\Z")


def parse_scope_q(text: str) -> ScopeExpr:
    """Parse ``scopeQ``: ``/a/b`` exact, ``/a/#`` subtree, ``/a/+/c`` one-level wildcard, ``;`` ``|`` ``,`` ``()``."""
    reader = _Reader(text, "scopeQ")

    def leaf() -> ScopeExpr:
        reader.skip_ws()
        start = reader.i
        m = _TYPE_NAME.match(reader.s, reader.i)
        if not m:
            raise reader.error("a scope like /a/b, /a/# or /a/+/c")
        reader.i = m.end()
        pattern = m.group()
        _check_scope_pattern(pattern, reader, start)
        return ScopeMatch(pattern)

    return _boolean_tree(reader, leaf, ScopeAnd, ScopeOr, True)  # type: ignore[return-value]


def _check_scope_pattern(pattern: str, reader: _Reader, start: int) -> None:
    if not pattern.startswith("/"):
        raise reader.error("a scope starting with '/'", at=start)
    if pattern == "/#":
        return
    segments = pattern[1:].split("/")
    for n, seg in enumerate(segments):
        if seg == "#" and n == len(segments) - 1 and n > 0:
            continue
        if seg == "+" or _SCOPE_SEGMENT.match(seg):
            continue
        raise reader.error(
            "scope segments that are names, '+' (one level) or a final '#' (subtree)", at=start
        )


# ---------------------------------------------------------------------------- expansion


def expand_q(expr: QExpr, expand: Callable[[str], str]) -> QExpr:
    """Map attribute and sub-attribute terms to IRIs; member names and compound keys stay."""

    def path(p: AttrPath) -> AttrPath:
        subs = tuple(s if s in MEMBER_SUBS else expand(s) for s in p.sub)
        return AttrPath(expand(p.attr), subs, p.compound)

    def walk(e: QExpr) -> QExpr:
        if isinstance(e, Comparison):
            return Comparison(path(e.path), e.op, e.value)
        if isinstance(e, Exists):
            return Exists(path(e.path))
        if isinstance(e, Not):
            return Not(walk(e.expr))
        if isinstance(e, And):
            return And(tuple(walk(i) for i in e.items))
        if isinstance(e, Or):
            return Or(tuple(walk(i) for i in e.items))
        raise TypeError(f"not a q expression: {e!r}")

    return walk(expr)


def expand_types(expr: TypeExpr, expand: Callable[[str], str]) -> TypeExpr:
    """Map every type term in a type expression through ``expand``."""
    if isinstance(expr, TypeName):
        return TypeName(expand(expr.name))
    if isinstance(expr, TypeAnd):
        return TypeAnd(tuple(expand_types(i, expand) for i in expr.items))
    if isinstance(expr, TypeOr):
        return TypeOr(tuple(expand_types(i, expand) for i in expr.items))
    raise TypeError(f"not a type expression: {expr!r}")
