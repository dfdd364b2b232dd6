"""People counters and cameras' counting lines -> CrowdFlowObserved entities.

A reading is a count of anonymous crossings in one direction over one interval; no
identifier is ever received. Each is stored once (its id is the sensor, direction and
interval start), so a feed sent twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .datasets import declare_flows_datasets
from .entities import count_entity
from .model import DIRECTIONS, CounterReading
from .service_settings import FlowsSettings
from .zones import ZoneMap, load_zones

BATCH = 1000


@dataclass
class CountResult:
    readings: int = 0
    stored: int = 0
    unknown_sensors: int = 0
    refused: int = 0  # a negative count, an unknown direction, an empty interval

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def ingest_counts(
    client: Any,
    readings: Iterable[CounterReading],
    settings: FlowsSettings | None = None,
    zones: ZoneMap | None = None,
) -> CountResult:
    """Store counter readings of known sensors; what was left out and why."""
    settings = settings or FlowsSettings()
    zones = zones or load_zones(client)
    declare_flows_datasets(client, settings)
    result = CountResult()
    batch: list[dict[str, Any]] = []
    for r in readings:
        result.readings += 1
        zone = zones.by_sensor.get(r.sensor)
        if zone is None:
            result.unknown_sensors += 1
            continue
        if r.count < 0 or r.direction not in DIRECTIONS or r.end <= r.start:
            result.refused += 1
            continue
        batch.append(count_entity(r, zone))
        if len(batch) >= BATCH:
            client.upsert(batch, replace=True)
            result.stored += len(batch)
            batch = []
    if batch:
        client.upsert(batch, replace=True)
        result.stored += len(batch)
    return result
