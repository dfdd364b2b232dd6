"""Fare taps -> journeys under pseudonyms: the only place a raw card id is handled.

The fares feed hands over taps with raw card ids; :func:`pair_taps` pairs each card's
tap-in with its next tap-out in memory, turns the card id into its pseudonym for the day of
the tap-in, reduces the stops to their zones and the times to ``time_resolution_min``, and
returns journeys that carry nothing else. :func:`ingest_taps` stores those. A tap with a
stop no zone holds, a tap-in without a tap-out (or one more than ``max_journey`` later) and
a tap-out without a tap-in are counted, not stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from cityos.privacy import Pseudonymiser

from .datasets import declare_flows_datasets
from .days import floor_minutes
from .entities import journey_entity
from .model import TAP_KINDS, Journey, Tap
from .service_settings import FlowsSettings
from .zones import ZoneMap, load_zones

BATCH = 1000
MAX_JOURNEY = timedelta(hours=4)


@dataclass
class TapResult:
    taps: int = 0
    journeys: int = 0
    unmatched_in: int = 0  # a tap-in with no tap-out after it (within max_journey)
    unmatched_out: int = 0  # a tap-out with no tap-in before it
    unknown_stops: int = 0
    bad_kind: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def pair_taps(
    taps: Iterable[Tap],
    zones: ZoneMap,
    pseudonymiser: Pseudonymiser,
    *,
    resolution_min: int = 5,
    max_journey: timedelta = MAX_JOURNEY,
) -> tuple[list[Journey], TapResult]:
    """Journeys from taps (in any order), under pseudonyms; what was left out."""
    result = TapResult()
    rows = []
    for t in taps:
        result.taps += 1
        if t.kind not in TAP_KINDS:
            result.bad_kind += 1
            continue
        zone = zones.by_stop.get(t.stop)
        if zone is None:
            result.unknown_stops += 1
            continue
        rows.append((t.card, t.at, t.kind == "out", zone))
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    journeys: list[Journey] = []
    pending: tuple[str, Any, bool, str] | None = None
    same_start: dict[tuple[str, Any], int] = {}
    for row in rows:
        card, at, is_out, zone = row
        if pending is not None and pending[0] != card:
            result.unmatched_in += 1
            pending = None
        if not is_out:
            if pending is not None:
                result.unmatched_in += 1
            pending = row
            continue
        if pending is None or at - pending[1] > max_journey:
            result.unmatched_out += 1
            if pending is not None:
                result.unmatched_in += 1
            pending = None
            continue
        start = pending[1]
        pseudonym = pseudonymiser.pseudonym(card, "card", start)
        rounded = floor_minutes(start, resolution_min)
        seq = same_start.get((pseudonym, rounded), 0)
        same_start[(pseudonym, rounded)] = seq + 1
        journeys.append(
            Journey(pseudonym, pending[3], zone, rounded, floor_minutes(at, resolution_min), seq)
        )
        pending = None
    if pending is not None:
        result.unmatched_in += 1
    result.journeys = len(journeys)
    return journeys, result


def ingest_taps(
    client: Any,
    pseudonymiser: Pseudonymiser,
    taps: Iterable[Tap],
    settings: FlowsSettings | None = None,
    zones: ZoneMap | None = None,
) -> TapResult:
    """Pair, pseudonymise and store a batch of taps (a day's file, an hour's feed). A
    journey whose tap-out comes in a later batch is left unmatched: hand over whole days."""
    settings = settings or FlowsSettings()
    zones = zones or load_zones(client)
    declare_flows_datasets(client, settings)
    journeys, result = pair_taps(
        taps, zones, pseudonymiser, resolution_min=settings.time_resolution_min
    )
    for i in range(0, len(journeys), BATCH):
        client.upsert([journey_entity(j) for j in journeys[i : i + BATCH]], replace=True)
    return result
