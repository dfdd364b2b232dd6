"""The files a city imports from, each read as (where, raw NGSI-LD entity, bytes read).

JSON Lines and CSV are streamed (a file of millions of rows never sits in memory); a JSON
array or GeoJSON collection is parsed whole, once, with orjson. A row or feature that cannot
become an entity is passed on as an :class:`ItemError` in its place, so the loader reports it
with the others and goes on.
"""

from __future__ import annotations

import csv
import io
import math
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

FORMATS = ("json", "jsonl", "geojson", "csv")
SUFFIXES = {
    ".json": "json",
    ".jsonld": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".geojson": "geojson",
    ".csv": "csv",
}
KINDS = ("text", "number", "integer", "boolean", "relationship")

Item = tuple[str, Any, int]  # where in the file, the raw entity (or ItemError), bytes read


class LoadFormatError(ValueError):
    """The file as a whole cannot be read (one line: what and where)."""


@dataclass(frozen=True)
class ItemError:
    """One row or feature that cannot be an entity: the loader reports it."""

    message: str


def detect(path: Path, fmt: str | None) -> str:
    if fmt:
        if fmt not in FORMATS:
            raise LoadFormatError(f"--format {fmt!r}: one of {', '.join(FORMATS)}")
        return fmt
    found = SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise LoadFormatError(
            f"{path.name}: cannot tell the format from {path.suffix or 'no suffix'!r}; "
            f"give --format ({', '.join(FORMATS)})"
        )
    return found


def read_items(
    path: Path,
    fmt: str | None = None,
    *,
    mapping: dict[str, Any] | None = None,
    entity_type: str | None = None,
) -> Iterator[Item]:
    """The file's entities; ``mapping`` (CSV) and ``entity_type`` (GeoJSON features with no
    ``type`` property) as the formats need them."""
    kind = detect(path, fmt)
    if kind == "csv":
        if mapping is None:
            raise LoadFormatError("a CSV file needs --mapping FILE (docs/load.md)")
        check_mapping(mapping)
        _check_header(path, mapping)  # a whole-file problem is found before loading starts
        return _csv(path, mapping)
    if kind == "jsonl":
        return _jsonl(path)
    raw = path.read_bytes()
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise LoadFormatError(f"{path.name} is not JSON: {exc}") from None
    is_collection = isinstance(doc, dict) and doc.get("type") == "FeatureCollection"
    if is_collection and not isinstance(doc.get("features"), list):
        raise LoadFormatError(f"{path.name}: a FeatureCollection needs a 'features' list")
    if kind == "geojson" and not is_collection:
        raise LoadFormatError(f"{path.name}: a GeoJSON file holds a FeatureCollection")
    return _json(doc, len(raw), entity_type)


def _jsonl(path: Path) -> Iterator[Item]:
    done = 0
    with path.open("rb") as f:
        for n, line in enumerate(f, 1):
            done += len(line)
            if not line.strip():
                continue
            try:
                yield f"line {n}", orjson.loads(line), done
            except orjson.JSONDecodeError as exc:
                yield f"line {n}", ItemError(f"not JSON: {exc}"), done


def _json(doc: Any, size: int, entity_type: str | None) -> Iterator[Item]:
    if isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        features = doc["features"]
        for n, feature in enumerate(features, 1):
            yield f"feature {n}", _feature(feature, entity_type), size * n // len(features)
        return
    items = doc if isinstance(doc, list) else [doc]
    for n, item in enumerate(items, 1):
        yield f"entity {n}", item, size * n // len(items)


def _feature(feature: Any, entity_type: str | None) -> Any:
    """A GeoJSON Feature as an entity: its id (or ``properties.id``), ``properties.type``
    or ``--type``, each other property a Property, the geometry its ``location``."""
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        return ItemError("not a GeoJSON Feature")
    props = feature.get("properties") or {}
    if not isinstance(props, dict):
        return ItemError("'properties' is not an object")
    eid = feature.get("id", props.get("id"))
    etype = props.get("type", entity_type)
    if eid is None:
        return ItemError("no id (give the feature an 'id', or 'properties.id')")
    if etype is None:
        return ItemError("no type (give 'properties.type', or --type)")
    entity: dict[str, Any] = {"id": eid, "type": etype}
    for key, value in props.items():
        if key not in ("id", "type") and value is not None:
            entity[key] = {"type": "Property", "value": value}
    if feature.get("geometry") is not None:
        entity["location"] = {"type": "GeoProperty", "value": feature["geometry"]}
    return entity


# -- CSV -----------------------------------------------------------------------------------


