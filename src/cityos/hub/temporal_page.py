"""Temporal pagination (GS CIM 009 v1.8 clause 6.3.10): each entity of a response holds at
most the broker's instance limit; the rest is another request away.

An entity's instances, all its attributes together, are taken in time order (oldest first;
newest first with ``lastN``, which keeps the last N instances of each attribute) up to the
limit, so the range given is complete for every attribute of the entity: nothing inside it
is left out, whichever attribute it belongs to. Instances that share the cut's time are all
left out when not all of them fit, for the same reason. When any entity was cut the response
is 206 with ``Content-Range: date-time <start>-<end>/<size>`` over what it holds: from the
window's start (``timeAt``, else the first instance given) to the last instance given, or
with ``lastN`` from the window's end (else the newest instance given) back to the oldest;
``size`` is lastN, or ``*``. A client goes on from each entity's last instance.
"""

from __future__ import annotations

from cityos.hub.representation.temporal import Point, display_time
from cityos.hub.temporal import TimeWindow

Series = dict[str, list[Point]]  # attribute IRI -> its instances, oldest first


def keep_last(series: Series, last_n: int | None) -> Series:
    """``lastN``: the last N instances of each attribute."""
    if last_n is None:
        return series
    return {attr: points[-last_n:] for attr, points in series.items()}


def paginate(
    entities: list[Series], limit: int, last_n: int | None, window: TimeWindow
) -> str | None:
    """Cut each of ``entities`` (in place) to ``limit`` instances; the Content-Range if any
    was cut."""
    newest_first = last_n is not None
    if limit <= 0 or not any(_cut(series, limit, newest_first) for series in entities):
        return None
    times = sorted(p.time for series in entities for points in series.values() for p in points)
    if not times:
        return None
    if newest_first:
        start, end = window.before or times[-1], times[0]
    else:
        start, end = window.after or times[0], times[-1]
    size = str(last_n) if last_n is not None else "*"
    return f"date-time {display_time(start)}-{display_time(end)}/{size}"


def _cut(series: Series, limit: int, newest_first: bool) -> bool:
    """Keep the first ``limit`` instances of one entity in time order; True if it cut."""
    pool = sorted((p.time for points in series.values() for p in points), reverse=newest_first)
    if len(pool) <= limit:
        return False
    cut = pool[limit - 1]
    if pool[limit] == cut:  # the next one shares the cut's time: none at that time fits
        shorter = [t for t in pool[:limit] if t != cut]
        if shorter:
            cut = shorter[-1]
    for attr, points in series.items():
        series[attr] = [p for p in points if (p.time >= cut if newest_first else p.time <= cut)]
    return True
