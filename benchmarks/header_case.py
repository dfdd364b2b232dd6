"""What canonical header names (cityos.web.headercase) cost: GET /entities/{id} req/s with
uvicorn's httptools protocol with and without the layer, and with its h11 protocol (which
keeps the case by itself). One SQLite hub pinned to core 0, wrk on core 1, rounds
alternated so that drift in the machine's speed falls on every variant alike. Usage::

    .venv/bin/python benchmarks/header_case.py [--rounds 3] [--duration 8]

Writes ``benchmarks/results/header-case.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENTITY = "urn:ngsi-ld:Sensor:header-case"

SERVER = """
import sys, uvicorn
from cityos.config import Settings
from cityos.web.app import create_app
app = create_app(Settings(database_url=sys.argv[1], rate_per_s=0, detect=False))
if sys.argv[3] == "off":
    app = app.app  # the layer is outermost: unwrap it
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning",
            access_log=False, http=sys.argv[4])
"""

VARIANTS = {  # name -> (layer, uvicorn protocol)
    "httptools, lowercase (no layer)": ("off", "httptools"),
    "httptools, canonical (the layer)": ("on", "httptools"),
    "h11, canonical (the layer)": ("on", "h11"),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cmd: list[str], core: int) -> list[str]:
    return ["taskset", "-c", str(core), *cmd] if shutil.which("taskset") else cmd


def serve(db: str, port: int, layer: str, http: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-c", SERVER, db, str(port), layer, http]
    proc = subprocess.Popen(pinned(cmd, 0), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ngsi-ld/v1/types", timeout=1)
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the hub did not start: {proc.stderr.read().decode()[-2000:]}")


def location_case(port: int) -> str:
    """The Location header's name as written on the wire (a raw HTTP/1.1 exchange)."""
    body = json.dumps({"id": f"{ENTITY}:{port}", "type": "Sensor"}).encode()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(
            b"POST /ngsi-ld/v1/entities HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    m = re.search(rb"\r\n(location): ", raw, re.IGNORECASE)
    return m.group(1).decode() if m else "(none)"


def wrk(port: int, duration: int) -> float:
    url = f"http://127.0.0.1:{port}/ngsi-ld/v1/entities/{ENTITY}"
    cmd = ["wrk", "-t1", "-c16", f"-d{duration}s", url]
    out = subprocess.run(pinned(cmd, 1), capture_output=True, text=True, check=True).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/header-case.json")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    work = Path(tempfile.mkdtemp(prefix="cityos-header-case-"))
    db = f"sqlite:///{work}/hub.db"
    rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    cases: dict[str, str] = {}
    for r in range(args.rounds):
        for name, (layer, http) in VARIANTS.items():
            port = free_port()
            proc = serve(db, port, layer, http)
            try:
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/ngsi-ld/v1/entities",
                    data=json.dumps({"id": ENTITY, "type": "Sensor", "speed": 3}).encode(),
                    headers={"Content-Type": "application/json"},
                )
                if r == 0 and not cases:
                    urllib.request.urlopen(req)
                cases[name] = location_case(port)
                rates[name].append(wrk(port, args.duration))
            finally:
                proc.terminate()
                proc.wait()
            print(f"round {r + 1}: {name}: {rates[name][-1]:.0f} req/s, {cases[name]!r}")
    base = statistics.median(rates["httptools, lowercase (no layer)"])
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "benchmarks/header_case.py " + " ".join(sys.argv[1:]),
        "machine": {"nproc": os.cpu_count(), "cpu": platform.processor() or platform.machine()},
        "request": f"GET /ngsi-ld/v1/entities/{ENTITY} (wrk -t1 -c16, {args.duration} s)",
        "variants": {
            name: {
                "location_header_on_wire": cases[name],
                "req_per_s": rates[name],
                "median_req_per_s": round(statistics.median(rates[name]), 1),
                "vs_httptools_lowercase": round(statistics.median(rates[name]) / base, 3),
            }
            for name in VARIANTS
        },
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for name, v in result["variants"].items():
        print(f"{name:36} {v['median_req_per_s']:8.0f} req/s  x{v['vs_httptools_lowercase']}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
