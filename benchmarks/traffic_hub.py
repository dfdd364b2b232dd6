"""What the hub costs the traffic loop: wall time per simulated hour, direct vs through the hub.

For each RESCO scenario, the same controller runs twice on the same seed: with direct
in-process access to SUMO's detectors and signals, and through a hub (detectors publish as
devices into TrafficFlowObserved entities, the service reads the hub, decisions go back as
TrafficSignal commands through the subscription, outbox and delivery, the cabinet answers;
plus road-segment congestion and emission entities). Both must give the same average delay
(the hub carries what the detectors saw; rounding aside, the decisions are the same). Each
run is a fresh process (libsumo keeps state between runs). Usage::

    .venv/bin/python benchmarks/traffic_hub.py [--scenario NAME ...] [--controller NAME]
        [--engine sqlite|postgresql|both] [--out benchmarks/results/traffic-hub.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import uuid
from concurrent.futures import ProcessPoolExecutor
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
    run_scenario,  # noqa: E402
)

PG_URL = os.environ.get("CITYOS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def one_run(job: tuple[str, str, str]) -> dict[str, Any]:
    scenario_name, controller, mode = job
    scenario = get_scenario(scenario_name)
    if mode == "direct":
        return {
            "mode": mode,
            **run_scenario(scenario, make_controller(controller, network=scenario_name)).as_dict(),
        }
    from dataclasses import asdict

    from cityos.config import Settings
    from cityos.hub.core import Hub
    from cityos.services.traffic.sim.hubloop import run_through_hub

    if mode == "sqlite":
        folder = tempfile.mkdtemp(prefix="cityos-traffic-bench-")
        hub = Hub(Settings(database_url=f"sqlite:///{folder}/hub.db"))
    else:
        from cityos.hub.store.postgres import PostgresStore

        store = PostgresStore(PG_URL, schema=f"cityos_bench_{uuid.uuid4().hex[:8]}")
        hub = Hub(Settings(database_url=PG_URL), store=store)
    hub.store.migrate()
    try:
        result, stats = asyncio.run(
            run_through_hub(scenario, make_controller(controller, network=scenario_name), hub)
        )
    finally:
        if mode == "postgresql":
            hub.store.drop_schema()
        hub.store.close()
    return {"mode": mode, **result.as_dict(), "hub": asdict(stats)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", action="append", choices=RESCO_SCENARIOS)
    p.add_argument("--controller", default="max-pressure")
    p.add_argument("--engine", choices=["sqlite", "postgresql", "both"], default="sqlite")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "traffic-hub.json"))
    args = p.parse_args(argv)
    scenarios = args.scenario or list(RESCO_SCENARIOS)
    engines = ["sqlite", "postgresql"] if args.engine == "both" else [args.engine]
    jobs = [(s, args.controller, m) for s in scenarios for m in ["direct", *engines]]
    context = multiprocessing.get_context("spawn")
    console = Console()
    with ProcessPoolExecutor(1, mp_context=context, max_tasks_per_child=1) as pool:
        runs = list(pool.map(one_run, jobs))
    table = Table(
        title=f"{args.controller}: wall time per simulated hour, direct vs through the hub"
    )
    for col in ("scenario", "mode", "delay (s)", "wall (s/h)", "commands", "hub ms/command"):
        table.add_column(col, justify="right" if col != "scenario" else "left")
    results: dict[str, dict[str, Any]] = {}
    for s in scenarios:
        by_mode = {r["mode"]: r for r in runs if r["scenario"] == s}
        direct = by_mode["direct"]["wall_s"]
        results[s] = {}
        for mode, r in by_mode.items():
            per_hour = r["wall_s"] * 3600.0 / r["simulated_s"]
            commands = r["hub"]["commands"] if r.get("hub") else 0
            results[s][mode] = {
                "average_delay_s": r["average_delay_s"],
                "wall_s_per_simulated_hour": per_hour,
                # the hub's share of one junction's step: extra wall time per command
                "hub_ms_per_command": (
                    1000 * (r["wall_s"] - direct) / commands if commands else None
                ),
                "hub": r.get("hub"),
                "sumo_version": r["sumo_version"],
            }
            cost = "" if not commands else f"{1000 * (r['wall_s'] - direct) / commands:.1f} ms"
            table.add_row(
                s, mode, f"{r['average_delay_s']:.2f}", f"{per_hour:.1f}", f"{commands:,}", cost
            )
    console.print(table)
    out = {
        "benchmark": "traffic-hub",
        "controller": args.controller,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "command": "benchmarks/traffic_hub.py " + " ".join(argv or sys.argv[1:]),
        "results": results,
    }
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
