"""The morning peak on the district's streets (the traffic service), through the hub: SUMO's
junctions and buses report as devices, CityOS's adaptive controller with bus priority
decides, the signals answer their commands; congestion, jams, emissions and GTFS-realtime
land in the hub. SUMO runs as fast as it can (its own progress bar).

The same scenario and seed run again without CityOS by :mod:`.baseline`; both are read
with the same measures (the RESCO delay, and the buses' time loss from SUMO's trip file).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from cityos.devices.commands import RECEIVER
from cityos.hub.store.base import Claimed
from cityos.services.traffic import make_controller
from cityos.services.traffic.priority import BusPriority
from cityos.services.traffic.sim.buses import bus_delays
from cityos.services.traffic.sim.hubloop import run_through_hub
from cityos.services.traffic.sim.roadnet import district_scenario
from cityos.services.traffic.sim.scenarios import Scenario
from cityos.services.traffic.sim.transit import TransitPlan, make_bus_lines
from cityos.twin.district import CONTEXT_URL, DISTRICT_TIME

from .context import DISTRICT_MIDNIGHT, Day, Event

SEED = 0
_LOOP_DELIVERS: ContextVar[bool] = ContextVar("cityos_day_traffic_delivers", default=False)


@contextlib.contextmanager
def sole_delivery(store: Any) -> Iterator[None]:
    """While SUMO runs through a hub that is also being served, only the traffic loop's
    own delivery worker claims notifications. The server's worker, woken by the same
    commits, would otherwise take a step's signal commands now and then and hand them to
    the cabinet after the step had been applied — a step late, which a city's signals
    never are (its cabinets wait for their commands). The loop delivers every subscription
    meanwhile, the dashboard's included (same hub, same in-process receivers); the server's
    worker takes over again after the run."""
    original = store.claim_deliveries

    def claim(owner: str, now: str, until: str, limit: int = 500) -> Claimed:
        if _LOOP_DELIVERS.get():
            return original(owner, now, until, limit)
        return Claimed([], [])

    token = _LOOP_DELIVERS.set(True)  # the loop's tasks and their threads inherit it
    store.claim_deliveries = claim
    try:
        yield
    finally:
        del store.claim_deliveries
        _LOOP_DELIVERS.reset(token)


def peak_scenario(folder: Path, minutes: int) -> tuple[Scenario, TransitPlan]:
    """The district's network, ``minutes`` of the morning's demand from the replayed hour's
    start, and its bus lines (GTFS, validated) — written under ``folder``."""
    begin = (DISTRICT_TIME - DISTRICT_MIDNIGHT).total_seconds()
    scenario = district_scenario(folder, begin=begin, end=begin + 60 * minutes, seed=SEED)
    plan = make_bus_lines(scenario.net_file, scenario.begin, scenario.end, 0, folder / "transit")
    return scenario, plan


def sim_bar(day: Day, title: str, total: float) -> tuple[Progress, Any]:
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} s simulated"),
        TimeElapsedColumn(),
        console=day.console,
    )
    return progress, progress.add_task(title, total=total)


@dataclass
class TrafficPhase:
    day: Day
    minutes: int
    name: str = "traffic"
    service: str = "traffic"
    title: str = "Traffic"
    summary: dict[str, Any] = field(default_factory=dict)
    scenario: Scenario | None = None
    plan: TransitPlan | None = None

    def events(self) -> list[Event]:
        begin = (DISTRICT_TIME - DISTRICT_MIDNIGHT).total_seconds()
        return [Event(begin, self.run)]

    def run(self) -> str:
        with self.day.quiet():
            self.summary = self._run()
        s, hub = self.summary, self.summary["hub"]
        return (
            f"Traffic: {s['vehicles']:,} vehicles and {s['bus_trips']} buses on "
            f"{s['bus_lines']} lines through the district's signals under {s['controller']}, "
            f"in {s['wall_s']:.1f} s: average delay {s['average_delay_s']:.1f} s, buses lose "
            f"{s['bus_time_loss_s']:.1f} s; {hub['commands']:,} signal commands, "
            f"{hub['jams']} jams, {hub['emission_entities']} emission records, "
            f"{hub['bus_reports']:,} bus reports."
        )

    def _run(self) -> dict[str, Any]:
        self.scenario, self.plan = scenario, plan = peak_scenario(
            self.day.folder / "traffic", self.minutes
        )
        controller = make_controller("cityos", network=scenario.name)
        hub = self.day.hub
        served_receiver = hub.local_receivers.get(RECEIVER)
        seen: list[Any] = []  # the simulation, kept so its trip file outlives the run
        progress, task = sim_bar(
            self.day, f"Signals and buses under the traffic service ({self.minutes} min, SUMO)",
            scenario.duration,
        )  # fmt: skip
        served = self.day.app_state is not None
        try:
            with progress, sole_delivery(hub.store) if served else contextlib.nullcontext():
                result, stats = asyncio.run(
                    run_through_hub(
                        scenario,
                        controller,
                        hub,
                        seed=SEED,
                        transit=plan,
                        priority=BusPriority(controller),
                        context=CONTEXT_URL,
                        origin=DISTRICT_MIDNIGHT,
                        before_step=lambda sim: seen.append(sim) if not seen else None,
                        progress=lambda done, total: progress.update(task, completed=done),
                    )
                )
        finally:
            if served_receiver is not None:  # the run's own agent took the command receiver
                hub.local_receivers[RECEIVER] = served_receiver
        buses = bus_delays(seen[0].tripinfo_file, {t.trip_id for t in plan.trips}) if seen else {}
        return {
            "scenario": scenario.name,
            "controller": result.controller,
            "seed": SEED,
            "average_delay_s": round(result.average_delay_s, 2),
            "bus_time_loss_s": round(buses.get("bus_time_loss_s", 0.0), 2),
            "general_delay_s": round(buses.get("general_delay_s", 0.0), 2),
            "vehicles": result.vehicles,
            "bus_lines": len(plan.lines),
            "bus_trips": len(plan.trips),
            "hub": dict(vars(stats)),
            "wall_s": round(result.wall_s, 2),
        }

    def result(self) -> dict[str, Any]:
        return self.summary
