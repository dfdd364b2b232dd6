"""Time the delivery claim (``claim_deliveries``) against the size of the outbox backlog.

    .venv/bin/python benchmarks/claims.py [--sizes 1000,8000] [--out benchmarks/results]

Queues N notifications over three subscriptions, then times one claim of 500, on SQLite
and on PostgreSQL (its outbox analysed while empty, its usual state, which gave the
planner's worst plan for the old query). Writes ``claims.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from cityos.hub.store.base import Store

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
T_QUEUED, T_NOW, T_UNTIL = (
    "2026-01-01T00:00:00.000000Z",
    "2026-01-01T00:00:01.000000Z",
    "2026-01-01T00:01:00.000000Z",
)


def time_claim(store: Store, size: int) -> float:
    with store.transaction("") as tx:
        tx.add_notifications(
            [(f"urn:ngsi-ld:Subscription:{i % 3}", {"n": i}) for i in range(size)], T_QUEUED
        )
    start = time.perf_counter()
    claimed = store.claim_deliveries("bench", T_NOW, T_UNTIL, 500)
    elapsed = time.perf_counter() - start
    assert len(claimed.notifications) == min(500, size)
    store.release_deliveries("bench")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,2000,4000,8000")
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[str, dict[str, float]] = {"sqlite": {}, "postgresql": {}}
    from cityos.hub.store.postgres import PostgresStore
    from cityos.hub.store.sqlite import SqliteStore

    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            lite = SqliteStore(Path(tmp) / "claims.db")
            lite.migrate()
            results["sqlite"][str(size)] = round(time_claim(lite, size) * 1000, 2)
            lite.close()
        pg = PostgresStore.throwaway(POSTGRES_URL)
        with pg._pool.connection() as conn:
            conn.execute("ANALYZE outbox")  # while empty, as in normal operation
        results["postgresql"][str(size)] = round(time_claim(pg, size) * 1000, 2)
        pg.drop_schema()
    out = {"command": "benchmarks/claims.py --sizes " + args.sizes, "claim_ms": results}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "claims.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
