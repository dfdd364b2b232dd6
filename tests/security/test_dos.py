"""Denial of service and robustness (issue 11): logins bounded before hashing, remote
@context fetches off the event loop with a total deadline, and forwarded client addresses
trusted only from configured proxies. Delivery robustness is in
tests/hub/api/test_subscriptions_api.py."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from cityos.config import Settings
from cityos.hub.errors import LdContextNotAvailable
from cityos.hub.ldcontext import ContextResolver, link_header_for
from cityos.security import users
from cityos.security.tokens import routes


# -- 1. logins: a bounded number of argon2 hashes, refused early beyond ----------------------
class _HeldHasher:
    """argon2's hasher, but ``verify`` waits until released, counting who is inside."""

    def __init__(self) -> None:
        self.real = users.PasswordHasher()
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.inside = 0
        self.most_inside = 0
        self.verified = 0

    def hash(self, password: str) -> str:
        return self.real.hash(password)

    def check_needs_rehash(self, hashed: str) -> bool:
        return self.real.check_needs_rehash(hashed)

    def verify(self, hashed: str, password: str) -> bool:
        with self.lock:
            self.inside += 1
            self.verified += 1
            self.most_inside = max(self.most_inside, self.inside)
        try:
            assert self.release.wait(30), "the test never released the hashes"
            return self.real.verify(hashed, password)
        finally:
            with self.lock:
                self.inside -= 1


@pytest.fixture
def held(monkeypatch) -> _HeldHasher:
    hasher = _HeldHasher()
    monkeypatch.setattr(users, "_hasher", hasher)
    monkeypatch.setattr(users, "_dummy_hash", None)
    monkeypatch.setattr(users, "_gates", {})
    return hasher


def _token_app(store: Any, tmp_path: Any, **limits: int) -> Starlette:
    web = Starlette(routes=routes())
    settings = Settings(token_key_path=str(tmp_path / "token-key.pem"), **limits)
    web.state.hub = SimpleNamespace(settings=settings, store=store)
    return web


