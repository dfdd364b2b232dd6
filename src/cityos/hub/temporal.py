"""The temporal API's model: time windows, ISO durations, history rows as each attribute's
instances on a time property, and aggregation (GS CIM 009 clause 4.5.19: ``aggrMethods``
over ``aggrPeriodDuration`` buckets, ``[value, start, end]`` triples).

Pure functions over :class:`HistoryRow`; the routes in :mod:`cityos.hub.api.temporal` choose
the rows, :mod:`cityos.hub.representation.temporal` writes the instances out and
:mod:`cityos.hub.temporal_page` cuts a response to the broker's instance limit.
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

from cityos.hub.errors import BadRequestData, ResourceNotFound
from cityos.hub.model import VALUE_KEY, to_hub_time
from cityos.hub.representation.names import is_uri
from cityos.hub.representation.temporal import INSTANCE_ID_PREFIX, Point, display_time
from cityos.hub.store.base import HistoryRow

AGGREGATIONS = ("totalCount", "distinctCount", "sum", "avg", "min", "max", "stddev", "sumsq")
_DURATION = re.compile(
    r"^P(?:(?P<w>\d+(?:\.\d+)?)W)?(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


TIME_PROPERTIES = ("observedAt", "createdAt", "modifiedAt", "deletedAt")


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
    if prop not in TIME_PROPERTIES:
        raise BadRequestData(
            f"timeproperty must be one of {', '.join(TIME_PROPERTIES)}, not {prop!r}"
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


def history_entity(entity_id: str, rows: list[HistoryRow]) -> dict[str, Any] | None:
    """The entity an edit of history is about when only its history is left (it was
    deleted): its id and the types its rows recorded, so the same rules apply to it."""
    if not rows:
        return None
    types = list(dict.fromkeys(r.entity_type for r in rows))
    return {"id": entity_id, "type": types, "attrs": {}}


def parse_instance_urn(text: str) -> int:
    """The hub's number of an instance; a URI it did not issue names no instance here (404),
    anything else is not an instanceId at all (400)."""
    if text.startswith(INSTANCE_ID_PREFIX) and text[len(INSTANCE_ID_PREFIX) :].isdigit():
        return int(text[len(INSTANCE_ID_PREFIX) :])
    if is_uri(text):
        raise ResourceNotFound(f"no instance {text} ({INSTANCE_ID_PREFIX}N are this hub's)")
    raise BadRequestData(f"instanceId {text!r} is not a URI")


def to_points(
    rows: list[HistoryRow], time_property: str, dataset_ids: list[str] | None = None
) -> dict[str, list[Point]]:
    """History rows as each attribute's instances on the chosen time property, oldest first.

    ``deletedAt`` gives the deletions (at the hub's time of the change), the others the
    values written; ``dataset_ids`` keeps those datasets only (``@none``: the default one).
    """
    out: dict[str, list[Point]] = {}
    for row in rows:
        if dataset_ids is not None and (row.dataset_id or "@none") not in dataset_ids:
            continue
        if time_property == "deletedAt":
            if row.op != "delete":
                continue
            out.setdefault(row.attr, []).append(Point(row.recorded_at, row, deleted=True))
            continue
        if row.op not in ("create", "update"):
            continue
        time = row.observed_at if time_property == "observedAt" else row.recorded_at
        if time is not None:
            out.setdefault(row.attr, []).append(Point(time, row))
    for points in out.values():
        points.sort(key=lambda p: p.time)
    return out


def payload(inst: dict[str, Any]) -> Any:
    return inst.get(VALUE_KEY.get(inst.get("type", "Property"), "value"))


def aggregate(
    points: list[Point], window: TimeWindow, methods: list[str], period: timedelta | None
) -> dict[str, list[list[Any]]]:
    """``[value, start, end]`` per bucket of ``period`` (the whole window when none)."""
    return _aggregate([(p.time, payload(p.row.instance)) for p in points], window, methods, period)


def _aggregate(
    series: list[tuple[str, Any]], window: TimeWindow, methods: list[str], period: timedelta | None
) -> dict[str, list[list[Any]]]:
    times = [t for t, _ in series]
    if not series:
        return {m: [] for m in methods}
    first = _dt(window.after or times[0])
    last = _dt(window.before) if window.before else _dt(times[-1]) + timedelta(microseconds=1)
    step = (
        period if period and period.total_seconds() > 0 else (last - first) or timedelta(seconds=1)
    )
    buckets: dict[int, list[Any]] = defaultdict(list)
    for t, value in series:
        index = int((_dt(t) - first) / step)
        buckets[index].append(value)
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
    return display_time(dt.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z")
