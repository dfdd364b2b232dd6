"""Where a geo+q query's time goes: the same query with its filters taken away one by one.

The hub benchmark's geo+q query (``benchmarks/hub.py``: 2 km box, ``type=TrafficFlowObserved``,
``q=intensity>500``, limit 20) through ``store.query`` with no HTTP, over the bulk set loaded
in-process, next to:

* the same box and type without ``q`` (what testing ``q`` on each candidate costs);
* the box alone (the spatial index and fetching the rows);
* how many rows in the box the query must look at before it has its 20: the box's rows in
  the spatial index order up to the 20th match, counted in Python over the same candidates.

Each variant runs over the same random boxes. Usage::

    .venv/bin/python benchmarks/geo_split.py [--engine sqlite|postgresql] [--entities 1000000]
        [--queries 200] [--out benchmarks/results/geo-split-<engine>.json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hub as hubbench  # noqa: E402  (benchmarks/hub.py: the data set, the boxes, the loader)

ROOT = Path(__file__).resolve().parent.parent


def measure(url: str, queries: int, seed: int) -> dict[str, Any]:
    from cityos.config import Settings
    from cityos.hub.core import Hub
    from cityos.hub.model import DEFAULT_GEOPROPERTY
    from cityos.hub.query.evaluate import match_q, match_types
    from cityos.hub.query.geo import parse_geo_query
    from cityos.hub.query.model import EntityQuery
    from cityos.hub.query.q import expand_q, expand_types, parse_q, parse_type_expr
    from cityos.twin.context import DISTRICT_CONTEXT

    hub = Hub(Settings(database_url=url))
    store = hub.store
    if hasattr(store, "_pool"):  # PostgreSQL: statistics after the load, as the hub bench does
        with store._pool.connection() as conn:
            conn.execute("ANALYZE")
    ctx = hub.contexts.resolve(DISTRICT_CONTEXT["@context"])
    types = expand_types(parse_type_expr(hubbench.GEO_PARAMS["type"]), ctx.expand_term)
    q = expand_q(parse_q(hubbench.GEO_PARAMS["q"]), ctx.expand_term)
    rng = random.Random(seed)
    boxes = [hubbench.random_box(rng) for _ in range(queries)]

    def query(box: str, *, with_types: bool, with_q: bool, limit: int = 20) -> EntityQuery:
        eq = EntityQuery()
        eq.types = types if with_types else None
        eq.q = q if with_q else None
        eq.geo = parse_geo_query("within", "Polygon", box, DEFAULT_GEOPROPERTY)
        eq.limit = limit
        return eq

    variants = {
        "box_type_q": {"with_types": True, "with_q": True},
        "box_type": {"with_types": True, "with_q": False},
        "box": {"with_types": False, "with_q": False},
    }
    out: dict[str, Any] = {}
    for name, kw in variants.items():
        for box in boxes[:5]:
            store.query("", query(box, **kw))
        times = []
        for box in boxes:
            t = time.perf_counter()
            store.query("", query(box, **kw))
            times.append(time.perf_counter() - t)
        s = sorted(times)
        out[name] = {
            "p50_ms": hubbench._pct(s, 50) * 1e3,
            "p99_ms": hubbench._pct(s, 99) * 1e3,
            "mean_ms": sum(s) / len(s) * 1e3,
        }
    # rows looked at before the 20th match, in the order the box's rows come (a sample)
    looked: list[int] = []
    for box in boxes[: min(50, len(boxes))]:
        rows = store.query("", query(box, with_types=False, with_q=False, limit=5000)).entities
        found = examined = 0
        for ent in rows:
            examined += 1
            if match_types(ent, types) and match_q(ent, q):
                found += 1
                if found == 20:
                    break
        looked.append(examined)
    out["rows_examined_for_20"] = {
        "mean": sum(looked) / len(looked),
        "max": max(looked),
        "note": "rows of the box, in the order the store returns them, up to the 20th match "
        "(5,000 at most)",
    }
    if hasattr(store, "explain"):
        out["explain"] = store.explain("", query(boxes[0], with_types=True, with_q=True))
    hub.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--entities", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    out_path = args.out or ROOT / "benchmarks" / "results" / f"geo-split-{args.engine}.json"
    with hubbench.database(args.engine) as url:
        started = time.time()
        load = hubbench.run_store_load(url, args.entities, 0, 0)  # hub.py's data set (seed 0)
        res = {
            "engine": args.engine,
            "entities": args.entities,
            "load": load,
            "query": "type=TrafficFlowObserved&q=intensity>500&georel=within&<2 km box>&limit=20"
            " through store.query (no HTTP)",
            "variants": measure(url, args.queries, args.seed),
            "machine": hubbench.machine_info(),
            "wall_s": time.time() - started,
        }
    out_path.write_text(json.dumps(res, indent=2) + "\n")
    v = res["variants"]
    for name in ("box_type_q", "box_type", "box"):
        print(f"{name}: p50 {v[name]['p50_ms']:.1f} ms, p99 {v[name]['p99_ms']:.1f} ms")
    print(f"rows examined for 20 matches: mean {v['rows_examined_for_20']['mean']:.0f}")
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
