"""The control loop through the hub, the way a city runs it.

Field side (:class:`~.cabinet.Cabinet`, standing in for a controller cabinet at each junction): every
lane group's detector is a device of the service group ``traffic-detectors`` whose measures
become a ``TrafficFlowObserved`` entity (intensity, occupancy, queueLength,
averageVehicleSpeed, each with ``observedAt``), and every signal is a device of
``traffic-signals`` (its ``TrafficSignal`` entity: currentPhase, phaseElapsed) with one
command, ``setPhase``. Measures enter through the IoT agent (:meth:`Agent.ingest_many`, what
MQTT and HTTP messages become), so limits of trust and format are the agent's.

Service side (:class:`~..signalservice.HubSignalService`): reads the hub — the TrafficFlowObserved and
TrafficSignal entities, nothing from SUMO — rebuilds each junction's
:class:`~..model.Observation`, asks the controller, and writes each decision as the
``setPhase`` command of the TrafficSignal entity. The hub turns that write into a device
command (a subscription, the outbox, delivery), which reaches the cabinet where MQTT would
carry it; the cabinet passes it through the junction's :class:`~..signalguard.SignalGuard` and
answers the command (``setPhase_status`` OK, or ERROR with the reason it was refused).

A controller here sees exactly what the hub holds: a detector that stops reporting leaves
its entities' ``observedAt`` behind, decisions made on them carry that age, and the guard
falls back to the fixed-time plan; the fallback (and the recovery) is also written to the
hub as a FIWARE ``Alert`` entity operators see and subscriptions can route.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from cityos.devices.agent import Agent
from cityos.hub.client import HubClient

from ..api import register_feed
from ..congestion import (
    JamWatch,
    edge_speeds,
    emissions_by_district,
    grid_districts,
    segment_readings,
    write_emission_output,
)
from ..controllers import Controller
from ..model import Alert
from ..priority import BusPriority
from ..signalguard import SafetyRules
from ..signalservice import (
    ORIGIN,
    SIM_DAY,
    HubSignalService,
    provision,
    provision_buses,
)
from .buses import OnBoardUnits
from .cabinet import Cabinet
from .runner import Progress, RunResult, run_result
from .scenarios import Scenario
from .simulation import Backend, Simulation
from .transit import TransitPlan


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
    hub: HubClient | Any,
    *,
    tenant: str | None = None,
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
    the hub (its device agent, subscriptions and delivery) through ``hub``, a
    :class:`~cityos.hub.client.HubClient` (a :class:`~cityos.hub.core.Hub` is wrapped in
    one; ``tenant`` and ``context`` choose whom it speaks for); the RESCO metric and
    what crossed the hub. ``before_step`` lets tests break things mid-run (a detector);
    ``origin`` is the instant simulation time 0 stands for (default: 2026-01-05T00:00Z).
    ``over_mqtt``: the cabinet talks to the hub over the broker at the hub's ``mqtt_url``
    (:class:`~.mqttcabinet.MqttCabinet`), as a cabinet in the field would."""
    token = ORIGIN.set(origin or SIM_DAY)
    client = hub if isinstance(hub, HubClient) else HubClient(hub)
    try:
        return await _run_through_hub(
            scenario, controller, client, tenant=tenant, seed=seed, rules=rules, backend=backend,
            progress=progress, before_step=before_step, jams=jams,
            segment_every_s=segment_every_s, district_cell_m=district_cell_m,
            transit=transit, priority=priority, context=context, over_mqtt=over_mqtt,
        )  # fmt: skip
    finally:
        ORIGIN.reset(token)


async def _run_through_hub(
    scenario: Scenario,
    controller: Controller,
    base: HubClient,
    *,
    tenant: str | None,
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
    client = base if tenant is None else base.for_tenant(tenant)
    client = client.for_context(context)
    tenant = client.tenant
    agent = Agent(client.hub)  # the field side: devices speak to the hub's own agent
    async with client.delivery(allow_private=True) as deliver:
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
                register_feed(client.for_context(None), transit.gtfs_path, ORIGIN.get())
            if over_mqtt:
                from .mqttcabinet import MqttCabinet

                cabinet = MqttCabinet(sim, agent, tenant, wiring, client.hub.settings.mqtt_url)
            else:
                cabinet = Cabinet(sim, agent, tenant, wiring)
            service = HubSignalService(client, wiring, sim.layouts, alerts=client.for_context(None))
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
                await deliver()
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
