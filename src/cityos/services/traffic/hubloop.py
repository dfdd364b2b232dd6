"""The control loop through the hub, the way a city runs it.

Field side (:class:`Cabinet`, standing in for a controller cabinet at each junction): every
lane group's detector is a device of the service group ``traffic-detectors`` whose measures
become a ``TrafficFlowObserved`` entity (intensity, occupancy, queueLength,
averageVehicleSpeed, each with ``observedAt``), and every signal is a device of
``traffic-signals`` (its ``TrafficSignal`` entity: currentPhase, phaseElapsed) with one
command, ``setPhase``. Measures enter through the IoT agent (:meth:`Agent.ingest_many`, what
MQTT and HTTP messages become), so limits of trust and format are the agent's.

Service side (:class:`HubSignalService`): reads the hub — the TrafficFlowObserved and
TrafficSignal entities, nothing from SUMO — rebuilds each junction's
:class:`~.model.Observation`, asks the controller, and writes each decision as the
``setPhase`` command of the TrafficSignal entity. The hub turns that write into a device
command (a subscription, the outbox, delivery), which reaches the cabinet where MQTT would
carry it; the cabinet passes it through the junction's :class:`~.safety.SignalGuard` and
answers the command (``setPhase_status`` OK, or ERROR with the reason it was refused).

A controller here sees exactly what the hub holds: a detector that stops reporting leaves
its entities' ``observedAt`` behind, decisions made on them carry that age, and the guard
falls back to the fixed-time plan; the fallback (and the recovery) is also written to the
hub as a FIWARE ``Alert`` entity operators see and subscriptions can route.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import re
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cityos.devices.agent import Agent, Measure
from cityos.hub.client import HubClient
from cityos.hub.core import Hub
from cityos.hub.delivery import Deliverer
from cityos.hub.errors import NgsiLdError

from .api import register_feed
from .controllers import Controller
from .indicators import (
    DistrictEmissions,
    JamWatch,
    SegmentReading,
    edge_speeds,
    emissions_by_district,
    grid_districts,
    segment_readings,
    write_emission_output,
)
from .model import Alert, Decision, LaneGroupObservation, Observation, SignalLayout
from .priority import BusPriority, BusReport, OnBoardUnits
from .runner import Progress, RunResult, run_result
from .safety import SafetyRules
from .scenarios import Scenario
from .sim import Backend, Simulation
from .transit import TransitPlan

log = logging.getLogger("cityos.services.traffic.hubloop")

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


def provision_buses(
    agent: Agent, tenant: str, plan: TransitPlan, wiring: Wiring, context: str | None = None
) -> None:
    """One device per scheduled bus (its trip): its on-board unit."""
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


# the instant simulation time 0 stands for, for the run in progress (run_through_hub sets it)
_ORIGIN: contextvars.ContextVar[datetime] = contextvars.ContextVar("origin", default=SIM_DAY)


def sim_iso(t: float) -> str:
    """A simulation time (s) as the ISO 8601 instant the hub stores."""
    return (_ORIGIN.get() + timedelta(seconds=t)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sim_seconds(iso: str) -> float:
    """The simulation time (s) of an ISO 8601 instant written by :func:`sim_iso`."""
    at = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return (at - _ORIGIN.get()).total_seconds()


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


def provision(
    agent: Agent, tenant: str, layouts: dict[str, SignalLayout], context: str | None = None
) -> Wiring:
    """The service groups, and one device per signal and per measured lane group."""
    for group in (DETECTOR_GROUP, SIGNAL_GROUP):
        if agent.doc(agent.GROUP, tenant, group["apikey"]) is None:
            agent.add_group(tenant, _group(group, context))
    wiring = Wiring()
    for tls, layout in layouts.items():
        if not layout.phases:
            continue
        signal_id = signal_entity(tls)
        device = _device("signal", tls)
        _put_device(
            agent,
            tenant,
            {
                "device_id": device,
                "apikey": SIGNAL_KEY,
                "entity_name": signal_id,
                "static_attributes": [
                    {"name": "name", "type": "Text", "value": tls},
                    {"name": "phaseCount", "type": "Integer", "value": len(layout.phases)},
                ],
            },
        )
        wiring.signal_device[tls] = device
        wiring.tls_of_entity[signal_id] = tls
        for gid, group in layout.groups.items():
            if group.kind == "crossing":
                continue
            flow_id = flow_entity(tls, gid)
            device = _device("flow", tls, gid)
            _put_device(
                agent,
                tenant,
                {
                    "device_id": device,
                    "apikey": DETECTOR_KEY,
                    "entity_name": flow_id,
                    "static_attributes": [
                        {"name": "refTrafficSignal", "type": "Relationship", "value": signal_id},
                        {"name": "laneGroup", "type": "Text", "value": gid},
                        {"name": "laneId", "type": "Text", "value": ",".join(group.lanes)},
                        {"name": "refRoadSegment", "type": "Text", "value": group.edge},
                    ],
                },
            )
            wiring.flow_device[(tls, gid)] = device
            wiring.group_of_entity[flow_id] = (tls, gid)
    return wiring


class Cabinet:
    """The field side of every junction: detectors and signal heads speaking as devices."""

    def __init__(self, sim: Simulation, agent: Agent, tenant: str, wiring: Wiring) -> None:
        self.sim = sim
        self.agent = agent
        self.tenant = tenant
        self.wiring = wiring
        self._device_tls = {d: t for t, d in wiring.signal_device.items()}
        self._inbox: list[tuple[str, Any]] = []  # (device id, command value)
        self.rejected = 0
        # where MQTT would carry the command to the cabinet (commands.publish's seam)
        agent.commands.publish = self._receive

    def publish(self, observations: dict[str, Observation]) -> int:
        """Send every detector's and signal's readings; how many messages were refused."""
        measures: list[Measure] = []
        for tls, obs in observations.items():
            if tls not in self.wiring.signal_device:
                continue
            for gid, g in obs.groups.items():
                device = self.wiring.flow_device.get((tls, gid))
                if device is None:
                    continue
                values: dict[str, Any] = {
                    "c": g.vehicle_count,
                    "o": round(g.occupancy, 3),
                    "q": g.queue,
                }
                if g.mean_speed is not None:
                    values["s"] = round(g.mean_speed * 3.6, 2)
                measures.append(
                    Measure(self.tenant, DETECTOR_KEY, device, values, sim_iso(g.observed_at))
                )
            state = {"p": -1 if obs.current_phase is None else obs.current_phase}
            state["e"] = round(obs.phase_elapsed, 1)
            measures.append(
                Measure(
                    self.tenant,
                    SIGNAL_KEY,
                    self.wiring.signal_device[tls],
                    state,
                    sim_iso(self.sim.time),
                )
            )
        return self._send(measures, "a detector message")

    def publish_buses(self, reports: list[BusReport]) -> int:
        """Every bus's on-board unit reports; how many messages were refused."""
        measures = []
        for r in reports:
            device = self.wiring.bus_device.get(r.trip_id)
            if device is None:
                continue
            values: dict[str, Any] = {
                "l": [round(r.lon, 7), round(r.lat, 7)],
                "v": round(r.speed_mps * 3.6, 1),
                "h": round(r.bearing, 1),
                "t": r.trip_id,
                "r": r.route_id,
                "a": r.at_stop,
                "s": r.next_signal or "",
                "g": r.approach_lane or "",
                "e": r.exit_lane or "",
                "x": round(r.to_stop_line_m, 1) if r.to_stop_line_m is not None else -1,
            }
            if r.delay_s is not None:
                values["d"] = round(r.delay_s, 1)
            if r.next_stop_sequence is not None:
                values["n"] = r.next_stop_sequence
            measures.append(Measure(self.tenant, BUS_KEY, device, values, sim_iso(r.at)))
        return self._send(measures, "a bus report")

    def _send(self, measures: list[Measure], what: str) -> int:
        """Hand the messages to the hub's device agent; how many it refused."""
        results = self.agent.ingest_many(measures) if measures else []
        refused = [err for _, err in results if err is not None]
        for err in refused[:3]:
            log.warning("%s was refused: %s", what, err)
        return len(refused)

    def await_commands(self, expected: int) -> None:
        """Commands reach this cabinet as they are published (nothing travels here)."""

    def close(self) -> None:
        """Nothing to let go of in process."""

    def _receive(self, topic: str, payload: bytes) -> tuple[bool, str | None]:
        """A command as the agent publishes it (``/<apikey>/<device>/cmd``, JSON)."""
        parts = topic.strip("/").split("/")
        if len(parts) != 3 or parts[2] != "cmd":
            return False, f"not a command topic: {topic}"
        try:
            value = json.loads(payload)[COMMAND]
        except (ValueError, KeyError, TypeError) as exc:
            return False, f"not a {COMMAND} command: {exc}"
        self._inbox.append((parts[1], value))
        return True, None

    def apply_commands(self) -> list[Decision]:
        """Pass the commands received through each junction's guard; answer each one."""
        inbox, self._inbox = self._inbox, []
        applied: list[Decision] = []
        for device, value in inbox:
            tls = self._device_tls.get(device)
            decision, why = _decision(tls, value)
            if decision is not None:
                if self.sim.apply([decision]):
                    applied.append(decision)
                else:
                    why = "refused by the junction's safety rules"
            result = "OK" if why is None else f"ERROR: {why}"
            if why is not None:
                self.rejected += 1
            self._answer(device, result)
        return applied

    def _answer(self, device: str, result: str) -> None:
        try:
            self.agent.command_result(self.tenant, SIGNAL_KEY, device, {COMMAND: result})
        except NgsiLdError as err:
            log.warning("answering %s's command failed: %s", device, err)


