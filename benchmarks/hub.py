"""Hub benchmark: what one uvicorn worker on one core serves, and where the time goes.

For each engine (SQLite, PostgreSQL+PostGIS) one run starts ``cityos serve`` pinned to
core 0 and drives it from core 1 (wrk, or an httpx client for batches and queries):

1. empty endpoint req/s (``GET /version``; not ``/health``, which asks every service) —
   the HTTP stack's ceiling, the same-run limit every API figure is divided by;
2. batch upsert entities/s (1,000 per request) of the first 10,000 entities of the geo
   data set (``cityos.twin.bulk.generate_bulk``: N entities over greater Phnom Penh);
3. single-attribute ``PATCH /entities/{id}/attrs/speed`` and ``GET /entities/{id}`` req/s
   over 1,000 vehicles, with those 10,000 entities in the hub;
4. the rest of the data set loaded in-process (``EntityService.batch_upsert``), then PATCH
   and GET again with all N in the hub — the two must match (cost flat in the city's size);
5. geo+q query latency (2 km box, ``type=TrafficFlowObserved``, ``q=intensity>500``);
6. the same single-attribute update with no HTTP: ``EntityService.partial_update_attr``
   on the store, and a plain SQL ``UPDATE`` of one row as the floor;
7. ``serve --workers 2`` and ``4`` (not pinned: the workers share both cores with wrk):
   empty, PATCH and GET req/s again, each with the CPU the workers (and PostgreSQL's
   backends) used, so what a core adds is visible even on two.

It prints a table with the targets, and writes ``benchmarks/results/hub-<engine>.json``.
``--quick`` runs 50,000 entities and 5 s wrk runs. Usage::

    .venv/bin/python benchmarks/hub.py [--engine sqlite|postgresql|both] [--quick]
        [--entities N] [--duration S] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
WRK_DIR = ROOT / "benchmarks" / "wrk"
RESULTS = ROOT / "benchmarks" / "results"
VENV_BIN = Path(sys.executable).parent
PG_ADMIN_URL = os.environ.get("CITYOS_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_DB = "cityos_bench"

SERVER_CORE, CLIENT_CORE = 0, 1
N_VEHICLES = 1000
VEHICLE_PREFIX = "urn:ngsi-ld:Vehicle:bench-"
# Vehicles are written with no @context, so their terms expand by the core context's @vocab.
SPEED_IRI = "https://uri.etsi.org/ngsi-ld/default-context/speed"
BATCH = 1000
SMALL_CITY = 10_000  # entities in the hub for the first PATCH/GET runs
TARGETS = {  # issue 18's goals, each against a limit measured in the same run
    "patch_vs_empty": 0.40,  # PATCH req/s >= 40 % of the empty endpoint
    "get_vs_empty": 0.66,  # GET by id req/s >= 66 % of the empty endpoint
    "batch_upsert_eps_sqlite": 30_000,  # entities/s over HTTP
    "batch_upsert_eps_postgresql": 20_000,
    "geo_p99_ms": 15.0,
    "flat": 0.90,  # PATCH and GET req/s at N entities >= 90 % of the rate at 10,000
}

console = Console()


# ------------------------------------------------------------------------------ machine


def machine_info() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) // 1024
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_mib": mem,
        "kernel": platform.release(),
        "pinning": {
            "server": f"taskset -c {SERVER_CORE} (one uvicorn worker on one core)",
            "load": f"taskset -c {CLIENT_CORE} (wrk, httpx client, this harness)",
            "postgresql": "server processes not pinned (they share both cores)",
        },
    }


def versions() -> dict[str, Any]:
    from importlib.metadata import version

    out: dict[str, Any] = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    for pkg in ("cityos", "starlette", "uvicorn", "orjson", "psycopg", "httpx"):
        try:
            out[pkg] = version(pkg)
        except Exception:
            out[pkg] = None
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    out["wrk"] = (
        (wrk.stdout + wrk.stderr).strip().splitlines()[0] if wrk.stdout + wrk.stderr else None
    )
    return out


def proc_cpu_s(pids: list[int]) -> float:
    """User+system CPU seconds used so far by these processes (those still alive)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / tick


