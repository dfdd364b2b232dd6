"""Energy grid benchmark: a day of home schedules checked on a real SimBench LV feeder.

Every load bus of the feeder (default ``1-LV-rural2--0-sw``: 93 buses, 250 kVA) gets a
home. Each home's net kW is built from SimBench's own normalised profiles for one day:

* household demand: the standard H0 profiles (variants A, B, C, G, L in turn) scaled to a
  ``--household-kw`` mean,
* PV: every ``--pv-every``-th home has ``--pv-kwp`` of rooftop PV (SimBench PV profiles),
* EV: every ``--ev-every``-th home charges ``--ev-kw`` for ``--ev-hours`` from its arrival
  hour (17:00-19:00, fixed by home index) -- the controllable part.

Then it times ``Feeder.check_schedule`` over the day (hourly: 24 steps; quarter-hourly: 96
steps; a week hourly: 168 steps), runs ``Feeder.limit_schedule`` on the day, and writes
``benchmarks/results/energy-grid.json``. Power flows are pandapower Newton-Raphson without
numba on one core. Usage::

    .venv/bin/python benchmarks/energy_grid.py [--day 172] [--quick] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cityos.services.energy.grid import DEFAULT_CODE, Feeder, simbench_net  # noqa: E402

H0 = ["H0-A", "H0-B", "H0-C", "H0-G", "H0-L"]
PV = ["PV1", "PV3", "PV4", "PV7"]
QUARTERS_PER_DAY = 96


def day_profiles(code: str, day: int, days: int) -> tuple[np.ndarray, np.ndarray]:
    """Quarter-hourly H0 [5 x steps] (mean 1) and PV [4 x steps] (per kWp) for the days."""
    profiles = simbench_net(code).profiles
    rows = slice(day * QUARTERS_PER_DAY, (day + days) * QUARTERS_PER_DAY)
    h0 = np.array([profiles["load"][f"{p}_pload"].to_numpy() for p in H0])
    h0 = h0 / h0.mean(axis=1, keepdims=True)
    pv = np.array([profiles["renewables"][p].to_numpy()[rows] for p in PV])
    return h0[:, rows], pv


def home_schedule(args: argparse.Namespace, n: int, days: int) -> tuple[np.ndarray, np.ndarray]:
    """Net kW [homes x quarter-hours] and the EV part of it, deterministic by home index."""
    h0, pv = day_profiles(args.code, args.day, days)
    steps = h0.shape[1]
    homes = np.arange(n)
    net = args.household_kw * h0[homes % len(H0)]
    has_pv = homes % args.pv_every == 0
    net[has_pv] -= args.pv_kwp * pv[homes[has_pv] % len(PV)]
    ev = np.zeros((n, steps))
    hour = (np.arange(steps) / 4) % 24
    for i in homes[homes % args.ev_every == 0]:
        arrive = 17 + (i // args.ev_every) % 3
        ev[i, (hour >= arrive) & (hour < arrive + args.ev_hours)] = args.ev_kw
    return net + ev, ev


def hourly(x: np.ndarray) -> np.ndarray:
    """Quarter-hourly [homes x 4k] to hourly means [homes x k]."""
    return x.reshape(x.shape[0], -1, 4).mean(axis=2)


def timed_check(feeder: Feeder, series: np.ndarray, repeats: int) -> dict[str, Any]:
    """Run check_schedule ``repeats`` times; wall times and the last summary."""
    walls = []
    for _ in range(repeats):
        start = time.perf_counter()
        check = feeder.check_schedule(series)
        walls.append(time.perf_counter() - start)
    steps = series.shape[1]
    return {
        "steps": steps,
        "wall_s_min": round(min(walls), 4),
        "wall_s_median": round(statistics.median(walls), 4),
        "ms_per_step": round(min(walls) / steps * 1000, 2),
        "summary": check.summary(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--code", default=DEFAULT_CODE)
    p.add_argument("--day", type=int, default=355, help="day of 2016 (0 = 1 Jan; 355 = 21 Dec)")
    p.add_argument("--household-kw", type=float, default=0.45)
    p.add_argument("--pv-every", type=int, default=3)
    p.add_argument("--pv-kwp", type=float, default=8.0)
    p.add_argument("--ev-every", type=int, default=4)
    p.add_argument("--ev-kw", type=float, default=11.0)
    p.add_argument("--ev-hours", type=float, default=3.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="one repeat, no week run")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args(argv)
    repeats = 1 if args.quick else args.repeats

    start = time.perf_counter()
    feeder = Feeder.simbench(args.code)
    load_s = time.perf_counter() - start
    feeder.map_homes(len(feeder.load_buses))
    n = len(feeder.homes)

    quarter, ev_quarter = home_schedule(args, n, days=1)
    day, ev_day = hourly(quarter), hourly(ev_quarter)
    runs = {"day_hourly": timed_check(feeder, day, repeats)}
    runs["day_quarter_hourly"] = timed_check(feeder, quarter, 1)
    if not args.quick:
        week, _ = home_schedule(args, n, days=7)
        runs["week_hourly"] = timed_check(feeder, hourly(week), 1)

    start = time.perf_counter()
    limited = feeder.limit_schedule(day, ev_day)
    limit_s = time.perf_counter() - start
    result = {
        "benchmark": "energy-grid",
        "machine": {"python": platform.python_version(), "cpu": platform.processor()},
        "feeder": feeder.describe(),
        "import_limit_kw": round(feeder.import_limit_kw(), 1),
        "load_s": round(load_s, 2),
        "inputs": {k: v for k, v in vars(args).items() if k not in ("out", "quick")},
        "homes": n,
        "peak_import_kw": round(float(day.sum(axis=0).max()), 1),
        "peak_export_kw": round(max(0.0, float(-day.sum(axis=0).min())), 1),
        "checks": runs,
        "limit_schedule": {
            "wall_s": round(limit_s, 3),
            "violating_steps_before": list(limited.before.violating_steps),
            "violating_steps_after": list(limited.after.violating_steps),
            "scale": [round(float(s), 3) for s in limited.scale],
            "shed_kwh": round(float(limited.shed_kw.sum()), 1),
            "ev_kwh": round(float(ev_day.sum()), 1),
            "unresolved": {str(k): v for k, v in limited.unresolved.items()},
            "after": limited.after.summary(),
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "energy-grid.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"feeder {args.code}: {n} homes, import limit {result['import_limit_kw']} kW")
    for name, run in runs.items():
        s = run["summary"]
        print(
            f"{name:>20}: {run['steps']:3d} steps in {run['wall_s_min']:.2f} s "
            f"({run['ms_per_step']} ms/step), {len(s['violating_steps'])} violating, "
            f"Vmin {s['worst_vm_min_pu']}, trafo {s['worst_trafo_loading_pct']:.0f} %"
        )
    lim = result["limit_schedule"]
    print(
        f"      limit_schedule: {lim['wall_s']} s, violating {lim['violating_steps_before']} -> "
        f"{lim['violating_steps_after']}, shed {lim['shed_kwh']} of {lim['ev_kwh']} kWh EV"
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