def _decision(tls: str | None, value: Any) -> tuple[Decision | None, str | None]:
    if tls is None:
        return None, "unknown signal device"
    if not isinstance(value, dict):
        return None, "setPhase needs {phase, duration}"
    phase, duration = value.get("phase"), value.get("duration")
    based_on = value.get("basedOn")
    if not isinstance(phase, int) or isinstance(phase, bool):
        return None, "phase must be an integer"
    if not isinstance(duration, int | float) or isinstance(duration, bool) or duration <= 0:
        return None, "duration must be a positive number of seconds"
    observed = sim_seconds(based_on) if isinstance(based_on, str) else None
    return Decision(tls, phase, float(duration), observed), None


class HubSignalService:
    """The traffic service: observations from the hub, decisions back as commands."""

    def __init__(
        self,
        hub: Hub,
        tenant: str,
        wiring: Wiring,
        layouts: dict[str, SignalLayout],
        context: str | None = None,
    ) -> None:
        self.client = HubClient(hub, tenant=tenant, context=context)
        # alerts in FIWARE's own terms whatever the city's context calls "category"
        self.alerts = HubClient(hub, tenant=tenant)
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


@dataclass
class HubRunStats:
    """What went through the hub during a run."""

    signals: int = 0
    steps: int = 0
    messages_refused: int = 0
    commands: int = 0
    commands_rejected: int = 0
    alerts: int = 0
    jams: int = 0
    emission_entities: int = 0
    bus_reports: int = 0
    bus_priority: dict[str, int] = field(default_factory=dict)


