"""RESCO benchmark: average delay per vehicle for each scenario x controller x seed.

Runs the six RESCO scenarios shipped in sumo-rl (cologne1/3/8, ingolstadt1/7/21) over
their standard hour with the RESCO control step (10 s) and yellow (3 s), for the network's
fixed-time program, SUMO's actuated control, the project's max-pressure, plain
max-pressure as RESCO defines it (halting queues only, ``max-pressure-plain``) and
CityOS's own controller, all on the same SUMO version. The metric is RESCO's: time loss +
departure delay per vehicle, vehicles still driving or never inserted included (see
docs/services/traffic.md).

Controllers that decide per step run with the safety guard (min green 5 s, yellow 3 s,
all-red 1 s, max red 120 s); the fixed-time and actuated programs are the network's own.
CityOS's controller runs with the setting tuned for each network where one ships
(``traffic_tune.py``: training seeds 100+, validation seeds 200+, never these);
``--untuned`` runs its defaults everywhere.
Wall time is per simulated hour with direct (in-process) access to the controller. Usage::

    .venv/bin/python benchmarks/traffic_resco.py [--scenario NAME ...] [--controller NAME ...]
        [--seeds N] [--quick] [--untuned] [--jobs N] [--out benchmarks/results/traffic-resco.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402
from rich.table import Table  # noqa: E402

from cityos.services.traffic import (  # noqa: E402
    CONTROLLERS,
    RESCO_SCENARIOS,
    CityOSParams,
    get_scenario,
    make_controller,
    run_scenario,
    sumo_version,
)

CONTROLLER_ORDER = ("fixed", "actuated", "max-pressure", "max-pressure-plain", "cityos")

# Published RESCO results (Ault & Sharon 2021; RESCO's README: SUMO 1.9.0 and 1.9.1 tested),
# average delay in seconds. Never compare them with ours as if from the same SUMO version.
PUBLISHED_SUMO_VERSION = "1.9.x (RESCO tested 1.9.0 and 1.9.1)"
PUBLISHED = {
    "ingolstadt1": {"fixed": 39.40, "max-pressure": 23.62, "best": 20.90, "best_by": "IPPO"},
    "ingolstadt7": {"fixed": 91.31, "max-pressure": 46.82, "best": 31.19, "best_by": "IDQN"},
    "ingolstadt21": {"fixed": 133.10, "max-pressure": 136.72, "best": 59.64, "best_by": "IDQN"},
    "cologne1": {"fixed": 56.61, "max-pressure": 65.85, "best": 26.05, "best_by": "IDQN"},
    "cologne3": {"fixed": 46.35, "max-pressure": 162.28, "best": 23.99, "best_by": "IDQN"},
    "cologne8": {"fixed": 63.77, "max-pressure": 47.73, "best": 21.62, "best_by": "IPPO"},
}


def one_run(job: tuple[str, str, int, dict[str, float], bool]) -> dict[str, Any]:
    scenario, controller, seed, params, tuned = job
    options = params if controller == "cityos" else {}
    ctl = make_controller(controller, network=scenario if tuned else None, **options)
    out = run_scenario(get_scenario(scenario), ctl, seed=seed).as_dict()
    if isinstance(getattr(ctl, "params", None), CityOSParams):
        out["params"] = asdict(ctl.params)
    return out


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    delays = [r["average_delay_s"] for r in runs]
    walls = [r["wall_s"] * 3600.0 / r["simulated_s"] for r in runs]
    return {
        "average_delay_s": {
            "mean": statistics.fmean(delays),
            "stdev": statistics.stdev(delays) if len(delays) > 1 else 0.0,
            "min": min(delays),
            "max": max(delays),
            "per_seed": delays,
        },
        "seeds": [r["seed"] for r in runs],
        "vehicles": runs[0]["vehicles"],
        "never_inserted": [r["never_inserted"] for r in runs],
        "sumo_version": runs[0]["sumo_version"],
        **({"params": runs[0]["params"]} if "params" in runs[0] else {}),
        "wall_s_per_simulated_hour_direct": statistics.fmean(walls),
    }


def goals(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Does CityOS beat the best published figure, max-pressure by 15 % and plain
    max-pressure at all, per scenario?"""
    out: dict[str, Any] = {}
    for scenario, by_controller in results.items():
        ours = by_controller.get("cityos")
        if ours is None:
            continue
        mean = ours["average_delay_s"]["mean"]
        entry: dict[str, Any] = {
            "cityos": mean,
            "best_published": PUBLISHED[scenario]["best"],
            "below_best_published": mean < PUBLISHED[scenario]["best"],
        }
        mp = by_controller.get("max-pressure")
        if mp is not None:
            mp_mean = mp["average_delay_s"]["mean"]
            entry["max_pressure"] = mp_mean
            entry["vs_max_pressure_pct"] = 100.0 * (mean - mp_mean) / mp_mean
            entry["at_least_15pct_below_max_pressure"] = mean <= 0.85 * mp_mean
        plain = by_controller.get("max-pressure-plain")
        if plain is not None:
            plain_mean = plain["average_delay_s"]["mean"]
            entry["max_pressure_plain"] = plain_mean
            entry["vs_max_pressure_plain_pct"] = 100.0 * (mean - plain_mean) / plain_mean
            entry["below_max_pressure_plain"] = mean < plain_mean
        out[scenario] = entry
    return out


