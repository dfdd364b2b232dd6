"""Southbound MQTT: devices publish to ``/<apikey>/<device_id>/attrs`` as FIWARE agents expect,
and answer commands on ``/<apikey>/<device_id>/cmdexe``.

A payload that starts with ``{`` is JSON, anything else UltraLight 2.0. The API key finds
the tenant(s) whose service group owns it. Every message goes through the same
:class:`~cityos.devices.agent.Agent` as HTTP ingest: first the device's flood limit and the
size limit (a refused message costs no parsing and no database write), then parsing and
the entity update. A bad message is counted for its device and dropped, and never stops
the others.

The network thread only queues messages; an ingest thread takes whatever has queued up and
applies it in one transaction per tenant (group commit), then acknowledges each QoS 1
message, so a message is acknowledged only once it is stored (a crash before that makes the
broker send it again). How many messages one transaction takes grows with the load: one when
the stream is quiet, up to ``BATCH_MAX`` (and the broker's in-flight window) when it is busy.

Several worker processes share the stream with an MQTT 5 shared subscription
(``shared_group``): each subscribes to ``$share/<group>//+/+/attrs`` (the filter keeps its
leading ``/``), and the broker hands each message to one of them.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import uuid
from typing import Any
from urllib.parse import unquote, urlsplit

from cityos.devices import ultralight
from cityos.devices.agent import Agent, Measure
from cityos.devices.commands import parse_ul_result
from cityos.hub.errors import NgsiLdError

log = logging.getLogger("cityos.devices.mqtt")
TOPICS = ("/+/+/attrs", "/+/+/cmdexe")
TOPIC = TOPICS[0]
BATCH_MAX = 500  # messages applied in one transaction, at most


def parse(agent: Agent, topic: str, payload: bytes) -> tuple[list[Measure], int]:
    """One MQTT message: the measures it carries (admitted and parsed, not yet applied), and
    how many command results it applied. Refused and malformed messages are counted."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] or parts[3] not in ("attrs", "cmdexe"):
        return [], 0
    apikey, device_id, kind = parts[1], parts[2], parts[3]
    tenants = agent.tenants_for(apikey)
    if not tenants:
        # no tenant owns the key, so no device can be charged with it (over HTTP a
        # fiware-service header may name the tenant and the device's counters show it)
        agent.unknown_key_messages += 1
        return [], 0
    if not agent.admit(tenants, apikey, device_id, len(payload)):
        return [], 0
    measures: list[Measure] = []
    commands = 0
    for tenant in tenants:
        try:
            text = payload.decode("utf-8")
            is_json = text.lstrip().startswith("{")
            if kind == "cmdexe":
                results = json.loads(text) if is_json else parse_ul_result(device_id, text)
                if not isinstance(results, dict):
                    raise ValueError("a JSON command result must be an object")
                agent.command_result(tenant, apikey, device_id, results)
                commands += 1
            elif is_json:
                values = json.loads(text)
                if not isinstance(values, dict):
                    raise ValueError("a JSON measure must be an object")
                timestamp = values.pop("TimeInstant", None)
                measures.append(Measure(tenant, apikey, device_id, values, timestamp))
            else:
                for group in ultralight.parse(text):
                    measures.append(
                        Measure(tenant, apikey, device_id, group.measures, group.timestamp)
                    )
        except (
            ultralight.UltraLightError,
            UnicodeDecodeError,
            ValueError,  # json.JSONDecodeError included
            AttributeError,
        ) as exc:
            agent.count(tenant, device_id, ok=False, reason="MalformedPayload", detail=str(exc))
        except NgsiLdError:
            pass  # counted by the agent
    return measures, commands


def handle(agent: Agent, topic: str, payload: bytes) -> int:
    """Apply one MQTT message; how many measure groups (or command results) were ingested."""
    measures, done = parse(agent, topic, payload)
    if measures:
        done += sum(1 for _, error in agent.ingest_many(measures) if error is None)
    return done


def handle_many(agent: Agent, messages: list[tuple[str, bytes]]) -> int:
    """Apply a run of MQTT messages with one transaction per tenant (group commit): at a
    high message rate the commit, not the parsing, is what each message would pay for."""
    measures: list[Measure] = []
    done = 0
    for topic, payload in messages:
        found, commands = parse(agent, topic, payload)
        measures += found
        done += commands
    if measures:
        done += sum(1 for _, error in agent.ingest_many(measures) if error is None)
    return done


class MqttIngest:
    """A paho-mqtt client on its own thread, subscribed to every device's attrs and cmdexe
    topics; with ``shared_group``, an MQTT 5 client in that shared subscription group."""

    def __init__(self, agent: Agent, url: str, *, shared_group: str | None = None) -> None:
        import paho.mqtt.client as mqtt

        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"CITYOS_MQTT_URL {url!r}: use mqtt://host:port")
        if shared_group is not None and (
            not shared_group
            or any(c in shared_group for c in "/+#")
            or shared_group.strip() != shared_group
        ):
            raise ValueError(f"MQTT shared group {shared_group!r}: a name without / + # or spaces")
        self.agent = agent
        self.shared_group = shared_group
        self.topics = [f"$share/{shared_group}/{t}" if shared_group else t for t in TOPICS]
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"cityos-hub-{uuid.uuid4().hex[:12]}",
            protocol=mqtt.MQTTv5 if shared_group else mqtt.MQTTv311,
            manual_ack=True,  # a QoS 1 message is acknowledged once it is committed
        )
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self.batches = 0  # transactions the stream was cut into (for the curious)
        self.messages = 0  # messages applied (or refused), for a caller that waits on them
        if parts.username:
            self.client.username_pw_set(unquote(parts.username), unquote(parts.password or ""))
        if parts.scheme == "mqtts":
            self.client.tls_set()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.host = parts.hostname
        self.port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        self.subscribed = False  # set once the broker granted the subscriptions

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if getattr(reason, "is_failure", False):
            log.error("MQTT broker %s:%s refused the hub: %s", self.host, self.port, reason)
            return
        client.subscribe([(t, 1) for t in self.topics])

    def _on_subscribe(self, client: Any, userdata: Any, mid: Any, reasons: Any, props: Any) -> None:
        failed = [r for r in reasons if getattr(r, "is_failure", False)]
        if failed:
            log.error("MQTT subscription to %s refused: %s", self.topics, failed)
        else:
            self.subscribed = True

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        self._queue.put(msg)  # the network thread only queues; the ingest thread applies

    def _ingest_loop(self) -> None:
        """Take whatever has queued up (one message when the stream is quiet, up to
        BATCH_MAX when it is busy), apply it in one go, then acknowledge it."""
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < BATCH_MAX:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            try:
                handle_many(self.agent, [(m.topic, m.payload) for m in batch])
            except Exception:  # never let one bad run of messages kill the ingest
                log.exception("MQTT ingest of %d messages failed", len(batch))
            self.batches += 1
            self.messages += len(batch)
            for m in batch:
                if m.qos > 0:
                    self.client.ack(m.mid, m.qos)
            if stop:
                return

    def start(self) -> None:
        self._worker = threading.Thread(
            target=self._ingest_loop, name="cityos-mqtt-ingest", daemon=True
        )
        self._worker.start()
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self._queue.put(None)
        if self._worker is not None:
            self._worker.join(timeout=10)
