"""Bus priority: bus time loss and general traffic delay, with and without priority.

For each scenario, bus lines and a timetable are generated on the network (GTFS, validated;
seed 0) and run in SUMO with the scenario's own demand. Each seed runs the controller alone
and wrapped in :class:`BusPriority`; a fresh process per run. Target (issue 5): bus delay
−30 % or better while the general traffic's delay grows by at most 5 %. Usage::

    .venv/bin/python benchmarks/traffic_priority.py [--scenario NAME ...] [--seeds N]
        [--controller NAME] [--weight W] [--late-after S] [--jobs N]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from cityos.services.traffic import RESCO_SCENARIOS, get_scenario, make_controller  # noqa: E402


def one_run(job: tuple[str, str, int, dict[str, Any] | None]) -> dict[str, Any]:
    from cityos.services.traffic.priority import BusPriority
    from cityos.services.traffic.sim.buses import run_with_buses
    from cityos.services.traffic.sim.transit import make_bus_lines

    scenario_name, controller, seed, priority = job
    scenario = get_scenario(scenario_name)
    plan = make_bus_lines(
        scenario.net_file, scenario.begin, scenario.end, 0, Path(tempfile.mkdtemp())
    )
    ctl = make_controller(controller, network=scenario_name)
    wrapper = BusPriority(ctl, **priority) if priority else None
    out = run_with_buses(scenario, ctl, plan, seed=seed, priority=wrapper)
    return {"scenario": scenario_name, "seed": seed, "with_priority": bool(priority), **out}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", action="append", choices=RESCO_SCENARIOS)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0, help="seeds FIRST..FIRST+N-1")
    p.add_argument("--controller", default="cityos")
    p.add_argument("--weight", type=float, default=0.0, help="person-weighted priority")
    p.add_argument("--late-after", type=float, default=0.0, help="seconds behind timetable")
    p.add_argument("--max-extension", type=float, default=20.0)
    p.add_argument("--no-early-green", action="store_true", help="green extensions only")
    p.add_argument("--reach-s", type=float, default=10.0)
    p.add_argument("--reach-m", type=float, default=30.0)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "traffic-priority.json"))
    args = p.parse_args(argv)
    scenarios = args.scenario or ["cologne3", "cologne8", "ingolstadt7"]
    priority = {
        "late_after_s": args.late_after,
        "weight": args.weight,
        "max_extension_s": args.max_extension,
        "early_green": not args.no_early_green,
        "reach_s": args.reach_s,
        "reach_m": args.reach_m,
    }
    jobs = [
        (s, args.controller, seed, config)
        for s in scenarios
        for seed in range(args.first_seed, args.first_seed + args.seeds)
        for config in (None, priority)
    ]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.jobs, mp_context=context, max_tasks_per_child=1) as pool:
        runs = list(pool.map(one_run, jobs))
    table = Table(title=f"bus priority around {args.controller}: {priority}")
    for col in ("scenario", "bus loss (s)", "with priority", "bus", "general (s)", "with", "gen."):
        table.add_column(col, justify="right" if col != "scenario" else "left")
    results: dict[str, Any] = {}
    for s in scenarios:
        base = [r for r in runs if r["scenario"] == s and not r["with_priority"]]
        tsp = [r for r in runs if r["scenario"] == s and r["with_priority"]]

        def m(rows: list[dict[str, Any]], key: str) -> float:
            return statistics.fmean(r[key] for r in rows)

        bus0, bus1 = m(base, "bus_time_loss_s"), m(tsp, "bus_time_loss_s")
        gen0, gen1 = m(base, "general_delay_s"), m(tsp, "general_delay_s")
        results[s] = {
            "bus_time_loss_s": {"without": bus0, "with": bus1},
            "bus_change_pct": 100 * (bus1 - bus0) / bus0,
            "general_delay_s": {"without": gen0, "with": gen1},
            "general_change_pct": 100 * (gen1 - gen0) / gen0,
            "buses": base[0]["buses"],
            "runs": runs_of(s, runs),
        }
        table.add_row(
            s, f"{bus0:.1f}", f"{bus1:.1f}", f"{results[s]['bus_change_pct']:+.0f} %",
            f"{gen0:.2f}", f"{gen1:.2f}", f"{results[s]['general_change_pct']:+.1f} %",
        )  # fmt: skip
    Console().print(table)
    out = {
        "benchmark": "traffic-priority",
        "controller": args.controller,
        "priority": priority,
        "seeds": list(range(args.first_seed, args.first_seed + args.seeds)),
        "command": "benchmarks/traffic_priority.py " + " ".join(argv or sys.argv[1:]),
        "results": results,
    }
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    return 0


def runs_of(scenario: str, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in runs if r["scenario"] == scenario]


if __name__ == "__main__":
    raise SystemExit(main())
