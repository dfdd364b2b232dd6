"""A device simulator: N devices publishing UltraLight telemetry over MQTT at a chosen rate.

Used by the demo and the benchmarks; values follow a slow random walk per device so the
history looks like sensors, not noise.

What the simulator can know, and says: how many messages it published, how many the broker
acknowledged (QoS 1: :class:`BrokerAcks`), and — when it can reach the hub — whether the hub
has the service group and the devices those messages need (:func:`hub_warnings`). A broker's
acknowledgement is not a delivery to the hub: nothing tells a publisher that a subscriber
took its message.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


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


def device_ids(devices: int) -> list[str]:
    """The ids the simulator publishes as (``sim-0`` … ``sim-N-1``)."""
    return [f"sim-{i}" for i in range(devices)]


class BrokerAcks:
    """Counts the broker's acknowledgements (PUBACK) of the QoS 1 messages published through
    a paho client: install it with ``client.on_publish = acks.on_publish``."""

    def __init__(self) -> None:
        self._done = threading.Condition()
        self.acknowledged = 0
        self.failed = 0

    def on_publish(self, client: Any, userdata: Any, mid: int, *rest: Any) -> None:
        reason = rest[0] if rest else None  # paho 2: reason code, properties
        with self._done:
            if reason is not None and getattr(reason, "is_failure", False):
                self.failed += 1
            else:
                self.acknowledged += 1
            self._done.notify_all()

    def wait(self, published: int, timeout: float) -> int:
        """Wait until ``published`` messages are answered or ``timeout`` passes; the count
        acknowledged."""
        deadline = time.monotonic() + timeout
        with self._done:
            while self.acknowledged + self.failed < published:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._done.wait(left)
            return self.acknowledged


def missing_at_hub(
    groups: list[dict[str, Any]], devices: list[dict[str, Any]], apikey: str, count: int
) -> list[str]:
    """What the hub lacks for the simulator's messages to become entities: the service
    group with ``apikey``, and the devices ``sim-0`` … (under that key or none)."""
    if not any(g.get("apikey") == apikey for g in groups):
        return [
            f"the hub has no service group with API key {apikey!r}: it drops every one of "
            "these messages (provision one with `cityos devices provision`)"
        ]
    known = {d.get("device_id") for d in devices if d.get("apikey") in (None, apikey)}
    absent = [d for d in device_ids(count) if d not in known]
    if not absent:
        return []
    return [
        f"{len(absent)} of the {count} simulated devices are not provisioned at the hub "
        f"(first: {absent[0]}): it drops their messages"
    ]


def hub_warnings(url: str, apikey: str, devices: int, service: str = "") -> list[str]:
    """What the hub at ``url`` says about the simulator's messages before they are sent:
    empty when it has the service group and every device; otherwise one line per problem,
    including that the hub could not be asked."""
    import httpx

    headers = {"fiware-service": service} if service else {}
    try:
        got = [
            httpx.get(f"{url}/iot/{what}", headers=headers, timeout=5)
            for what in ("services", "devices")
        ]
    except httpx.HTTPError as exc:
        return [
            f"could not check the hub at {url} ({type(exc).__name__}): nothing says it "
            "listens to this broker or knows these devices"
        ]
    for r in got:
        if r.status_code >= 300:
            return [
                f"could not check the hub at {url} (HTTP {r.status_code} for "
                f"{r.request.url.path}): nothing says it knows these devices"
            ]
    try:
        groups, listed = got[0].json()["services"], got[1].json()["devices"]
    except (ValueError, KeyError, TypeError):
        return [f"could not check the hub at {url}: its answer is not an IoT Agent listing"]
    return missing_at_hub(groups, listed, apikey, devices)
