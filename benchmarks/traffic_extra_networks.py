"""RESCO's two synthetic networks that CityOS's controller was never tuned on.

``grid4x4`` and ``arterial4x4`` ship in sumo-rl (``nets/RESCO/<name>/``) beside the six
scenarios of ``traffic_resco.py``, which ``get_scenario`` knows; these two run here from
their own net and route files over their hour (0–3600 s, as their ``.sumocfg``), with the
same control step, yellow, safety guard and metric as ``traffic_resco.py``, and CityOS's
controller on its defaults (no tuned setting exists for them). Usage::

    .venv/bin/python benchmarks/traffic_extra_networks.py [--network grid4x4 ...]
        [--controller NAME ...] [--seeds 3]
        [--out benchmarks/results/traffic-resco-plain-extra-networks.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

NETWORKS = ("grid4x4", "arterial4x4")
CONTROLLERS = ("fixed", "max-pressure", "max-pressure-plain", "cityos")


def one(job: tuple[str, str, int]) -> tuple[str, str, int, float, Any, str]:
    """One simulated hour, in a process of its own (SUMO keeps state per process)."""
    name, controller, seed = job
    from cityos.services.traffic import make_controller, run_scenario, sumo_version
    from cityos.services.traffic.sim.scenarios import Scenario, resco_directory

    folder = resco_directory() / name
    scenario = Scenario(
        name=name,
        net_file=folder / f"{name}.net.xml",
        route_files=(folder / f"{name}_1.rou.xml",),
        begin=0.0,
        end=3600.0,
        source="RESCO via sumo-rl",
    )
    result = run_scenario(scenario, make_controller(controller, network=name), seed=seed)
    never = result.as_dict().get("never_inserted")
    return name, controller, seed, result.average_delay_s, never, sumo_version()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--network", action="append", choices=NETWORKS)
    ap.add_argument("--controller", action="append")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument(
        "--out",
        type=Path,
        default=ROOT / "benchmarks/results/traffic-resco-plain-extra-networks.json",
    )
    args = ap.parse_args()
    nets = args.network or list(NETWORKS)
    controllers = args.controller or list(CONTROLLERS)
    jobs = [(n, c, s) for n in nets for c in controllers for s in range(args.seeds)]
    results: dict[str, dict[str, Any]] = {}
    versions: set[str] = set()
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx, max_tasks_per_child=1) as pool:
        for name, controller, seed, delay, never, version in pool.map(one, jobs):
            versions.add(version)
            print(f"{name} {controller} seed {seed}: {delay:.2f} s", file=sys.stderr, flush=True)
            row = results.setdefault(name, {}).setdefault(
                controller, {"per_seed": [], "never_inserted": []}
            )
            row["per_seed"].append(delay)
            row["never_inserted"].append(never)
    for per_net in results.values():
        for row in per_net.values():
            row["mean"] = statistics.fmean(row["per_seed"])
            row["stdev"] = statistics.stdev(row["per_seed"]) if len(row["per_seed"]) > 1 else 0.0
    out = {
        "benchmark": "traffic-resco-plain-extra-networks",
        "sumo_version": ", ".join(sorted(versions)),
        "seeds": list(range(args.seeds)),
        "what": __doc__.split("\n\n")[1].replace("\n", " "),
        "command": " ".join(["benchmarks/traffic_extra_networks.py", *sys.argv[1:]]),
        "results": results,
    }
    args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
