"""Strict JSON parsing of request bodies.

Python's ``json`` silently keeps the last of duplicate keys and accepts ``NaN``/``Infinity``
(and ``1e999``, which becomes infinity); a broker must refuse them, since the data would
differ from what the client meant or could not be stored. Nesting is limited so a hostile
body cannot exhaust the stack, and integers must fit in 64 bits as JSON stores expect.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from cityos.hub.errors import BadRequestData, InvalidRequest

INT_MIN, INT_MAX = -(2**63), 2**63 - 1
# "\ud800" alone is valid JSON text but not a Unicode string: nothing downstream can store it.
_SURROGATE_ESCAPE = re.compile(r"\\[uU][dD][89a-fA-F]")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise InvalidRequest(f"duplicate key {k!r} in one JSON object")
            seen.add(k)
    return out


def _no_constants(name: str) -> Any:
    raise InvalidRequest(f"{name} is not valid JSON (NaN and Infinity are not allowed)")


def _check(obj: Any, max_depth: int, strings: bool) -> None:
    """One walk over the document: depth, numbers that cannot be stored, broken Unicode."""
    stack = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise BadRequestData(f"JSON nested deeper than {max_depth} levels")
        if isinstance(node, dict):
            if strings:
                for key in node:
                    _check_string(key)
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
        elif isinstance(node, float):
            if not math.isfinite(node):
                raise InvalidRequest(
                    "a number is too large to represent (it overflows to infinity)"
                )
        elif isinstance(node, int) and not isinstance(node, bool):
            if not INT_MIN <= node <= INT_MAX:
                raise InvalidRequest(f"integer {node} does not fit in 64 bits")
        elif strings and isinstance(node, str):
            _check_string(node)


def _check_string(text: str) -> None:
    if "\x00" in text:  # PostgreSQL cannot store it, and no city data needs it
        raise InvalidRequest(f"a string may not hold NUL (\\u0000): {text[:40]!r}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(f"invalid Unicode in {text[:40]!r}: a lone surrogate escape") from None


def parse_json(body: bytes, *, max_depth: int = 32) -> Any:
    """Parse a request body or raise InvalidRequest / BadRequestData saying what and where."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"body is not UTF-8: {exc.reason} at byte {exc.start}") from exc
    try:
        obj = json.loads(text, object_pairs_hook=_pairs, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except RecursionError as exc:
        raise BadRequestData(f"JSON nested deeper than {max_depth} levels") from exc
    except ValueError as exc:  # e.g. an integer literal of thousands of digits
        raise InvalidRequest(f"malformed JSON: {exc}") from exc
    # strings are walked only when an escape could have made a bad one (a lone surrogate,
    # or NUL, which raw JSON text cannot hold)
    risky = _SURROGATE_ESCAPE.search(text) is not None or "\\u0000" in text
    _check(obj, max_depth, strings=risky)
    return obj
