"""Security headers, CORS off unless configured, and `cityos serve` refusing to listen open."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from cityos.config import Settings
from cityos.hub.core import Hub
from cityos.security.headers import SecurityHeaders

BASE = "/ngsi-ld/v1"
EXPECTED = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "cache-control": "no-store",
}


def _client(tmp_path: Path, **overrides: object) -> TestClient:
    from cityos.web.app import create_app

    settings = Settings(database_url=f"sqlite:///{tmp_path}/h.db", **overrides)
    return TestClient(create_app(settings, Hub(settings)))


def test_every_response_carries_the_security_headers(tmp_path) -> None:
    with _client(tmp_path) as client:
        responses = [
            client.get(f"{BASE}/entities", params={"type": "T"}),  # 200
            client.get(f"{BASE}/entities/urn:ngsi-ld:T:none"),  # 404 problem
            client.get("/no/such/route"),  # 404 from the router
            client.post(
                f"{BASE}/entities", content=b"{", headers={"Content-Type": "application/json"}
            ),
            client.get("/openapi.json"),
            client.get("/health"),
        ]
        for r in responses:
            for name, value in EXPECTED.items():
                assert r.headers.get(name) == value, (r.request.url, name, r.headers)
            assert "strict-transport-security" not in r.headers


def test_hsts_only_when_configured(tmp_path) -> None:
    with _client(tmp_path, hsts_max_age_s=31536000) as client:
        r = client.get("/version")
    assert r.headers["strict-transport-security"] == "max-age=31536000"


def test_headers_the_application_set_are_kept() -> None:
    async def cached(request):
        return PlainTextResponse("x", headers={"Cache-Control": "public, max-age=60"})

    app = SecurityHeaders(Starlette(routes=[Route("/c", cached)]))
    r = TestClient(app).get("/c")
    assert r.headers["cache-control"] == "public, max-age=60"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers.get_list("cache-control") == ["public, max-age=60"]


def test_cors_is_off_unless_configured(tmp_path) -> None:
    preflight = {
        "Origin": "https://dashboard.city.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, link",
    }
    with _client(tmp_path) as client:
        r = client.options(f"{BASE}/entities", headers=preflight)
        assert "access-control-allow-origin" not in r.headers
        r = client.get(
            f"{BASE}/entities", params={"type": "T"}, headers={"Origin": preflight["Origin"]}
        )
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


def test_cors_for_configured_origins(tmp_path) -> None:
    origin = "https://dashboard.city.example"
    with _client(tmp_path, cors_origins=[origin], rate_per_s=1, rate_burst=1) as client:
        r = client.options(
            f"{BASE}/entities",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type, link, ngsild-tenant",
            },
        )
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == origin
        assert "POST" in r.headers["access-control-allow-methods"]
        assert r.headers["x-content-type-options"] == "nosniff"
        r = client.get(f"{BASE}/entities", params={"type": "T"}, headers={"Origin": origin})
        assert r.headers["access-control-allow-origin"] == origin
        assert "NGSILD-Results-Count" in r.headers["access-control-expose-headers"]
        r = client.get("/version", headers={"Origin": origin})  # over the limit now
        assert r.status_code == 429 and r.headers["access-control-allow-origin"] == origin
        assert "Retry-After" in r.headers["access-control-expose-headers"]
        other = client.options(
            f"{BASE}/entities",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert other.status_code == 400
        assert "access-control-allow-origin" not in other.headers


# -- cityos serve -------------------------------------------------------------------------


def _serve(*args: str, env: dict[str, str] | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cityos.cli", "serve", *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1"])
def test_serve_refuses_a_network_address_without_authentication(tmp_path, host: str) -> None:
    proc = _serve(
        "--host", host, "--port", "1", env={"CITYOS_AUTH_REQUIRED": "false"}, cwd=tmp_path
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, (out, err)
    text = " ".join(err.split())
    assert f"refusing to listen on {host}" in text
    assert "CITYOS_AUTH_REQUIRED=true" in text and "--insecure-listen-anywhere" in text
    assert not (tmp_path / "data").exists()  # refused before anything was opened


def test_serve_listens_anywhere_only_when_told_to(tmp_path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = _serve(
        "--host",
        "0.0.0.0",
        "--port",
        str(port),
        "--insecure-listen-anywhere",
        env={"CITYOS_DATABASE_URL": f"sqlite:///{tmp_path}/any.db"},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(proc.communicate()[1])
            time.sleep(0.1)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    assert "WITHOUT authentication" in " ".join(err.split())
