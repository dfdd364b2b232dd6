"""The signal service over the hub: devices, entity ids, and decisions as commands.

Field side (the cabinets, simulated in :mod:`.sim.cabinet`): every lane group's detector is
a device of the service group ``traffic-detectors`` whose measures become a
``TrafficFlowObserved`` entity (intensity, occupancy, queueLength, averageVehicleSpeed, each
with ``observedAt``), and every signal is a device of ``traffic-signals`` (its
``TrafficSignal`` entity: currentPhase, phaseElapsed) with one command, ``setPhase``.
:func:`provision` creates those devices; :class:`Wiring` says which is which.

Service side (:class:`HubSignalService`): reads the hub through a
:class:`~cityos.hub.client.HubClient` — the TrafficFlowObserved and TrafficSignal entities,
nothing from SUMO — rebuilds each junction's :class:`~.model.Observation`, and writes each
controller decision as the ``setPhase`` command of the TrafficSignal entity. The hub turns
that write into a device command (a subscription, the outbox, delivery). The same class
runs inside the simulated loop (:mod:`.sim.hubloop`) and as the service's background task
under ``cityos serve`` (:mod:`.task`); neither needs SUMO here.

Times: the hub stores ISO 8601 instants; controllers count seconds. :func:`sim_iso` and
:func:`sim_seconds` convert with an origin (simulation time 0) that a simulated run sets.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from cityos.devices.agent import Agent
from cityos.hub.client import HubClient

from .congestion import DistrictEmissions, SegmentReading
from .model import Alert, Decision, LaneGroupObservation, Observation, SignalLayout
from .priority import BusReport

DETECTOR_KEY = "traffic-detectors"
SIGNAL_KEY = "traffic-signals"
COMMAND = "setPhase"
# simulated seconds are seconds of this day (a Monday): RESCO's hours are 07:00 and 16:00
SIM_DAY = datetime(2026, 1, 5, tzinfo=UTC)

DETECTOR_GROUP: dict[str, Any] = {
    "apikey": DETECTOR_KEY,
    "entity_type": "TrafficFlowObserved",
    "protocol": "IoTA-JSON",
    "attributes": [
        {"object_id": "c", "name": "intensity", "type": "Integer"},
        {"object_id": "o", "name": "occupancy", "type": "Number"},
        {"object_id": "q", "name": "queueLength", "type": "Integer"},
        {"object_id": "s", "name": "averageVehicleSpeed", "type": "Number", "unitCode": "KMH"},
    ],
}
SIGNAL_GROUP: dict[str, Any] = {
    "apikey": SIGNAL_KEY,
    "entity_type": "TrafficSignal",
    "protocol": "IoTA-JSON",
    "attributes": [
        {"object_id": "p", "name": "currentPhase", "type": "Integer"},
        {"object_id": "e", "name": "phaseElapsed", "type": "Number", "unitCode": "SEC"},
    ],
    "commands": [{"name": COMMAND, "type": "command"}],
}


BUS_KEY = "transit-vehicles"
BUS_GROUP: dict[str, Any] = {
    "apikey": BUS_KEY,
    "entity_type": "Vehicle",
    "protocol": "IoTA-JSON",
    "attributes": [
        {"object_id": "l", "name": "location", "type": "geo:point"},
        {"object_id": "v", "name": "speed", "type": "Number", "unitCode": "KMH"},
        {"object_id": "h", "name": "heading", "type": "Number"},
        {"object_id": "t", "name": "tripId", "type": "Text"},
        {"object_id": "r", "name": "routeId", "type": "Text"},
        {"object_id": "d", "name": "delay", "type": "Number", "unitCode": "SEC"},
        {"object_id": "n", "name": "nextStopSequence", "type": "Integer"},
        {"object_id": "a", "name": "atStop", "type": "Boolean"},
        # the signal priority request: the next signal on its path, from which lane, how far
        {"object_id": "s", "name": "nextSignal", "type": "Text"},
        {"object_id": "g", "name": "approachLane", "type": "Text"},
        {"object_id": "e", "name": "exitLane", "type": "Text"},
        {"object_id": "x", "name": "distanceToStopLine", "type": "Number", "unitCode": "MTR"},
    ],
    "static_attributes": [{"name": "vehicleType", "type": "Text", "value": "bus"}],
}


def vehicle_entity(vehicle: str) -> str:
    return f"urn:ngsi-ld:Vehicle:{quote(vehicle, safe='')}"


def _group(group: dict[str, Any], context: str | None) -> dict[str, Any]:
    doc = json.loads(json.dumps(group))
    if context:
        doc["jsonLdContext"] = context  # the city's terms for what its devices report
    return doc


def _put_device(agent: Agent, tenant: str, body: dict[str, Any]) -> None:
    """Provision a device, replacing the one an earlier run against the same hub left under
    the same id (its ids are derived from the network, so a rerun finds them all)."""
    agent.delete_device(tenant, body["device_id"])
    agent.add_device(tenant, body)


# the instant simulation time 0 stands for, for the run in progress (run_through_hub sets it)
ORIGIN: contextvars.ContextVar[datetime] = contextvars.ContextVar("origin", default=SIM_DAY)


def sim_iso(t: float) -> str:
    """A simulation time (s) as the ISO 8601 instant the hub stores."""
    return (ORIGIN.get() + timedelta(seconds=t)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sim_seconds(iso: str) -> float:
    """The simulation time (s) of an ISO 8601 instant written by :func:`sim_iso`."""
    at = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return (at - ORIGIN.get()).total_seconds()


def _device(kind: str, *parts: str) -> str:
    """A device id the agent accepts for any SUMO id: readable, and unique by a hash."""
    raw = ":".join(parts)
    readable = re.sub(r"[^A-Za-z0-9_-]", "_", raw)[:48]
    return f"{kind}-{readable}-{hashlib.sha1(raw.encode()).hexdigest()[:8]}"


def segment_entity(edge: str) -> str:
    """The service's own segment ids (``traffic:``): a city's RoadSegment entities from
    other sources are cut differently and keep theirs."""
    return f"urn:ngsi-ld:RoadSegment:traffic:{quote(edge, safe='')}"


def signal_entity(tls: str) -> str:
    return f"urn:ngsi-ld:TrafficSignal:{quote(tls, safe='')}"


def flow_entity(tls: str, group: str) -> str:
    return f"urn:ngsi-ld:TrafficFlowObserved:{quote(tls, safe='')}:{quote(group, safe='')}"


@dataclass
class Wiring:
    """Which device and entity stand for which signal and lane group."""

    signal_device: dict[str, str] = field(default_factory=dict)  # tls -> device id
    flow_device: dict[tuple[str, str], str] = field(default_factory=dict)  # (tls, group) -> id
    tls_of_entity: dict[str, str] = field(default_factory=dict)  # signal entity id -> tls
    group_of_entity: dict[str, tuple[str, str]] = field(default_factory=dict)
    bus_device: dict[str, str] = field(default_factory=dict)  # trip id -> device id


def provision_buses(
    agent: Agent, tenant: str, plan: Any, wiring: Wiring, context: str | None = None
) -> None:
    """One device per scheduled bus (its trip, in ``plan.trips`` of a
    :class:`~.sim.transit.TransitPlan`): its on-board unit."""
    if agent.doc(agent.GROUP, tenant, BUS_KEY) is None:
        agent.add_group(tenant, _group(BUS_GROUP, context))
    for trip in plan.trips:
        device = _device("bus", trip.trip_id)
        _put_device(
            agent,
            tenant,
            {
                "device_id": device,
                "apikey": BUS_KEY,
                "entity_name": vehicle_entity(trip.trip_id),
                "static_attributes": [{"name": "name", "type": "Text", "value": trip.trip_id}],
            },
        )
        wiring.bus_device[trip.trip_id] = device


def wiring_for(layouts: dict[str, SignalLayout]) -> Wiring:
    """Which device and entity stand for each signal and measured lane group of
    ``layouts`` (derived from the ids alone: the same layouts give the same wiring)."""
    wiring = Wiring()
    for tls, layout in layouts.items():
        if not layout.phases:
            continue
        signal_id = signal_entity(tls)
        wiring.signal_device[tls] = _device("signal", tls)
        wiring.tls_of_entity[signal_id] = tls
        for gid, group in layout.groups.items():
            if group.kind == "crossing":
                continue
            flow_id = flow_entity(tls, gid)
            wiring.flow_device[(tls, gid)] = _device("flow", tls, gid)
            wiring.group_of_entity[flow_id] = (tls, gid)
    return wiring


def provision(
    agent: Agent, tenant: str, layouts: dict[str, SignalLayout], context: str | None = None
) -> Wiring:
    """The service groups, and one device per signal and per measured lane group."""
    for group in (DETECTOR_GROUP, SIGNAL_GROUP):
        if agent.doc(agent.GROUP, tenant, group["apikey"]) is None:
            agent.add_group(tenant, _group(group, context))
    wiring = wiring_for(layouts)
    for tls, device in wiring.signal_device.items():
        _put_device(
            agent,
            tenant,
            {
                "device_id": device,
                "apikey": SIGNAL_KEY,
                "entity_name": signal_entity(tls),
                "static_attributes": [
                    {"name": "name", "type": "Text", "value": tls},
                    {"name": "phaseCount", "type": "Integer", "value": len(layouts[tls].phases)},
                ],
            },
        )
    for (tls, gid), device in wiring.flow_device.items():
        group = layouts[tls].groups[gid]
        _put_device(
            agent,
            tenant,
            {
                "device_id": device,
                "apikey": DETECTOR_KEY,
                "entity_name": flow_entity(tls, gid),
                "static_attributes": [
                    {"name": "refTrafficSignal", "type": "Relationship",
                     "value": signal_entity(tls)},
                    {"name": "laneGroup", "type": "Text", "value": gid},
                    {"name": "laneId", "type": "Text", "value": ",".join(group.lanes)},
                    {"name": "refRoadSegment", "type": "Text", "value": group.edge},
                ],
            },
        )  # fmt: skip
    return wiring


class HubSignalService:
    """The traffic service: observations from the hub, decisions back as commands."""

    def __init__(
        self,
        client: HubClient,
        wiring: Wiring,
        layouts: dict[str, SignalLayout],
        alerts: HubClient | None = None,
    ) -> None:
        """``client`` speaks for the tenant in the city's ``@context``; ``alerts`` (default:
        ``client``) writes the Alert entities, in FIWARE's own terms whatever the city's
        context calls "category"."""
        self.client = client
        self.alerts = alerts or client
        self.wiring = wiring
        self.layouts = layouts

    def observations(self) -> dict[str, Observation]:
        """Each junction as the hub knows it (the oldest reading dates the whole)."""
        groups: dict[str, dict[str, LaneGroupObservation]] = {}
        for e in self._all("TrafficFlowObserved"):
            where = self.wiring.group_of_entity.get(e["id"])
            if where is None:
                continue
            tls, gid = where
            at = sim_seconds(e["intensity"]["observedAt"])
            speed = e.get("averageVehicleSpeed")
            fresh_speed = speed is not None and speed.get("observedAt") == e["intensity"].get(
                "observedAt"
            )
            groups.setdefault(tls, {})[gid] = LaneGroupObservation(
                group_id=gid,
                vehicle_count=int(e["intensity"]["value"]),
                occupancy=float(e["occupancy"]["value"]),
                queue=int(e["queueLength"]["value"]),
                mean_speed=float(speed["value"]) / 3.6 if fresh_speed else None,
                observed_at=at,
            )
        out: dict[str, Observation] = {}
        for e in self._all("TrafficSignal"):
            tls = self.wiring.tls_of_entity.get(e["id"])
            if tls is None or tls not in groups or "currentPhase" not in e:
                continue
            readings = groups[tls]
            phase = int(e["currentPhase"]["value"])
            out[tls] = Observation(
                tls_id=tls,
                observed_at=min(g.observed_at for g in readings.values()),
                groups=readings,
                current_phase=None if phase < 0 else phase,
                phase_elapsed=float(e["phaseElapsed"]["value"]),
            )
        return out

    def buses(self, now: float) -> list[BusReport]:
        """The buses as the hub knows them (reported this step), for signal priority."""
        out = []
        for e in self._all("Vehicle"):
            if "tripId" not in e or "location" not in e:
                continue
            at = sim_seconds(e["location"]["observedAt"])
            if at < now:
                continue  # not reported this step: gone, or its unit is silent
            lon, lat = e["location"]["value"]["coordinates"][:2]
            to_line = float(e["distanceToStopLine"]["value"])
            out.append(
                BusReport(
                    vehicle_id=e["tripId"]["value"],
                    trip_id=e["tripId"]["value"],
                    route_id=e["routeId"]["value"],
                    lon=lon,
                    lat=lat,
                    bearing=float(e["heading"]["value"]),
                    speed_mps=float(e["speed"]["value"]) / 3.6,
                    at=at,
                    distance_m=0.0,
                    next_signal=e["nextSignal"]["value"] or None,
                    approach_lane=e["approachLane"]["value"] or None,
                    to_stop_line_m=to_line if to_line >= 0 else None,
                    delay_s=float(e["delay"]["value"]) if "delay" in e else None,
                    exit_lane=e["exitLane"]["value"] or None,
                )
            )
        return out

    def _all(self, etype: str) -> Iterable[dict[str, Any]]:
        offset = 0
        while True:
            page = self.client.query(type=etype, limit=1000, offset=offset)
            yield from page
            if len(page) < 1000:
                return
            offset += len(page)

    def command(self, decisions: Iterable[Decision]) -> int:
        """Write each decision as its signal's setPhase command; how many were written."""
        n = 0
        for d in decisions:
            value: dict[str, Any] = {"phase": d.phase, "duration": d.duration}
            if d.observed_at is not None:
                value["basedOn"] = sim_iso(d.observed_at)
            self.client.update_attrs(signal_entity(d.tls_id), {COMMAND: value})
            n += 1
        return n

    def road_segments(
        self, readings: dict[str, SegmentReading], jammed: set[str], now: float
    ) -> None:
        """Each measured road segment's congestion, as RoadSegment entities (with history)."""
        at = sim_iso(now)
        entities = []
        for edge, r in readings.items():
            entity: dict[str, Any] = {
                "id": segment_entity(edge),
                "type": "RoadSegment",
                "name": {"type": "Property", "value": edge},
                "congestionIndex": {"type": "Property", "value": round(r.congestion_index, 3),
                                    "observedAt": at},
                "congested": {"type": "Property", "value": edge in jammed, "observedAt": at},
                "queueLength": {"type": "Property", "value": r.queue, "observedAt": at},
                "occupancy": {"type": "Property", "value": round(r.occupancy, 2),
                              "observedAt": at},
            }  # fmt: skip
            if r.mean_speed is not None:
                entity["averageVehicleSpeed"] = {
                    "type": "Property", "value": round(r.mean_speed * 3.6, 1),
                    "unitCode": "KMH", "observedAt": at,
                }  # fmt: skip
            entities.append(entity)
        if entities:
            self.client.upsert(entities, replace=False)

    def jam_alert(self, edge: str, event: str, reading: SegmentReading, now: float) -> None:
        """A FIWARE Alert when a segment jams (and an informational one when it clears)."""
        self.alerts.upsert(
            [
                {
                    "id": f"urn:ngsi-ld:Alert:traffic-jam:{quote(edge, safe='')}:{int(now)}",
                    "type": "Alert",
                    "category": {"type": "Property", "value": "traffic"},
                    "subCategory": {
                        "type": "Property",
                        "value": "trafficJam" if event == "jam" else "trafficJamCleared",
                    },
                    "severity": {
                        "type": "Property",
                        "value": "medium" if event == "jam" else "informational",
                    },
                    "description": {
                        "type": "Property",
                        "value": f"road segment {edge}: congestion index "
                        f"{reading.congestion_index:.2f}, {reading.queue} vehicles queued",
                    },
                    "dateIssued": {
                        "type": "Property",
                        "value": {"@type": "DateTime", "@value": sim_iso(now)},
                    },
                    "alertSource": {"type": "Relationship", "object": segment_entity(edge)},
                }
            ]
        )

    def emissions(self, rows: Iterable[DistrictEmissions]) -> int:
        """Traffic emissions per district and interval, as hub entities (the indicators')."""
        entities = [
            {
                "id": f"urn:ngsi-ld:TrafficEmissionObserved:{quote(r.district, safe='')}:"
                f"{int(r.begin)}",
                "type": "TrafficEmissionObserved",
                "district": {"type": "Property", "value": r.district},
                "dateObservedFrom": {
                    "type": "Property",
                    "value": {"@type": "DateTime", "@value": sim_iso(r.begin)},
                },
                "dateObservedTo": {
                    "type": "Property",
                    "value": {"@type": "DateTime", "@value": sim_iso(r.end)},
                },
                "co2": {"type": "Property", "value": round(r.co2_kg, 3), "unitCode": "KGM"},
                "nox": {"type": "Property", "value": round(r.nox_g, 3), "unitCode": "GRM"},
                "pmx": {"type": "Property", "value": round(r.pmx_g, 4), "unitCode": "GRM"},
                "fuel": {"type": "Property", "value": round(r.fuel_l, 3), "unitCode": "LTR"},
                "vehicleHours": {
                    "type": "Property",
                    "value": round(r.vehicle_hours, 2),
                    "unitCode": "HUR",
                },
            }  # fmt: skip
            for r in rows
        ]
        if entities:
            self.client.upsert(entities)
        return len(entities)

    def raise_alert(self, alert: Alert) -> None:
        """A FIWARE Alert entity for a signal's fallback or recovery (Smart Data Models)."""
        at = sim_iso(alert.at)
        self.alerts.upsert(
            [
                {
                    "id": f"urn:ngsi-ld:Alert:traffic:{quote(alert.tls_id, safe='')}:{int(alert.at)}",
                    "type": "Alert",
                    "category": {"type": "Property", "value": "traffic"},
                    "subCategory": {"type": "Property", "value": f"signal-{alert.kind}"},
                    "severity": {
                        "type": "Property",
                        "value": "high" if alert.kind == "fallback" else "informational",
                    },
                    "description": {"type": "Property", "value": alert.message},
                    "dateIssued": {
                        "type": "Property",
                        "value": {"@type": "DateTime", "@value": at},
                    },
                    "alertSource": {"type": "Relationship", "object": signal_entity(alert.tls_id)},
                }
            ]
        )
