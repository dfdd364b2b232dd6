"""Wi-Fi sightings -> stays per device, zone and local day, under pseudonyms.

A phone's probe requests seen by a zone's access points give when it was first and last
there that day; the MAC address becomes its pseudonym for the period before anything is
stored, and the access point is reduced to its zone. A later batch of the same day extends
the stay already stored (first seen kept, last seen moved on). Phones that randomise their
MAC address (most since 2020 when not connected) look like several devices: counts are an
upper bound and dwell times a lower one (docs/services/flows.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from cityos.privacy import Pseudonymiser

from .datasets import declare_flows_datasets
from .days import day_bounds, floor_minutes, local_day
from .entities import COMMUTER, hub_time, presence_entity, presence_from, presence_id
from .model import Presence, Sighting
from .service_settings import FlowsSettings
from .zones import ZoneMap, load_zones

BATCH = 1000


@dataclass
class WifiResult:
    sightings: int = 0
    stays: int = 0
    extended: int = 0  # stays already stored that this batch extended
    unknown_sensors: int = 0
    bad_addresses: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def group_stays(
    sightings: Iterable[Sighting],
    zones: ZoneMap,
    pseudonymiser: Pseudonymiser,
    *,
    resolution_min: int = 5,
) -> tuple[dict[date, list[Presence]], WifiResult]:
    """Stays by local day, under pseudonyms; what was left out."""
    result = WifiResult()
    spans: dict[tuple[str, str, date], list[datetime]] = {}
    for s in sightings:
        result.sightings += 1
        zone = zones.by_sensor.get(s.sensor)
        if zone is None:
            result.unknown_sensors += 1
            continue
        try:
            pseudonym = pseudonymiser.pseudonym(s.mac, "mac", s.at)
        except ValueError:
            result.bad_addresses += 1
            continue
        key = (pseudonym, zone, local_day(s.at, pseudonymiser.zone))
        span = spans.get(key)
        if span is None:
            spans[key] = [s.at, s.at]
        else:
            span[0], span[1] = min(span[0], s.at), max(span[1], s.at)
    out: dict[date, list[Presence]] = {}
    for (pseudonym, zone, day), (first, last) in spans.items():
        out.setdefault(day, []).append(
            Presence(
                pseudonym,
                zone,
                floor_minutes(first, resolution_min),
                floor_minutes(last, resolution_min),
            )
        )
    result.stays = len(spans)
    return out, result


def stays_of_day(client: Any, day: date, zone: Any) -> dict[str, Presence]:
    """The stored stays that began on a local day, by entity id."""
    start, end = day_bounds(day, zone)
    q = f'source=="wifi";date>={hub_time(start)};date<{hub_time(end)}'
    found = client.query(type=COMMUTER, q=q, limit=1_000_000, fmt="keyValues")
    return {e["id"]: presence_from(e) for e in found}


def ingest_sightings(
    client: Any,
    pseudonymiser: Pseudonymiser,
    sightings: Iterable[Sighting],
    settings: FlowsSettings | None = None,
    zones: ZoneMap | None = None,
) -> WifiResult:
    """Pseudonymise and store a batch of sightings, extending stays already stored."""
    settings = settings or FlowsSettings()
    zones = zones or load_zones(client)
    declare_flows_datasets(client, settings)
    by_day, result = group_stays(
        sightings, zones, pseudonymiser, resolution_min=settings.time_resolution_min
    )
    for day, stays in sorted(by_day.items()):
        stored = stays_of_day(client, day, pseudonymiser.zone)
        label = day.isoformat()
        entities = []
        for p in stays:
            old = stored.get(presence_id(p.pseudonym, p.zone, label))
            if old is not None:
                result.extended += 1
                p = Presence(p.pseudonym, p.zone, min(p.first, old.first), max(p.last, old.last))
            entities.append(presence_entity(p, label))
        for i in range(0, len(entities), BATCH):
            client.upsert(entities[i : i + BATCH], replace=True)
    return result
