"""CityLearn 2022 benchmark: the challenge's score for each battery controller, over the year.

Runs each controller through CityLearn 1.3.6 (the version the 2022 challenge ran on; its
``citylearn_challenge_2022_phase_1`` data: 5 homes, 8,760 hours) by the energy service's
adapter, so the controller scored is the one the city runs. Always ``none`` (no control, the
reference: 1.0 everywhere) and ``rule-based`` (the starter kit's rule), then each name given
with ``--controller`` that ``cityos.services.energy.controllers.CONTROLLERS`` holds (others
are skipped with a note). Each number is CityLearn's own ``env.evaluate()`` beside ours
(``cityos.services.energy.score``) from the same series: they must agree to 1e-6.
Needs ``make citylearn``. Usage::

    .venv/bin/python benchmarks/energy_citylearn.py [--controller NAME ...] [--steps N]
        [--out benchmarks/results/energy-citylearn.json]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rich.console import Console  # noqa: E402
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: E402
from rich.table import Table  # noqa: E402

from cityos.services.energy.control import Controller  # noqa: E402
from cityos.services.energy.sim.baselines import BASELINES  # noqa: E402
from cityos.services.energy.sim.citylearn import DATASET, EpisodeResult, run_episode  # noqa: E402

TOLERANCE = 1e-6
COLUMNS = ("score", "cost", "carbon", "grid")


def controllers(names: list[str], console: Console) -> dict[str, Controller]:
    """The baselines, then each named controller the service has (built lazily: the module
    may not exist yet, or not hold that name)."""
    chosen: dict[str, Controller] = {name: make() for name, make in BASELINES.items()}
    if not names:
        return chosen
    try:
        registry = importlib.import_module("cityos.services.energy.controllers").CONTROLLERS
    except (ImportError, AttributeError) as exc:
        console.print(f"[yellow]skipped {', '.join(names)}: no controllers module ({exc})")
        return chosen
    for name in names:
        if name in chosen:
            continue
        if name not in registry:
            console.print(f"[yellow]skipped {name}: not in CONTROLLERS ({', '.join(registry)})")
            continue
        entry = registry[name]
        if entry in BASELINES.values():  # the registry's own name for a baseline: run once
            continue
        # a class or a factory is built; an instance is used as it is
        chosen[name] = entry() if isinstance(entry, type) or not hasattr(entry, "act") else entry
    return chosen


def commit() -> str:
    """HEAD, marked when src/ has uncommitted changes (the code measured is not HEAD's)."""

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return out.stdout.strip()

    dirty = git("status", "--porcelain", "--", "src")
    return git("rev-parse", "--short", "HEAD") + ("+changes" if dirty else "")


def record(result: EpisodeResult) -> dict[str, Any]:
    return {
        **{k: round(v, 6) for k, v in result.citylearn.as_dict().items()},
        "seconds": round(result.seconds, 1),
        "steps": result.steps,
        "ours": {k: round(v, 6) for k, v in result.ours.as_dict().items()},
        "max_difference": result.disagreement(),
    }


def feeder_check(result: EpisodeResult, days: int) -> dict[str, Any]:
    """The schedule on a real low-voltage feeder (SimBench ``1-LV-rural2--0-sw``, pandapower):
    each of its load buses gets one of the five homes' hourly draw (round-robin, so ~19
    homes of each kind), and a power flow runs for every hour of the ``days`` days around the
    district's highest hour without control; voltage band ±5 %, loading ≤ 100 %."""
    import numpy as np

    from cityos.services.energy.grid import Feeder

    net = np.asarray(result.series.net, float)  # (homes, steps) kWh per hour = mean kW
    base = np.asarray(result.series.net_no_storage, float)
    peak = int(np.argmax(base.sum(axis=0)))
    lo = max(0, peak - days * 12)
    hi = min(net.shape[1], lo + days * 24)
    feeder = Feeder.simbench()
    homes = feeder.map_homes(len(feeder.load_buses))
    rows = np.arange(len(homes)) % net.shape[0]
    check = feeder.check_schedule(net[rows, lo:hi])
    return {"first_step": lo, "steps": hi - lo, **check.summary()}


def table(results: dict[str, EpisodeResult]) -> Table:
    """A row for CityLearn's numbers, then one for ours, per controller."""
    t = Table(title=f"CityLearn 2022 ({DATASET}): lower is better, 1.0 = no control")
    for c in ("controller", "by", *COLUMNS, "ramping", "1-load f.", "|Δ| max", "s"):
        t.add_column(c, justify="left" if c in ("controller", "by") else "right")
    for name, r in results.items():
        for by, x in (("CityLearn", r.citylearn), ("ours", r.ours)):
            cells = [f"{getattr(x, c):.4f}" for c in (*COLUMNS, "ramping", "load_factor")]
            mine = by == "ours"
            t.add_row(
                "" if mine else name,
                by,
                *cells,
                f"{r.disagreement():.0e}" if mine else "",
                "" if mine else f"{r.seconds:.1f}",
                end_section=mine,
            )
    return t


def plot_week(results: dict[str, EpisodeResult], path: Path) -> None:
    """The district's draw in the week of its highest hour, for each controller, with the
    price: what the batteries do to the evening peak."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    first = next(iter(results.values()))
    base = np.asarray(first.series.net_district, float)
    peak = int(np.argmax(base))
    lo = max(0, peak - 84)
    hours = np.arange(lo, min(len(base), lo + 168))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6), sharex=True)
    for name, r in results.items():
        net = np.asarray(r.series.net_district, float)[hours]
        top.plot(hours, net, label=NAMES.get(name, name), linewidth=1.2)
    top.set_ylabel("district draw, kWh per hour")
    top.legend(loc="upper left", fontsize=8)
    bottom.step(hours, np.asarray(first.series.price, float)[hours], where="mid", color="tab:red")
    bottom.set_ylabel("price, $/kWh")
    bottom.set_xlabel("hour of the year")
    fig.suptitle("CityLearn 2022 phase_1: the week of the year's highest hour")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


NAMES = {
    "none": "no control",
    "rule-based": "rule-based (charge at night, discharge 09–21 h)",
    "mpc": "CityOS MPC (LightGBM forecasts + HiGHS LP, no foresight)",
    "mpc-perfect-forecast": "the same MPC with perfect 24 h forecasts (diagnostic)",
    "foresight": "perfect-foresight LP (the bound)",
}


def report(path: Path) -> str:
    """The Markdown table of docs/services/energy.md, from a recorded run."""
    data = json.loads(path.read_text())
    rows = [
        "| controller | score | cost | carbon | grid | ramping | 1 − load factor "
        "| feeder: hours over a limit / hours checked | worst voltage (p.u.) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in data.items():
        if not isinstance(r, dict) or "score" not in r:
            continue
        f = r.get("feeder")
        grid = f"{len(f['violating_steps'])} / {f['steps']}" if f else "—"
        vmin = f"{f['worst_vm_min_pu']:.3f}" if f else "—"
        cells = [f"{r[k]:.3f}" for k in ("score", "cost", "carbon", "grid", "ramping")]
        cells.append(f"{r['load_factor']:.3f}")
        rows.append(f"| {NAMES.get(name, name)} | " + " | ".join([*cells, grid, vmin]) + " |")
    rows.append("")
    rows.append(f"Run `{data['command']}` at {data['commit']} ({data['date']}; {data['machine']}).")
    return "\n".join(rows) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--controller", action="append", default=[], help="a CONTROLLERS name")
    ap.add_argument("--steps", type=int, help="hours from the start (default: the year)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/energy-citylearn.json")
    ap.add_argument(
        "--grid-days", type=int, default=7, help="days of power flow around the peak (0: none)"
    )
    ap.add_argument("--report", action="store_true", help="print the docs table of --out")
    ap.add_argument("--plot", type=Path, help="write the week of the peak as a PNG here")
    args = ap.parse_args()
    if args.report:
        print(report(args.out), end="")
        return
    console = Console()
    if not console.is_terminal:  # a log, not a window: room for the whole table
        console = Console(width=120)
    chosen = controllers(args.controller, console)
    results: dict[str, EpisodeResult] = {}
    columns = [TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}h")]
    with Progress(*columns, TimeElapsedColumn(), console=console) as bar:
        for name, controller in chosen.items():
            task = bar.add_task(name, total=None)

            def advance(done: int, total: int, task: Any = task) -> None:
                bar.update(task, completed=done, total=total)

            results[name] = run_episode(controller, steps=args.steps, progress=advance)
    console.print(table(results))
    if args.plot:
        plot_week(results, args.plot)
    out: dict[str, Any] = {name: record(r) for name, r in results.items()}
    if args.grid_days:
        for name, r in results.items():
            out[name]["feeder"] = feeder_check(r, args.grid_days)
            console.print(f"feeder, {name}: {out[name]['feeder']}")
    first = next(iter(results.values()))
    out |= {
        "commit": commit(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["benchmarks/energy_citylearn.py", *sys.argv[1:]]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()} (CityLearn {first.details['citylearn']})",
        "dataset": DATASET,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    console.print(
        f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}"
    )
    bad = [n for n, r in results.items() if r.disagreement() > TOLERANCE]
    if bad:
        raise SystemExit(f"CityLearn's score and ours differ by more than {TOLERANCE}: {bad}")


if __name__ == "__main__":
    main()
