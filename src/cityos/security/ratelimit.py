"""Rate limits: a token bucket per client (and per device), in-process or shared through Redis.

A bucket holds ``burst`` tokens and refills at ``rate`` tokens a second; each request takes
one, and a request that finds it empty is answered 429 with ``Retry-After`` (the seconds
until a token is back) before it is read or touches the database.

* In-process (:class:`LocalBuckets`): each worker has its own buckets; with ``--workers N`` a
  client's budget is N times the setting.
* Redis (:class:`RedisBuckets`, :class:`AsyncRedisBuckets`, ``CITYOS_REDIS_URL``): one bucket
  per client for all workers and machines. A bucket is one Redis key holding its
  *theoretical arrival time* (GCRA: the token bucket kept as one number); a Lua script reads
  the clock of the Redis server (so the workers' clocks need not agree), decides and updates
  in one atomic round trip, and the key expires once the bucket is full again. Should Redis
  fail, the worker falls back to its own in-process buckets (and logs it) rather than
  refusing or letting everything through.

Why not a library: ``limits`` (not installed) has no token bucket; ``pyrate-limiter`` (4.x,
here only through schemathesis, a test tool) has the same GCRA as a Redis Lua script, but it
needs a bucket object per key, and stamps each request with the worker's own wall clock.

The client is ``request.state.principal`` (its ``subject``) when an authentication layer in
front of this middleware has set one, else the client address (behind a reverse proxy, let
uvicorn read ``X-Forwarded-For`` from it: ``--forwarded-allow-ips``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cityos.hub.errors import NgsiLdError, problem_media

log = logging.getLogger("cityos.ratelimit")

CLIENT_PREFIX = "cityos:rate:client:"
DEVICE_PREFIX = "cityos:rate:device:"


class TooManyRequests(NgsiLdError):
    """Over the rate limit: HTTP 429 with Retry-After (NGSI-LD has no type of its own)."""

    type_name = "InvalidRequest"
    status = 429
    title = "Too many requests"


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after_s: float = 0.0  # when not allowed: seconds until a token is back

    @property
    def retry_after_header(self) -> str:
        return str(max(1, math.ceil(self.retry_after_s)))


ALLOWED = Verdict(True)


# ---------------------------------------------------------------------------------------
# in-process buckets
# ---------------------------------------------------------------------------------------


class LocalBuckets:
    """Token buckets in this process, by key; full (idle) ones are pruned as it goes."""

    PRUNE_EVERY = 10_000  # takes between two prunes

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = float(rate)
        self.burst = max(1, int(burst))
        self.clock = clock
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()
        self._takes = 0

    def take(self, key: Hashable) -> Verdict:
        if self.rate <= 0:
            return ALLOWED
        now = self.clock()
        with self._lock:
            self._takes += 1
            if self._takes >= self.PRUNE_EVERY:
                self._takes = 0
                self._prune(now)
            tokens, at = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return Verdict(False, (1.0 - tokens) / self.rate)
            self._buckets[key] = (tokens - 1.0, now)
            return ALLOWED

    def _prune(self, now: float) -> int:
        full = [
            k
            for k, (tokens, at) in self._buckets.items()
            if tokens + (now - at) * self.rate >= self.burst
        ]
        for k in full:
            del self._buckets[k]
        return len(full)

    def prune(self) -> int:
        with self._lock:
            return self._prune(self.clock())

    def __len__(self) -> int:
        return len(self._buckets)


# ---------------------------------------------------------------------------------------
# Redis buckets
# ---------------------------------------------------------------------------------------

# KEYS[1]: the bucket; ARGV: rate (tokens/s), burst. Returns {allowed, wait in microseconds}.
# State: the theoretical arrival time (TAT, microseconds of the server clock); the bucket
# holds (burst - (TAT - now) / emission) tokens, so it is empty when TAT - now > burst*em.
TOKEN_BUCKET_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local emission = 1000000 / rate
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then
    tat = now
end
local new_tat = tat + emission
local allow_at = new_tat - burst * emission
if allow_at > now then
    return {0, math.ceil(allow_at - now)}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX',
           math.ceil((new_tat - now) / 1000) + 1000)
return {1, 0}
"""


def _verdict(reply: Any) -> Verdict:
    allowed, wait_us = int(reply[0]), int(reply[1])
    return ALLOWED if allowed else Verdict(False, wait_us / 1e6)


def _key_text(key: Hashable) -> str:
    if isinstance(key, str):
        return key
    return orjson.dumps(list(key) if isinstance(key, tuple) else key).decode()


class _Fallback:
    """In-process buckets standing in while Redis fails; says so in the log once a minute."""

    def __init__(self, rate: float, burst: int, url: str) -> None:
        self.local = LocalBuckets(rate, burst)
        self.url = url
        self._logged = 0.0

    def take(self, key: Hashable, exc: Exception) -> Verdict:
        now = time.monotonic()
        if now - self._logged > 60:
            self._logged = now
            log.warning(
                "rate limits: Redis at %s failed (%s); using this worker's own buckets",
                self.url,
                exc,
            )
        return self.local.take(key)


