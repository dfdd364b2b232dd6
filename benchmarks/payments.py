"""Payments benchmark: the fare ledger's transfers per second, and a city day of fares.

* **Ledger** (``results/payments-ledger.json``), on SQLite (a file, WAL, ``synchronous=FULL``)
  and on PostgreSQL (a throwaway schema; skipped when no server answers): 10,000 riders'
  wallets topped up, then fares from random wallets to three operators — in batches of
  1,000 (one transaction each) and one transfer per transaction — then the same batches
  sent again (idempotent: nothing changes). The books are checked after the run
  (:meth:`Ledger.check`: every currency sums to zero, each account is the sum of its
  transfers, none past its overdraft limit): a run whose books do not balance fails.
* **Fares** (``results/payments-fares.json``): one city day of a million taps by 250,000
  riders on the sample district's tariff (flat buses, a distance-priced rapid bus with
  tap-outs, a zoned ferry; transfers, caps, concessions), priced with every explanation.

Usage::

    .venv/bin/python benchmarks/payments.py [--engine sqlite|postgresql|both]
        [--transfers 200000] [--taps 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from cityos.services.payments.fares import Tap, load_tariff, price_taps  # noqa: E402
from cityos.services.payments.ledger import Ledger, Transfer  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
POSTGRES_URL = os.environ.get(
    "CITYOS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
RIDERS = 10_000
OPERATORS = ("operator:city-bus", "operator:rapid-bus", "operator:ferry")
BATCH = 1_000
console = Console()


def machine() -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=False,
        ).stdout.strip()  # fmt: skip
    except OSError:
        commit = ""
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "commit": commit,
        # the machine is shared: its load when the run started (2 cores: 2.0 is full)
        "load_average_1m": round(os.getloadavg()[0], 2),
        "when": datetime.now().astimezone().isoformat(timespec="seconds"),
    }


# -- the ledger ------------------------------------------------------------------------------
def _fares(rng: random.Random, n: int, prefix: str) -> list[Transfer]:
    return [
        Transfer(f"rider:{rng.randrange(RIDERS)}", rng.choice(OPERATORS),
                 rng.choice((150000, 190000, 300000)), "KHR", id=f"{prefix}-{i}")
        for i in range(n)
    ]  # fmt: skip


def bench_ledger(engine: str, url: str, schema: str | None, transfers: int) -> dict[str, Any]:
    ledger = Ledger.open(url, schema=schema)
    try:
        t0 = time.perf_counter()
        ledger.open_account("settlement:khqr", "KHR", kind="settlement", overdraft_limit=None)
        for name in OPERATORS:
            ledger.open_account(name, "KHR", kind="operator")
        with ledger.db.transaction() as tx:  # 10,000 wallets at once
            now = time.time_ns() // 1000
            tx.executemany(
                "INSERT INTO pay_accounts (tenant, id, currency, kind, overdraft_limit, "
                "created_at) VALUES ('', ?, 'KHR', 'rider', 0, ?)",
                [(f"rider:{r}", now) for r in range(RIDERS)],
            )
        ledger.transfer_batch(
            [Transfer("settlement:khqr", f"rider:{r}", 10**12, "KHR", id=f"top-{r}")
             for r in range(RIDERS)]
        )  # fmt: skip
        setup_s = time.perf_counter() - t0
        rng = random.Random(16)
        batches = [_fares(rng, BATCH, f"b{b}") for b in range(transfers // BATCH)]
        t0, c0 = time.perf_counter(), time.process_time()
        for batch in batches:
            ledger.transfer_batch(batch)
        batched_s, batched_cpu = time.perf_counter() - t0, time.process_time() - c0
        singles = _fares(rng, 2_000 if engine == "sqlite" else 1_000, "s")
        t0 = time.perf_counter()
        for t in singles:
            ledger.transfer(t)
        single_s = time.perf_counter() - t0
        # the same, committed without waiting for the disk (survives a crash of the
        # process, not of the machine): what the disk's flush costs each commit
        lax = Ledger.open(url, schema=schema, durable=False)
        try:
            lax_singles = _fares(rng, len(singles), "n")
            t0 = time.perf_counter()
            for t in lax_singles:
                lax.transfer(t)
            lax_s = time.perf_counter() - t0
        finally:
            lax.close()
        replay = batches[: max(1, len(batches) // 10)]
        t0 = time.perf_counter()
        statuses = Counter(r.status for batch in replay for r in ledger.transfer_batch(batch))
        replay_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        problems = ledger.check()
        check_s = time.perf_counter() - t0
        with ledger.db.reading() as tx:
            count = int(tx.one("SELECT COUNT(*) FROM pay_transfers")[0])
        server = ""
        if engine == "postgresql":
            with ledger.db.reading() as tx:
                server = str(tx.one("SHOW server_version")[0])
    finally:
        if schema:
            ledger.db.drop()
        ledger.close()
    n_replayed = sum(len(b) for b in replay)
    return {
        "engine": engine,
        "server_version": server or None,
        "durability": "synchronous=FULL, WAL" if engine == "sqlite" else "synchronous_commit=on",
        "accounts": RIDERS + 1 + len(OPERATORS),
        "setup_s": round(setup_s, 2),
        "batched": {
            "transfers": len(batches) * BATCH,
            "batch": BATCH,
            "seconds": round(batched_s, 2),
            "transfers_per_s": round(len(batches) * BATCH / batched_s),
            # this process's CPU only (PostgreSQL's own work is in its server processes)
            "cpu_s": round(batched_cpu, 2),
            "transfers_per_cpu_s": round(len(batches) * BATCH / batched_cpu),
        },
        "single": {
            "transfers": len(singles),
            "seconds": round(single_s, 2),
            "transfers_per_s": round(len(singles) / single_s),
        },
        "single_not_waiting_for_the_disk": {
            "durability": "synchronous=NORMAL" if engine == "sqlite" else "synchronous_commit=off",
            "transfers": len(lax_singles),
            "transfers_per_s": round(len(lax_singles) / lax_s),
        },
        "idempotent_replay": {
            "transfers": n_replayed,
            "statuses": dict(statuses),
            "transfers_per_s": round(n_replayed / replay_s),
        },
        "transfers_stored": count,
        "check_s": round(check_s, 2),
        "invariants": "hold" if not problems else problems[:10],
    }


def postgres_reachable() -> bool:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            return True
    except Exception:
        return False


# -- fares -----------------------------------------------------------------------------------
def city_day(n_taps: int, seed: int = 16) -> list[Tap]:
    """A day of taps: most riders take a bus or two (flat), some the rapid bus (tap-in and
    tap-out), some the ferry; students and elders among them; the morning and evening peaks."""
    tariff = load_tariff()
    stops = sorted(tariff.stops)
    rng = random.Random(seed)
    tz = ZoneInfo(tariff.timezone)
    midnight = int(datetime(2026, 3, 2, tzinfo=tz).timestamp())
    taps: list[Tap] = []
    rider = 0
    while len(taps) < n_taps:
        rider += 1
        who = f"rider:{rider}"
        concession = rng.choices(("", "student", "elder"), (0.8, 0.15, 0.05))[0]
        t = midnight + int(rng.choice((7.5, 8.0, 12.5, 17.5, 18.0)) * 3600 + rng.gauss(0, 2400))
        for _ in range(rng.choice((1, 2, 2, 3, 4, 5, 6))):
            product = rng.choices(("bus", "brt", "ferry"), (0.7, 0.2, 0.1))[0]
            origin = rng.choice(stops)
            t += rng.randint(60, 3 * 3600)
            taps.append(Tap(who, t, origin, product, "in", concession))
            if product != "bus" and rng.random() < 0.95:  # 5% forget to tap out
                t += rng.randint(300, 2400)
                taps.append(Tap(who, t, rng.choice(stops), product, "out", concession))
    return taps[:n_taps]


def bench_fares(n_taps: int) -> dict[str, Any]:
    tariff = load_tariff()
    t0 = time.perf_counter()
    taps = city_day(n_taps)
    generate_s = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    days = price_taps(tariff, taps)
    price_s, price_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    explained = sum(len(c.explain(tariff.currency)) > 0 for d in days for c in d.charges)
    explain_s = time.perf_counter() - t0
    rules = Counter(rule for d in days for c in d.charges for rule, _, _ in c.steps)
    statuses = Counter(c.status for d in days for c in d.charges)
    revenue = sum(d.total for d in days)
    journeys = sum(len(d.charges) for d in days)
    return {
        "taps": len(taps),
        "riders": len({t.rider for t in taps}),
        "journeys": journeys,
        "tariff": "sample district (KHR), src/cityos/services/payments/tariff-phnom-penh.json",
        "generate_s": round(generate_s, 2),
        "price_s": round(price_s, 2),
        "taps_per_s": round(len(taps) / price_s),
        "price_cpu_s": round(price_cpu, 2),
        "taps_per_cpu_s": round(len(taps) / price_cpu),
        "explain_s": round(explain_s, 2),
        "explanations": explained,
        "revenue_khr": revenue // 100,
        "journeys_by_status": dict(statuses),
        "charges_by_rule": dict(rules),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--transfers", type=int, default=200_000)
    parser.add_argument("--taps", type=int, default=1_000_000)
    args = parser.parse_args()
    info = machine()
    runs = []
    if args.engine in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            console.print(f"ledger on SQLite: {args.transfers:,} transfers ...")
            runs.append(bench_ledger("sqlite", f"sqlite:///{tmp}/ledger.db", None, args.transfers))
    if args.engine in ("postgresql", "both"):
        if postgres_reachable():
            n = max(BATCH, args.transfers // 4)
            console.print(f"ledger on PostgreSQL: {n:,} transfers ...")
            schema = f"pay_bench_{uuid.uuid4().hex[:8]}"
            runs.append(bench_ledger("postgresql", POSTGRES_URL, schema, n))
        else:
            console.print(f"[yellow]PostgreSQL not reachable at {POSTGRES_URL}: skipped")
    table = Table(title="Fare ledger (KHR transfers)")
    for col in ("engine", "batched /s", "single /s", "single, no flush /s", "replay /s",
                "stored", "books"):  # fmt: skip
        table.add_column(col)
    for r in runs:
        table.add_row(r["engine"], f"{r['batched']['transfers_per_s']:,}",
                      f"{r['single']['transfers_per_s']:,}",
                      f"{r['single_not_waiting_for_the_disk']['transfers_per_s']:,}",
                      f"{r['idempotent_replay']['transfers_per_s']:,}",
                      f"{r['transfers_stored']:,}", str(r["invariants"]))  # fmt: skip
    console.print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    ledger_doc = {"benchmark": "payments-ledger", "machine": info, "runs": runs}
    (RESULTS / "payments-ledger.json").write_text(json.dumps(ledger_doc, indent=2) + "\n")
    console.print(f"fares: a city day of {args.taps:,} taps ...")
    fares = bench_fares(args.taps)
    console.print(
        f"priced {fares['taps']:,} taps ({fares['riders']:,} riders, {fares['journeys']:,} "
        f"journeys) in {fares['price_s']} s: {fares['taps_per_s']:,} taps/s; explanations "
        f"{fares['explain_s']} s; revenue {fares['revenue_khr']:,} KHR"
    )
    fares_doc = {"benchmark": "payments-fares", "machine": info, **fares}
    (RESULTS / "payments-fares.json").write_text(json.dumps(fares_doc, indent=2) + "\n")
    if any(r["invariants"] != "hold" for r in runs):
        console.print("[red]the books do not balance")
        sys.exit(1)


if __name__ == "__main__":
    main()