async def _logins(
    web: Starlette, held: _HeldHasher, forms: list[tuple[str, dict[str, str]]], refused: int
) -> list[httpx.Response]:
    """Send the logins at once (each from its client address); once ``refused`` have been
    answered while the admitted ones hash, release the hashes and collect every answer."""

    async def one(client: str, form: dict[str, str]) -> httpx.Response:
        transport = httpx.ASGITransport(app=web, client=(client, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as c:
            return await c.post("/auth/token", data=form)

    tasks = [asyncio.create_task(one(client, form)) for client, form in forms]
    for _ in range(3000):  # until the refusals are in (they never wait for a hash)
        if sum(t.done() for t in tasks) >= refused:
            break
        await asyncio.sleep(0.01)
    early = sum(t.done() for t in tasks)
    held.release.set()
    answers = await asyncio.gather(*tasks)
    assert early == refused, f"{early} answered before any hash finished, not {refused}"
    return list(answers)


def _wrong(name: str) -> dict[str, str]:
    return {"grant_type": "password", "username": name, "password": "wrong-password-1"}


def test_a_login_flood_hashes_a_few_at_a_time_and_refuses_the_rest_early(
    store, tmp_path, held
) -> None:
    users.add_user(store, "sokha", "monivong-1993", tenants=["phnom-penh"], roles=["resident"])
    web = _token_app(
        store,
        tmp_path,
        auth_max_concurrent_hashes=2,
        auth_hash_queue=2,
        auth_max_logins_per_client=100,
    )
    # known and unknown names alike: the gate does not tell which names exist
    forms = [("127.0.0.1", _wrong("sokha" if i % 2 else "nobody")) for i in range(12)]
    answers = asyncio.run(_logins(web, held, forms, refused=8))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [400] * 4 + [503] * 8
    for r in answers:
        if r.status_code == 503:
            assert r.headers["retry-after"] == "1"
            assert r.headers["content-type"].startswith("application/problem+json")
            problem = r.json()
            assert problem["type"].endswith("/InvalidRequest") and "retry" in problem["detail"]
        else:
            assert r.json()["error"] == "invalid_grant"
    assert held.most_inside == 2  # never more than auth_max_concurrent_hashes at once
    assert held.verified == 4  # the refused logins cost no hash at all
    ok = {"grant_type": "password", "username": "sokha", "password": "monivong-1993"}
    again = asyncio.run(_logins(web, held, [("127.0.0.1", ok)], refused=0))
    assert again[0].status_code == 200  # the gate was given back


def test_a_client_already_guessing_is_refused_while_others_log_in(store, tmp_path, held) -> None:
    users.add_user(store, "dara", "riverside-2024", tenants=["phnom-penh"], roles=["resident"])
    web = _token_app(
        store,
        tmp_path,
        auth_max_concurrent_hashes=2,
        auth_hash_queue=8,
        auth_max_logins_per_client=1,
    )
    right = {"grant_type": "password", "username": "dara", "password": "riverside-2024"}
    forms = [("203.0.113.9", _wrong("dara")) for _ in range(6)] + [("198.51.100.4", right)]
    answers = asyncio.run(_logins(web, held, forms, refused=5))
    guesser, other = answers[:6], answers[6]
    assert sorted(r.status_code for r in guesser) == [400] + [429] * 5
    refused = next(r for r in guesser if r.status_code == 429)
    assert refused.headers["retry-after"] == "1"
    assert "203.0.113.9" in refused.json()["detail"]
    assert other.status_code == 200, other.text
    assert held.verified == 2


# -- a real `cityos serve` -------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(tmp_path: Any, **env: str) -> Iterator[str]:
    """`cityos serve` on a free port with these CITYOS_* settings; yields its base URL."""
    port = _free_port()
    environ = {**os.environ, "CITYOS_DATABASE_URL": f"sqlite:///{tmp_path}/dos.db", **env}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cityos.cli", "serve", "--port", str(port)],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, "cityos serve exited"
            time.sleep(0.1)
        else:
            raise AssertionError("cityos serve did not start")
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


# -- 2. a slow remote @context never blocks the event loop, and has a total deadline ---------
class DripServer:
    """An HTTP server that answers every GET with a status line, then one header line every
    50 ms for a minute: each read gets a byte, so no per-read timeout ever fires."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.asked = threading.Event()  # a client sent its request
        self.cut = threading.Event()  # a client hung up while it was being dripped on
        self.connections = 0
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def url(self, path: str = "/slow.jsonld") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            self.asked.set()
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                for i in range(1200):
                    if self.stop.is_set():
                        return
                    conn.sendall(f"X-Drip-{i}: x\r\n".encode())
                    time.sleep(0.05)
            except OSError:
                self.cut.set()

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture
def drip() -> Iterator[DripServer]:
    server = DripServer()
    yield server
    server.close()


def test_a_dripping_context_is_cut_at_the_total_deadline(drip) -> None:
    resolver = ContextResolver(
        allow_hosts={"127.0.0.1"}, allow_private_hosts={"127.0.0.1"}, timeout=0.5
    )
    with pytest.raises(LdContextNotAvailable, match="within 0.5 s") as caught:
        resolver.resolve(drip.url())
    assert drip.url() in caught.value.detail
    assert drip.cut.wait(5)  # the hub hung up; the drip had a minute left
    with pytest.raises(LdContextNotAvailable):  # remembered for a moment: not asked again
        resolver.resolve(drip.url())
    assert drip.connections == 1


def test_a_fetch_asked_for_on_the_event_loop_goes_to_the_background(drip) -> None:
    resolver = ContextResolver(
        allow_hosts={"127.0.0.1"}, allow_private_hosts={"127.0.0.1"}, timeout=0.5
    )

    async def on_the_loop() -> None:
        with pytest.raises(LdContextNotAvailable, match="being fetched"):
            resolver.resolve(drip.url())  # returns at once; the fetch runs in a thread

    asyncio.run(on_the_loop())
    assert drip.asked.wait(5)  # the background fetch did ask
    assert drip.cut.wait(5)


def test_health_answers_while_a_slow_context_is_fetched(tmp_path, drip) -> None:
    settings = {
        "CITYOS_CONTEXT_ALLOW_HOSTS": "127.0.0.1",
        "CITYOS_CONTEXT_ALLOW_PRIVATE_HOSTS": "127.0.0.1",
        "CITYOS_CONTEXT_FETCH_TIMEOUT_S": "3",
    }
    with served(tmp_path, **settings) as base:
        answers: list[httpx.Response] = []
        done = threading.Event()

        def ask_with_the_slow_context() -> None:
            headers = {"Link": link_header_for(drip.url())}
            answers.append(
                httpx.get(f"{base}/ngsi-ld/v1/entities?type=Road", headers=headers, timeout=30)
            )
            done.set()

        asking = threading.Thread(target=ask_with_the_slow_context)
        asking.start()
        assert drip.asked.wait(10)  # the hub is fetching the context now
        health = httpx.get(f"{base}/health", timeout=30)
        assert health.status_code == 200
        assert not done.is_set()  # /health answered while the context was still dripping
        asking.join(30)
        r = answers[0]
        assert r.status_code == 503, r.text
        problem = r.json()
        assert problem["type"].endswith("/LdContextNotAvailable")
        assert drip.url() in problem["detail"]
        assert drip.cut.wait(5)  # cut at the deadline, not when the drip ended


# -- 4. X-Forwarded-For only from trusted proxies ----------------------------------------------
def _limited_client_seen(base: str) -> str:
    """Ask with a new X-Forwarded-For each time until the rate limiter refuses; the client
    it names. A limiter that believed the header would never refuse (each a new bucket)."""
    with httpx.Client(base_url=base, timeout=10) as c:
        for i in range(6):
            r = c.get("/ngsi-ld/v1/types", headers={"X-Forwarded-For": f"198.51.100.{i + 1}"})
            if r.status_code == 429:
                return r.json()["detail"].split(" ", 1)[0]
    return "nobody refused"


LIMITS = {"CITYOS_RATE_BURST": "2", "CITYOS_RATE_PER_S": "0.01"}


def test_forwarded_for_is_ignored_unless_the_proxy_is_trusted(tmp_path) -> None:
    with served(tmp_path, **LIMITS) as base:
        assert _limited_client_seen(base) == "127.0.0.1"


def test_forwarded_for_is_believed_from_a_trusted_proxy(tmp_path) -> None:
    with served(tmp_path, CITYOS_TRUSTED_PROXIES="127.0.0.1", **LIMITS) as base:
        assert _limited_client_seen(base) == "nobody refused"
        with httpx.Client(base_url=base, timeout=10) as c:
            forged = {"X-Forwarded-For": "203.0.113.50"}
            statuses = [c.get("/ngsi-ld/v1/types", headers=forged).status_code for _ in range(3)]
            assert statuses[-1] == 429
            assert (
                c.get("/ngsi-ld/v1/types", headers=forged)
                .json()["detail"]
                .startswith("203.0.113.50")
            )
