"""ETSI's NGSI-LD conformance suite against CityOS, on one engine: the figures of
docs/conformance.md.

Starts a fresh ``cityos serve`` (a new SQLite file, or a new PostgreSQL database), runs
the suite with ``../shared/conformance/etsi-run`` (which says where the suite comes from;
it is never copied into the project and CI cannot download it), and records the result
per area and every failed test with its message in
``benchmarks/results/conformance-<engine>.json``. Usage::

    .venv/bin/python benchmarks/conformance.py --suite SUITE_DIR [--engine sqlite|postgresql]
        [--dist-ops] [--stand-in-hosts] [--runner ../shared/conformance/etsi-run] [--out FILE]
    .venv/bin/python benchmarks/conformance.py --report   # the tables of docs/conformance.md
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
PG = "postgresql://postgres@127.0.0.1:5432"
# The Internet hosts some of the suite's @context tests fetch from (this machine reaches
# none): with --stand-in-hosts the hub reads them through context_mirrors from a local server
# of stand-in documents, an empty @context each (the real ones cannot be downloaded here), so
# that a run shows which failures are the network's alone. Never the recorded main result.
INTERNET_HOSTS = ("https://fiware.github.io/", "http://smartdatamodels.org/")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database(engine: str, work: Path) -> str:
    if engine == "sqlite":
        return f"sqlite:///{work}/conformance.db"
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS cityos_conformance")
        conn.execute("CREATE DATABASE cityos_conformance")
    return f"{PG}/cityos_conformance"


def stand_ins(suite: Path, root: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A local server of stand-in documents for every URL under :data:`INTERNET_HOSTS` that
    the suite's files name, and the ``context_mirrors`` value that sends the hub there."""
    pattern = re.compile("(" + "|".join(re.escape(h) for h in INTERNET_HOSTS) + r')([^"\s]+)')
    for path in (suite / "data").rglob("*"):
        if path.is_file():
            for host, rest in pattern.findall(path.read_text(errors="replace")):
                doc = root / urlsplit(host).netloc / rest
                doc.parent.mkdir(parents=True, exist_ok=True)
                doc.write_text('{"@context": {}}\n')
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
         "--directory", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    mirrors = ",".join(f"{h}=http://127.0.0.1:{port}/{urlsplit(h).netloc}/" for h in INTERNET_HOSTS)
    return server, mirrors


