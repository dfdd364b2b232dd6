"""The field side of every junction, simulated: detectors and signal heads as devices.

:class:`Cabinet` stands in for the controller cabinet at each junction of a simulation: it
publishes every detector's and signal's readings as device measures through the IoT agent
(:meth:`Agent.ingest_many`, what MQTT and HTTP messages become, so limits of trust and
format are the agent's), receives each ``setPhase`` command where MQTT would carry it,
passes it through the junction's :class:`~..signalguard.SignalGuard` and answers it
(``setPhase_status`` OK, or ERROR with the reason it was refused).
:class:`~.mqttcabinet.MqttCabinet` does the same over a real broker.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from cityos.devices.agent import Agent, Measure
from cityos.hub.errors import NgsiLdError

from ..model import Decision, Observation
from ..priority import BusReport
from ..signalservice import BUS_KEY, COMMAND, DETECTOR_KEY, SIGNAL_KEY, Wiring, sim_iso, sim_seconds
from .simulation import Simulation

log = logging.getLogger("cityos.services.traffic.cabinet")


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
