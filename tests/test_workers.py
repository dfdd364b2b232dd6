"""`cityos serve --workers 2` over one PostgreSQL database: whichever worker takes a write,
each change is notified once, and the device stream from MQTT is split, not duplicated."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def database(postgres_url) -> Iterator[str]:
    """A database of its own (the workers open it by URL, as in production)."""
    import psycopg

    name = f"cityos_workers_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    yield postgres_url.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(postgres_url, autocommit=True) as c:
        c.execute(f"DROP DATABASE {name} WITH (FORCE)")


def test_two_workers_notify_once_and_share_the_device_stream(database, mosquitto) -> None:
    import paho.mqtt.client as mqtt

    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    port = free_port()
    host, mqtt_port = mosquitto
    env = {
        **os.environ,
        "CITYOS_DATABASE_URL": database,
        "CITYOS_MQTT_URL": f"mqtt://{host}:{mqtt_port}",
        "CITYOS_MQTT_SHARED_GROUP": f"cityos-test-{uuid.uuid4().hex[:6]}",
        "CITYOS_NOTIFY_POLL_S": "0.1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "cityos.cli", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        workers: set[int] = set()
        deadline = time.monotonic() + 60
        while len(workers) < 2:  # each new connection lands on either process
            try:
                workers.add(httpx.get(f"{base}/health", timeout=1).json()["worker"])
            except httpx.TransportError:
                time.sleep(0.2)
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, f"saw workers {workers} only"
        api = f"{base}/ngsi-ld/v1"
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
        assert httpx.post(f"{api}/subscriptions", json=sub).status_code == 201
        for n in range(30):  # a new connection each: the writes spread over both workers
            car = {"id": f"urn:ngsi-ld:Vehicle:{n}", "type": "Vehicle", "speed": n}
            assert httpx.post(f"{api}/entities", json=car).status_code == 201
        # count changes, not requests: changes queued together for one subscription are
        # sent as one notification (up to 100 entities), so 30 changes may come in fewer POSTs
        deadline = time.monotonic() + 20

        def notified() -> int:
            return sum(len(body["data"]) for body in received)

        while notified() < 30:
            assert time.monotonic() < deadline, f"{notified()} of 30 notified"
            time.sleep(0.1)
        time.sleep(1)
        speeds = sorted(e["speed"] for body in received for e in body["data"])
        assert speeds == list(range(30))  # each once

        group = {
            "services": [
                {
                    "apikey": "wk1",
                    "entity_type": "AirQualityObserved",
                    "resource": "/iot/d",
                    "attributes": [{"object_id": "pm25", "name": "pm25", "type": "Number"}],
                }
            ]
        }
        assert httpx.post(f"{base}/iot/services", json=group).status_code == 201
        device = {"devices": [{"device_id": "aq1", "entity_name": "urn:ngsi-ld:AQ:1"}]}
        assert httpx.post(f"{base}/iot/devices", json=device).status_code == 201
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        pub.connect(host, mqtt_port)
        pub.loop_start()
        time.sleep(1)  # both workers' shared subscriptions are in place by now
        for i in range(20):
            pub.publish("/wk1/aq1/attrs", f"pm25|{i}", qos=1).wait_for_publish(5)
        pub.loop_stop()
        pub.disconnect()
        deadline = time.monotonic() + 20
        while True:
            history = httpx.get(
                f"{api}/temporal/entities/urn:ngsi-ld:AQ:1",
                params={"attrs": "pm25", "options": "temporalValues", "lastN": 100},
            )
            values = history.json().get("pm25", {}).get("values", []) if history.is_success else []
            if len(values) >= 20 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        time.sleep(1)
        history = httpx.get(
            f"{api}/temporal/entities/urn:ngsi-ld:AQ:1",
            params={"attrs": "pm25", "options": "temporalValues", "lastN": 100},
        ).json()
        assert sorted(v for v, _ in history["pm25"]["values"]) == list(range(20))  # each once
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        hook.shutdown()
