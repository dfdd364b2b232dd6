"""The zones: registered in the hub as FlowZone entities, read back as one lookup table."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .entities import ZONE, zone_entity, zone_from
from .errors import NoZones, UnknownZone
from .model import Zone


@dataclass(frozen=True)
class ZoneMap:
    """Every zone by id, and which zone each stop and sensor belongs to."""

    zones: dict[str, Zone]
    by_stop: dict[str, str]
    by_sensor: dict[str, str]

    @classmethod
    def of(cls, zones: Iterable[Zone]) -> ZoneMap:
        listed = sorted(zones, key=lambda z: z.id)
        by_stop: dict[str, str] = {}
        by_sensor: dict[str, str] = {}
        for z in listed:
            for s in z.stops:
                if by_stop.setdefault(s, z.id) != z.id:
                    raise ValueError(f"stop {s!r} is in zones {by_stop[s]} and {z.id}")
            for s in z.sensors:
                if by_sensor.setdefault(s, z.id) != z.id:
                    raise ValueError(f"sensor {s!r} is in zones {by_sensor[s]} and {z.id}")
        return cls({z.id: z for z in listed}, by_stop, by_sensor)

    @property
    def ids(self) -> list[str]:
        return list(self.zones)

    def check(self, names: Iterable[str]) -> list[str]:
        """``names`` if every one is a known zone; :class:`UnknownZone` naming the first
        that is not, with the known ones."""
        out = list(names)
        for name in out:
            if name not in self.zones:
                known = ", ".join(self.zones) or "none registered"
                raise UnknownZone(f"unknown zone {name!r}; known zones: {known}")
        return out


def register_zones(client: Any, zones: Iterable[Zone]) -> ZoneMap:
    """Write (replace) the zones in the hub; checks no stop or sensor is in two zones."""
    zone_map = ZoneMap.of(zones)
    client.upsert([zone_entity(z) for z in zone_map.zones.values()], replace=True)
    return zone_map


def load_zones(client: Any, *, required: bool = True) -> ZoneMap:
    """The registered zones; :class:`NoZones` when there are none and ``required``."""
    found = client.query(type=ZONE, limit=10_000, fmt="keyValues")
    if not found and required:
        raise NoZones(
            "no zones registered: register FlowZone entities (cityos.services.flows."
            "register_zones), or load the sample district with `cityos flows simulate`"
        )
    return ZoneMap.of(zone_from(e) for e in found)
