"""Where the delay goes: the RESCO delay of max-pressure and cityos split into its parts.

For each scenario and controller (seeds 0-2 by default, the benchmark's), the mean per
vehicle of: departure delay, time standing, time lost while moving, stops, and the time
loss of the vehicles that never stopped (what the streets alone cost: turning, braking
behind others, which no signal plan removes). What lies above that is the signals' share,
the only part a controller can act on; the report says how much of cityos's share would
still have to go for cityos to be 15 % below max-pressure. Results to
``benchmarks/results/traffic-delay-split.json``. Usage::

    .venv/bin/python benchmarks/traffic_delay_split.py [--scenario NAME ...] [--seeds 3]
        [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from cityos.services.traffic import (  # noqa: E402
    RESCO_SCENARIOS,
    get_scenario,
    make_controller,
    run_scenario,
    sumo_version,
)
from cityos.services.traffic.metric import delay_split  # noqa: E402

CONTROLLERS = ("max-pressure", "cityos")
PARTS = (
    "average_delay_s",
    "departure_delay_s",
    "waiting_s",
    "moving_loss_s",
    "stops",
    "unstopped_share",
    "unstopped_loss_s",
)


def one_run(job: tuple[str, str, int]) -> dict[str, Any]:
    scenario, controller, seed = job
    with tempfile.TemporaryDirectory(prefix="cityos-split-") as folder:
        run_scenario(
            get_scenario(scenario),
            make_controller(controller, network=scenario),
            seed=seed,
            work_dir=Path(folder),
        )
        split = delay_split(Path(folder) / "tripinfo.xml")
    return {"scenario": scenario, "controller": controller, "seed": seed, **asdict(split)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", action="append", choices=RESCO_SCENARIOS, help="repeatable")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument(
        "--out", default=str(ROOT / "benchmarks" / "results" / "traffic-delay-split.json")
    )
    args = p.parse_args(argv)
    scenarios = args.scenario or [s for s in RESCO_SCENARIOS if s != "ingolstadt21"]
    jobs = [(s, c, seed) for s in scenarios for c in CONTROLLERS for seed in range(args.seeds)]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.jobs, mp_context=context, max_tasks_per_child=1) as pool:
        runs = list(pool.map(one_run, jobs))
    results: dict[str, Any] = {}
    for s in scenarios:
        results[s] = {}
        for c in CONTROLLERS:
            mine = [r for r in runs if r["scenario"] == s and r["controller"] == c]
            results[s][c] = {k: statistics.fmean(r[k] for r in mine) for k in PARTS}
        mp, ours = results[s]["max-pressure"], results[s]["cityos"]
        share = ours["average_delay_s"] - ours["unstopped_loss_s"]
        target = 0.85 * mp["average_delay_s"]
        results[s]["cityos_signal_share_s"] = share
        results[s]["to_cut_for_15pct_s"] = max(0.0, ours["average_delay_s"] - target)
        results[s]["to_cut_for_15pct_of_signal_share"] = (
            max(0.0, ours["average_delay_s"] - target) / share if share > 0 else None
        )
    report = {
        "benchmark": "traffic-delay-split",
        "sumo_version": sumo_version(),
        "seeds": list(range(args.seeds)),
        "cityos": "tuned per network where a setting ships",
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")

    table = Table(title=f"Where the delay goes (s per vehicle), SUMO {report['sumo_version']}")
    for col in (
        "scenario", "controller", "delay", "departure", "standing", "moving loss", "stops",
        "never stopped", "their loss", "to cut for -15 %",
    ):  # fmt: skip
        table.add_column(col, justify="left" if col in ("scenario", "controller") else "right")
    for s in scenarios:
        for c in CONTROLLERS:
            r = results[s][c]
            cut = ""
            if c == "cityos":
                cut = f"{results[s]['to_cut_for_15pct_s']:.2f} s"
                frac = results[s]["to_cut_for_15pct_of_signal_share"]
                cut += f" ({100 * frac:.0f} % of {results[s]['cityos_signal_share_s']:.1f})"
            table.add_row(
                s, c, f"{r['average_delay_s']:.2f}", f"{r['departure_delay_s']:.2f}",
                f"{r['waiting_s']:.2f}", f"{r['moving_loss_s']:.2f}", f"{r['stops']:.2f}",
                f"{100 * r['unstopped_share']:.0f} %", f"{r['unstopped_loss_s']:.2f}", cut,
            )  # fmt: skip
    Console(width=160).print(table)
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
