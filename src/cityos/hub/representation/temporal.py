"""History rows -> the NGSI-LD temporal representation of an entity (GS CIM 009 v1.8).

* normalized (clause 4.5.9): every attribute an array of its past instances, each with its
  ``instanceId``; ``createdAt``/``modifiedAt`` only with ``options=sysAttrs`` (as for
  entities, clause 4.8).
* simplified (``temporalValues``, clause 4.5.10): one object per ``datasetId`` with its
  ``[value, time]`` pairs under the key of the attribute's type (``values``, ``objects``,
  ``languageMaps``, ``jsons``, ``vocabs``, ``valueLists``, ``objectLists``); the types other
  than Property and Relationship keep their payload key in the pair's first element
  (``{"json": …}``) so the type stays readable. An attribute with one dataset is the object
  itself, with several an array of them.
* a deleted attribute (``timeproperty=deletedAt``, clause 4.5.9): an instance with the
  NGSI-LD Null (``urn:ngsi-ld:null``, ``{"@none": …}`` for a LanguageProperty) and
  ``deletedAt``.

Times are written in their shortest ISO 8601 form (``2020-08-01T12:03:00Z``): the hub keeps
microseconds for sorting, but a client reads back the instant it wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cityos.hub.model import INSTANCE_MEMBER_KEYS, SCOPE, VALUE_KEY, display_time
from cityos.hub.representation.render import TermCompactor, render_instance, simplified_value
from cityos.hub.store.base import HistoryRow

NGSI_LD_NULL = "urn:ngsi-ld:null"
INSTANCE_ID_PREFIX = "urn:ngsi-ld:attribute:instance:"
_TIME_MEMBERS = frozenset({"observedAt", "createdAt", "modifiedAt", "deletedAt"})
_SIMPLIFIED_KEY = {
    "Property": "values",
    "GeoProperty": "values",
    "Relationship": "objects",
    "LanguageProperty": "languageMaps",
    "JsonProperty": "jsons",
    "VocabProperty": "vocabs",
    "ListProperty": "valueLists",
    "ListRelationship": "objectLists",
}


@dataclass(slots=True)
class Point:
    """One instance of an attribute's history at ``time`` (the value of the time property
    the request chose: observedAt, or the hub's time of the change)."""

    time: str
    row: HistoryRow
    deleted: bool = False


def instance_urn(instance_id: int | None) -> str | None:
    return None if instance_id is None else f"{INSTANCE_ID_PREFIX}{instance_id}"


def stored_instance(point: Point) -> dict[str, Any]:
    """The instance as stored, or for a deletion the NGSI-LD Null and ``deletedAt`` (a
    deleted scope: no scope, ``[]``)."""
    row = point.row
    if not point.deleted:
        return row.instance
    kind = row.instance.get("type", "Property")
    key = VALUE_KEY.get(kind, "value")
    inst: dict[str, Any] = {"type": kind}
    if row.attr == SCOPE:
        inst[key] = []
    elif kind == "LanguageProperty":
        inst[key] = {"@none": NGSI_LD_NULL}
    else:
        inst[key] = NGSI_LD_NULL
    if row.dataset_id is not None:
        inst["datasetId"] = row.dataset_id
    inst["deletedAt"] = row.recorded_at
    return inst


def normalized_attribute(
    points: list[Point], ctx: TermCompactor, *, sys_attrs: bool
) -> list[dict[str, Any]]:
    """Every instance of one attribute, oldest first, each with its ``instanceId``."""
    out = []
    for point in points:
        inst = dict(stored_instance(point))
        if point.row.instance_id is not None:
            inst["instanceId"] = instance_urn(point.row.instance_id)
        rendered = render_instance(
            inst, ctx, sys_attrs=sys_attrs or point.deleted, instance_id=True
        )
        if point.deleted and not sys_attrs:
            rendered.pop("createdAt", None)
            rendered.pop("modifiedAt", None)
        out.append(_short_times(rendered))
    return out


def simplified_attribute(
    points: list[Point], ctx: TermCompactor | None = None, *, kind: str = "Property"
) -> Any:
    """The ``temporalValues`` form of one attribute: one object per ``datasetId`` (no
    instances: an empty one of ``kind``)."""
    if not points:
        return {"type": kind, _SIMPLIFIED_KEY.get(kind, "values"): []}
    assert ctx is not None
    groups: dict[str | None, list[Point]] = {}
    for point in points:
        groups.setdefault(point.row.dataset_id, []).append(point)
    out = []
    for dataset_id, group in groups.items():
        kind = group[-1].row.instance.get("type", "Property")
        entry: dict[str, Any] = {"type": kind}
        if dataset_id is not None:
            entry["datasetId"] = dataset_id
        entry[_SIMPLIFIED_KEY.get(kind, "values")] = [
            [simplified_value(stored_instance(p), ctx), display_time(p.time)] for p in group
        ]
        out.append(entry)
    return out[0] if len(out) == 1 else out


def _short_times(inst: dict[str, Any]) -> dict[str, Any]:
    """``display_time`` on the time members of an instance and of its sub-attributes."""
    for key, value in inst.items():
        if key in _TIME_MEMBERS and isinstance(value, str):
            inst[key] = display_time(value)
        elif key not in INSTANCE_MEMBER_KEYS and isinstance(value, dict):
            _short_times(value)
    return inst