async def run_through_hub(
    scenario: Scenario,
    controller: Controller,
    hub: Hub,
    *,
    tenant: str = "",
    seed: int = 0,
    rules: SafetyRules | None = None,
    backend: Backend = "libsumo",
    progress: Progress | None = None,
    before_step: Callable[[Simulation], None] | None = None,
    jams: JamWatch | None = None,
    segment_every_s: float = 60.0,
    district_cell_m: float = 1000.0,
    transit: TransitPlan | None = None,
    priority: BusPriority | None = None,
    context: str | None = None,
    origin: datetime | None = None,
    over_mqtt: bool = False,
) -> tuple[RunResult, HubRunStats]:
    """Run ``controller`` on ``scenario`` with every observation and decision going through
    ``hub`` (its store, device agent, subscriptions and delivery); the RESCO metric and
    what crossed the hub. ``before_step`` lets tests break things mid-run (a detector);
    ``origin`` is the instant simulation time 0 stands for (default: 2026-01-05T00:00Z).
    ``over_mqtt``: the cabinet talks to the hub over the broker at the hub's ``mqtt_url``
    (:class:`~.mqttcabinet.MqttCabinet`), as a cabinet in the field would."""
    token = _ORIGIN.set(origin or SIM_DAY)
    try:
        return await _run_through_hub(
            scenario, controller, hub, tenant=tenant, seed=seed, rules=rules, backend=backend,
            progress=progress, before_step=before_step, jams=jams,
            segment_every_s=segment_every_s, district_cell_m=district_cell_m,
            transit=transit, priority=priority, context=context, over_mqtt=over_mqtt,
        )  # fmt: skip
    finally:
        _ORIGIN.reset(token)


