"""Southbound MQTT: devices publish to ``/<apikey>/<device_id>/attrs`` as FIWARE agents expect,
and answer commands on ``/<apikey>/<device_id>/cmdexe``.

A payload that starts with ``{`` is JSON, anything else UltraLight 2.0. The API key finds
the tenant(s) whose service group owns it. Every message goes through the same
:class:`~cityos.devices.agent.Agent` as HTTP ingest: first the device's flood limit and the
size limit (a refused message costs no parsing and no database write), then parsing and
the entity update. A bad message is counted for its device and dropped, and never stops
the others.

Several worker processes share the stream with an MQTT 5 shared subscription
(``shared_group``): each subscribes to ``$share/<group>//+/+/attrs`` (the filter keeps its
leading ``/``), and the broker hands each message to one of them.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any
from urllib.parse import unquote, urlsplit

from cityos.devices import ultralight
from cityos.devices.agent import Agent
from cityos.devices.commands import parse_ul_result
from cityos.hub.errors import NgsiLdError

log = logging.getLogger("cityos.devices.mqtt")
TOPICS = ("/+/+/attrs", "/+/+/cmdexe")
TOPIC = TOPICS[0]


def handle(agent: Agent, topic: str, payload: bytes) -> int:
    """Apply one MQTT message; how many measure groups (or command results) were ingested."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] or parts[3] not in ("attrs", "cmdexe"):
        return 0
    apikey, device_id, kind = parts[1], parts[2], parts[3]
    tenants = agent.tenants_for(apikey)
    if not tenants:
        # no tenant owns the key, so no device can be charged with it (over HTTP the
        # fiware-service header names the tenant and the device's counters show it)
        agent.unknown_key_messages += 1
        return 0
    if not agent.admit(tenants, apikey, device_id, len(payload)):
        return 0
    done = 0
    for tenant in tenants:
        try:
            text = payload.decode("utf-8")
            is_json = text.lstrip().startswith("{")
            if kind == "cmdexe":
                results = json.loads(text) if is_json else parse_ul_result(device_id, text)
                if not isinstance(results, dict):
                    raise ValueError("a JSON command result must be an object")
                agent.command_result(tenant, apikey, device_id, results)
                done += 1
            elif is_json:
                measures: dict[str, Any] = json.loads(text)
                timestamp = measures.pop("TimeInstant", None)
                agent.ingest(tenant, apikey, device_id, measures, timestamp)
                done += 1
            else:
                for group in ultralight.parse(text):
                    agent.ingest(tenant, apikey, device_id, group.measures, group.timestamp)
                    done += 1
        except (
            ultralight.UltraLightError,
            UnicodeDecodeError,
            ValueError,  # json.JSONDecodeError included
            AttributeError,
        ) as exc:
            agent.count(tenant, device_id, ok=False, reason="MalformedPayload", detail=str(exc))
        except NgsiLdError:
            pass  # counted by the agent
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
        )
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
        try:
            handle(self.agent, msg.topic, msg.payload)
        except Exception:  # never let one message kill the ingest thread
            log.exception("MQTT message on %s failed", msg.topic)

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
