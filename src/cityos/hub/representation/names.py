"""Checks on the small strings NGSI-LD payloads carry: URIs, names, dates, scopes, languages.

Each check raises :class:`~cityos.hub.errors.BadRequestData` with a detail that says which
part of the payload is wrong (``where``), so a client can fix its request without guessing.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from cityos.hub.errors import BadRequestData
from cityos.hub.model import MAX_ID_BYTES, MAX_NAME_BYTES, check_size, to_hub_time

# RFC 3986 scheme, then a non-empty rest without whitespace, controls or characters that
# cannot appear in a URI even percent-encoded-aware clients would send raw.
_URI_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`\x00-\x1f\x7f]+$")
# Characters GS CIM 009 forbids in entity type and attribute names (clause 4.6.2).
_FORBIDDEN_NAME_CHARS = frozenset("<>\"'=;()")
_LANG_TAG_RE = re.compile(r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$")
_SCOPE_RE = re.compile(r"^(/[^/\s#+]+)+$")

GEOMETRY_TYPES = frozenset(
    {
        "Point",
        "MultiPoint",
        "LineString",
        "MultiLineString",
        "Polygon",
        "MultiPolygon",
        "GeometryCollection",
    }
)


def is_uri(value: Any) -> bool:
    """An absolute URI (``scheme:rest``) as NGSI-LD requires for ids and datasetIds."""
    return isinstance(value, str) and _URI_RE.match(value) is not None


def check_uri(value: Any, where: str, what: str = "id") -> str:
    if not isinstance(value, str):
        raise BadRequestData(f"{where}: {what} must be a string URI, got {kind(value)}")
    check_size(value, MAX_ID_BYTES, f"{where}: {what}")
    if not is_uri(value):
        raise BadRequestData(f"{where}: {what} {value!r} is not a URI")
    return value


@lru_cache(maxsize=8192)
def _name_ok(name: str) -> bool:
    """Names repeat across entities: check each distinct one once."""
    return not any(c in _FORBIDDEN_NAME_CHARS or c.isspace() or ord(c) < 32 for c in name)


def check_name(name: Any, where: str, what: str = "attribute name") -> str:
    """An entity type or attribute name: non-empty, no whitespace, no forbidden characters."""
    if not isinstance(name, str) or not name:
        raise BadRequestData(f"{where}: {what} must be a non-empty string")
    check_size(name, MAX_NAME_BYTES, f"{where}: {what}")
    if _name_ok(name):
        return name
    bad = sorted({c for c in name if c in _FORBIDDEN_NAME_CHARS or c.isspace() or ord(c) < 32})
    if bad:
        raise BadRequestData(
            f"{where}: {what} {name!r} contains forbidden characters {''.join(bad)!r}"
        )
    return name


def check_datetime(value: Any, where: str) -> str:
    """An ISO 8601 date-time (date and time), in the hub's form (UTC, microseconds, ``Z``)
    so that ``q`` and the temporal API compare it correctly as text."""
    if not isinstance(value, str) or "T" not in value:
        raise BadRequestData(f"{where}: {value!r} is not an ISO 8601 date-time")
    try:
        return to_hub_time(value)
    except ValueError:
        raise BadRequestData(f"{where}: {value!r} is not an ISO 8601 date-time") from None


def check_lang_tag(tag: Any, where: str) -> str:
    """A BCP 47 language tag (shape only) or the JSON-LD ``@none``."""
    if not isinstance(tag, str) or not (tag == "@none" or _LANG_TAG_RE.match(tag)):
        raise BadRequestData(f"{where}: {tag!r} is not a language tag")
    return tag


def parse_scope(value: Any, where: str) -> list[str]:
    """``scope``: one string or a list of strings like ``/KH/PhnomPenh`` (no wildcards)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise BadRequestData(f"{where}: scope must be a string or a non-empty list of strings")
    out: list[str] = []
    for item in items:
        if not isinstance(item, str) or not _SCOPE_RE.match(item):
            raise BadRequestData(
                f"{where}: scope {item!r} is not valid (expected '/segment[/segment...]')"
            )
        if item not in out:
            out.append(item)
    return out


def is_geometry(value: Any) -> bool:
    """Looks like a GeoJSON geometry (the test NGSI-LD uses to infer a GeoProperty)."""
    return (
        isinstance(value, dict)
        and value.get("type") in GEOMETRY_TYPES
        and ("coordinates" in value or "geometries" in value)
    )


def kind(value: Any) -> str:
    """A JSON word for ``value``'s type, for error details."""
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }.get(type(value), type(value).__name__)
