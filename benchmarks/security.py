"""Security benchmark: what authentication and authorisation cost the hub (docs/security.md).

The hub benchmark's PATCH-one-attribute and GET-by-id figures (benchmarks/hub.py: one
uvicorn worker on core 0, wrk from core 1), measured twice on the same database and machine:
with ``CITYOS_AUTH_REQUIRED=false``, and with ``CITYOS_AUTH_REQUIRED=true`` and every request
carrying ``Authorization: ApiKey <key>`` of a ``city-operator`` key (so each one is
authenticated, its tenant bound, its action decided by the policy, and each write audited).
Runs alternate off/on, on/off, ... (``--rounds``); the medians are compared with the target:
at most 15 % fewer PATCH/s and GET/s with security on. Where it is missed (or with
``--profile``) py-spy records the hub in both modes and the result says where the time goes.

    .venv/bin/python benchmarks/security.py                      # both engines, ~6 minutes each
    .venv/bin/python benchmarks/security.py --engine sqlite --rounds 1 --duration 5   # a smoke run

Writes ``benchmarks/results/security-<engine>.json``. The rate limit is off in both modes
(``CITYOS_RATE_PER_S=0``, as in hub.py): it is per client, and wrk is one client.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hub as bench  # noqa: E402 (benchmarks/ is not a package: hub.py's machinery, reused)

RESULTS = bench.RESULTS
TENANT = "phnompenh"
ROLE = "city-operator"
PREFIX = bench.VEHICLE_PREFIX
TARGET_MAX_LOSS = 0.15  # at most 15 % fewer requests/s with authentication and authorisation
console = bench.console

# wrk: PATCH .../attrs/speed or GET /entities/{id} over <prefix>0..n-1, with the tenant header
# and, when a key is given, Authorization: ApiKey. Arguments after "--": method n prefix
# tenant [key]. report.lua (benchmarks/wrk) prints the JSON line hub.run_wrk reads.
WRK_SCRIPT = r"""
require("report")

local counter, n, prefix, method = 0, 1000, "urn:ngsi-ld:Vehicle:bench-", "GET"
local headers = {}
local thread_no = 0

function setup(thread)
  thread:set("offset", thread_no * 7919)
  thread_no = thread_no + 1
end

function init(args)
  method = args[1] or method
  n = tonumber(args[2]) or n
  prefix = args[3] or prefix
  headers["NGSILD-Tenant"] = args[4]
  if args[5] and args[5] ~= "" then
    headers["Authorization"] = "ApiKey " .. args[5]
  end
  if method == "PATCH" then
    headers["Content-Type"] = "application/json"
  end
  counter = (offset or 0) % n
end

function request()
  counter = counter + 1
  local id = prefix .. (counter % n)
  if method == "PATCH" then
    local path = "/ngsi-ld/v1/entities/" .. id .. "/attrs/speed"
    return wrk.format("PATCH", path, headers, '{"value": ' .. (counter % 120) .. "}")
  end
  return wrk.format("GET", "/ngsi-ld/v1/entities/" .. id, headers)