class RedisBuckets:
    """Token buckets in Redis shared by every worker (synchronous client: devices, tools)."""

    def __init__(
        self,
        url: str,
        rate: float,
        burst: int,
        *,
        prefix: str = CLIENT_PREFIX,
        client: Any = None,
    ) -> None:
        import redis

        self.rate = float(rate)
        self.burst = max(1, int(burst))
        self.prefix = prefix
        self.client = client or redis.Redis.from_url(
            url, socket_timeout=1.0, socket_connect_timeout=1.0
        )
        self._script = self.client.register_script(TOKEN_BUCKET_LUA)
        self._fallback = _Fallback(rate, burst, url)

    def take(self, key: Hashable) -> Verdict:
        if self.rate <= 0:
            return ALLOWED
        import redis

        try:
            reply = self._script(keys=[self.prefix + _key_text(key)], args=[self.rate, self.burst])
        except (redis.RedisError, OSError) as exc:
            return self._fallback.take(key, exc)
        return _verdict(reply)

    def close(self) -> None:
        self.client.close()


class AsyncRedisBuckets:
    """The same buckets through ``redis.asyncio``: one client per event loop (a client's
    connections belong to the loop that opened them)."""

    def __init__(self, url: str, rate: float, burst: int, *, prefix: str = CLIENT_PREFIX) -> None:
        self.url = url
        self.rate = float(rate)
        self.burst = max(1, int(burst))
        self.prefix = prefix
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Any, Any]] = (
            weakref.WeakKeyDictionary()
        )
        self._fallback = _Fallback(rate, burst, url)

    def _script(self) -> Any:
        loop = asyncio.get_running_loop()
        held = self._clients.get(loop)
        if held is None:
            import redis.asyncio

            client = redis.asyncio.Redis.from_url(
                self.url, socket_timeout=1.0, socket_connect_timeout=1.0
            )
            held = (client, client.register_script(TOKEN_BUCKET_LUA))
            self._clients[loop] = held
        return held[1]

    async def take(self, key: Hashable) -> Verdict:
        if self.rate <= 0:
            return ALLOWED
        import redis

        try:
            reply = await self._script()(
                keys=[self.prefix + _key_text(key)], args=[self.rate, self.burst]
            )
        except (TimeoutError, redis.RedisError, OSError) as exc:
            return self._fallback.take(key, exc)
        return _verdict(reply)

    async def aclose(self) -> None:
        """Close this loop's client (at shutdown)."""
        held = self._clients.pop(asyncio.get_running_loop(), None)
        if held is not None:
            await held[0].aclose()


# ---------------------------------------------------------------------------------------
# the HTTP middleware
# ---------------------------------------------------------------------------------------


def client_key(scope: Scope) -> str:
    """Whose budget a request spends: the authenticated principal, else the client address."""
    state = scope.get("state")
    principal = state.get("principal") if isinstance(state, dict) else None
    if principal is not None:
        return "p:" + str(getattr(principal, "subject", None) or principal)
    client = scope.get("client")
    return "ip:" + (str(client[0]) if client else "unknown")


class RateLimit:
    """Pure ASGI middleware: 429 + Retry-After + an NGSI-LD problem over the budget.

    ``exempt``: paths never limited (``/health``, for load balancers and orchestrators)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        rate: float,
        burst: int,
        redis_url: str = "",
        exempt: frozenset[str] = frozenset({"/health"}),
        key: Callable[[Scope], str] = client_key,
    ) -> None:
        self.app = app
        self.rate = float(rate)
        self.burst = max(1, int(burst))
        self.exempt = exempt
        self.key = key
        self.local = LocalBuckets(rate, burst)
        self.shared = AsyncRedisBuckets(redis_url, rate, burst) if redis_url else None

    async def take(self, key: str) -> Verdict:
        if self.shared is not None:
            return await self.shared.take(key)
        return self.local.take(key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" and self.shared is not None:
            shared = self.shared

            async def closing(message: Message) -> None:
                if message["type"] == "lifespan.shutdown.complete":
                    await shared.aclose()
                await send(message)

            await self.app(scope, receive, closing)
            return
        if scope["type"] != "http" or self.rate <= 0 or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        key = self.key(scope)
        verdict = await self.take(key)
        if verdict.allowed:
            await self.app(scope, receive, send)
            return
        retry = verdict.retry_after_header
        who = key.split(":", 1)[1]
        err = TooManyRequests(
            f"{who} is over its limit of {self.rate:g} requests/s (burst {self.burst}); "
            f"retry after {retry} s"
        )
        body = orjson.dumps(err.to_problem(scope.get("path")))
        accept = Headers(scope=scope).get("accept")
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", problem_media(accept).encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", retry.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
