"""The RESCO chart: average delay per controller and scenario, from the benchmark's results.

Reads ``benchmarks/results/traffic-resco.json`` (written by ``benchmarks/traffic_resco.py``)
and draws ``docs/services/traffic-delay.png``: one group of bars per scenario (mean over
seeds, spread as error bars), the best published RESCO figure as a dashed line. Usage::

    .venv/bin/python benchmarks/traffic_plot.py [--results FILE] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from cityos.services.traffic.plot import delay_chart  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default=str(ROOT / "benchmarks/results/traffic-resco.json"))
    p.add_argument("--out", default=str(ROOT / "docs/services/traffic-delay.png"))
    args = p.parse_args(argv)
    data = json.loads(Path(args.results).read_text())
    delays = {
        scenario: {c: r["average_delay_s"]["per_seed"] for c, r in by_controller.items()}
        for scenario, by_controller in data["results"].items()
    }
    published = {s: v["best"] for s, v in data.get("published", {}).items() if s in delays}
    title = f"Average delay per vehicle, RESCO metric (SUMO {data.get('sumo_version', '?')})"
    print(delay_chart(delays, Path(args.out), published=published, title=title))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
