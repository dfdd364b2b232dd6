"""People flows: how accurate the DP releases are at each ε, and what a day of a million
fare taps costs to turn into an origin-destination matrix.

On synthetic data (``cityos.services.flows.synthetic``; seeded):

1. **Accuracy vs ε.** A city of 30 zones (lognormal attractiveness) and one day of about a
   million taps (≈268,000 cards); the true OD matrix (900 cells, each card's first 4
   journeys) is released ``--repeats`` times at each ε through the same path the service
   uses (:func:`cityos.privacy.release_counts`: OpenDP noise, ledger charge, clamping at 0;
   suppression off here so every error is measured). Per ε: mean absolute error of a
   cell, mean relative error of cells with ≥ 100 journeys, the share of cells that would
   be published as "<10", and the noise scale. The same for the sample district's crowd
   counts (people entering per zone and hour, 8 zones × 24 h, sensitivity 10).
2. **Build time.** Pseudonymising and pairing the million taps (``pair_taps``), counting
   the bounded matrix (``build_od``), one 900-cell release; then storing ``--store``
   journeys in a SQLite hub and reading them back (the hub part is measured on a sample,
   its rate reported, not extrapolated).

Wall and CPU seconds are both recorded (the machine may be shared). Usage::

    .venv/bin/python benchmarks/flows.py [--repeats 10] [--store 50000]
        [--out benchmarks/results/flows.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from cityos.config import Settings  # noqa: E402
from cityos.hub.client import HubClient  # noqa: E402
from cityos.hub.core import Hub  # noqa: E402
from cityos.privacy import Dataset, LegalBasis, Pseudonymiser, release_counts  # noqa: E402
from cityos.services.flows import ZoneMap, build_od, pair_taps, register_zones  # noqa: E402
from cityos.services.flows.entities import journey_entity  # noqa: E402
from cityos.services.flows.od import journeys_of_day  # noqa: E402
from cityos.services.flows.synthetic import (  # noqa: E402
    sample_zones,
    synthetic_city,
    synthetic_counts,
    synthetic_taps,
)

TZ = ZoneInfo("Asia/Phnom_Penh")
DAY = date(2024, 5, 1)
CARDS = 268_000  # ≈ 1,000,000 taps
EPSILONS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
GAUSSIAN = ((0.5, 1e-6), (1.0, 1e-6))
MAX_JOURNEYS = 4
CROSSINGS = 10
BENCH = Dataset(
    name="benchmark",
    purpose="benchmark releases",
    legal_basis=LegalBasis.PUBLIC_TASK,
    retention=timedelta(days=1),
    entity_type="Benchmark",
    attributes=(),
    epsilon=1e9,
    delta=0.5,
)


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def accuracy(
    client: HubClient,
    truth: dict[Any, int],
    domain: list[Any],
    sensitivity: int,
    repeats: int,
    period: str,
    eps: float,
    delta: float = 0.0,
) -> dict[str, Any]:
    mechanism = "gaussian" if delta else "laplace"
    errors: list[float] = []
    relative: list[float] = []
    small = 0
    scale = 0.0
    for _ in range(repeats):
        r = release_counts(client, BENCH, period, "bench", truth, domain, sensitivity=sensitivity,
                           epsilon=eps, delta=delta, mechanism=mechanism, threshold=0)  # fmt: skip
        scale = r.scale
        for key in domain:
            true = truth.get(key, 0)
            noisy = r.cells[_key(key)]
            assert isinstance(noisy, int)
            errors.append(abs(noisy - true))
            small += noisy < 10
            if true >= 100:
                relative.append(abs(noisy - true) / true)
    cells = len(domain) * repeats
    return {
        "epsilon": eps,
        "delta": delta,
        "mechanism": mechanism,
        "noise_scale": round(scale, 4),
        "noise_std": round(scale * (2**0.5) if mechanism == "laplace" else scale, 4),
        "mae": round(statistics.fmean(errors), 3),
        "p95_abs_error": round(sorted(errors)[int(0.95 * len(errors)) - 1], 3),
        "mean_relative_error_cells_ge_100": round(statistics.fmean(relative), 5)
        if relative
        else None,
        "share_published_below_10": round(small / cells, 4),
        "releases": repeats,
        "cells_per_release": len(domain),
    }


def _key(key: Any) -> str:
    return "->".join(key) if isinstance(key, tuple) else str(key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--store", type=int, default=50_000)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/flows.json"))
    args = parser.parse_args()
    console = Console()
    started = time.perf_counter()

    zones, weights = synthetic_city(30, seed=7)
    zone_map = ZoneMap.of(zones)
    ids = [z.id for z in zones]
    pseudonymiser = Pseudonymiser("benchmark-key-" + "0" * 40, timezone="Asia/Phnom_Penh")
    console.print(f"generating a day of taps for {CARDS:,} cards over {len(zones)} zones…")
    taps, gen_s, _ = timed(lambda: synthetic_taps(zones, DAY, TZ, cards=CARDS, seed=7,
                                                  weights=weights))  # fmt: skip
    (journeys, tapped), pair_s, pair_cpu = timed(lambda: pair_taps(taps, zone_map, pseudonymiser))
    od, od_s, od_cpu = timed(lambda: build_od(journeys, ids, max_per_card=MAX_JOURNEYS))
    truth = dict(od.counts)
    domain = od.domain()
    nonzero = [v for v in truth.values() if v]
    console.print(f"{len(taps):,} taps -> {tapped.journeys:,} journeys in {pair_s:.1f} s; "
                  f"OD in {od_s:.2f} s")  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        hub = Hub(Settings(database_url=f"sqlite:///{tmp}/bench.db"))
        client = HubClient(hub)
        _, release_s, _ = timed(lambda: release_counts(
            client, BENCH, "timing", "od", truth, domain, sensitivity=MAX_JOURNEYS, epsilon=1.0))  # fmt: skip

        od_rows = []
        for eps in EPSILONS:
            od_rows.append(accuracy(client, truth, domain, MAX_JOURNEYS, args.repeats,
                                    f"od-{eps}", eps))  # fmt: skip
        for eps, delta in GAUSSIAN:
            od_rows.append(accuracy(client, truth, domain, MAX_JOURNEYS, args.repeats,
                                    f"od-g-{eps}", eps, delta))  # fmt: skip

        district = sample_zones()
        crowd_truth: dict[str, int] = {}
        for r in synthetic_counts(district, DAY, TZ, seed=7):
            if r.direction == "inbound":
                zone = next(z.id for z in district if r.sensor in z.sensors)
                key = f"{zone}@{r.start.astimezone(TZ):%H}:00"
                crowd_truth[key] = crowd_truth.get(key, 0) + r.count
        crowd_domain = sorted(crowd_truth)
        crowd_rows = [
            accuracy(client, crowd_truth, crowd_domain, CROSSINGS, args.repeats, f"crowd-{e}", e)
            for e in EPSILONS
        ]

        register_zones(client, zones)
        sample = journeys[: args.store]
        batches = [sample[i : i + 1000] for i in range(0, len(sample), 1000)]
        _, store_s, store_cpu = timed(lambda: [
            client.upsert([journey_entity(j) for j in b]) for b in batches])  # fmt: skip
        back, read_s, _ = timed(lambda: journeys_of_day(client, DAY, TZ))
        assert len(back) == len(sample)
        hub.close()

    out = {
        "benchmark": "flows",
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },  # fmt: skip
        "city": {
            "zones": len(zones),
            "cards": CARDS,
            "taps": len(taps),
            "journeys": tapped.journeys,
            "unmatched_tap_in": tapped.unmatched_in,
            "unmatched_tap_out": tapped.unmatched_out,
            "od_cells": len(domain),
            "od_cells_nonzero": len(nonzero),
            "od_cells_below_10": sum(1 for k in domain if truth.get(k, 0) < 10),
            "od_cell_median": statistics.median(truth.get(k, 0) for k in domain),
            "max_journeys_per_card": MAX_JOURNEYS,
        },
        "build": {
            "generate_taps_s": round(gen_s, 2),
            "pseudonymise_and_pair_s": round(pair_s, 2),
            "pseudonymise_and_pair_cpu_s": round(pair_cpu, 2),
            "taps_per_s": round(len(taps) / pair_s),
            "build_od_s": round(od_s, 3),
            "build_od_cpu_s": round(od_cpu, 3),
            "release_900_cells_s": round(release_s, 3),
            "hub_store_journeys": len(sample),
            "hub_store_s": round(store_s, 2),
            "hub_store_cpu_s": round(store_cpu, 2),
            "hub_store_journeys_per_s": round(len(sample) / store_s),
            "hub_read_day_s": round(read_s, 2),
        },
        "od_accuracy": od_rows,
        "crowd_accuracy": {
            "zones": len(district),
            "cells": len(crowd_domain),
            "cell_median": statistics.median(crowd_truth.values()),
            "sensitivity": CROSSINGS,
            "rows": crowd_rows,
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")

    table = Table(title=f"OD release accuracy ({len(domain)} cells, {tapped.journeys:,} journeys,"
                  f" sensitivity {MAX_JOURNEYS}, {args.repeats} releases each)")  # fmt: skip
    for col in ("mechanism", "ε", "δ", "noise std", "MAE", "rel. error (≥100)", "<10 share"):
        table.add_column(col, justify="right")
    for r in od_rows:
        rel = r["mean_relative_error_cells_ge_100"]
        table.add_row(r["mechanism"], f"{r['epsilon']:g}", f"{r['delta']:g}",
                      f"{r['noise_std']:.2f}", f"{r['mae']:.2f}",
                      f"{rel:.2%}" if rel is not None else "-",
                      f"{r['share_published_below_10']:.1%}")  # fmt: skip
    console.print(table)
    table = Table(title=f"Crowd counts (people entering per zone-hour, {len(crowd_domain)} cells, "
                  f"sensitivity {CROSSINGS})")  # fmt: skip
    for col in ("ε", "noise std", "MAE", "rel. error (≥100)"):
        table.add_column(col, justify="right")
    for r in crowd_rows:
        rel = r["mean_relative_error_cells_ge_100"]
        table.add_row(f"{r['epsilon']:g}", f"{r['noise_std']:.2f}", f"{r['mae']:.2f}",
                      f"{rel:.2%}" if rel is not None else "-")  # fmt: skip
    console.print(table)
    b = out["build"]
    console.print(
        f"{len(taps):,} taps: pseudonymise + pair {b['pseudonymise_and_pair_s']} s "
        f"({b['taps_per_s']:,} taps/s), OD {b['build_od_s']} s, release "
        f"{b['release_900_cells_s']} s; hub: {b['hub_store_journeys_per_s']:,} journeys/s stored, "
        f"{b['hub_read_day_s']} s to read {len(sample):,} back. Total {out['seconds']} s -> {args.out}"
    )


if __name__ == "__main__":
    main()
