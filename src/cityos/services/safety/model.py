"""The entities the safety service writes, as plain NGSI-LD dicts (no hub, no I/O).

- ``CrowdFlowObserved`` (FIWARE Smart Data Models, dataModel.Transportation), one per
  camera, what it counts and interval (``...:<camera>:<what>:<interval start>``): line
  crossings (``inbound``, ``outbound``: ``peopleCount`` and ``direction``, in the shape the
  flows service reads from people counters), and occupancy (``view``: everyone in the
  picture; ``zone:<zone>``: ``peopleCount`` = the interval's peak, ``averagePeopleCount``,
  ``occupancy`` = the share of its frames with someone there; no ``direction``). Each has
  ``dateObserved``, ``dateObservedFrom``/``To`` (text, the hub's UTC form, as flows
  queries them), ``sensor`` (the camera's id) and ``refDevice`` (its Device).
- ``Alert`` (dataModel.Alert): ``category`` ``security``, ``subCategory`` crowding,
  restrictedAreaAfterHours, loitering or cameraDisconnected, ``severity``, ``description``,
  ``dateIssued``, ``alertSource`` (the camera's Device), ``location`` when known, and
  ``snapshot`` (a masked JPEG as a data URI) when there is one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from cityos.hub.registry import device_entity_id

from .counting import Interval
from .incidents import Incident


@dataclass(frozen=True)
class Camera:
    """A camera as the hub knows it: its device id, a name, and where it is (lon, lat)."""

    camera_id: str
    name: str = ""
    location: tuple[float, float] | None = None
    flow_zone: str = ""  # the flows service's zone whose entrance the counting line is

    @property
    def device(self) -> str:
        """Its FIWARE Device entity (the same id the IoT agent keeps its counters in)."""
        return device_entity_id(self.camera_id)

    @property
    def key(self) -> str:
        return quote(self.camera_id, safe="")


def iso(at: datetime) -> str:
    """An instant as the hub writes it (UTC, microseconds, Z)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _dt(at: datetime) -> dict[str, Any]:
    return {"type": "Property", "value": {"@type": "DateTime", "@value": iso(at)}}


def _location(camera: Camera) -> dict[str, Any]:
    if camera.location is None:
        return {}
    lon, lat = camera.location
    point = {"type": "Point", "coordinates": [lon, lat]}
    return {"location": {"type": "GeoProperty", "value": point}}


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%S")


def _observation(
    camera: Camera, key: str, interval: Interval, origin: datetime, attrs: dict[str, Any]
) -> dict[str, Any]:
    """One CrowdFlowObserved of one interval. Times are text in the hub's form, as the flows
    service writes and queries them (``dateObservedFrom>=...``)."""
    start = origin + timedelta(seconds=interval.start)
    end = origin + timedelta(seconds=interval.end)

    def p(value: Any) -> dict[str, Any]:
        return {"type": "Property", "value": value}

    return {
        "id": f"urn:ngsi-ld:CrowdFlowObserved:{camera.key}:{key}:{_stamp(start)}",
        "type": "CrowdFlowObserved",
        **attrs,
        "dateObserved": p(iso(end)),
        "dateObservedFrom": p(iso(start)),
        "dateObservedTo": p(iso(end)),
        "sensor": p(camera.camera_id),
        "refDevice": {"type": "Relationship", "object": camera.device},
        **_location(camera),
    }


def crowd_flow_entities(
    camera: Camera, interval: Interval, origin: datetime, zones: list[str]
) -> list[dict[str, Any]]:
    """Occupancy in one interval (``origin``: the source's time 0): everyone in view, and
    each zone. No ``direction``: these are not crossings."""
    frames = max(1, interval.frames)

    def p(value: Any) -> dict[str, Any]:
        return {"type": "Property", "value": value}

    out = [
        _observation(camera, "view", interval, origin, {
            "peopleCount": p(interval.view_peak),
            "averagePeopleCount": p(round(interval.view_mean, 2)),
            "name": p(f"{camera.name or camera.camera_id}: in view"),
        })
    ]  # fmt: skip
    for zone in zones:
        out.append(
            _observation(camera, f"zone:{quote(zone, safe='')}", interval, origin, {
                "peopleCount": p(interval.zone_peak.get(zone, 0)),
                "averagePeopleCount": p(round(interval.zone_mean(zone), 2)),
                "occupancy": p(round(interval.zone_occupied.get(zone, 0) / frames, 3)),
                "name": p(f"{camera.name or camera.camera_id}: zone {zone}"),
            })
        )  # fmt: skip
    return out


def crossing_entities(camera: Camera, interval: Interval, origin: datetime) -> list[dict[str, Any]]:
    """Line crossings in one interval, ``inbound`` and ``outbound``: the shape the flows
    service reads from people counters (with ``zoneCode`` and ``refFlowZone`` when the
    camera's line is an entrance of a flows zone)."""
    out = []
    for direction, count in (("inbound", interval.crossed_in), ("outbound", interval.crossed_out)):
        attrs: dict[str, Any] = {
            "peopleCount": {"type": "Property", "value": count},
            "direction": {"type": "Property", "value": direction},
        }
        if camera.flow_zone:
            attrs["zoneCode"] = {"type": "Property", "value": camera.flow_zone}
            attrs["refFlowZone"] = {
                "type": "Relationship",
                "object": f"urn:ngsi-ld:FlowZone:{quote(camera.flow_zone, safe='')}",
            }
        out.append(_observation(camera, direction, interval, origin, attrs))
    return out


def alert_id(camera: Camera, kind: str, at: datetime, zone: str = "") -> str:
    stamp = at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    where = f":{quote(zone, safe='')}" if zone else ""
    return f"urn:ngsi-ld:Alert:safety:{camera.key}:{kind}{where}:{stamp}"


def alert_entity(
    camera: Camera,
    *,
    kind: str,
    severity: str,
    description: str,
    at: datetime,
    zone: str = "",
    snapshot: str | None = None,
) -> dict[str, Any]:
    """A FIWARE Alert raised by a camera (``snapshot``: a masked JPEG data URI)."""
    entity: dict[str, Any] = {
        "id": alert_id(camera, kind, at, zone),
        "type": "Alert",
        "category": {"type": "Property", "value": "security"},
        "subCategory": {"type": "Property", "value": kind},
        "severity": {"type": "Property", "value": severity},
        "description": {"type": "Property", "value": description},
        "dateIssued": _dt(at),
        "alertSource": {"type": "Relationship", "object": camera.device},
        **_location(camera),
    }
    if zone:
        entity["zone"] = {"type": "Property", "value": zone}
    if snapshot is not None:
        entity["snapshot"] = {"type": "Property", "value": snapshot}
    return entity


def incident_alert(
    camera: Camera, incident: Incident, origin: datetime, snapshot: str | None
) -> dict[str, Any]:
    return alert_entity(
        camera,
        kind=incident.kind,
        severity=incident.severity,
        description=f"camera {camera.name or camera.camera_id}: {incident.description}",
        at=origin + timedelta(seconds=incident.t),
        zone=incident.zone,
        snapshot=snapshot,
    )


def disconnected_alert(camera: Camera, reason: str, at: datetime) -> dict[str, Any]:
    """The camera's stream dropped: no snapshot (there is no frame)."""
    return alert_entity(
        camera,
        kind="cameraDisconnected",
        severity="medium",
        description=f"camera {camera.name or camera.camera_id} disconnected: {reason}",
        at=at,
    )
