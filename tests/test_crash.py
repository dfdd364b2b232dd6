"""kill -9 the hub during a stream of writes with a subscription active: after a restart,
every acknowledged write is stored, in history, and notified (the outbox at work)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(port: int, db: str) -> subprocess.Popen:
    env = {**os.environ, "CITYOS_DATABASE_URL": f"sqlite:///{db}", "CITYOS_NOTIFY_POLL_S": "0.05"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cityos.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
        time.sleep(0.1)


def test_kill_9_loses_no_acknowledged_write_or_notification(tmp_path) -> None:
    received: set[int] = set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.update(e["speed"] for e in body["data"])
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    port, db = free_port(), str(tmp_path / "crash.db")
    base = f"http://127.0.0.1:{port}/ngsi-ld/v1"
    proc = start(port, db)
    try:
        sub = {
            "type": "Subscription",
            "entities": [{"type": "Vehicle"}],
            "watchedAttributes": ["speed"],
            "notification": {
                "endpoint": {"uri": f"http://127.0.0.1:{hook.server_port}/"},
                "format": "keyValues",
                "attributes": ["speed"],
            },
        }
        assert httpx.post(f"{base}/subscriptions", json=sub).status_code == 201
        car = {
            "id": "urn:ngsi-ld:Vehicle:bus-7",
            "type": "Vehicle",
            "speed": {"type": "Property", "value": 0},
        }
        assert httpx.post(f"{base}/entities", json=car).status_code == 201
        acknowledged: list[int] = [0]
        stop = threading.Event()

        def writer() -> None:
            with httpx.Client(timeout=2) as c:
                for value in range(1, 100_000):
                    if stop.is_set():
                        return
                    try:
                        r = c.patch(
                            f"{base}/entities/urn:ngsi-ld:Vehicle:bus-7/attrs/speed",
                            json={"value": value},
                        )
                    except httpx.TransportError:
                        return
                    if r.status_code == 204:
                        acknowledged.append(value)

        t = threading.Thread(target=writer)
        t.start()
        time.sleep(1.5)
        proc.send_signal(signal.SIGKILL)  # mid-stream, no chance to flush or finish anything
        proc.wait(timeout=10)
        stop.set()
        t.join(timeout=10)
        assert len(acknowledged) > 10, "too few writes before the kill to prove anything"

        proc = start(port, db)
        # the last acknowledged value is what the entity holds (or a later unacknowledged one)
        now = httpx.get(
            f"{base}/entities/urn:ngsi-ld:Vehicle:bus-7", params={"options": "keyValues"}
        ).json()
        assert now["speed"] >= acknowledged[-1]
        history = httpx.get(
            f"{base}/temporal/entities/urn:ngsi-ld:Vehicle:bus-7",
            params={"attrs": "speed", "timeproperty": "modifiedAt", "options": "temporalValues"},
        ).json()
        stored = {v for v, _ in history["speed"]["values"]}
        assert set(acknowledged) <= stored
        deadline = time.monotonic() + 30
        while not set(acknowledged) <= received:
            assert time.monotonic() < deadline, (
                f"{len(set(acknowledged) - received)} acknowledged writes never notified"
            )
            time.sleep(0.1)
    finally:
        proc.kill()
        proc.wait(timeout=10)
        hook.shutdown()
