"""Flood limits: a token bucket per device, so one device's flood never starves the others.

Each device (API key and device id) may send ``burst`` messages at once and ``rate`` per
second after that; a message beyond it is rejected before it is parsed or touches the
database, so a rejected message costs a dictionary look-up. Buckets that have refilled are
dropped by :meth:`RateLimiter.prune`, so a flood of invented device ids cannot grow memory
past what arrived in one prune interval.

With ``redis_url`` (``CITYOS_REDIS_URL``) the buckets live in Redis instead, shared by every
worker (:class:`cityos.security.ratelimit.RedisBuckets`; Redis expires idle ones itself).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable


class RateLimiter:
    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        redis_url: str = "",
    ) -> None:
        self.rate = float(rate)
        self.burst = max(1, int(burst))
        self.clock = clock
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()
        self._shared = None  # hardening: buckets shared by all workers through Redis
        if redis_url and self.rate > 0:
            from cityos.security.ratelimit import DEVICE_PREFIX, RedisBuckets

            self._shared = RedisBuckets(redis_url, self.rate, self.burst, prefix=DEVICE_PREFIX)

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def allow(self, key: Hashable) -> bool:
        """Take one token for ``key``; False when its bucket is empty (the message is dropped)."""
        if self.rate <= 0:
            return True
        if self._shared is not None:
            return self._shared.take(key).allowed
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return False
            self._buckets[key] = (tokens - 1.0, now)
            return True

    def prune(self) -> int:
        """Forget the buckets that are full again (idle devices); how many were dropped."""
        now = self.clock()
        with self._lock:
            full = [
                k
                for k, (tokens, at) in self._buckets.items()
                if tokens + (now - at) * self.rate >= self.burst
            ]
            for k in full:
                del self._buckets[k]
        return len(full)

    def __len__(self) -> int:
        return len(self._buckets)
