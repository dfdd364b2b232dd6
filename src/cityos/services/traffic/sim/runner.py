"""The direct control loop: observe, decide, apply, advance, until the hour is over.

This is the loop with the controller in-process. Through the hub the same four calls are
split: observations are published as TrafficFlowObserved entities, the controller reacts
to notifications, and its decisions come back as TrafficSignal commands to ``apply()``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..controllers import Controller
from ..metric import DelayReport, average_delay
from ..model import Alert
from ..signalguard import SafetyRules
from .scenarios import Scenario
from .simulation import Backend, Simulation, sumo_version

Progress = Callable[[float, float], None]  # (simulated seconds done, total)


@dataclass
class RunResult:
    """One scenario run: the RESCO metric and what it cost."""

    scenario: str
    controller: str
    seed: int
    sumo_version: str
    average_delay_s: float
    vehicles: int
    arrived: int
    in_network: int
    never_inserted: int
    wall_s: float
    simulated_s: float
    alerts: list[dict[str, object]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def run_scenario(
    scenario: Scenario,
    controller: Controller,
    *,
    seed: int = 0,
    rules: SafetyRules | None = None,
    backend: Backend = "libsumo",
    work_dir: Path | None = None,
    progress: Progress | None = None,
    detector_range_m: float = 200.0,
) -> RunResult:
    """Run ``controller`` on ``scenario`` for its whole hour and compute the RESCO metric."""
    alerts: list[Alert] = []
    mode = controller.native_program or "guarded"
    sim = Simulation(
        scenario, seed=seed, mode=mode, rules=rules, backend=backend, work_dir=work_dir,
        alert=alerts.append, detector_range_m=detector_range_m,
    )  # fmt: skip
    started = time.perf_counter()
    sim.start()
    try:
        controller.setup(sim.layouts, scenario.step_s)
        while not sim.done:
            if controller.native_program is None:
                observations = sim.observe(sim.guards)
                sim.feed_guards(observations)
                now = sim.time
                decisions = [controller.decide(obs, now) for obs in observations.values()]
                sim.apply(d for d in decisions if d is not None)
            sim.advance(scenario.step_s)
            if progress is not None:
                progress(sim.time - scenario.begin, scenario.duration)
    finally:
        sim.close()
    return run_result(scenario, controller.name, seed, sim, time.perf_counter() - started, alerts)


def run_result(
    scenario: Scenario,
    controller: str,
    seed: int,
    sim: Simulation,
    wall_s: float,
    alerts: list[Alert],
) -> RunResult:
    """The RESCO metric of a closed simulation, with what produced it."""
    report: DelayReport = average_delay(sim.tripinfo_file)
    return RunResult(
        scenario=scenario.name,
        controller=controller,
        seed=seed,
        sumo_version=sumo_version(),
        average_delay_s=report.average_delay_s,
        vehicles=report.vehicles,
        arrived=report.arrived,
        in_network=report.in_network,
        never_inserted=report.never_inserted,
        wall_s=wall_s,
        simulated_s=scenario.duration,
        alerts=[asdict(a) for a in alerts],
    )
