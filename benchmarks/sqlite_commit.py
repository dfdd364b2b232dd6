"""What one small SQLite write transaction costs, and what WAL checkpointing adds to it.

    .venv/bin/python benchmarks/sqlite_commit.py

The hub's single-attribute update is four statements in a transaction (BEGIN IMMEDIATE,
read the row, update it, append a history row, COMMIT). This measures exactly that shape
on a bare table, with the WAL checkpointed every 1,000 pages (SQLite's default) and every
10,000 (the hub's setting), and writes results/sqlite-commit.json.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
from pathlib import Path

OPS = 3000


def run(autocheckpoint: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(Path(tmp) / "c.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA wal_autocheckpoint={autocheckpoint}")
        conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, doc TEXT)")
        conn.execute("CREATE TABLE h(id INTEGER PRIMARY KEY, e TEXT, doc TEXT)")
        conn.execute("CREATE INDEX h_e ON h(e, id)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, "x" * 900) for i in range(1000)])
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for i in range(OPS):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("SELECT doc FROM t WHERE id = ?", (i % 1000,)).fetchone()
            conn.execute("UPDATE t SET doc = ? WHERE id = ?", ("y" * 900, i % 1000))
            conn.execute("INSERT INTO h(e, doc) VALUES (?, ?)", (str(i % 1000), "z" * 200))
            conn.execute("COMMIT")
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        conn.close()
    return {"cpu_us_per_tx": 1e6 * cpu / OPS, "wall_us_per_tx": 1e6 * wall / OPS}


def main() -> None:
    out = {
        "sqlite": sqlite3.sqlite_version,
        "transactions": OPS,
        "wal_autocheckpoint_1000": run(1000),
        "wal_autocheckpoint_10000": run(10000),
    }
    print(json.dumps(out, indent=2))
    dest = Path(__file__).resolve().parent / "results" / "sqlite-commit.json"
    dest.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
