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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--controller", action="append", default=[], help="a CONTROLLERS name")
    ap.add_argument("--steps", type=int, help="hours from the start (default: the year)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/energy-citylearn.json")
    args = ap.parse_args()
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
    out: dict[str, Any] = {name: record(r) for name, r in results.items()}
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
