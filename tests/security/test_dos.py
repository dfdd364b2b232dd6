"""Denial of service and robustness (issue 11): logins bounded before hashing, remote
@context fetches off the event loop with a total deadline, and forwarded client addresses
trusted only from configured proxies. Delivery robustness is in
tests/hub/api/test_subscriptions_api.py."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from cityos.config import Settings
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
