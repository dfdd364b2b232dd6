"""`cityos serve` as a real server process, driven over a socket by a plain HTTP client."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_ngsi_ld_over_http(tmp_path, serve_hub) -> None:
    db = {"CITYOS_DATABASE_URL": f"sqlite:///{tmp_path}/served.db"}
    with serve_hub(db) as base, httpx.Client(base_url=f"{base}/ngsi-ld/v1") as c:
        body = {
            "id": "urn:ngsi-ld:AirQualityObserved:wat-phnom",
            "type": "AirQualityObserved",
            "pm25": {"type": "Property", "value": 41.5},
            "location": {
                "type": "GeoProperty",
                "value": {"type": "Point", "coordinates": [104.923, 11.5762]},
            },
        }
        r = c.post("/entities/", json=body)
        assert r.status_code == 201 and r.headers["Location"].endswith("wat-phnom")
        r = c.get(
            "/entities",
            params={
                "type": "AirQualityObserved",
                "q": "pm25>35",
                "georel": "near;maxDistance==500",
                "geometry": "Point",
                "coordinates": "[104.923,11.576]",
                "options": "keyValues",
            },
        )
        assert r.status_code == 200
        assert r.json() == [
            {
                "id": "urn:ngsi-ld:AirQualityObserved:wat-phnom",
                "type": "AirQualityObserved",
                "pm25": 41.5,
                "location": {"type": "Point", "coordinates": [104.923, 11.5762]},
            }
        ]
        assert c.get("/entities/urn:ngsi-ld:Nothing:1").status_code == 404


def test_serve_with_an_unreachable_database_says_so_in_one_line(tmp_path) -> None:
    env = {**os.environ, "CITYOS_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x"}
    proc = subprocess.run(
        [sys.executable, "-m", "cityos.cli", "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "PostgreSQL not reachable" in proc.stderr and "CITYOS_DATABASE_URL" in proc.stderr