async def _run_through_hub(
    scenario: Scenario,
    controller: Controller,
    hub: Hub,
    *,
    tenant: str,
    seed: int,
    rules: SafetyRules | None,
    backend: Backend,
    progress: Progress | None,
    before_step: Callable[[Simulation], None] | None,
    jams: JamWatch | None,
    segment_every_s: float,
    district_cell_m: float,
    transit: TransitPlan | None,
    priority: BusPriority | None,
    context: str | None,
    over_mqtt: bool,
) -> tuple[RunResult, HubRunStats]:
    if controller.native_program is not None:
        raise ValueError(
            f"controller {controller.name!r} runs inside SUMO ({controller.native_program}); "
            "only controllers that decide per step run through the hub"
        )
    stats = HubRunStats()
    jams = jams or JamWatch()
    free_speed = edge_speeds(scenario.net_file)
    work = tempfile.TemporaryDirectory(prefix="cityos-traffic-hub-")
    emission_file = Path(work.name) / "emissions.xml"
    scenario = replace(
        scenario,
        extra_files=(
            *scenario.extra_files,
            write_emission_output(Path(work.name) / "emissions.add.xml", emission_file),
        ),
    )
    if transit is not None:  # the buses run the timetable the GTFS feed publishes
        scenario = replace(
            scenario,
            route_files=(*scenario.route_files, transit.route_file),
            extra_files=(*scenario.extra_files, transit.additional_file),
        )
    if priority is not None:
        if transit is None:
            raise ValueError("bus priority needs the bus lines (transit=...)")
        controller = priority
    pending_alerts: list[Alert] = []  # raised by the guards, written to the hub each step
    all_alerts: list[Alert] = []
    sim = Simulation(
        scenario, seed=seed, mode="guarded", rules=rules, backend=backend,
        alert=pending_alerts.append,
    )  # fmt: skip
    agent = Agent(hub)
    deliverer = Deliverer(
        hub.store, local=hub.local_receivers, index=hub.subscriptions, allow_private=True
    )
    started = time.perf_counter()
    cabinet: Cabinet | None = None
    sim.start()
    try:
        wiring = provision(agent, tenant, sim.layouts, context)
        stats.signals = len(wiring.signal_device)
        units = None
        if transit is not None:
            provision_buses(agent, tenant, transit, wiring, context)
            units = OnBoardUnits(sim, transit)
            register_feed(hub.store, tenant, transit.gtfs_path, _ORIGIN.get())
        if over_mqtt:
            from .mqttcabinet import MqttCabinet

            cabinet = MqttCabinet(sim, agent, tenant, wiring, hub.settings.mqtt_url)
        else:
            cabinet = Cabinet(sim, agent, tenant, wiring)
        service = HubSignalService(hub, tenant, wiring, sim.layouts, context)
        controller.setup(sim.layouts, scenario.step_s)
        while not sim.done:
            if before_step is not None:
                before_step(sim)
            local = sim.observe(sim.guards)
            sim.feed_guards(local)  # the cabinet's own detectors (max-red demand)
            stats.messages_refused += cabinet.publish(local)
            now = sim.time
            if units is not None:
                reports = units.read()
                stats.bus_reports += len(reports)
                stats.messages_refused += cabinet.publish_buses(reports)
                if priority is not None:
                    priority.request(service.buses(now))
            seen = service.observations()
            decisions = [controller.decide(obs, now) for obs in seen.values()]
            sent = service.command(d for d in decisions if d is not None)
            stats.commands += sent
            await deliverer.run_once()
            await deliverer.drain()
            cabinet.await_commands(sent)
            cabinet.apply_commands()
            readings = segment_readings(seen, sim.layouts, free_speed)
            for edge, reading in readings.items():
                event = jams.update(edge, reading.congestion_index, now, reading.queue)
                if event is not None:
                    service.jam_alert(edge, event, reading, now)
                    stats.jams += event == "jam"
            if stats.steps % max(1, round(segment_every_s / scenario.step_s)) == 0:
                service.road_segments(readings, jams.jammed(), now)
            for alert in pending_alerts:
                service.raise_alert(alert)
                stats.alerts += 1
            all_alerts.extend(pending_alerts)
            pending_alerts.clear()
            sim.advance(scenario.step_s)
            stats.steps += 1
            if progress is not None:
                progress(sim.time - scenario.begin, scenario.duration)
        stats.commands_rejected = cabinet.rejected
        if priority is not None:
            stats.bus_priority = asdict(priority.stats)
    finally:
        if cabinet is not None:
            cabinet.close()
        sim.close()
        await deliverer.close()
    try:
        if emission_file.is_file():
            rows = emissions_by_district(
                emission_file, grid_districts(scenario.net_file, district_cell_m)
            )
            stats.emission_entities = service.emissions(rows)
    finally:
        work.cleanup()
    wall = time.perf_counter() - started
    return run_result(scenario, controller.name, seed, sim, wall, all_alerts), stats
