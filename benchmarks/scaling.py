"""What a city of N devices needs: CityOS sized from its own measured per-core figures,
and a simulation of the ingest queue when the devices report together.

The per-core figures are read from the benchmark results this project records (nothing
typed in by hand): MQTT ingest per hub CPU-second (``results/flow-<engine>.json``, QoS 1,
one worker), the bulk load's entities/s (``results/load.json``), PATCH and GET per server
CPU-second (``results/hub-<engine>.json``). From them and a city's profile (devices, how
often each reports, attributes per message, how long history is kept), it computes the
cores, history rows and disk a deployment needs.

Then a simulation: one hour of reports from the city's devices into ``--nodes`` hub
processes sharing the device stream (MQTT 5 shared subscriptions, as ``cityos serve
--workers`` does), each serving messages at its measured rate, second by second. Two ways
devices report every minute: **aligned** (every device on the minute, as naive firmware
does) and **jittered** (each at its own offset in the minute). The simulation gives the
backlog and the worst wait a message sees, so the effect of alignment is a number.

Usage::

    .venv/bin/python benchmarks/scaling.py [--devices 1000000] [--every-s 60]
        [--attrs 3] [--keep-days 30] [--nodes 8] [--out benchmarks/results/scaling.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
HEADROOM = 0.6  # plan each core to 60 % busy: bursts, retries, queries and GC need the rest


def row_bytes(engine: str, entities: int = 500, updates: int = 40) -> float:
    """Disk per history row, measured: ``entities`` meters, each updated ``updates`` times
    with three numeric attributes through the hub, the database's size before and after
    (SQLite: the file after a checkpoint; PostgreSQL: the history table with its indexes)."""
    import tempfile
    import uuid

    from cityos.config import Settings
    from cityos.hub.client import HubClient
    from cityos.hub.core import Hub

    folder = Path(tempfile.mkdtemp(prefix="cityos-rows-"))
    if engine == "sqlite":
        hub = Hub(Settings(database_url=f"sqlite:///{folder}/rows.db"))
    else:
        from cityos.hub.store.postgres import PostgresStore

        store = PostgresStore(PG_URL, schema=f"cityos_rows_{uuid.uuid4().hex[:8]}")
        hub = Hub(Settings(database_url=PG_URL), store=store)
    client = HubClient(hub)

    def size() -> int:
        if engine == "sqlite":
            hub.store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[attr-defined]
            return (folder / "rows.db").stat().st_size
        with hub.store._pool.connection() as c:  # type: ignore[attr-defined]
            # history is partitioned: the parent holds nothing, its partitions everything
            sql = (
                "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits"
                " WHERE inhparent = %s::regclass"
            )
            row = c.execute(sql, (f"{hub.store.schema}.history",)).fetchone()  # type: ignore[attr-defined]
            return int(row[0])

    def attrs(k: int) -> dict[str, Any]:
        at = f"2026-12-01T{k // 60 % 24:02d}:{k % 60:02d}:00Z"
        return {
            a: {"type": "Property", "value": 1.5 * k, "observedAt": at} for a in ("p", "q", "r")
        }

    client.upsert([{"id": f"urn:ngsi-ld:M:{i}", "type": "M", **attrs(0)} for i in range(entities)])
    before = size()
    for k in range(1, updates + 1):
        client.upsert(
            [{"id": f"urn:ngsi-ld:M:{i}", "type": "M", **attrs(k)} for i in range(entities)],
            replace=False,
        )
    grown = size() - before
    if engine != "sqlite":
        hub.store.drop_schema()  # type: ignore[attr-defined]
    hub.close()
    return grown / (entities * updates * 3)


def measured(engine: str) -> dict[str, float]:
    """The per-core rates of ``engine`` from the recorded results."""
    flow = json.loads((RESULTS / f"flow-{engine}.json").read_text())
    ingest = flow["summary"]["workers_1"]["ingest_qos1"]
    cpu = flow["runs"]["workers_1"]["ingest_qos1"]["cpu"]
    stored = ingest["stored_messages_per_s"] * cpu["wall_s"]
    hub = json.loads((RESULTS / f"hub-{engine}.json").read_text())
    load = json.loads((RESULTS / "load.json").read_text())["engines"].get(engine, {})
    return {
        "ingest_msgs_per_hub_cpu_s": ingest["per_hub_cpu_s"],
        "ingest_msgs_per_s_one_worker": ingest["stored_messages_per_s"],
        "ingest_msgs_per_db_cpu_s": stored / cpu["db_backend_cpu_s"]
        if cpu.get("db_backend_cpu_s")
        else 0.0,
        "patch_per_server_cpu_s": hub["patch"].get("per_server_cpu_s", 0.0),
        "get_per_server_cpu_s": hub["get"].get("per_server_cpu_s", 0.0),
        "load_entities_per_s": load.get("entities_per_s", 0.0),
    }


def sizing(engine: str, devices: int, every_s: float, attrs: int, keep_days: int) -> dict[str, Any]:
    rates = measured(engine)
    rates["history_row_bytes"] = round(row_bytes(engine), 1)
    msgs_per_s = devices / every_s
    hub_cores = msgs_per_s / rates["ingest_msgs_per_hub_cpu_s"]
    db_cores = (
        msgs_per_s / rates["ingest_msgs_per_db_cpu_s"] if rates["ingest_msgs_per_db_cpu_s"] else 0
    )
    rows_per_day = msgs_per_s * attrs * 86_400
    disk_gb = rows_per_day * keep_days * rates["history_row_bytes"] / 1e9
    # SQLite has one writer: more hub processes do not add ingest beyond one worker's rate
    ceiling = rates["ingest_msgs_per_s_one_worker"] if engine == "sqlite" else None
    return {
        "engine": engine,
        "measured": rates,
        "messages_per_s": round(msgs_per_s),
        "single_writer_ceiling_msgs_per_s": round(ceiling) if ceiling else None,
        "fits": ceiling is None or msgs_per_s <= ceiling * HEADROOM,
        "hub_cores_busy": round(hub_cores, 1),
        "hub_cores_planned": math.ceil(hub_cores / HEADROOM),
        "db_cores_busy": round(db_cores, 1),
        "db_cores_planned": math.ceil(db_cores / HEADROOM) if db_cores else None,
        "history_rows_per_day": round(rows_per_day),
        "history_disk_gb": round(disk_gb),
        "initial_load_hours": round(devices / rates["load_entities_per_s"] / 3600, 2)
        if rates["load_entities_per_s"]
        else None,
    }


def simulate(
    devices: int,
    every_s: int,
    nodes: int,
    per_node_per_s: float,
    aligned: bool,
    seconds: int = 3600,
) -> dict[str, Any]:
    """Second-by-second queue of one hour's reports; FIFO, all nodes share one stream."""
    rng = np.random.default_rng(0)
    arrivals = np.zeros(seconds, dtype=np.int64)
    if aligned:  # every device at second 0 of each minute, give or take network delay
        spread = np.clip(rng.normal(0.3, 0.2, size=devices), 0, every_s - 1).astype(int)
    else:  # each device at its own offset in the minute
        spread = rng.integers(0, every_s, size=devices)
    per_second = np.bincount(spread, minlength=every_s)
    for start in range(0, seconds, every_s):
        arrivals[start : start + every_s] += per_second[: min(every_s, seconds - start)]
    capacity = nodes * per_node_per_s
    backlog, worst_wait, backlogs = 0.0, 0.0, []
    for second in range(seconds):
        backlog = max(backlog + arrivals[second] - capacity, 0.0)
        backlogs.append(backlog)
        worst_wait = max(worst_wait, backlog / capacity)  # the last message in waits this
    utilisation = arrivals.sum() / (capacity * seconds)
    return {
        "reporting": "aligned on the minute" if aligned else "jittered in the minute",
        "nodes": nodes,
        "capacity_msgs_per_s": round(capacity),
        "peak_arrivals_per_s": int(arrivals.max()),
        "utilisation": round(float(utilisation), 3),
        "worst_backlog_msgs": round(max(backlogs)),
        "worst_wait_s": round(worst_wait, 1),
        "keeps_up": bool(utilisation < 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", type=int, default=1_000_000)
    ap.add_argument("--every-s", type=int, default=60)
    ap.add_argument("--attrs", type=int, default=3, help="attributes per message")
    ap.add_argument("--keep-days", type=int, default=30, help="raw history kept")
    ap.add_argument("--nodes", type=int, default=0, help="hub processes (0: the planned cores)")
    ap.add_argument("--out", type=Path, default=RESULTS / "scaling.json")
    args = ap.parse_args()
    if args.devices <= 0 or args.every_s <= 0 or args.attrs <= 0 or args.keep_days < 0:
        sys.exit("--devices, --every-s and --attrs must be positive, --keep-days not negative")
    out: dict[str, Any] = {
        "profile": vars(args) | {"out": str(args.out)},
        "headroom": HEADROOM,
        "engines": {},
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    for engine in ("sqlite", "postgresql"):
        size = sizing(engine, args.devices, args.every_s, args.attrs, args.keep_days)
        nodes = args.nodes or size["hub_cores_planned"]
        per_node = size["measured"]["ingest_msgs_per_hub_cpu_s"]
        if engine == "sqlite":  # one writer, whatever the number of processes
            nodes, per_node = 1, size["single_writer_ceiling_msgs_per_s"]
        size["simulation"] = [
            simulate(args.devices, args.every_s, nodes, per_node, aligned)
            for aligned in (False, True)
        ]
        out["engines"][engine] = size
        print(f"{engine}: {size['messages_per_s']:,} msg/s → hub {size['hub_cores_busy']} cores busy "
              f"({size['hub_cores_planned']} planned), database {size['db_cores_busy']} "
              f"({size['db_cores_planned']}); fits: {size['fits']}; {size['history_rows_per_day']:,} "
              f"history rows/day at {size['measured']['history_row_bytes']} B = "
              f"{size['history_disk_gb']:,} GB for {args.keep_days} days", file=sys.stderr)  # fmt: skip
        for sim in size["simulation"]:
            print(f"  {sim['reporting']}: peak {sim['peak_arrivals_per_s']:,}/s on "
                  f"{sim['capacity_msgs_per_s']:,}/s, worst wait {sim['worst_wait_s']} s", file=sys.stderr)  # fmt: skip
    args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
