"""A device simulator: N devices publishing UltraLight telemetry over MQTT at a chosen rate.

Used by the demo and the benchmarks; values follow a slow random walk per device so the
history looks like sensors, not noise.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class SimulationResult:
    messages: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


def simulate(
    publish: Callable[[str, bytes], None],
    *,
    apikey: str,
    devices: int,
    rate: float,
    seconds: float,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> SimulationResult:
    """Publish ``rate`` messages/s spread over ``devices`` devices for ``seconds``."""
    if devices < 1 or rate <= 0 or seconds <= 0:
        raise ValueError("devices, rate and seconds must be positive")
    rng = random.Random(seed)
    level = [rng.uniform(100, 900) for _ in range(devices)]
    total = int(rate * seconds)
    start = time.perf_counter()
    for n in range(total):
        i = n % devices
        level[i] = min(1500.0, max(0.0, level[i] + rng.gauss(0, 25)))
        speed = max(5.0, 45.0 - level[i] / 40 + rng.gauss(0, 2))
        publish(f"/{apikey}/sim-{i}/attrs", f"i|{round(level[i])}|s|{speed:.1f}".encode())
        if progress is not None:
            progress(1)
        ahead = (n + 1) / rate - (time.perf_counter() - start)
        if ahead > 0:
            time.sleep(ahead)
    return SimulationResult(total, time.perf_counter() - start)
