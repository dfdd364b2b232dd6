"""``cityos load``: how fast a city's initial import goes, and where its time goes.

The bulk set (``cityos.twin.bulk.generate_bulk``: the district's kinds of entity, seeded)
written as JSON Lines, then loaded with ``cityos load``'s own path (read, parse as the API
parses, batch upsert, 1,000 per batch) into a fresh SQLite database and a fresh PostgreSQL
schema. Beside it, in the same run, the limits it is measured against: reading and
``orjson``-parsing the file alone, and NGSI-LD parsing alone (``parse_entity``) — what is
left is the store's share. Entities/s over the whole load, CPU seconds too (the machine may
be shared). Usage::

    .venv/bin/python benchmarks/load.py [--entities 100000] [--engine sqlite|postgresql|both]
        [--out benchmarks/results/load.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from cityos.config import Settings
from cityos.hub.core import Hub
from cityos.hub.load import load_items, read_items
from cityos.hub.model import now_iso
from cityos.hub.representation import parse_entity
from cityos.hub.store.base import StoredContext
from cityos.twin.bulk import generate_bulk
from cityos.twin.context import CONTEXT_URL, DISTRICT_CONTEXT

PG_URL = os.environ.get("CITYOS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _timed(fn: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _hub(engine: str, folder: Path) -> tuple[Hub, Any]:
    if engine == "sqlite":
        hub = Hub(Settings(database_url=f"sqlite:///{folder}/load.db"))
        cleanup = None
    else:
        from cityos.hub.store.postgres import PostgresStore

        store = PostgresStore(PG_URL, schema=f"cityos_bench_{uuid.uuid4().hex[:8]}")
        hub = Hub(Settings(database_url=PG_URL), store=store)
        cleanup = store
    hub.store.put_context(
        StoredContext("district", CONTEXT_URL, DISTRICT_CONTEXT, "hosted", now_iso())
    )
    return hub, cleanup


def run(n: int, engines: list[str]) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="cityos-load-"))
    path = folder / "city.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in generate_bulk(n, 0)))
    size = path.stat().st_size
    docs, read_s, read_cpu = _timed(
        lambda: [orjson.loads(line) for line in path.read_bytes().splitlines()]
    )
    probe = Hub(Settings(database_url=f"sqlite:///{folder}/probe.db"))
    probe.store.put_context(
        StoredContext("district", CONTEXT_URL, DISTRICT_CONTEXT, "hosted", now_iso())
    )
    ctx = probe.contexts.resolve(CONTEXT_URL)
    _, parse_s, parse_cpu = _timed(lambda: [parse_entity(d, ctx) for d in docs])
    probe.close()
    out: dict[str, Any] = {
        "entities": n,
        "file_bytes": size,
        "limits": {
            "read_and_json_parse_eps": round(n / read_s),
            "ngsi_ld_parse_eps": round(n / parse_s),
            "read_cpu_s": round(read_cpu, 2),
            "parse_cpu_s": round(parse_cpu, 2),
        },
        "engines": {},
    }
    for engine in engines:
        hub, cleanup = _hub(engine, folder)
        try:
            report, wall, cpu = _timed(
                lambda h=hub: load_items(h, read_items(path), context=CONTEXT_URL)
            )
        finally:
            if cleanup is not None:
                cleanup.drop_schema()
            hub.close()
        assert report.failed == 0, report.errors[:3]
        store_s = max(wall - read_s - parse_s, 0.0)
        out["engines"][engine] = {
            "seconds": round(wall, 2),
            "cpu_s": round(cpu, 2),
            "entities_per_s": round(n / wall),
            "share_read": round(read_s / wall, 3),
            "share_parse": round(parse_s / wall, 3),
            "share_store": round(store_s / wall, 3),
        }
        print(f"{engine}: {n:,} entities in {wall:.1f} s = {n / wall:,.0f}/s "
              f"(read {read_s / wall:.0%}, parse {parse_s / wall:.0%}, store {store_s / wall:.0%})",
              file=sys.stderr)  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entities", type=int, default=100_000)
    ap.add_argument("--engine", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/load.json"))
    args = ap.parse_args()
    engines = ["sqlite", "postgresql"] if args.engine == "both" else [args.engine]
    result = run(args.entities, engines)
    result.update(
        command=" ".join(["benchmarks/load.py", *sys.argv[1:]]),
        machine=f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
