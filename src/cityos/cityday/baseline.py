"""The same day without CityOS, for what can be computed the same way in both runs:

* traffic: the same scenario, demand, buses and seed, every junction on the network's own
  fixed-time plan inside SUMO (no controller, no bus priority, no hub) — measured with the
  same RESCO delay and the buses' time loss from SUMO's trip file;
* energy: the planner's own no-control figures for the same forecast (the buildings'
  batteries idle) — computed by the energy service beside the plan;
* fares: all paid in cash to the conductor — an assumption (no fare system, no cashless
  way to pay), so the cashless share is 0;
* cameras, counters, crowds and the city's indicators: nothing is known without them.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from cityos.services.traffic import make_controller
from cityos.services.traffic.sim.buses import bus_delays
from cityos.services.traffic.sim.runner import run_scenario
from cityos.services.traffic.sim.scenarios import Scenario
from cityos.services.traffic.sim.transit import TransitPlan

from .context import Day
from .traffic import SEED, sim_bar


def fixed_time_traffic(day: Day, scenario: Scenario, plan: TransitPlan) -> dict[str, Any]:
    """The peak again with fixed-time signals and no bus priority (nothing through the hub)."""
    with_buses = replace(
        scenario,
        route_files=(*scenario.route_files, plan.route_file),
        extra_files=(*scenario.extra_files, plan.additional_file),
    )
    progress, task = sim_bar(day, "The same peak without CityOS (fixed-time signals, SUMO)",
                             scenario.duration)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="cityos-day-baseline-") as work, progress:
        result = run_scenario(
            with_buses,
            make_controller("fixed"),
            seed=SEED,
            work_dir=Path(work),
            progress=lambda done, total: progress.update(task, completed=done),
        )
        buses = bus_delays(Path(work) / "tripinfo.xml", {t.trip_id for t in plan.trips})
    return {
        "controller": result.controller,
        "seed": SEED,
        "average_delay_s": round(result.average_delay_s, 2),
        "bus_time_loss_s": round(buses["bus_time_loss_s"], 2),
        "general_delay_s": round(buses["general_delay_s"], 2),
        "vehicles": result.vehicles,
        "wall_s": round(result.wall_s, 2),
    }
