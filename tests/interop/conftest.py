"""Fixtures for the interoperability tests: a real `cityos serve` on a socket (SQLite, and
PostgreSQL where reachable), a webhook receiver, and a runner for the client scripts.

Each third-party client lives in its own virtualenv under ``.venv-interop/`` (``make interop``
creates them from ``tests/interop/requirements-*.txt``): their pinned dependencies clash with
the project's and with each other's. A missing one skips these tests with that reason, except
under ``CI=true``, where it fails them.
"""

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
INTEROP_VENVS = ROOT / ".venv-interop"
SCRIPT_TIMEOUT_S = 60


def interop_python(client: str) -> Path:
    """The interpreter of `client`'s virtualenv; skip (fail under CI=true) when it is missing."""
    python = INTEROP_VENVS / client / "bin" / "python"
    if python.exists() and (INTEROP_VENVS / client / ".installed").exists():
        return python
    msg = (
        f"the {client} interop virtualenv ({python.parent.parent.relative_to(ROOT)}) is "
        f"missing: create it with 'make interop' (make test does)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="module", autouse=True)
def _interop_virtualenv(request: pytest.FixtureRequest) -> None:
    """Check the module's client (its ``CLIENT``) is installed before any server starts."""
    client = getattr(request.module, "CLIENT", None)
    if client is not None:
        interop_python(client)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Hub:
    engine: str
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/ngsi-ld/v1"


def _fresh_postgres_database(admin_url: str) -> tuple[str, Callable[[], None]]:
    """A new, empty database on the test server (the hub makes its schema), and its dropper."""
    import psycopg
    from psycopg import sql

    name = "cityos_interop_" + uuid.uuid4().hex[:10]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = urlunsplit(urlsplit(admin_url)._replace(path="/" + name))

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    return url, drop


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def hub(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """`python -m cityos.cli serve` on a free port, on a fresh database, for one test module."""
    tmp = tmp_path_factory.mktemp(f"interop-{request.param}")
    drop: Callable[[], None] | None = None
    if request.param == "sqlite":
        database_url = f"sqlite:///{tmp}/interop.db"
    else:
        database_url, drop = _fresh_postgres_database(request.getfixturevalue("postgres_url"))
    port = free_port()
    log = tmp / "server.log"
    env = {
        **os.environ,
        "CITYOS_DATABASE_URL": database_url,
        "CITYOS_NOTIFY_POLL_S": "0.05",
        "CITYOS_NOTIFY_BACKOFF_S": "0.1",
    }
    try:
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "cityos.cli", "serve", "--port", str(port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
    except BaseException:
        if drop is not None:
            drop()
        raise
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, f"the hub exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"the hub did not start in 30 s:\n{log.read_text()}"
            time.sleep(0.1)
        yield Hub(request.param, port, log)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if drop is not None:
            drop()


@dataclass
class Notification:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Webhook:
    url: str
    received: list[Notification] = field(default_factory=list)

    def wait_for(
        self, done: Callable[[list[Notification]], bool], timeout_s: float = 10
    ) -> list[Notification]:
        """Poll until ``done(received)`` holds; return what arrived either way."""
        deadline = time.monotonic() + timeout_s
        while not done(list(self.received)) and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.received)


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    """A tiny HTTP server that records every notification POSTed to it."""
    hook: Webhook

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            hook.received.append(
                Notification(
                    self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(raw)
                )
            )
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook = Webhook(f"http://127.0.0.1:{server.server_port}/notify")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Run:
    """What a client script reported: each step's value (or error), and the HTTP it sent."""

    steps: dict[str, Any]
    wire: list[dict[str, Any]]
    output: str

    def __getitem__(self, step: str) -> Any:
        """The value of a step that must have succeeded (its traceback otherwise)."""
        assert step in self.steps, f"step {step!r} did not run; script output:\n{self.output}"
        got = self.steps[step]
        assert got["ok"], f"step {step!r} failed:\n{got['error']}"
        return got["value"]

    def sent(self, method: str, path: str) -> list[dict[str, Any]]:
        """The requests sent with this method whose path (with its query) starts with `path`."""
        return [w for w in self.wire if w["method"] == method and w["path"].startswith(path)]

    def statuses(self, method: str, path: str) -> list[int]:
        """The statuses the hub answered those requests with, in order."""
        return [w["status"] for w in self.sent(method, path)]


@pytest.fixture(scope="module")
def run_client(
    hub: Hub, webhook: Webhook, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Run]:
    """``run_client("filip")`` runs ``tests/interop/filip_script.py`` with the interpreter of
    filip's virtualenv against this module's hub, and returns what it reported."""

    def run(client: str) -> Run:
        return _run_client(client, hub, webhook, tmp_path_factory.mktemp(client))

    return run


def _run_client(client: str, hub: Hub, webhook: Webhook, tmp_path: Path) -> Run:
    python = interop_python(client)
    out = tmp_path / f"{client}-{hub.engine}.json"
    args = {"port": hub.port, "webhook": webhook.url, "out": str(out)}
    proc = subprocess.run(
        [str(python), str(HERE / f"{client}_script.py"), json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_S,
        cwd=tmp_path,
    )
    output = f"{proc.stdout}\n{proc.stderr}\n--- hub log ---\n{hub.log.read_text()}"
    assert proc.returncode == 0 and out.exists(), f"{client} script failed:\n{output}"
    result = json.loads(out.read_text())
    wire = result.pop("wire")
    return Run(result, wire, output)
