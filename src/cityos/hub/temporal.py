"""The NGSI-LD temporal representation of an entity, built from the hub's history rows.

Three shapes (GS CIM 009 clause 4.5.9–4.5.19): normalized (every attribute an array of its
past instances), simplified (``options=temporalValues``: ``values`` as ``[value, time]``
pairs) and aggregated (``aggrMethods`` over ``aggrPeriodDuration`` buckets:
``[value, start, end]`` triples). Pure functions over :class:`HistoryRow`; the routes in
:mod:`cityos.hub.api.temporal` choose the rows.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import orjson

from cityos.hub.errors import BadRequestData
from cityos.hub.model import VALUE_KEY, to_hub_time
from cityos.hub.store.base import HistoryRow

AGGREGATIONS = ("totalCount", "distinctCount", "sum", "avg", "min", "max", "stddev", "sumsq")
_DURATION = re.compile(
    r"^P(?:(?P<w>\d+(?:\.\d+)?)W)?(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


@dataclass(frozen=True)
class TimeWindow:
    """``after`` inclusive, ``before`` exclusive, on ``time_property`` (hub time strings)."""

    after: str | None = None
    before: str | None = None
    time_property: str = "observedAt"


def parse_window(
    timerel: str | None, time_at: str | None, end_time_at: str | None, timeproperty: str | None
) -> TimeWindow:
    prop = timeproperty or "observedAt"
    if prop not in ("observedAt", "modifiedAt", "createdAt"):
        raise BadRequestData(
            f"timeproperty must be observedAt, modifiedAt or createdAt, not {prop!r}"
        )
    if timerel is None:
        if time_at or end_time_at:
            raise BadRequestData("timeAt needs timerel (before, after or between)")
        return TimeWindow(time_property=prop)
    if time_at is None:
        raise BadRequestData(f"timerel={timerel} needs timeAt")
    start = _time(time_at, "timeAt")
    if timerel == "before":
        return TimeWindow(before=start, time_property=prop)
    if timerel == "after":
        return TimeWindow(after=start, time_property=prop)
    if timerel == "between":
        if end_time_at is None:
            raise BadRequestData("timerel=between needs endTimeAt")
        end = _time(end_time_at, "endTimeAt")
        if end <= start:
            raise BadRequestData("endTimeAt must be after timeAt")
        return TimeWindow(after=start, before=end, time_property=prop)
    raise BadRequestData(f"timerel must be before, after or between, not {timerel!r}")


def _time(text: str, what: str) -> str:
    try:
        return to_hub_time(text)
    except ValueError:
        raise BadRequestData(f"{what} {text!r} is not an ISO 8601 date-time") from None


def parse_duration(text: str) -> timedelta:
    """ISO 8601 durations in weeks, days, hours, minutes, seconds (``PT15M``, ``P1D``).

    Years and months have no fixed length, so they are refused rather than guessed.
    """
    m = _DURATION.match(text or "")
    if not m or text in ("P", "PT") or text.endswith("T"):
        raise BadRequestData(
            f"aggrPeriodDuration {text!r} is not an ISO 8601 duration in W/D/H/M/S (e.g. PT15M, P1D)"
        )
    parts = {k: float(v) if v else 0.0 for k, v in m.groupdict().items()}
    return timedelta(
        weeks=parts["w"], days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"]
    )


def _row_time(row: HistoryRow, time_property: str) -> str | None:
    return row.observed_at if time_property == "observedAt" else row.recorded_at


def _payload(inst: dict[str, Any]) -> Any:
    return inst.get(VALUE_KEY.get(inst.get("type", "Property"), "value"))


def temporal_entity(
    entity_id: str,
    entity_type: Any,
    rows: list[HistoryRow],
    compact: Any,
    *,
    window: TimeWindow,
    last_n: int | None = None,
    simplified: bool = False,
    aggr_methods: list[str] | None = None,
    aggr_period: timedelta | None = None,
) -> dict[str, Any]:
    """The temporal representation of one entity; ``compact`` maps an IRI to a term."""
    by_attr: dict[str, list[HistoryRow]] = defaultdict(list)
    for row in rows:
        if row.op in ("create", "update") and _row_time(row, window.time_property) is not None:
            by_attr[row.attr].append(row)
    out: dict[str, Any] = {"id": entity_id, "type": entity_type}
    for attr, attr_rows in by_attr.items():
        attr_rows.sort(key=lambda r: _row_time(r, window.time_property) or "")
        if last_n is not None:
            attr_rows = attr_rows[-last_n:]
        term = compact(attr)
        kind = attr_rows[-1].instance.get("type", "Property")
        if aggr_methods:
            out[term] = {"type": kind, **_aggregate(attr_rows, window, aggr_methods, aggr_period)}
        elif simplified:
            key = (
                "values"
                if kind in ("Property", "GeoProperty")
                else {
                    "Relationship": "objects",
                    "LanguageProperty": "languageMaps",
                }.get(kind, "values")
            )
            out[term] = {
                "type": kind,
                key: [
                    [_payload(r.instance), _row_time(r, window.time_property)] for r in attr_rows
                ],
            }
        else:
            out[term] = [_instance(r, compact) for r in attr_rows]
    return out


def history_entity(entity_id: str, rows: list[HistoryRow]) -> dict[str, Any] | None:
    """The entity an edit of history is about when only its history is left (it was
    deleted): its id and the types its rows recorded, so the same rules apply to it."""
    if not rows:
        return None
    types = list(dict.fromkeys(r.entity_type for r in rows))
    return {"id": entity_id, "type": types, "attrs": {}}


INSTANCE_ID_PREFIX = "urn:ngsi-ld:attribute:instance:"


def instance_urn(instance_id: int | None) -> str | None:
    return None if instance_id is None else f"{INSTANCE_ID_PREFIX}{instance_id}"


def parse_instance_urn(text: str) -> int:
    if text.startswith(INSTANCE_ID_PREFIX) and text[len(INSTANCE_ID_PREFIX) :].isdigit():
        return int(text[len(INSTANCE_ID_PREFIX) :])
    raise BadRequestData(f"instanceId {text!r} is not one this hub issued ({INSTANCE_ID_PREFIX}N)")


def _instance(row: HistoryRow, compact: Any) -> dict[str, Any]:
    inst = {}
    for key, value in row.instance.items():
        inst[key if key in _MEMBERS else compact(key)] = value
    if row.instance_id is not None:
        inst["instanceId"] = instance_urn(row.instance_id)
    return inst


_MEMBERS = frozenset(
    {
        "type",
        "value",
        "object",
        "languageMap",
        "json",
        "vocab",
        "valueList",
        "objectList",
        "datasetId",
        "observedAt",
        "unitCode",
        "createdAt",
        "modifiedAt",
        "objectType",
    }
)


def _aggregate(
    rows: list[HistoryRow], window: TimeWindow, methods: list[str], period: timedelta | None
) -> dict[str, list[list[Any]]]:
    times = [_row_time(r, window.time_property) or "" for r in rows]
    if not rows:
        return {m: [] for m in methods}
    first = _dt(window.after or times[0])
    last = _dt(window.before) if window.before else _dt(times[-1]) + timedelta(microseconds=1)
    step = (
        period if period and period.total_seconds() > 0 else (last - first) or timedelta(seconds=1)
    )
    buckets: dict[int, list[Any]] = defaultdict(list)
    for row, t in zip(rows, times, strict=True):
        index = int((_dt(t) - first) / step)
        buckets[index].append(_payload(row.instance))
    out: dict[str, list[list[Any]]] = {m: [] for m in methods}
    for index in sorted(buckets):
        start = first + index * step
        end = start + step
        values = buckets[index]
        bounds = _iso(start), _iso(end)
        for m in methods:
            v = _apply(m, values)
            if v is not None:
                out[m].append([v, *bounds])
    return out


def _apply(method: str, values: list[Any]) -> Any:
    if method == "totalCount":
        return len(values)
    if method == "distinctCount":
        return len({orjson.dumps(v, option=orjson.OPT_SORT_KEYS) for v in values})
    nums = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if not nums:
        return None
    if method == "sum":
        return sum(nums)
    if method == "avg":
        return sum(nums) / len(nums)
    if method == "min":
        return min(nums)
    if method == "max":
        return max(nums)
    if method == "sumsq":
        return sum(x * x for x in nums)
    if method == "stddev":
        mean = sum(nums) / len(nums)
        return math.sqrt(sum((x - mean) ** 2 for x in nums) / len(nums))
    raise BadRequestData(f"unknown aggregation method {method!r}")


# Sensors report at the same instants and share bucket bounds: a page of a thousand sensors
# parses and formats the same few hundred times over, so both are cached.
@lru_cache(maxsize=65536)
def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@lru_cache(maxsize=4096)
def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"
