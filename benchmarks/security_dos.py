"""Denial-of-service limits of a real `cityos serve` (issue 11; docs/security.md,
"Denial-of-service limits").

1. A login flood: 200 wrong passwords at 64 concurrent, unauthenticated, to POST /auth/token
   of a hub with CITYOS_AUTH_REQUIRED=true on SQLite. Measured: the server process's peak RSS
   (/proc/PID/status VmRSS, sampled every 20 ms), /health latency (p50, max) polled during the
   flood, and how many logins were answered 400 (a refused password) vs 429/503 (refused
   before hashing).
2. A slow @context: a request whose Link header names a context on an allowed host that
   drips its body over 4 s. Measured: /health latency while it is fetched, and the request's
   answer and duration.

    .venv/bin/python benchmarks/security_dos.py [--src DIR] [--out FILE]

``--src`` runs another checkout's code (its ``src``), e.g. the code before the fix.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
LOGINS, CONCURRENCY = 200, 64
DRIP_S = 4.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Sampler(threading.Thread):
    """Peak RSS of a process, sampled every 20 ms until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, rss_mb(self.pid))
            except OSError:
                return
            time.sleep(0.02)


def start_server(src: Path, db: Path, env_extra: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(src),
        "CITYOS_DATABASE_URL": f"sqlite:///{db}",
        "CITYOS_AUTH_REQUIRED": "true",
        "CITYOS_RATE_PER_S": "0",  # measure the login path, not the rate limit
        "CITYOS_TOKEN_KEY_PATH": str(db.parent / "token-key.pem"),
        "CITYOS_AUDIT_KEY_PATH": str(db.parent / "audit.pem"),
        **env_extra,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "cityos.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("cityos serve did not start")


async def poll_health(base: str, stop: asyncio.Event) -> list[float]:
    """/health latencies (ms), one request after another until ``stop``."""
    out: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=60) as c:
        while not stop.is_set():
            t = time.perf_counter()
            await c.get("/health")
            out.append((time.perf_counter() - t) * 1000)
            await asyncio.sleep(0.05)
    return out


def summary(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {"n": 0}
    return {
        "n": len(latencies),
        "p50_ms": round(statistics.median(latencies), 1),
        "max_ms": round(max(latencies), 1),
    }


async def login_flood(base: str) -> dict[str, Any]:
    stop = asyncio.Event()
    health = asyncio.create_task(poll_health(base, stop))
    gate = asyncio.Semaphore(CONCURRENCY)
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    statuses: dict[int, int] = {}

    async def one(c: httpx.AsyncClient, i: int) -> None:
        form = {"grant_type": "password", "username": f"guess{i % 7}", "password": f"pw-{i}-xx"}
        async with gate:
            r = await c.post("/auth/token", data=form)
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

    t0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as c:
        await asyncio.gather(*(one(c, i) for i in range(LOGINS)))
    wall = time.perf_counter() - t0
    stop.set()
    return {
        "logins": LOGINS,
        "concurrency": CONCURRENCY,
        "wall_s": round(wall, 2),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "health": summary(await health),
    }


class Drip(threading.Thread):
    """Serves one JSON-LD context, dripping its body over DRIP_S seconds."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/slow.jsonld"

    def run(self) -> None:
        body = json.dumps({"@context": {"speed": "https://example.org/speed"}}).encode()
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn, body), daemon=True).start()

    def serve(self, conn: socket.socket, body: bytes) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            head = f"HTTP/1.1 200 OK\r\nContent-Type: application/ld+json\r\nContent-Length: {len(body)}\r\n\r\n"
            try:
                conn.sendall(head.encode())
                for b in body:
                    conn.sendall(bytes([b]))
                    time.sleep(DRIP_S / len(body))
            except OSError:
                pass


async def slow_context(base: str, drip: Drip) -> dict[str, Any]:
    stop = asyncio.Event()
    health = asyncio.create_task(poll_health(base, stop))
    await asyncio.sleep(0.2)
    t0 = time.perf_counter()
    link = f'<{drip.url}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
    async with httpx.AsyncClient(base_url=base, timeout=60) as c:
        r = await c.get("/ngsi-ld/v1/entities?type=Road", headers={"Link": link})
    took = time.perf_counter() - t0
    stop.set()
    return {
        "drip_s": DRIP_S,
        "context_request": {"status": r.status_code, "took_s": round(took, 2)},
        "health": summary(await health),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", type=Path, default=HERE.parent / "src")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "security-dos.json")
    ap.add_argument("--label", default="")
    args = ap.parse_args()
    result: dict[str, Any] = {"src": str(args.src), "label": args.label}
    with tempfile.TemporaryDirectory() as tmp:
        proc, base = start_server(args.src, Path(tmp) / "flood.db", {})
        sampler = Sampler(proc.pid)
        try:
            result["rss_before_mb"] = round(rss_mb(proc.pid), 1)
            sampler.start()
            result["login_flood"] = asyncio.run(login_flood(base))
            sampler.stop.set()
            sampler.join()
            result["login_flood"]["peak_rss_mb"] = round(sampler.peak, 1)
        finally:
            proc.terminate()
            proc.wait(30)
        drip = Drip()
        drip.start()
        env = {
            "CITYOS_AUTH_REQUIRED": "false",  # the door would refuse before the context
            "CITYOS_CONTEXT_ALLOW_HOSTS": "127.0.0.1",
            "CITYOS_CONTEXT_ALLOW_PRIVATE_HOSTS": "127.0.0.1",
        }
        proc, base = start_server(args.src, Path(tmp) / "ctx.db", env)
        try:
            result["slow_context"] = asyncio.run(slow_context(base, drip))
        finally:
            proc.terminate()
            proc.wait(30)
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    runs = json.loads(args.out.read_text()) if args.out.exists() else {}
    runs[args.label or "current"] = result
    args.out.write_text(json.dumps(runs, indent=2) + "\n")


if __name__ == "__main__":
    main()
