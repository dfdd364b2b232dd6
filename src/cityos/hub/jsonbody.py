"""Strict JSON parsing of request bodies.

Python's ``json`` silently keeps the last of duplicate keys and accepts ``NaN``/``Infinity``;
a broker must refuse both (the data would differ from what the client meant). Nesting is
limited so a hostile body cannot exhaust the stack.
"""

from __future__ import annotations

import json
from typing import Any

from cityos.hub.errors import BadRequestData, InvalidRequest


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


def _depth(obj: Any, limit: int) -> None:
    stack = [(obj, 1)]
    while stack:
        node, d = stack.pop()
        if d > limit:
            raise BadRequestData(f"JSON nested deeper than {limit} levels")
        if isinstance(node, dict):
            stack.extend((v, d + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, d + 1) for v in node)


def parse_json(body: bytes, *, max_depth: int = 32) -> Any:
    """Parse a request body or raise InvalidRequest with where it went wrong."""
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
    _depth(obj, max_depth)
    return obj