end
"""


# ------------------------------------------------------------------------------ set-up


@contextmanager
def served(url: str, auth: bool, keys_dir: str) -> Any:
    """``cityos serve`` (hub.hub_server: core 0, rate limit off) with security on or off."""
    saved = {
        k: os.environ.get(k)
        for k in ("CITYOS_AUTH_REQUIRED", "CITYOS_TOKEN_KEY_PATH", "CITYOS_AUDIT_KEY_PATH")
    }
    os.environ["CITYOS_AUTH_REQUIRED"] = "true" if auth else "false"
    os.environ["CITYOS_TOKEN_KEY_PATH"] = f"{keys_dir}/token-key.pem"
    os.environ["CITYOS_AUDIT_KEY_PATH"] = f"{keys_dir}/audit-ed25519.pem"
    port = bench._free_port()
    try:
        with bench.hub_server(url, port) as proc:
            yield proc, f"http://127.0.0.1:{port}"
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def load(base: str, n: int) -> float:
    """``n`` Vehicles (hub.vehicle: six attributes) in the tenant, 1,000 per upsert."""
    t = time.perf_counter()
    with httpx.Client(base_url=base, timeout=120, headers={"NGSILD-Tenant": TENANT}) as c:
        for start in range(0, n, bench.BATCH):
            body = [bench.vehicle(i) for i in range(start, min(n, start + bench.BATCH))]
            r = c.post("/ngsi-ld/v1/entityOperations/upsert", json=body)
            if r.status_code not in (201, 204):
                raise RuntimeError(f"loading vehicles: {r.status_code} {r.text[:300]}")
    return time.perf_counter() - t


def make_key(url: str) -> str:
    """A city-operator API key for the tenant (the same key for every authenticated run)."""
    from cityos.hub.store import open_store
    from cityos.security.keys import create_key

    store = open_store(url)
    try:
        key, _ = create_key(store, tenants=[TENANT], roles=[ROLE], name="bench-security")
    finally:
        store.close()
    return key


def check_modes(base: str, key: str | None) -> None:
    """One request of each kind by hand: the right answers, and security really on or off."""
    tenant = {"NGSILD-Tenant": TENANT}
    auth = {"Authorization": f"ApiKey {key}"} if key else {}
    with httpx.Client(base_url=base, timeout=30) as c:
        path = f"/ngsi-ld/v1/entities/{PREFIX}0"
        r = c.patch(f"{path}/attrs/speed", json={"value": 7}, headers={**tenant, **auth})
        if r.status_code != 204:
            raise RuntimeError(f"PATCH answered {r.status_code}: {r.text[:300]}")
        r = c.get(path, headers={**tenant, **auth})
        if r.status_code != 200 or r.json()["speed"]["value"] != 7:
            raise RuntimeError(f"GET answered {r.status_code}: {r.text[:300]}")
        anonymous = c.get(path, headers=tenant).status_code
        if (anonymous == 401) != bool(key):
            raise RuntimeError(f"without a key the hub answered {anonymous} (auth {bool(key)})")


# ------------------------------------------------------------------------------ runs


def wrk_phase(
    base: str,
    meter: bench.CpuMeter,
    script: str,
    method: str,
    n: int,
    key: str | None,
    args: argparse.Namespace,
    duration: int | None = None,
) -> dict[str, Any]:
    cpu: dict[str, Any] = {}
    wrk_args = [method, str(n), PREFIX, TENANT, key or ""]
    with meter.measure(cpu):
        out = bench.run_wrk(base, script, duration or args.duration, args.connections, wrk_args)
    out["cpu"] = cpu
    bench._cpu_rate(out, out["requests"] - out["non_2xx"])
    return out


def one_run(
    url: str,
    auth: bool,
    key: str,
    script: str,
    args: argparse.Namespace,
    keys_dir: str,
    profile_dir: Path | None = None,
) -> dict[str, Any]:
    """Start the hub in one mode, warm it up, then wrk PATCH and GET (and py-spy them)."""
    res: dict[str, Any] = {"auth_required": auth}
    with served(url, auth, keys_dir) as (proc, base):
        use_key = key if auth else None
        check_modes(base, use_key)
        meter = bench.CpuMeter(proc.pid, url)
        for method in ("PATCH", "GET"):  # warm caches (keys, policy decisions, contexts)
            wrk_phase(base, meter, script, method, args.entities, use_key, args, duration=2)
        for method in ("PATCH", "GET"):
            prof = None
            if profile_dir is not None:
                raw = profile_dir / f"{'auth' if auth else 'open'}-{method.lower()}.txt"
                prof = bench.start_profile(proc.pid, max(1, args.duration - 1), raw)
            out = wrk_phase(base, meter, script, method, args.entities, use_key, args)
            if prof is not None:
                _, err = prof.communicate(timeout=120)
                out["profile"] = (
                    summarise(raw)
                    if prof.returncode == 0 and raw.exists()
                    else {"error": err.decode()[-500:]}
                )
            res[method.lower()] = out
            console.print(
                f"  {'auth on ' if auth else 'auth off'} {method:5} {out['ok_rps']:8,.0f} req/s, "
                f"{out['per_server_cpu_s']:8,.0f} per hub CPU-s, non-2xx {out['non_2xx']}, "
                f"p99 {out['latency_us']['p99'] / 1e3:.1f} ms, machine "
                f"{out['cpu']['machine_busy_share']:.0%} busy"
            )
    return res


def summarise(path: Path) -> dict[str, Any]:
    """hub.summarise_profile, plus where each sample's innermost CityOS frame is: in which
    cityos.security module (its own code and the libraries it calls: hashing, Casbin, ...),
    or elsewhere (the hub's work, the HTTP stack). Middleware frames that merely wrap the
    app (the guard's ``await self.app``) do not count for security: the app is deeper; nor
    do the wrapped ``send`` callables' calls into uvicorn/Starlette."""
    out = bench.summarise_profile(path, top=25)
    total = 0
    per_module: dict[str, int] = {}
    per_function: dict[str, int] = {}  # the innermost security function of a security sample
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        ours = [i for i, f in enumerate(frames) if re.search(r"[(/]cityos/", f)]
        where = "outside CityOS code"
        if ours:
            m = re.search(r"[(/]cityos/(security/\w+|[\w/]+)\.py", frames[ours[-1]])
            where = m.group(1) if m else "other CityOS code"
            below = frames[ours[-1] + 1 :]
            if any(re.search(r"\((uvicorn|starlette)/", f) for f in below):
                where = "HTTP stack (called from CityOS code)"
            elif where.startswith("security/"):
                fn = re.sub(r":\d+\)$", ")", frames[ours[-1]])
                per_function[fn] = per_function.get(fn, 0) + n
        per_module[where] = per_module.get(where, 0) + n
    shares = {m: v / total for m, v in sorted(per_module.items(), key=lambda kv: -kv[1])}
    out["innermost_cityos_frame_share"] = {m: round(v, 3) for m, v in shares.items()}
    out["security_functions_share"] = {
        f: round(v / total, 4)
        for f, v in sorted(per_function.items(), key=lambda kv: -kv[1])
        if v / total >= 0.001
    }
    out["security_share"] = (
        round(sum(v for m, v in shares.items() if m.startswith("security/")), 3) if total else None
    )
    return out


def vacuum(url: str) -> None:
    """PostgreSQL: VACUUM ANALYZE (the PATCH runs leave dead row versions behind); SQLite: none."""
    if not url.startswith("postgres"):
        return
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def median_of(runs: list[dict[str, Any]], method: str, key: str) -> float:
    return statistics.median(r[method][key] for r in runs)


def bench_engine(engine: str, args: argparse.Namespace) -> dict[str, Any]:
    console.rule(f"[bold]{engine}")
    res: dict[str, Any] = {"engine": engine, "runs": []}
    keys_dir = tempfile.mkdtemp(prefix="cityos-bench-keys-")
    script_dir = tempfile.mkdtemp(prefix="cityos-bench-wrk-")
    script = str(Path(script_dir) / "security.lua")
    Path(script).write_text(WRK_SCRIPT)
    try:
        with bench.database(engine) as url:
            with served(url, False, keys_dir) as (_, base):
                res["load_s"] = load(base, args.entities)
                console.print(f"loaded {args.entities:,} vehicles in {res['load_s']:.1f} s")
            if engine == "postgresql":
                res["analyze_s"] = bench.analyze_pg(url)
            key = make_key(url)
            for rnd in range(args.rounds):  # off/on, then on/off, ...: drift hits both alike
                order = (False, True) if rnd % 2 == 0 else (True, False)
                for auth in order:
                    if engine == "postgresql":  # each run starts from a vacuumed table
                        vacuum(url)
                    run = one_run(url, auth, key, script, args, keys_dir)
                    run["round"] = rnd
                    res["runs"].append(run)
            res["summary"] = summary(res["runs"])
            met = all(s["met"] for s in res["summary"].values())
            if args.profile or not met:
                console.print("py-spy: both modes once more, profiled (not in the medians)")
                prof_dir = Path(tempfile.mkdtemp(prefix="cityos-bench-prof-"))
                try:
                    res["profile"] = {}
                    for auth in (False, True):
                        vacuum(url)
                        res["profile"]["auth" if auth else "open"] = one_run(
                            url, auth, key, script, args, keys_dir, prof_dir
                        )
                finally:
                    shutil.rmtree(prof_dir, ignore_errors=True)
                res["where_the_time_goes"] = where_the_time_goes(res["profile"])
    finally:
        shutil.rmtree(keys_dir, ignore_errors=True)
        shutil.rmtree(script_dir, ignore_errors=True)
    return res


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians per mode, and the loss judged on the median of each round's own off/on pair
    (the two runs next to each other in time: robust to drift over the whole run, such as
    PostgreSQL's table growing with every PATCH)."""
    off = [r for r in runs if not r["auth_required"]]
    on = [r for r in runs if r["auth_required"]]
    out = {}
    for method in ("patch", "get"):
        o, a = median_of(off, method, "ok_rps"), median_of(on, method, "ok_rps")
        oc = median_of(off, method, "per_server_cpu_s")
        ac = median_of(on, method, "per_server_cpu_s")
        pairs = [(x[method], y[method]) for x in off for y in on if x["round"] == y["round"]]
        loss = statistics.median(1 - b["ok_rps"] / a_["ok_rps"] for a_, b in pairs)
        loss_cpu = statistics.median(
            1 - b["per_server_cpu_s"] / a_["per_server_cpu_s"] for a_, b in pairs
        )
        out[method] = {
            "paired_loss_per_round": [round(1 - b["ok_rps"] / a_["ok_rps"], 4) for a_, b in pairs],
            "paired_loss": loss,
            "paired_loss_per_cpu": loss_cpu,
            "auth_off_rps": o,
            "auth_on_rps": a,
            "ratio": a / o,
            "loss": 1 - a / o,
            "auth_off_per_server_cpu_s": oc,
            "auth_on_per_server_cpu_s": ac,
            "ratio_per_cpu": ac / oc,
            "extra_hub_cpu_us_per_request": 1e6 / ac - 1e6 / oc,
            "loss_per_cpu": 1 - ac / oc,
            "rounds": len(on),
            "auth_off_runs_rps": [r[method]["ok_rps"] for r in off],
            "auth_on_runs_rps": [r[method]["ok_rps"] for r in on],
            "target": f"at most {TARGET_MAX_LOSS:.0%} fewer requests/s with auth on",
            "met": loss <= TARGET_MAX_LOSS,
            "met_per_cpu": loss_cpu <= TARGET_MAX_LOSS,
        }
    return out


def where_the_time_goes(profile: dict[str, Any]) -> dict[str, Any]:
    """Per method: the share of hub samples in cityos.security with auth on and off."""
    out = {}
    for method in ("patch", "get"):
        on = profile["auth"][method].get("profile", {})
        off = profile["open"][method].get("profile", {})
        out[method] = {
            "security_share_auth_on": on.get("security_share"),
            "security_share_auth_off": off.get("security_share"),
            "innermost_cityos_frame_auth_on": on.get("innermost_cityos_frame_share"),
            "innermost_cityos_frame_auth_off": off.get("innermost_cityos_frame_share"),
            "security_functions_auth_on": on.get("security_functions_share"),
            "top_self_auth_on": on.get("self_pct", [])[:12],
            "top_inclusive_auth_on": on.get("inclusive_pct", [])[:25],
        }
    return out


# ------------------------------------------------------------------------------ report


def print_report(res: dict[str, Any]) -> None:
    t = Table(
        title=f"auth off vs on, {res['engine']}: medians of {res['parameters']['rounds']} "
        f"interleaved runs, {res['parameters']['entities']:,} vehicles"
    )
    for col in (
        "measure",
        "auth off req/s",
        "auth on req/s",
        "loss",
        "per hub CPU-s off → on",
        "loss per CPU",
        "target ≤ 15 %",
    ):
        t.add_column(col, justify="left" if col == "measure" else "right")
    for method, name in (("patch", "PATCH one attribute"), ("get", "GET entity by id")):
        s = res["summary"][method]
        t.add_row(
            name,
            f"{s['auth_off_rps']:,.0f}",
            f"{s['auth_on_rps']:,.0f}",
            f"{s['paired_loss']:.1%}",
            f"{s['auth_off_per_server_cpu_s']:,.0f} → {s['auth_on_per_server_cpu_s']:,.0f}",
            f"{s['paired_loss_per_cpu']:.1%}",
            ("[green]met[/green]" if s["met"] else "[red]not met[/red]")
            + (" (per CPU: met)" if s["met_per_cpu"] else " (per CPU: not met)"),
        )
    console.print(t)
    w = res.get("where_the_time_goes")
    if w:
        for method, d in w.items():
            if d.get("security_share_auth_on") is None:  # no profile (py-spy missing)
                continue
            mods = ", ".join(
                f"{m} {v:.1%}"
                for m, v in (d["innermost_cityos_frame_auth_on"] or {}).items()
                if m.startswith("security/")
            )
            console.print(
                f"{method.upper()} with auth: {d['security_share_auth_on']:.0%} of hub samples in "
                f"cityos.security ({mods}); without: {d['security_share_auth_off']:.0%}"
            )
            for fn, share in list((d["security_functions_auth_on"] or {}).items())[:8]:
                console.print(f"    {share:6.1%}  {fn}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--engine", choices=["sqlite", "postgresql", "both"], default="both")
    p.add_argument("--entities", type=int, default=10_000, help="vehicles PATCHed and read")
    p.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    p.add_argument("--rounds", type=int, default=3, help="runs per mode, interleaved")
    p.add_argument("--connections", type=int, default=32, help="wrk connections (one thread)")
    p.add_argument("--profile", action="store_true", help="py-spy both modes even if met")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        console.print("[red]wrk is not installed (apt-get install wrk)[/red]")
        return 2
    bench._pin(bench.CLIENT_CORE)
    RESULTS.mkdir(parents=True, exist_ok=True)
    engines = ["sqlite", "postgresql"] if args.engine == "both" else [args.engine]
    calibration = bench.calibrate()
    console.print(f"CPU calibration: {calibration}")
    for engine in engines:
        started = time.time()
        res = bench_engine(engine, args)
        res["machine"] = bench.machine_info()
        res["machine"]["calibration"] = calibration
        res["versions"] = bench.versions() if engine == "sqlite" else bench._pg_versions_after()
        res["parameters"] = {
            "entities": args.entities,
            "duration_s": args.duration,
            "rounds": args.rounds,
            "wrk_connections": args.connections,
            "wrk_threads": 1,
            "tenant": TENANT,
            "role": ROLE,
            "credential": "Authorization: ApiKey <key> (cityos.security.keys)",
            "rate_limit": "off in both modes (CITYOS_RATE_PER_S=0)",
            "order": "round k: off then on for even k, on then off for odd k",
            "judged_on": "median over rounds of each round's own loss (1 - on/off)",
            "between_runs": "PostgreSQL: VACUUM ANALYZE before every run",
        }
        res["command"] = " ".join([Path(sys.executable).name, *sys.argv])
        res["started_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
        res["wall_s"] = time.time() - started
        print_report(res)
        out = RESULTS / f"security-{engine}.json"
        out.write_text(json.dumps(res, indent=2) + "\n")
        console.print(f"wrote {out.relative_to(bench.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