def descendants(pid: int) -> list[int]:
    """``pid`` and every process under it (uvicorn's workers), from /proc."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            with suppress(OSError):
                todo += [int(c) for c in task.read_text().split()]
    return out


def machine_busy() -> tuple[float, float]:
    """(busy, steal) jiffies of all CPUs so far, from /proc/stat."""
    f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = f[3] + f[4]
    return sum(f) - idle, f[7] if len(f) > 7 else 0


class CpuMeter:
    """CPU the hub (and its PostgreSQL backends) spent in a phase, and how busy the machine was.

    The machine is shared, so wall-clock rates alone mislead: requests per CPU-second of
    the server process tell what one dedicated core would serve.
    """

    def __init__(self, server_pid: int, db_url: str) -> None:
        self.server_pid = server_pid
        self.db_url = db_url

    def _db_pids(self) -> list[int]:
        if not self.db_url.startswith("postgres"):
            return []
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (PG_DB,),
            ).fetchall()
        return [r[0] for r in rows]

    @contextmanager
    def measure(self, into: dict[str, Any]) -> Iterator[None]:
        db_before = {p: proc_cpu_s([p]) for p in self._db_pids()}
        hub_pids = descendants(self.server_pid)  # the workers, with several
        srv0, (busy0, steal0), load0, t0 = (
            proc_cpu_s(hub_pids),
            machine_busy(),
            os.getloadavg()[0],
            time.perf_counter(),
        )
        yield
        wall = time.perf_counter() - t0
        busy1, steal1 = machine_busy()
        db_after = {p: proc_cpu_s([p]) for p in self._db_pids()}
        into["server_cpu_s"] = proc_cpu_s(hub_pids) - srv0
        into["server_cpu_share"] = into["server_cpu_s"] / wall
        if self.db_url.startswith("postgres"):
            into["db_backend_cpu_s"] = sum(db_after[p] - db_before.get(p, 0.0) for p in db_after)
        tick, ncpu = os.sysconf("SC_CLK_TCK"), os.cpu_count() or 1
        into["machine_busy_share"] = (busy1 - busy0) / tick / wall / ncpu
        into["machine_steal_share"] = (steal1 - steal0) / tick / wall / ncpu
        into["load_avg_1m"] = [load0, os.getloadavg()[0]]


def _pin(core: int) -> None:
    with suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {core})


# ------------------------------------------------------------------------------ databases


def _pg_url() -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + PG_DB


@contextmanager
def database(engine: str) -> Iterator[str]:
    """A fresh, empty database for one run; removed afterwards whatever happens."""
    if engine == "sqlite":
        tmp = tempfile.mkdtemp(prefix="cityos-bench-")
        try:
            yield f"sqlite:///{tmp}/hub.db"
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    import psycopg

    def recreate(create: bool) -> None:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
            if create:
                conn.execute(f"CREATE DATABASE {PG_DB}")

    recreate(True)
    try:
        yield _pg_url()
    finally:
        recreate(False)


# ------------------------------------------------------------------------------ server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def hub_server(url: str, port: int, workers: int = 1) -> Iterator[subprocess.Popen[bytes]]:
    """``cityos serve`` on core 0 (several workers: on every core), in its own process group
    so it is always killed."""
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in the finally below)
    cores = str(SERVER_CORE) if workers == 1 else f"0-{(os.cpu_count() or 2) - 1}"
    cmd = [
        "taskset",
        "-c",
        cores,
        str(VENV_BIN / "cityos"),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--database-url",
        url,
        "--workers",
        str(workers),
    ]
    # the per-client request limit (docs/security.md) would throttle wrk
    env = {**os.environ, "CITYOS_RATE_PER_S": "0"}
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
    )
    proc.cityos_log = log  # type: ignore[attr-defined]
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(
                    f"cityos serve exited ({proc.returncode}):\n{log.read().decode()}"
                )
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("cityos serve did not answer /health within 60 s")
            time.sleep(0.2)
        try:
            yield proc
        except Exception as exc:  # show why the hub failed, not just that it did
            log.seek(0)
            tail = log.read().decode(errors="replace")[-4000:]
            raise RuntimeError(f"{exc}\n--- hub log (tail) ---\n{tail}") from exc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def server_log_tail(proc: subprocess.Popen[bytes], chars: int = 4000) -> str:
    log = proc.cityos_log  # type: ignore[attr-defined]
    log.seek(0)
    return log.read().decode(errors="replace")[-chars:]


# ------------------------------------------------------------------------------ wrk


def run_wrk(
    base: str, script: str, duration: int, connections: int, args: list[str] | None = None
) -> dict[str, Any]:
    """One wrk run on core 1; the numbers come from the script's ``done()`` JSON line."""
    cmd = [
        "taskset",
        "-c",
        str(CLIENT_CORE),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "-s",
        script,
        base,
    ]
    if args:
        cmd += ["--", *args]
    out = subprocess.run(cmd, cwd=WRK_DIR, capture_output=True, text=True, timeout=duration + 60)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result:\n{out.stdout}\n{out.stderr}")
    res = json.loads(line[len("WRKJSON ") :])
    secs = res["duration_us"] / 1e6
    errs = res["errors"]
    res["rps"] = res["requests"] / secs
    res["non_2xx"] = errs["status"]
    res["socket_errors"] = errs["connect"] + errs["read"] + errs["write"] + errs["timeout"]
    res["ok_rps"] = (res["requests"] - errs["status"]) / secs
    res["connections"] = connections
    res["duration_s"] = secs
    return res


# ------------------------------------------------------------------------------ entities


def vehicle(i: int) -> dict[str, Any]:
    """A car with six attributes, written with no @context (core context only)."""
    rng = random.Random(i)
    return {
        "id": f"{VEHICLE_PREFIX}{i}",
        "type": "Vehicle",
        "speed": {
            "type": "Property",
            "value": rng.randint(0, 60),
            "unitCode": "KMH",
            "observedAt": "2026-11-30T01:00:00.000000Z",
        },
        "heading": {"type": "Property", "value": rng.randint(0, 359)},
        "vehicleType": {"type": "Property", "value": rng.choice(["car", "motorbike", "bus"])},
        "fuelLevel": {"type": "Property", "value": round(rng.random(), 3)},
        "refRoadSegment": {"type": "Relationship", "object": "urn:ngsi-ld:RoadSegment:bulk-0"},
        "location": {
            "type": "GeoProperty",
            "value": {
                "type": "Point",
                "coordinates": [
                    round(rng.uniform(104.90, 104.94), 6),
                    round(rng.uniform(11.56, 11.59), 6),
                ],
            },
        },
    }


def host_district_context(client: httpx.Client) -> str:
    """Host the sample district's @context on the hub; the Link header clients then send."""
    from cityos.twin.context import DISTRICT_CONTEXT

    r = client.post("/ngsi-ld/v1/jsonldContexts", json=DISTRICT_CONTEXT)
    if r.status_code != 201:
        raise RuntimeError(f"hosting the district @context failed: {r.status_code} {r.text}")
    url = str(client.base_url).rstrip("/") + r.headers["location"]
    return f'<{url}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'


def _batches(n: int, seed: int) -> Iterator[bytes]:
    from cityos.twin.bulk import generate_bulk

    batch: list[dict[str, Any]] = []
    for ent in generate_bulk(n, seed):
        batch.append(ent)
        if len(batch) == BATCH:
            yield orjson.dumps(batch)
            batch = []
    if batch:
        yield orjson.dumps(batch)


