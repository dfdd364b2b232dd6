"""The flows records as NGSI-LD entities, and back.

- ``FlowZone``: a zone, its capacity, stops and sensors.
- ``CrowdFlowObserved`` (FIWARE dataModel.Transportation): one counter's count in one
  interval and direction.
- ``AnonymousCommuterId`` (dataModel.Transportation): a journey (``source`` "fares",
  ``orig``/``dest`` zones) or a Wi-Fi stay (``source`` "wifi", ``orig`` = ``dest``), under a
  pseudonym (``anonymizedId``) — never a raw identifier, never a stop or access point finer
  than the zone.
- ``CrowdLevel``: a zone's crowd in one local hour; ``Alert`` when it crowds;
  ``CrowdForecast``: the next day's hours; ``CrowdDwellTime``: a zone's stays in one day.

Times are written in the hub's text form (UTC, microseconds, ``Z``) so q compares them.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from cityos.privacy.pseudonym import ALGORITHM

from .model import CounterReading, HourLevel, Journey, Presence, Zone, level_name

ZONE = "FlowZone"
COUNT = "CrowdFlowObserved"
COMMUTER = "AnonymousCommuterId"
LEVEL = "CrowdLevel"
ALERT = "Alert"
FORECAST = "CrowdForecast"
DWELL = "CrowdDwellTime"


def hub_time(at: datetime) -> str:
    """The hub's text form of a time (UTC, microseconds, ``Z``): what q compares."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _p(value: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value}


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%S")


def zone_id(zone: str) -> str:
    return f"urn:ngsi-ld:{ZONE}:{quote(zone, safe='')}"


def zone_entity(z: Zone) -> dict[str, Any]:
    e: dict[str, Any] = {
        "id": zone_id(z.id),
        "type": ZONE,
        "name": _p(z.name),
        "zoneCode": _p(z.id),
        "capacity": _p(z.capacity),
        "stops": _p(list(z.stops)),
        "sensors": _p(list(z.sensors)),
    }
    if z.location:
        e["location"] = {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": list(z.location)},
        }
    return e


def zone_from(e: dict[str, Any]) -> Zone:
    """A zone from its keyValues entity."""

    def listed(key: str) -> tuple[str, ...]:
        v = e.get(key, [])
        return tuple(v if isinstance(v, list) else [v])

    loc = e.get("location")
    where = tuple(loc["coordinates"][:2]) if isinstance(loc, dict) else None
    return Zone(
        id=e["zoneCode"],
        name=e.get("name", e["zoneCode"]),
        capacity=int(e["capacity"]),
        stops=listed("stops"),
        sensors=listed("sensors"),
        location=where,  # type: ignore[arg-type]
    )


def count_entity(r: CounterReading, zone: str) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:{COUNT}:{quote(r.sensor, safe='')}:{r.direction}:{_stamp(r.start)}",
        "type": COUNT,
        "peopleCount": _p(r.count),
        "direction": _p(r.direction),
        "dateObserved": _p(hub_time(r.end)),
        "dateObservedFrom": _p(hub_time(r.start)),
        "dateObservedTo": _p(hub_time(r.end)),
        "sensor": _p(r.sensor),
        "refFlowZone": {"type": "Relationship", "object": zone_id(zone)},
        "zoneCode": _p(zone),
    }


def _record_id(source: str, pseudonym: str, key: str) -> str:
    # the id says nothing the attributes do not: a hash of pseudonym and time or zone
    digest = hashlib.sha256(f"{pseudonym}|{key}".encode()).hexdigest()[:24]
    return f"urn:ngsi-ld:{COMMUTER}:{source}:{digest}"


def journey_entity(j: Journey) -> dict[str, Any]:
    return {
        "id": _record_id("fares", j.pseudonym, f"{hub_time(j.start)}|{j.seq}"),
        "type": COMMUTER,
        "anonymizedId": _p(j.pseudonym),
        "algorithm": _p(ALGORITHM),
        "source": _p("fares"),
        "orig": _p(j.origin),
        "dest": _p(j.destination),
        "date": _p(hub_time(j.start)),
        "dateArrived": _p(hub_time(j.end)),
    }


def journey_from(e: dict[str, Any]) -> Journey:
    return Journey(
        e["anonymizedId"], e["orig"], e["dest"], parse_time(e["date"]), parse_time(e["dateArrived"])
    )


def presence_id(pseudonym: str, zone: str, day: str) -> str:
    """One stay per device, zone and local day (a weekly pseudonym spans seven)."""
    return _record_id("wifi", pseudonym, f"{zone}|{day}")


def presence_entity(p: Presence, day: str) -> dict[str, Any]:
    return {
        "id": presence_id(p.pseudonym, p.zone, day),
        "type": COMMUTER,
        "anonymizedId": _p(p.pseudonym),
        "algorithm": _p(ALGORITHM),
        "source": _p("wifi"),
        "orig": _p(p.zone),
        "dest": _p(p.zone),
        "date": _p(hub_time(p.first)),
        "dateLastSeen": _p(hub_time(p.last)),
    }


def presence_from(e: dict[str, Any]) -> Presence:
    return Presence(
        e["anonymizedId"], e["orig"], parse_time(e["date"]), parse_time(e["dateLastSeen"])
    )


def level_entity(h: HourLevel) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:{LEVEL}:{quote(h.zone, safe='')}:{_stamp(h.start)}",
        "type": LEVEL,
        "refFlowZone": {"type": "Relationship", "object": zone_id(h.zone)},
        "zoneCode": _p(h.zone),
        "dateObservedFrom": _p(hub_time(h.start)),
        "dateObservedTo": _p(hub_time(h.end)),
        "peopleCount": _p(h.entries),
        "peopleExits": _p(h.exits),
        "peoplePresent": _p(h.present),
        "occupancy": _p(round(h.occupancy, 4)),
        "crowdLevel": _p(level_name(h.occupancy)),
        "capacity": _p(h.capacity),
        "wifiDevices": _p(h.wifi_devices),
    }


def level_from(e: dict[str, Any]) -> HourLevel:
    return HourLevel(
        e["zoneCode"],
        parse_time(e["dateObservedFrom"]),
        parse_time(e["dateObservedTo"]),
        int(e["peopleCount"]),
        int(e["peopleExits"]),
        int(e["peoplePresent"]),
        int(e["capacity"]),
        int(e["wifiDevices"]),
    )