def read_mapping(path: Path) -> dict[str, Any]:
    """A CSV mapping file (TOML or JSON), checked."""
    try:
        text = path.read_text(encoding="utf-8")
        mapping = tomllib.loads(text) if path.suffix.lower() == ".toml" else orjson.loads(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise LoadFormatError(f"cannot read the mapping {path}: {exc}") from None
    except (tomllib.TOMLDecodeError, orjson.JSONDecodeError) as exc:
        raise LoadFormatError(f"the mapping {path.name} cannot be parsed: {exc}") from None
    check_mapping(mapping)
    return mapping


def check_mapping(mapping: Any) -> None:
    """``{"id": "urn:ngsi-ld:Building:{ref}", "type": "Building", "location": {"lon": COL,
    "lat": COL}, "attributes": {NAME: {"column": COL, "kind": KIND, "unitCode": ...}}}``."""
    if not isinstance(mapping, dict):
        raise LoadFormatError("the mapping is an object")
    for key in ("id", "type"):
        if not isinstance(mapping.get(key), str) or not mapping[key]:
            raise LoadFormatError(f"the mapping's {key!r} is missing (a text)")
    if any(not name or name.isdigit() for name in _template_fields(mapping["id"], keep_empty=True)):
        raise LoadFormatError(
            f"the mapping's id {mapping['id']!r}: name a column in each {{…}} (no {{}} or {{0}})"
        )
    unknown = set(mapping) - {"id", "type", "location", "attributes"}
    if unknown:
        raise LoadFormatError(f"the mapping has unknown key(s) {sorted(unknown)}")
    location = mapping.get("location")
    if location is not None and (not isinstance(location, dict) or set(location) != {"lon", "lat"}):
        raise LoadFormatError('the mapping\'s \'location\' is {"lon": COLUMN, "lat": COLUMN}')
    attrs = mapping.get("attributes", {})
    if not isinstance(attrs, dict):
        raise LoadFormatError("the mapping's 'attributes' is an object of name -> column")
    for name, spec in attrs.items():
        if isinstance(spec, str):
            continue
        if not isinstance(spec, dict) or not isinstance(spec.get("column"), str):
            raise LoadFormatError(f'attribute {name!r}: give a column name, or {{"column": …}}')
        if spec.get("kind", "text") not in KINDS:
            raise LoadFormatError(f"attribute {name!r}: kind is one of {', '.join(KINDS)}")


def _check_header(path: Path, mapping: dict[str, Any]) -> None:
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            header = next(csv.reader(f), [])
    except UnicodeDecodeError as exc:
        raise LoadFormatError(f"{path.name} is not UTF-8 text: {exc}") from None
    missing = _columns_of(mapping) - set(header)
    if missing:
        raise LoadFormatError(f"{path.name} has no column(s) {sorted(missing)} the mapping names")


def _csv(path: Path, mapping: dict[str, Any]) -> Iterator[Item]:
    with path.open("rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        reader = csv.DictReader(text)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except (UnicodeDecodeError, csv.Error) as exc:  # the file ends being readable here
                raise LoadFormatError(
                    f"{path.name} cannot be read past line {reader.line_num} ({exc}); "
                    "the rows before it were loaded"
                ) from None
            where = f"row {reader.line_num}"
            try:
                yield where, _row(row, mapping), raw.tell()
            except (ValueError, KeyError) as exc:
                yield where, ItemError(str(exc)), raw.tell()


def _columns_of(mapping: dict[str, Any]) -> set[str]:
    cols = set(_template_fields(mapping["id"]))
    cols |= set((mapping.get("location") or {}).values())
    for spec in mapping.get("attributes", {}).values():
        cols.add(spec if isinstance(spec, str) else spec["column"])
    return cols


def _template_fields(template: str, *, keep_empty: bool = False) -> list[str]:
    """The column names a ``{…}`` id template uses (``keep_empty``: ``{}`` as ``""`` too)."""
    import string

    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:  # an unclosed brace
        raise LoadFormatError(f"the mapping's id {template!r}: {exc}") from None
    return fields if keep_empty else [f for f in fields if f]


def _row(row: dict[str, str], mapping: dict[str, Any]) -> dict[str, Any]:
    entity: dict[str, Any] = {"id": mapping["id"].format(**row), "type": mapping["type"]}
    for name, spec in mapping.get("attributes", {}).items():
        spec = {"column": spec} if isinstance(spec, str) else spec
        cell = row[spec["column"]]
        if cell in ("", None):
            continue  # an empty cell: the attribute is absent, not an empty value
        kind = spec.get("kind", "text")
        if kind == "relationship":
            entity[name] = {"type": "Relationship", "object": cell}
            continue
        attr: dict[str, Any] = {"type": "Property", "value": _cell(cell, kind, spec["column"])}
        if spec.get("unitCode"):
            attr["unitCode"] = spec["unitCode"]
        entity[name] = attr
    location = mapping.get("location")
    if location:
        lon = _cell(row[location["lon"]], "number", location["lon"])
        lat = _cell(row[location["lat"]], "number", location["lat"])
        entity["location"] = {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [lon, lat]},
        }
    return entity


def _cell(cell: str, kind: str, column: str) -> Any:
    if kind == "text":
        return cell
    if kind == "boolean":
        low = cell.strip().lower()
        if low in ("true", "yes", "1"):
            return True
        if low in ("false", "no", "0"):
            return False
        raise ValueError(f"column {column!r}: {cell!r} is not true/false")
    try:
        number = int(cell) if kind == "integer" else float(cell)
    except ValueError:
        raise ValueError(
            f"column {column!r}: {cell!r} is not a{'n integer' if kind == 'integer' else ' number'}"
        ) from None
    if isinstance(number, float) and not math.isfinite(number):
        raise ValueError(f"column {column!r}: {cell!r} is not a finite number")
    return number