def load_bulk(base: str, link: str, n: int, seed: int, senders: int = 2) -> dict[str, Any]:
    """Batch-upsert ``n`` bulk entities over HTTP, 1,000 per request; entities/s over the whole load.

    One thread generates and serialises batches ahead into a small queue and ``senders``
    keep-alive connections post them, so the server (one core) never waits on the client.
    """
    bodies: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
    lock = threading.Lock()
    stats = {"requests": 0, "entities": 0, "errors": 0, "statuses": {}, "latencies": []}
    failures: list[str] = []
    headers = {"Content-Type": "application/json", "Link": link}
    n_batches = (n + BATCH - 1) // BATCH

    def produce() -> None:
        for body in _batches(n, seed):
            bodies.put(body)
        for _ in range(senders):
            bodies.put(None)

    def send(progress: Progress, task: Any) -> None:
        with httpx.Client(base_url=base, timeout=300) as client:
            while (body := bodies.get()) is not None:
                t = time.perf_counter()
                r = client.post(
                    "/ngsi-ld/v1/entityOperations/upsert", content=body, headers=headers
                )
                dt = time.perf_counter() - t
                count = body.count(b'"id":"urn:')
                bad = 0
                if r.status_code == 207:
                    bad = len(r.json().get("errors", []))
                elif r.status_code >= 300:
                    bad = count
                with lock:
                    stats["requests"] += 1
                    stats["entities"] += count - bad
                    stats["errors"] += bad
                    stats["statuses"][str(r.status_code)] = (
                        stats["statuses"].get(str(r.status_code), 0) + 1
                    )
                    stats["latencies"].append(dt)
                    if bad and len(failures) < 3:
                        failures.append(f"{r.status_code}: {r.text[:300]}")
                progress.advance(task, count)

    with Progress(
        TextColumn("[bold]batch upsert"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("load", total=n, rate="")
        start = time.perf_counter()
        threads = [threading.Thread(target=produce, daemon=True)]
        threads += [
            threading.Thread(target=send, args=(progress, task), daemon=True)
            for _ in range(senders)
        ]
        for th in threads:
            th.start()
        while any(th.is_alive() for th in threads[1:]):
            done = progress.tasks[0].completed
            progress.update(
                task, rate=f"{done / max(time.perf_counter() - start, 1e-9):,.0f} entities/s"
            )
            time.sleep(0.5)
        elapsed = time.perf_counter() - start
    lat = sorted(stats.pop("latencies"))
    return {
        "entities": n,
        "batches": n_batches,
        "batch_size": BATCH,
        "connections": senders,
        "seconds": elapsed,
        "entities_per_s": stats["entities"] / elapsed,
        "batch_latency_ms": {"p50": _pct(lat, 50) * 1e3, "p99": _pct(lat, 99) * 1e3},
        "errors": stats["errors"],
        "statuses": stats["statuses"],
        "first_failures": failures,
        "path": "HTTP POST /ngsi-ld/v1/entityOperations/upsert (application/json + Link)",
    }


def load_via_store(url: str, n: int, start: int, seed: int) -> dict[str, Any]:
    """Entities ``start``..``n`` of the bulk set through ``EntityService.batch_upsert`` with no HTTP.

    For data sets too big to load over HTTP in the time we have: the same parse (the
    district @context) and the same service call the upsert endpoint makes, minus HTTP.
    Runs in a child process on core 0 (the hub's core; the hub is idle meanwhile).
    """
    from itertools import islice

    from cityos.config import Settings
    from cityos.hub.core import Hub
    from cityos.hub.representation.parse import parse_entity
    from cityos.twin.bulk import generate_bulk
    from cityos.twin.context import DISTRICT_CONTEXT

    _pin(SERVER_CORE)
    hub = Hub(Settings(database_url=url))
    err = Console(stderr=True)
    try:
        ctx = hub.contexts.resolve(DISTRICT_CONTEXT["@context"])
        source = islice(generate_bulk(n, seed), start, None)
        done = errors = 0
        t0, c0 = time.perf_counter(), time.process_time()
        with Progress(
            TextColumn("[bold]store load"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=err,
        ) as progress:
            task = progress.add_task("load", total=n - start, rate="")
            while batch := list(islice(source, BATCH)):
                result = hub.entities.batch_upsert("", [parse_entity(e, ctx) for e in batch])
                done += len(result.success)  # created ids are in success too
                errors += len(result.errors)
                progress.update(
                    task,
                    advance=len(batch),
                    rate=f"{done / (time.perf_counter() - t0):,.0f} entities/s",
                )
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        hub.close()
    return {
        "entities": n - start,
        "first_index": start,
        "seconds": wall,
        "cpu_s": cpu,
        "entities_per_s": done / wall,
        "entities_per_cpu_s": done / cpu if cpu else None,
        "errors": errors,
        "path": "in-process: generate_bulk -> parse_entity (district @context) -> "
        "EntityService.batch_upsert, 1,000 per call, no HTTP",
    }


def run_store_load(url: str, n: int, start: int, seed: int) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--_load",
        url,
        "--entities",
        str(n),
        "--_load-start",
        str(start),
        "--seed",
        str(seed),
    ]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if out.returncode != 0:
        raise RuntimeError("the store load failed (its error is above)")
    return json.loads(out.stdout.strip().splitlines()[-1])


def analyze_pg(url: str) -> float:
    """Refresh planner statistics after a bulk load, as an operator would (autovacuum lags).

    Without it the planner still believes the table is small and picks plans that are
    orders of magnitude slower for geo+q (``--no-analyze`` shows that case).
    """
    import psycopg

    t = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")
    return time.perf_counter() - t


def _pct(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


def create_vehicles(client: httpx.Client) -> None:
    body = [vehicle(i) for i in range(N_VEHICLES)]
    r = client.post("/ngsi-ld/v1/entityOperations/upsert", json=body)
    if r.status_code not in (201, 204):
        raise RuntimeError(f"creating the vehicles failed: {r.status_code} {r.text[:500]}")
    # One request of each kind by hand, so a wrong status shows up before wrk hides it in a count.
    r = client.patch(f"/ngsi-ld/v1/entities/{VEHICLE_PREFIX}0/attrs/speed", json={"value": 42})
    if r.status_code != 204:
        raise RuntimeError(
            f"PATCH .../attrs/speed answered {r.status_code}, not 204: {r.text[:300]}"
        )
    r = client.get(f"/ngsi-ld/v1/entities/{VEHICLE_PREFIX}0")
    if r.status_code != 200 or r.json().get("speed", {}).get("value") != 42:
        raise RuntimeError(f"GET after PATCH is wrong: {r.status_code} {r.text[:300]}")


# ------------------------------------------------------------------------------ geo+q


GEO_BUDGET_S = 180  # at most this long on the HTTP geo+q queries (half that without HTTP)
GEO_PARAMS = {
    "type": "TrafficFlowObserved",
    "georel": "within",
    "geometry": "Polygon",
    "q": "intensity>500",
    "limit": "20",
}


def random_box(rng: random.Random, km: float = 2.0) -> str:
    """``coordinates`` of a ``km`` square Polygon at a random place inside the bulk area."""
    from cityos.twin.bulk import BULK_BBOX, bulk_box

    margin = 0.0095  # ~1 km: keep each 2 km box inside the area
    lon_lo, lat_lo, lon_hi, lat_hi = BULK_BBOX
    c = (
        rng.uniform(lon_lo + margin, lon_hi - margin),
        rng.uniform(lat_lo + margin, lat_hi - margin),
    )
    x0, y0, x1, y1 = (round(v, 6) for v in bulk_box(km, c))
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    return json.dumps([ring], separators=(",", ":"))


def direct_geo(url: str, store: Any, n: int, seed: int) -> dict[str, Any]:
    """The geo+q query through ``store.query`` with no HTTP (same expansion as the API's)."""
    from cityos.config import Settings
    from cityos.hub.core import Hub
    from cityos.hub.model import DEFAULT_GEOPROPERTY
    from cityos.hub.query.geo import parse_geo_query
    from cityos.hub.query.model import EntityQuery
    from cityos.hub.query.q import expand_q, expand_types, parse_q, parse_type_expr
    from cityos.twin.context import DISTRICT_CONTEXT

    hub = Hub(Settings(database_url=url), store=store)
    ctx = hub.contexts.resolve(DISTRICT_CONTEXT["@context"])
    rng = random.Random(seed)

    def query() -> EntityQuery:
        q = EntityQuery()
        q.types = expand_types(parse_type_expr(GEO_PARAMS["type"]), ctx.expand_term)
        q.q = expand_q(parse_q(GEO_PARAMS["q"]), ctx.expand_term)
        q.geo = parse_geo_query("within", "Polygon", random_box(rng), DEFAULT_GEOPROPERTY)
        q.limit = 20
        return q

    deadline = time.monotonic() + GEO_BUDGET_S / 2
    for _ in range(5):
        store.query("", query())
    times, found = [], []
    for _ in range(n):
        if time.monotonic() > deadline:  # a slow plan must not stall the whole run
            break
        q = query()
        t = time.perf_counter()
        found.append(len(store.query("", q).entities))
        times.append(time.perf_counter() - t)
    s = sorted(times)
    n = len(times)
    out: dict[str, Any] = {
        "queries": n,
        "p50_ms": _pct(s, 50) * 1e3,
        "p99_ms": _pct(s, 99) * 1e3,
        "share_nonempty": sum(1 for f in found if f) / max(1, n),
    }
    if hasattr(store, "explain"):
        out["explain"] = store.explain("", query())
    return out


def geo_queries(base: str, link: str, n_queries: int, warmup: int, seed: int) -> dict[str, Any]:
    """Sequential geo+q queries over random 2 km boxes inside the bulk area, from one client."""
    rng = random.Random(seed)

    def params() -> dict[str, str]:
        return {**GEO_PARAMS, "coordinates": random_box(rng)}

    times: list[float] = []
    returned: list[int] = []
    errors: list[str] = []
    with httpx.Client(base_url=base, headers={"Link": link}, timeout=30) as client:
        deadline = time.monotonic() + GEO_BUDGET_S
        for i in range(warmup + n_queries):
            if time.monotonic() > deadline:  # a slow plan must not stall the whole run
                errors.append(f"time budget of {GEO_BUDGET_S} s spent after {i} queries")
                break
            p = params()
            t = time.perf_counter()
            r = client.get("/ngsi-ld/v1/entities", params=p)
            dt = time.perf_counter() - t
            if r.status_code != 200:
                errors.append(f"{r.status_code}: {r.text[:200]}")
                if len(errors) > 5:
                    raise RuntimeError("geo+q queries fail: " + " | ".join(errors))
                continue
            if i < warmup:
                continue
            found = r.json()
            bad = [
                e["id"]
                for e in found
                if not e["id"].startswith("urn:ngsi-ld:TrafficFlowObserved:")
                or e.get("intensity", {}).get("value", 0) <= 500
            ]
            if bad:
                raise RuntimeError(f"geo+q returned entities that do not match: {bad[:3]}")
            times.append(dt)
            returned.append(len(found))
    s = sorted(times)
    return {
        "queries": len(times),
        "warmup": warmup,
        "box_km": 2.0,
        "p50_ms": _pct(s, 50) * 1e3,
        "p90_ms": _pct(s, 90) * 1e3,
        "p99_ms": _pct(s, 99) * 1e3,
        "max_ms": s[-1] * 1e3 if s else None,
        "mean_ms": statistics.fmean(s) * 1e3 if s else None,
        "share_nonempty": sum(1 for c in returned if c > 0) / max(1, len(returned)),
        "mean_returned": statistics.fmean(returned) if returned else 0,
        "errors": errors,
        "query": "type=TrafficFlowObserved&georel=within&geometry=Polygon&coordinates=<2 km box>"
        "&q=intensity>500&limit=20 (Link: district @context)",
    }


# ------------------------------------------------------------------------------ no HTTP


def _timed(meter: CpuMeter, seconds: float, step: Any) -> dict[str, Any]:
    """Call ``step(i)`` for ``seconds``; rate per wall second and per CPU-second (process + DB)."""
    cpu: dict[str, Any] = {}
    ops = 0
    with meter.measure(cpu):
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for _ in range(100):
                step(ops)
                ops += 1
        wall = time.perf_counter() - t0
    spent = cpu["server_cpu_s"] + cpu.get("db_backend_cpu_s", 0.0)
    return {
        "ops": ops,
        "per_s": ops / wall,
        "per_cpu_s": ops / spent if spent else None,
        "cpu": cpu,
    }


def direct_limits(url: str, seconds: float) -> dict[str, Any]:
    """Single-attribute updates with no HTTP, on core 0 (the server's core), server stopped."""
    from cityos.hub.entities import EntityService
    from cityos.hub.store import open_store

    _pin(SERVER_CORE)
    meter = CpuMeter(os.getpid(), url)
    out: dict[str, Any] = {"core": SERVER_CORE}
    ids = [f"{VEHICLE_PREFIX}{i}" for i in range(N_VEHICLES)]
    store = open_store(url)
    try:
        svc = EntityService(store)
        out["service_partial_update"] = _timed(
            meter,
            seconds,
            lambda i: svc.partial_update_attr(
                "", ids[i % N_VEHICLES], SPEED_IRI, {"value": i % 120}
            ),
        )
        out["store_get_entity"] = _timed(
            meter, seconds, lambda i: store.get_entity("", ids[i % N_VEHICLES])
        )
        out["store_geo_q"] = direct_geo(url, store, 100, seed=7)
        # each row gets its own document back: one document written into every row would
        # leave the vehicles claiming one id, and every later PATCH would lock that one row
        bodies = [orjson.dumps(store.get_entity("", eid)).decode() for eid in ids]
    finally:
        store.close()
    body = bodies[0]
    sql = "UPDATE entities SET doc = {p}, modified_at = {p} WHERE tenant = {p} AND id = {p}"
    stamp = "2026-11-30T01:00:00.000000Z"
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.split("sqlite:///", 1)[1], isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        stmt = sql.format(p="?")
        out["sql_update"] = _timed(
            meter,
            seconds,
            lambda i: conn.execute(stmt, (bodies[i % N_VEHICLES], stamp, "", ids[i % N_VEHICLES])),
        )
        conn.close()
        out["sql_update_note"] = (
            "sqlite3, autocommit, WAL, synchronous=NORMAL (the store's settings)"
        )
    else:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            stmt = sql.format(p="%s")
            out["sql_update"] = _timed(
                meter,
                seconds,
                lambda i: conn.execute(
                    stmt, (bodies[i % N_VEHICLES], stamp, "", ids[i % N_VEHICLES])
                ),
            )
        out["sql_update_note"] = "psycopg 3, autocommit, one round trip per UPDATE"
    out["sql_update_statement"] = (
        sql.format(p="?") + f" (each row's whole stored document, {len(body)} bytes)"
    )
    for key in ("service_partial_update", "store_get_entity", "sql_update"):
        out[f"{key}_per_s"] = out[key]["per_s"]
        out[f"{key}_per_cpu_s"] = out[key]["per_cpu_s"]
    return out


def run_direct(url: str, seconds: float) -> dict[str, Any]:
    """``direct_limits`` in a child process, so its core and memory are its own."""
    cmd = [sys.executable, __file__, "--_direct", url, "--_direct-seconds", str(seconds)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 4 + 120)
    if out.returncode != 0:
        raise RuntimeError(f"direct store run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------ profile


@contextmanager
def profiled(
    args: argparse.Namespace, engine: str, phase: str, pid: int, res: dict[str, Any]
) -> Iterator[None]:
    """py-spy the hub for (at most) the first ``--duration`` seconds of a phase, if ``--profile``."""
    if not args.profile:
        yield
        return
    path = RESULTS / f"hub-{engine}{_tag(args)}-{phase}.pyspy.txt"
    prof = start_profile(pid, max(1, args.duration - 1), path)
    try:
        yield
    finally:
        if prof is not None:
            _, err = prof.communicate(timeout=120)
            key = f"{phase}_profile"
            if prof.returncode == 0 and path.exists():
                res[key] = summarise_profile(path)
                res[key]["raw"] = str(path.relative_to(ROOT))
            else:
                res[key] = {"error": err.decode()[-500:]}


def start_profile(pid: int, duration: int, out: Path) -> subprocess.Popen[bytes] | None:
    """py-spy (if installed) records the server while wrk loads it; collapsed stacks to ``out``."""
    spy = shutil.which("py-spy") or (
        str(VENV_BIN / "py-spy") if (VENV_BIN / "py-spy").exists() else None
    )
    if spy is None:
        console.print("[yellow]py-spy not installed: no profile (pip install py-spy)[/yellow]")
        return None
    cmd = [
        "taskset",
        "-c",
        str(CLIENT_CORE),
        spy,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(duration),
        "--rate",
        "250",
        "--format",
        "raw",
        "--output",
        str(out),
        "--nonblocking",
    ]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def summarise_profile(path: Path, top: int = 60) -> dict[str, Any]:
    """Self and inclusive share per function (line numbers dropped) from py-spy's collapsed stacks."""
    self_t: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [
            re.sub(
                r":\d+\)$", ")", re.sub(r" \(.*?/(site-packages|src|lib/python3\.\d+)/", " (", f)
            )
            for f in stack.split(";")
        ]
        self_t[frames[-1]] = self_t.get(frames[-1], 0) + n
        for f in set(frames):
            incl[f] = incl.get(f, 0) + n

    def pct(d: dict[str, int]) -> list[tuple[str, float]]:
        ranked = sorted(d.items(), key=lambda kv: -kv[1])[:top]
        return [(k, round(100 * v / total, 1)) for k, v in ranked]

    return {"samples": total, "self_pct": pct(self_t), "inclusive_pct": pct(incl)}


def calibrate() -> dict[str, Any]:
    """A fixed pure-Python loop on each core: how fast this (shared, virtual) CPU is right now."""
    code = "import time\nc=time.process_time()\nx=0\nfor i in range(3_000_000): x+=i\nprint(time.process_time()-c)"
    out = {}
    for core in (SERVER_CORE, CLIENT_CORE):
        r = subprocess.run(
            ["taskset", "-c", str(core), sys.executable, "-c", code], capture_output=True, text=True
        )
        out[f"core{core}_ns_per_loop_iteration"] = round(float(r.stdout) / 3e6 * 1e9, 1)
    out["note"] = "CPU time of `for i in range(3e6): x += i`; ~30-50 ns on an unloaded modern core"
    return out


# ------------------------------------------------------------------------------ one engine


def _cpu_rate(res: dict[str, Any], done: float) -> None:
    """Add what one dedicated core would do: work per CPU-second of the hub process (+ its DB)."""
    cpu = res["cpu"]
    res["per_server_cpu_s"] = done / cpu["server_cpu_s"] if cpu["server_cpu_s"] > 0 else None
    if "db_backend_cpu_s" in cpu:
        both = cpu["server_cpu_s"] + cpu["db_backend_cpu_s"]
        res["per_server_and_db_cpu_s"] = done / both if both > 0 else None


def bench_engine(engine: str, args: argparse.Namespace) -> dict[str, Any]:
    console.rule(f"[bold]{engine}")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    res: dict[str, Any] = {"engine": engine}
    with database(engine) as url:
        res["database_url"] = url
        with hub_server(url, port) as server, httpx.Client(base_url=base, timeout=60) as client:
            console.print(f"server pid {server.pid} on core {SERVER_CORE}, {base}")
            meter = CpuMeter(server.pid, url)
            wrk_args = [str(N_VEHICLES), VEHICLE_PREFIX]

            def wrk_phase(name: str, script: str, extra: list[str] | None = None) -> dict[str, Any]:
                cpu: dict[str, Any] = {}
                with meter.measure(cpu):
                    out = run_wrk(base, script, args.duration, args.connections, extra)
                out["cpu"] = cpu
                _cpu_rate(out, out["requests"] - out["non_2xx"])
                console.print(
                    f"{name}: {out['ok_rps']:,.0f} req/s wall, {out['per_server_cpu_s']:,.0f} per server "
                    f"CPU-s (server had {cpu['server_cpu_share']:.0%} of a core; machine "
                    f"{cpu['machine_busy_share']:.0%} busy); non-2xx {out['non_2xx']}"
                )
                return out

            res["empty"] = wrk_phase("empty endpoint", "empty.lua")

            link = host_district_context(client)
            cpu: dict[str, Any] = {}
            with profiled(args, engine, "batch", server.pid, res), meter.measure(cpu):
                res["batch_upsert"] = load_bulk(base, link, args.http_entities, args.seed)
            bu = res["batch_upsert"]
            bu["cpu"] = cpu
            _cpu_rate(bu, bu["entities"] - bu["errors"])
            console.print(
                f"batch upsert: {bu['entities_per_s']:,.0f} entities/s wall, "
                f"{bu['per_server_cpu_s']:,.0f} per server CPU-s "
                f"({bu['entities']:,} in {bu['seconds']:.1f} s, {bu['errors']} errors)"
            )
            create_vehicles(client)
            if args.entities > args.http_entities:  # the same requests, the city still small
                if engine == "postgresql" and not args.no_analyze:
                    analyze_pg(url)
                res["patch_small"] = wrk_phase(
                    f"PATCH, {args.http_entities:,} entities", "patch.lua", wrk_args
                )
                res["get_small"] = wrk_phase(
                    f"GET, {args.http_entities:,} entities", "get.lua", wrk_args
                )
                res["store_load"] = run_store_load(
                    url, args.entities, args.http_entities, args.seed
                )
                sl = res["store_load"]
                console.print(
                    f"store load (no HTTP): {sl['entities']:,} in {sl['seconds']:.0f} s, "
                    f"{sl['entities_per_s']:,.0f} entities/s wall, {sl['entities_per_cpu_s']:,.0f} per CPU-s"
                )

            if engine == "postgresql" and not args.no_analyze:
                res["analyze_s"] = analyze_pg(url)
                console.print(f"ANALYZE after the load: {res['analyze_s']:.1f} s")
            with profiled(args, engine, "patch", server.pid, res):
                res["patch"] = wrk_phase("PATCH attrs/speed", "patch.lua", wrk_args)
            with profiled(args, engine, "get", server.pid, res):
                res["get"] = wrk_phase("GET entity", "get.lua", wrk_args)

            cpu = {}
            try:
                with profiled(args, engine, "geo", server.pid, res), meter.measure(cpu):
                    res["geo_q"] = geo_queries(base, link, args.queries, args.warmup, args.seed + 1)
            except RuntimeError as exc:  # keep the other numbers: a long load is not thrown away
                log = server_log_tail(server)
                res["geo_q"] = {"error": str(exc)[:2000], "hub_log_tail": log}
                console.print(f"[red]geo+q failed:[/red] {str(exc)[:500]}\n{log[-1500:]}")
            else:
                g = res["geo_q"]
                g["cpu"] = cpu
                ran = max(1, g["queries"] + g["warmup"])
                g["server_cpu_ms_per_query"] = cpu["server_cpu_s"] * 1e3 / ran
                if "db_backend_cpu_s" in cpu:
                    g["db_cpu_ms_per_query"] = cpu["db_backend_cpu_s"] * 1e3 / ran
                console.print(
                    f"geo+q: p50 {g['p50_ms']:.1f} ms, p99 {g['p99_ms']:.1f} ms, "
                    f"{g['server_cpu_ms_per_query']:.1f} ms hub CPU/query, "
                    f"{g.get('db_cpu_ms_per_query', 0):.1f} ms PostgreSQL CPU/query, "
                    f"{g['share_nonempty']:.0%} of boxes non-empty"
                )
        res["direct"] = run_direct(url, args.direct_seconds)
        res["workers"] = {"1": _worker_summary(res, 1)}
        for n in args.workers:
            res["workers"][str(n)] = bench_workers(url, n, args, wrk_args)
    d = res["direct"]
    res["ratios"] = {
        "patch_vs_empty": res["patch"]["ok_rps"] / res["empty"]["ok_rps"],
        "get_vs_empty": res["get"]["ok_rps"] / res["empty"]["ok_rps"],
        "patch_vs_empty_per_cpu": res["patch"]["per_server_cpu_s"]
        / res["empty"]["per_server_cpu_s"],
        "get_vs_empty_per_cpu": res["get"]["per_server_cpu_s"] / res["empty"]["per_server_cpu_s"],
        "http_patch_vs_service_per_cpu": res["patch"]["per_server_cpu_s"]
        / d["service_partial_update_per_cpu_s"],
        "service_vs_sql_update_per_cpu": d["service_partial_update_per_cpu_s"]
        / d["sql_update_per_cpu_s"],
    }
    for kind in ("patch", "get"):  # the same request at N entities against at 10,000
        if f"{kind}_small" in res:
            res["ratios"][f"{kind}_large_vs_small"] = (
                res[kind]["ok_rps"] / res[f"{kind}_small"]["ok_rps"]
            )
            res["ratios"][f"{kind}_large_vs_small_per_cpu"] = (
                res[kind]["per_server_cpu_s"] / res[f"{kind}_small"]["per_server_cpu_s"]
            )
    res["targets"] = targets(engine, res, args.entities, args.http_entities)
    return res


def _worker_summary(res: dict[str, Any], workers: int) -> dict[str, Any]:
    """Req/s of each request kind, and per CPU-second of the hub (+ PostgreSQL backends)."""
    out: dict[str, Any] = {"workers": workers}
    for kind in ("empty", "patch", "get"):
        w = res[kind]
        cpu = w["cpu"]
        used = cpu["server_cpu_s"] + cpu.get("db_backend_cpu_s", 0.0)
        out[kind] = {
            "rps": w["ok_rps"],
            "hub_cpu_s": cpu["server_cpu_s"],
            "db_cpu_s": cpu.get("db_backend_cpu_s"),
            "cores_used": used / w["duration_s"],
            "per_cpu_s": (w["requests"] - w["non_2xx"]) / used if used else None,
            "machine_busy_share": cpu["machine_busy_share"],
        }
    return out


def bench_workers(
    url: str, workers: int, args: argparse.Namespace, wrk_args: list[str]
) -> dict[str, Any]:
    """``serve --workers N`` on the loaded database: empty, PATCH and GET again."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    runs: dict[str, Any] = {}
    with hub_server(url, port, workers) as server:
        meter = CpuMeter(server.pid, url)
        time.sleep(1.0)  # every worker up (uvicorn answers /health from the first)
        for kind, script, extra in (
            ("empty", "empty.lua", None),
            ("patch", "patch.lua", wrk_args),
            ("get", "get.lua", wrk_args),
        ):
            cpu: dict[str, Any] = {}
            with meter.measure(cpu):
                out = run_wrk(base, script, args.duration, args.connections, extra)
            out["cpu"] = cpu
            runs[kind] = out
    summary = _worker_summary(runs, workers)
    console.print(
        f"{workers} workers: "
        + ", ".join(
            f"{k} {v['rps']:,.0f} req/s on {v['cores_used']:.2f} cores"
            for k, v in summary.items()
            if isinstance(v, dict)
        )
    )
    return summary


def targets(engine: str, res: dict[str, Any], large: int, small: int) -> list[dict[str, Any]]:
    """Each target judged twice: on wall-clock rates, and per CPU-second of the hub process."""
    r = res["ratios"]
    geo = res["geo_q"]
    # CPU per query, hub plus PostgreSQL backends: on PostgreSQL most of the work is there.
    geo_cpu_ms = None
    if "server_cpu_ms_per_query" in geo:
        geo_cpu_ms = geo["server_cpu_ms_per_query"] + geo.get("db_cpu_ms_per_query", 0.0)
    bu = res["batch_upsert"]
    rows = [
        (
            "PATCH ≥ 40 % of empty",
            r["patch_vs_empty"],
            r["patch_vs_empty_per_cpu"],
            TARGETS["patch_vs_empty"],
            ">=",
        ),
        (
            "GET by id ≥ 66 % of empty",
            r["get_vs_empty"],
            r["get_vs_empty_per_cpu"],
            TARGETS["get_vs_empty"],
            ">=",
        ),
        (
            f"batch upsert ≥ {TARGETS[f'batch_upsert_eps_{engine}']:,} entities/s",
            bu["entities_per_s"],
            bu["per_server_cpu_s"],
            TARGETS[f"batch_upsert_eps_{engine}"],
            ">=",
        ),
        ("geo+q p99 ≤ 15 ms", geo.get("p99_ms"), geo_cpu_ms, TARGETS["geo_p99_ms"], "<="),
    ]
    for kind in ("patch", "get"):
        if f"{kind}_large_vs_small" in r:
            rows.append(
                (
                    f"{kind.upper()} at {large:,} ≥ 90 % of at {small:,} entities",
                    r[f"{kind}_large_vs_small"],
                    r[f"{kind}_large_vs_small_per_cpu"],
                    TARGETS["flat"],
                    ">=",
                )
            )

    def ok(v: float | None, goal: float, op: str) -> bool | None:
        if v is None:
            return None
        return v >= goal if op == ">=" else v <= goal

    return [
        {
            "target": name,
            "value": value,
            "per_cpu_value": per_cpu,
            "goal": goal,
            "met": ok(value, goal, op),
            "met_per_cpu": ok(per_cpu, goal, op),
        }
        for name, value, per_cpu, goal, op in rows
    ]


def _n(v: float | None, unit: str = "") -> str:
    return "–" if v is None else f"{v:,.0f}{unit}"


def print_report(res: dict[str, Any]) -> None:
    d = res["direct"]
    pg = res["engine"] == "postgresql"
    t = Table(
        title=f"CityOS hub, {res['engine']}: one uvicorn worker on core {SERVER_CORE}, load from core {CLIENT_CORE}"
    )
    t.add_column("measure")
    t.add_column("wall-clock", justify="right")
    t.add_column("per hub CPU-s", justify="right")
    if pg:
        t.add_column("per hub+PG CPU-s", justify="right")
    t.add_column("detail")

    def row(
        name: str, wall: str, r: dict[str, Any], detail: str, key: str = "per_server_cpu_s"
    ) -> None:
        cells = [name, wall, _n(r.get(key))]
        if pg:
            cells.append(_n(r.get("per_server_and_db_cpu_s")))
        t.add_row(*cells, detail)

    def lat(w: dict[str, Any]) -> str:
        return (
            f"p50 {w['latency_us']['p50'] / 1e3:.1f} ms, p99 {w['latency_us']['p99'] / 1e3:.1f} ms, "
            f"hub had {w['cpu']['server_cpu_share']:.0%} of a core, machine {w['cpu']['machine_busy_share']:.0%} busy"
        )

    row(
        "empty endpoint (GET /health) req/s",
        _n(res["empty"]["ok_rps"]),
        res["empty"],
        lat(res["empty"]),
    )
    p = res["patch"]
    row(
        "PATCH /attrs/speed req/s",
        _n(p["ok_rps"]),
        p,
        f"{lat(p)}; non-2xx {p['non_2xx']}, socket errors {p['socket_errors']}",
    )
    g = res["get"]
    row("GET /entities/{id} req/s", _n(g["ok_rps"]), g, f"{lat(g)}; non-2xx {g['non_2xx']}")
    for kind, label in (("patch_small", "PATCH"), ("get_small", "GET")):
        if kind in res:
            w = res[kind]
            small = res["batch_upsert"]["entities"]
            row(f"{label} req/s, {small:,} entities in the hub", _n(w["ok_rps"]), w, lat(w))
    bu = res["batch_upsert"]
    row(
        "batch upsert entities/s (1,000/request)",
        _n(bu["entities_per_s"]),
        bu,
        f"{bu['entities']:,} loaded in {bu['seconds']:.1f} s, errors {bu['errors']}",
    )
    if "store_load" in res:
        sl = res["store_load"]
        cells = [
            "store load, no HTTP (rest of the geo set)",
            _n(sl["entities_per_s"]),
            _n(sl["entities_per_cpu_s"]),
        ]
        if pg:
            cells.append("")
        t.add_row(
            *cells, f"{sl['entities']:,} in {sl['seconds']:.0f} s via EntityService.batch_upsert"
        )
    q = res["geo_q"]
    if "error" in q:
        cells = ["geo+q (2 km box, intensity>500)", "failed", ""] + ([""] if pg else [])
        t.add_row(*cells, q["error"][:200])
    else:
        cells = [
            "geo+q (2 km box, intensity>500)",
            f"p50 {q['p50_ms']:.1f} / p99 {q['p99_ms']:.1f} ms",
            f"{q['server_cpu_ms_per_query'] + q.get('db_cpu_ms_per_query', 0.0):.1f} ms CPU/query",
        ] + ([""] if pg else [])
        t.add_row(
            *cells,
            f"{q['queries']} queries, {q['share_nonempty']:.0%} non-empty, "
            f"mean {q['mean_returned']:.1f} returned",
        )
    sg = d.get("store_geo_q")
    if sg:
        cells = [
            "no HTTP: store.query geo+q",
            f"p50 {sg['p50_ms']:.1f} / p99 {sg['p99_ms']:.1f} ms",
            "",
        ]
        t.add_row(
            *cells,
            *([""] if pg else []),
            f"{sg['queries']} queries, {sg['share_nonempty']:.0%} non-empty",
        )
    for name, key, note in (
        (
            "no HTTP: EntityService.partial_update_attr /s",
            "service_partial_update",
            "on the store, core 0",
        ),
        ("no HTTP: store.get_entity /s", "store_get_entity", ""),
        ("floor: plain SQL UPDATE of one row /s", "sql_update", d["sql_update_note"]),
    ):
        cells = [name, _n(d[key]["per_s"]), _n(d[key]["per_cpu_s"])]
        if pg:
            cells.append(_n(d[key]["per_cpu_s"]))
        t.add_row(*cells, note + (" (per-CPU column: client + PG backends)" if pg and note else ""))
    r = res["ratios"]
    for name, wall, cpu in (
        ("ratio PATCH / empty", r["patch_vs_empty"], r["patch_vs_empty_per_cpu"]),
        ("ratio GET / empty", r["get_vs_empty"], r["get_vs_empty_per_cpu"]),
        ("ratio HTTP PATCH / service call", None, r["http_patch_vs_service_per_cpu"]),
        ("ratio service call / SQL UPDATE", None, r["service_vs_sql_update_per_cpu"]),
    ):
        cells = [name, "–" if wall is None else f"{wall:.0%}", f"{cpu:.0%}"]
        if pg:
            cells.append("")
        t.add_row(*cells, "")
    console.print(t)

    if res.get("workers"):
        wt = Table(title="workers: req/s, and cores used (hub workers + PostgreSQL backends)")
        wt.add_column("workers", justify="right")
        for kind in ("empty", "patch", "get"):
            wt.add_column(f"{kind} req/s", justify="right")
            wt.add_column("cores", justify="right")
            wt.add_column("per CPU-s", justify="right")
        for n, w in res["workers"].items():
            cells = [n]
            for kind in ("empty", "patch", "get"):
                k = w[kind]
                cells += [_n(k["rps"]), f"{k['cores_used']:.2f}", _n(k["per_cpu_s"])]
            wt.add_row(*cells)
        console.print(wt)

    tt = Table(title="targets (per CPU-s: what one dedicated core would do; the machine is shared)")
    tt.add_column("target")
    tt.add_column("wall-clock", justify="right")
    tt.add_column("met")
    tt.add_column("per hub CPU-s", justify="right")
    tt.add_column("met")

    def shown(v: float | None) -> str:
        if v is None:
            return "–"
        return f"{v:.0%}" if v < 1 else f"{v:,.1f}" if v < 100 else f"{v:,.0f}"

    def verdict(m: bool | None) -> str:
        return "–" if m is None else "[green]met[/green]" if m else "[red]not met[/red]"

    for row_ in res["targets"]:
        tt.add_row(
            row_["target"],
            shown(row_["value"]),
            verdict(row_["met"]),
            shown(row_["per_cpu_value"]),
            verdict(row_["met_per_cpu"]),
        )
    console.print(tt)
    console.print(
        "geo+q per CPU: mean CPU ms per query, hub + PostgreSQL backends (not a p99).", style="dim"
    )
    for phase in ("batch", "patch", "get", "geo"):
        prof = res.get(f"{phase}_profile")
        if not prof or "self_pct" not in prof:
            continue
        pt = Table(title=f"hub profile during {phase} ({prof['samples']} py-spy samples)")
        pt.add_column("self time: function")
        pt.add_column("%", justify="right")
        for name, pc in prof["self_pct"][:15]:
            pt.add_row(name, f"{pc}")
        console.print(pt)


# ------------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--engine", choices=["sqlite", "postgresql", "both"], default="both")
    p.add_argument(
        "--entities",
        type=int,
        default=None,
        help="geo data set size (default 1,000,000; 50,000 with --quick)",
    )
    p.add_argument(
        "--duration",
        type=int,
        default=None,
        help="seconds per wrk run (default 10; 5 with --quick)",
    )
    p.add_argument("--quick", action="store_true", help="50,000 entities, 5 s runs, 200 queries")
    p.add_argument("--connections", type=int, default=32, help="wrk connections (one wrk thread)")
    p.add_argument("--queries", type=int, default=None, help="geo+q queries measured (default 500)")
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", action="store_true", help="py-spy the server during the PATCH run")
    p.add_argument(
        "--http-entities",
        type=int,
        default=None,
        help="how many of the geo entities go over HTTP (the measured batch upsert); the rest are "
        "loaded in-process through EntityService (default: all with --quick, else 10,000)",
    )
    p.add_argument(
        "--no-analyze",
        action="store_true",
        help="PostgreSQL: skip ANALYZE after the load (stale statistics)",
    )
    p.add_argument(
        "--workers",
        default=None,
        help="worker counts measured after the single pinned worker (default 2,4; none with --quick)",
    )
    p.add_argument("--out", default=str(RESULTS), help="folder for hub-<engine>.json")
    p.add_argument("--_direct", help=argparse.SUPPRESS)
    p.add_argument("--_load", help=argparse.SUPPRESS)
    p.add_argument("--_load-start", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--_direct-seconds", type=float, default=5.0, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    a.entities = a.entities if a.entities is not None else (50_000 if a.quick else 1_000_000)
    a.duration = a.duration if a.duration is not None else (5 if a.quick else 10)
    a.queries = a.queries if a.queries is not None else (200 if a.quick else 500)
    a.direct_seconds = 3.0 if a.quick else 5.0
    if a.http_entities is None:
        a.http_entities = a.entities if a.quick else min(a.entities, SMALL_CITY)
    a.workers = [int(w) for w in (a.workers or ("" if a.quick else "2,4")).split(",") if w]
    a.http_entities = min(a.http_entities, a.entities)
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args._load:
        print(json.dumps(load_via_store(args._load, args.entities, args._load_start, args.seed)))
        return 0
    if args._direct:
        print(json.dumps(direct_limits(args._direct, args._direct_seconds)))
        return 0
    if shutil.which("wrk") is None:
        console.print("[red]wrk is not installed (apt-get install wrk)[/red]")
        return 2
    _pin(CLIENT_CORE)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    engines = ["sqlite", "postgresql"] if args.engine == "both" else [args.engine]
    calibration = calibrate()
    console.print(f"CPU calibration: {calibration}")
    for engine in engines:
        started = time.time()
        res = bench_engine(engine, args)
        res["machine"] = machine_info()
        res["machine"]["calibration"] = calibration
        res["versions"] = versions() if engine == "sqlite" else _pg_versions_after()
        res["parameters"] = {
            "entities": args.entities,
            "duration_s": args.duration,
            "wrk_connections": args.connections,
            "wrk_threads": 1,
            "queries": args.queries,
            "warmup": args.warmup,
            "seed": args.seed,
            "quick": args.quick,
            "http_entities": args.http_entities,
            "analyze_after_load": engine == "postgresql" and not args.no_analyze,
            "batch_size": BATCH,
            "patch_entities": N_VEHICLES,
        }
        res["started_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
        res["wall_s"] = time.time() - started
        print_report(res)
        out = out_dir / f"hub-{engine}{_tag(args)}.json"
        out.write_text(json.dumps(res, indent=2) + "\n")
        console.print(f"wrote {out}")
    return 0


def _tag(args: argparse.Namespace) -> str:
    """Quick runs are kept apart from full ones: hub-sqlite-quick.json next to hub-sqlite.json."""
    return "-quick" if args.quick else ""


def _pg_versions_after() -> dict[str, Any]:
    """Versions for PostgreSQL, read after the bench database is gone (PostGIS from a probe)."""
    import psycopg

    out = versions()
    with psycopg.connect(PG_ADMIN_URL) as conn:
        out["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
        row = conn.execute(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'postgis'"
        ).fetchone()
        out["postgis"] = row[0] if row else None
        out["postgresql_settings"] = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit',"
                " 'shared_buffers', 'wal_sync_method', 'max_wal_size')"
            ).fetchall()
        )
    return out


if __name__ == "__main__":
    sys.exit(main())