def serve(
    url: str, port: int, log: Path, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """The broker as the suite needs it: contexts from its local server (127.0.0.1:8890),
    notifications to its receivers on 127.0.0.1, no rate limit, no attack detection."""
    env = {
        **os.environ,
        **(extra_env or {}),
        "CITYOS_DATABASE_URL": url,
        "CITYOS_CONTEXT_ALLOW_HOSTS": "127.0.0.1",
        "CITYOS_CONTEXT_ALLOW_PRIVATE_HOSTS": "127.0.0.1",
        "CITYOS_RATE_PER_S": "0",
        "CITYOS_DETECT": "false",
        # the suite's README asks for a broker whose temporal answers page at 40 instances
        # of one entity and not at 10 (the pagination tests, 206 and Content-Range)
        "CITYOS_TEMPORAL_INSTANCE_LIMIT": "30",
    }
    cityos = Path(sys.executable).parent / "cityos"
    proc = subprocess.Popen(
        [str(cityos), "serve", "--port", str(port)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    for _ in range(150):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"cityos serve did not start; see {log}")


def count(output: Path) -> dict[str, Any]:
    """Per area (two and four levels under TP/NGSI-LD) and the failures with messages."""
    rows: list[tuple[list[str], str, str, str]] = []

    def walk(suite: ET.Element, names: list[str]) -> None:
        names = names + [suite.get("name") or ""]
        for test in suite.findall("test"):
            status = test.find("status")
            assert status is not None
            rows.append((names[1:], test.get("name") or "", status.get("status") or "",
                         (status.text or "").strip()))  # fmt: skip
        for child in suite.findall("suite"):
            walk(child, names)

    top = ET.parse(output).getroot().find("suite")
    assert top is not None
    walk(top, [])
    areas: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for names, _, status, _ in rows:
        areas["/".join(names[:2])][status] += 1
    passed = sum(1 for r in rows if r[2] == "PASS")
    return {
        "passed": passed,
        "run": len(rows),
        "rate": round(100 * passed / len(rows), 1) if rows else 0.0,
        "areas": {
            a: {"passed": c["PASS"], "failed": c["FAIL"], "skipped": c["SKIP"]}
            for a, c in sorted(areas.items())
        },  # fmt: skip
        "failures": [
            {"folder": "/".join(n), "test": t, "message": m.splitlines()[0][:300] if m else ""}
            for n, t, s, m in rows
            if s == "FAIL"
        ],
    }


def report() -> str:
    """The per-area table of docs/conformance.md from the recorded results."""
    results = ROOT / "benchmarks" / "results"
    runs = {
        name: json.loads((results / f"conformance-{name}.json").read_text())
        for name in ("sqlite-before", "sqlite", "postgresql", "sqlite-stand-ins")
        if (results / f"conformance-{name}.json").exists()
    }
    areas = sorted({a for r in runs.values() for a in r["areas"]})
    head = " | ".join(f"{n} ({r['commit']})" for n, r in runs.items())
    lines = [f"| area | {head} |", "|---" * (len(runs) + 1) + "|"]

    def cell(r: dict[str, Any], area: str) -> str:
        c = r["areas"].get(area)
        if c is None:
            return "—"
        run = c["passed"] + c["failed"] + c["skipped"]
        return f"{c['passed']} / {run}"

    for area in areas:
        lines.append(f"| {area} | " + " | ".join(cell(r, area) for r in runs.values()) + " |")
    lines.append(
        "| **all** | "
        + " | ".join(f"**{r['passed']} / {r['run']} ({r['rate']} %)**" for r in runs.values())
        + " |"
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    if sys.argv[1:] == ["--report"]:
        print(report(), end="")
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", required=True, type=Path, help="a tree of ETSI's suite")
    ap.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--dist-ops", action="store_true", help="run only the distributed tests")
    ap.add_argument(
        "--stand-in-hosts",
        action="store_true",
        help="serve stand-ins for the suite's Internet @contexts (a separate result)",
    )
    ap.add_argument("--runner", type=Path, default=ROOT.parent / "shared/conformance/etsi-run")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if not (args.suite / "TP" / "NGSI-LD").is_dir():
        raise SystemExit(f"{args.suite} holds no TP/NGSI-LD: see {args.runner}'s header")
    name = f"conformance-{args.engine}" + ("-dist-ops" if args.dist_ops else "")
    name += "-stand-ins" if args.stand_in_hosts else ""
    out = args.out or ROOT / "benchmarks" / "results" / f"{name}.json"
    # the code the hub runs, taken before it starts (uncommitted changes under src/ noted)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no", "--", "src"], cwd=ROOT,
        capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        port = free_port()
        extra_env, helper = {}, None
        if args.stand_in_hosts:
            helper, mirrors = stand_ins(args.suite, work / "stand-ins")
            extra_env = {"CITYOS_CONTEXT_MIRRORS": mirrors}
        proc = serve(database(args.engine, work), port, work / "serve.log", extra_env)
        started = time.monotonic()
        try:
            extra = ["--include", "dist-ops"] if args.dist_ops else []
            subprocess.run(
                [str(args.runner), str(args.suite), str(work / "out"), *extra],
                env={**os.environ, "NGSILD_URL": f"http://127.0.0.1:{port}/ngsi-ld/v1"},
                check=False,
            )
        finally:
            proc.terminate()
            proc.wait(timeout=20)
            if helper is not None:
                helper.terminate()
        result = count(work / "out" / "output.xml")
    record = {
        "engine": args.engine,
        "commit": commit + ("+changes" if dirty else ""),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["benchmarks/conformance.py", *sys.argv[1:]]),
        "minutes": round((time.monotonic() - started) / 60, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        **result,
    }
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"{args.engine}: {result['passed']} of {result['run']} passed ({result['rate']} %)")
    for area, c in record["areas"].items():
        print(f"  {area}: {c['passed']} / {c['passed'] + c['failed'] + c['skipped']}")


if __name__ == "__main__":
    main()