def _param(text: str) -> tuple[str, float]:
    name, _, value = text.partition("=")
    return name.strip(), float(value)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--scenario", action="append", choices=RESCO_SCENARIOS, help="repeatable; default all six"
    )
    p.add_argument(
        "--controller", action="append", choices=list(CONTROLLERS), help="repeatable; default all"
    )
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per scenario and controller")
    p.add_argument(
        "--first-seed", type=int, default=0, help="seeds FIRST..FIRST+N-1 (tuning: 100 and up)"
    )
    p.add_argument(
        "--param",
        action="append",
        metavar="NAME=VALUE",
        help="a CityOSParams setting for the cityos controller (repeatable), e.g. pair_mode=0",
    )
    p.add_argument(
        "--untuned",
        action="store_true",
        help="cityos with its default setting, not the one tuned for each network",
    )
    p.add_argument("--quick", action="store_true", help="one seed, cologne1 and ingolstadt1 only")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel (one process each)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "traffic-resco.json"))
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    args = p.parse_args(argv)
    scenarios = args.scenario or (
        ["cologne1", "ingolstadt1"] if args.quick else list(RESCO_SCENARIOS)
    )
    controllers = args.controller or list(CONTROLLER_ORDER)
    first = args.first_seed
    seeds = list(range(first, first + (1 if args.quick else args.seeds)))
    params = dict(_param(p) for p in args.param or [])

    console = Console(stderr=args.json)
    runs: list[dict[str, Any]] = []
    started = time.perf_counter()
    tuned = not args.untuned
    jobs = [(s, c, seed, params, tuned) for s in scenarios for c in controllers for seed in seeds]
    # one fresh process per run: libsumo keeps state between runs in a process (a run after
    # an actuated one differs), and a run must not depend on what ran before it
    context = multiprocessing.get_context("spawn")
    with (
        Progress(console=console, transient=True) as progress,
        ProcessPoolExecutor(args.jobs, mp_context=context, max_tasks_per_child=1) as pool,
    ):
        task = progress.add_task("RESCO runs", total=len(jobs))
        for result in pool.map(one_run, jobs):
            runs.append(result)
            progress.advance(task)

    results: dict[str, dict[str, Any]] = {}
    for scenario in scenarios:
        results[scenario] = {}
        for controller in controllers:
            mine = [r for r in runs if r["scenario"] == scenario and r["controller"] == controller]
            results[scenario][controller] = summarise(mine)
    report = {
        "benchmark": "traffic-resco",
        "sumo_version": sumo_version(),
        "control_step_s": 10.0,
        "yellow_s": 3.0,
        "scenario_source": "sumo-rl 1.4.5 (nets/RESCO)",
        "metric": "mean over vehicles of timeLoss + departDelay, unfinished and undeparted included",
        "seeds": seeds,
        "cityos_params": params,
        "cityos_tuned_per_network": tuned,
        "machine": {
            "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(),
        },
        "total_wall_s": time.perf_counter() - started,
        "published_sumo_version": PUBLISHED_SUMO_VERSION,
        "published": PUBLISHED,
        "results": results,
        "goals": goals(results),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")

    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    table = Table(title=f"RESCO average delay (s), SUMO {report['sumo_version']}, seeds {seeds}")
    table.add_column("scenario")
    for controller in controllers:
        table.add_column(controller, justify="right")
    table.add_column("best published (SUMO 1.9.x)", justify="right")
    table.add_column("wall s/h (cityos)", justify="right")
    for scenario in scenarios:
        row = [scenario]
        for controller in controllers:
            d = results[scenario][controller]["average_delay_s"]
            row.append(f"{d['mean']:.2f} ± {d['stdev']:.2f}")
        row.append(f"{PUBLISHED[scenario]['best']:.2f}")
        wall = results[scenario].get("cityos", results[scenario][controllers[-1]])
        row.append(f"{wall['wall_s_per_simulated_hour_direct']:.1f}")
        table.add_row(*row)
    console.print(table)
    console.print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
