"""Tune CityOS's controller to each RESCO network on training seeds; ship the settings.

For each scenario, :func:`cityos.services.traffic.sim.tuning.tune` searches the controller's
parameters on training seeds (100-103 by default), runs the best few and the defaults on
validation seeds (200-207), and writes the one best there to
``src/cityos/services/traffic/controllers/tuned/<scenario>.json`` (which
``make_controller("cityos", network=...)`` and so the CLI and ``traffic_resco.py`` use),
with every run and the wall time it took. The benchmark's seeds (0-2) are never used.
A summary goes to ``benchmarks/results/traffic-tune.json``. Usage::

    .venv/bin/python benchmarks/traffic_tune.py [--scenario NAME ...] [--budget 80]
        [--seeds 4] [--first-seed 100] [--validation-seeds 8] [--keep 5] [--jobs 2] [--refine]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402

from cityos.services.traffic import RESCO_SCENARIOS, get_scenario  # noqa: E402
from cityos.services.traffic.controllers.presets import TUNED_DIR  # noqa: E402
from cityos.services.traffic.sim.tuning import SPACE, tune  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", action="append", choices=RESCO_SCENARIOS, help="repeatable")
    p.add_argument("--budget", type=int, default=80, help="settings evaluated per scenario")
    p.add_argument("--seeds", type=int, default=4, help="training seeds per setting")
    p.add_argument("--first-seed", type=int, default=100)
    p.add_argument(
        "--validation-seeds", type=int, default=8, help="seeds 200.. the choice is made on"
    )
    p.add_argument("--keep", type=int, default=5, help="best training settings validated")
    p.add_argument("--jobs", type=int, default=2, help="simulated hours in parallel")
    p.add_argument(
        "--refine",
        action="store_true",
        help="continue the shipped tuning's search locally (its runs count), then validate",
    )
    p.add_argument(
        "--summary", action="store_true", help="only rewrite the summary of the shipped settings"
    )
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "traffic-tune.json"))
    args = p.parse_args(argv)
    scenarios = args.scenario or [s for s in RESCO_SCENARIOS if s != "ingolstadt21"]
    if args.summary:
        scenarios = []
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    out = Path(args.out)
    console = Console()
    for scenario in scenarios:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task(f"tuning {scenario}", total=args.budget)

            def progress(
                done: int, total: int, best: float, task: int = task, name: str = scenario
            ) -> None:
                bar.update(
                    task, completed=done, total=total, description=f"tuning {name}: {best:.2f} s"
                )

            path = TUNED_DIR / f"{scenario}.json"
            before = json.loads(path.read_text()) if args.refine and path.is_file() else None
            result = tune(
                get_scenario(scenario),
                seeds=seeds,
                budget=args.budget,
                jobs=args.jobs,
                progress=progress,
                prior=before["history"] if before else None,
                validation_seeds=range(200, 200 + args.validation_seeds),
                keep=args.keep,
                random_share=0.0 if before else 1 / 3,
            )
        if before is not None:  # one tuning in two passes: its time is both passes'
            result.wall_s += before["wall_s"]
        result.write(path)
        console.print(
            f"{scenario}: validation seeds {result.validation_seeds}: "
            f"{result.default_validation_delay_s:.2f} s with the defaults -> "
            f"{result.validation_delay_s:.2f} s ({result.evaluations} runs of a setting, "
            f"{result.wall_s:.0f} s) -> {path.name}"
        )
        write_summary(out)
    write_summary(out)
    console.print(f"summary of every shipped setting: {out}")
    return 0


def write_summary(out: Path) -> None:
    """What every shipped setting is, how it was found and what it cost (no run lists)."""
    shipped = {}
    for path in sorted(TUNED_DIR.glob("*.json")):
        data = json.loads(path.read_text())
        shipped[path.stem] = {k: v for k, v in data.items() if k not in ("history", "validation")}
        shipped[path.stem]["validation_per_setting"] = [
            {"params": v["params"], "delay_s": v["delay_s"]} for v in data.get("validation", [])
        ]
    summary = {
        "benchmark": "traffic-tune",
        "space": SPACE,
        "machine": {"python": platform.python_version(), "cpu": platform.processor()},
        "scenarios": shipped,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
