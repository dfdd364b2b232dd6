"""The junction cabinet on a real MQTT broker, as it would speak in the field.

:class:`~.cabinet.Cabinet` hands its messages to the hub's device agent in process (the
code an MQTT message reaches once decoded). This one publishes them instead: every
detector's and signal's readings as IoT-Agent JSON on ``/<apikey>/<device>/attrs`` (with
``TimeInstant``), received by the hub's own :class:`~cityos.devices.mqtt.MqttIngest`; it
subscribes to its signals' ``/<apikey>/<device>/cmd`` topic, where the hub's command
delivery publishes each ``setPhase``, and answers on ``/<apikey>/<device>/cmdexe``.

A simulated hour runs much faster than a real one, and the controller must decide on the
readings of the step it is in, so each step waits until the hub has taken every message
published so far and until the step's commands have arrived (a field cabinet does not
wait: its controller reads whatever the hub holds). A wait that runs out is a
:class:`~.errors.SimulationError` naming what did not arrive.
"""

from __future__ import annotations

import json
import queue
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from cityos.devices.agent import Agent, Measure
from cityos.devices.mqtt import MqttIngest

from ..errors import SimulationError
from ..signalservice import COMMAND, SIGNAL_KEY, Wiring
from .cabinet import Cabinet
from .simulation import Simulation


class MqttCabinet(Cabinet):
    """See module docstring."""

    def __init__(
        self,
        sim: Simulation,
        agent: Agent,
        tenant: str,
        wiring: Wiring,
        url: str,
        *,
        timeout_s: float = 10.0,
    ) -> None:
        import paho.mqtt.client as mqtt

        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise SimulationError(f"the cabinet needs the hub's MQTT broker, not {url!r}")
        publisher = agent.commands.publish
        super().__init__(sim, agent, tenant, wiring)
        agent.commands.publish = publisher  # commands leave the hub on the broker
        self.timeout_s = timeout_s
        self.ingest = MqttIngest(agent, url)
        self._published = 0  # messages this cabinet sent the hub
        self._arrived: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
        self._subscribed = False
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"cityos-cabinet-{uuid.uuid4().hex[:12]}"
        )
        if parts.username:
            self.client.username_pw_set(unquote(parts.username), unquote(parts.password or ""))
        if parts.scheme == "mqtts":
            self.client.tls_set()
        self.client.on_connect = lambda c, *_: c.subscribe(f"/{SIGNAL_KEY}/+/cmd", qos=1)
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = lambda _c, _u, msg: self._arrived.put((msg.topic, msg.payload))
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        try:
            self.ingest.start()
            self.client.connect(parts.hostname, port, keepalive=30)
        except OSError as exc:
            self.ingest.stop()
            raise SimulationError(f"MQTT broker {parts.hostname}:{port}: {exc}") from exc
        sock = self.client.socket()
        if sock is not None:  # small messages, each awaited: no Nagle delay on them
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client.loop_start()
        try:
            self._wait(lambda: self._subscribed and self.ingest.subscribed, "the subscriptions")
        except SimulationError:
            self._leave()
            raise

    def _on_subscribe(self, client: Any, userdata: Any, mid: Any, reasons: Any, props: Any) -> None:
        self._subscribed = not any(getattr(r, "is_failure", False) for r in reasons)

    def _send(self, measures: list[Measure], what: str) -> int:
        """Publish every message (QoS 1), then wait until the hub has taken them all.

        Refusals (flood limit, size, format) are counted by the hub on the device, as for
        any device on the broker; none is known here, so none is returned."""
        infos = []
        for m in measures:
            body = {**m.measures, **({"TimeInstant": m.timestamp} if m.timestamp else {})}
            topic = f"/{m.apikey}/{m.device_id}/attrs"
            infos.append(self.client.publish(topic, json.dumps(body), qos=1))
        for info in infos:
            info.wait_for_publish(timeout=self.timeout_s)
        self._published += len(infos)
        self._settle(what)
        return 0

    def _answer(self, device: str, result: str) -> None:
        self.client.publish(f"/{SIGNAL_KEY}/{device}/cmdexe", json.dumps({COMMAND: result}), qos=1)
        self._published += 1

    def await_commands(self, expected: int) -> None:
        """Take the step's commands off the broker: ``expected`` of them, or fail."""
        got = 0
        deadline = time.monotonic() + self.timeout_s
        while got < expected:
            try:
                topic, payload = self._arrived.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise SimulationError(
                    f"{expected - got} of {expected} setPhase commands did not arrive over "
                    f"MQTT within {self.timeout_s:g} s"
                ) from None
            self._receive(topic, payload)
            got += 1

    def close(self) -> None:
        """Let the hub take the last answers, then leave the broker."""
        try:
            self._settle("the last command answers")
        finally:
            self._leave()

    def _leave(self) -> None:
        self.client.disconnect()  # first: it wakes the network thread for loop_stop
        self.client.loop_stop()
        self.ingest.stop()

    def _settle(self, what: str) -> None:
        self._wait(lambda: self.ingest.messages >= self._published, f"{what} (into the hub)")

    def _wait(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self.timeout_s
        while not done():
            if time.monotonic() > deadline:
                raise SimulationError(f"waited {self.timeout_s:g} s for {what} over MQTT")
            time.sleep(0.001)
