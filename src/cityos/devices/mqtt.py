"""Southbound MQTT: devices publish to ``/<apikey>/<device_id>/attrs`` as FIWARE agents expect.

A payload that starts with ``{`` is JSON, anything else UltraLight 2.0. The API key finds
the tenant(s) whose service group owns it. Every message goes through the same
:class:`~cityos.devices.agent.Agent` as HTTP ingest; a bad message is counted for its device
and dropped, and never stops the others.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import urlsplit

from cityos.devices import ultralight
from cityos.devices.agent import GROUP, Agent
from cityos.hub.errors import NgsiLdError

log = logging.getLogger("cityos.devices.mqtt")
TOPIC = "/+/+/attrs"


def handle(agent: Agent, topic: str, payload: bytes) -> int:
    """Apply one MQTT message; how many measure groups were ingested."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] or parts[3] != "attrs":
        return 0
    apikey, device_id = parts[1], parts[2]
    tenants = agent.hub.store.doc_tenants(GROUP, apikey)
    if not tenants:
        agent._count(
            "", device_id, ok=False, reason="ResourceNotFound", detail=f"unknown API key {apikey!r}"
        )
        return 0
    done = 0
    for tenant in tenants:
        try:
            text = payload.decode("utf-8")
            if text.lstrip().startswith("{"):
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
            json.JSONDecodeError,
            AttributeError,
        ) as exc:
            agent._count(tenant, device_id, ok=False, reason="MalformedPayload", detail=str(exc))
        except NgsiLdError:
            pass  # counted by the agent
    return done


class MqttIngest:
    """A paho-mqtt client on its own thread, subscribed to every device's attrs topic."""

    def __init__(self, agent: Agent, url: str) -> None:
        import paho.mqtt.client as mqtt

        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"CITYOS_MQTT_URL {url!r}: use mqtt://host:port")
        self.agent = agent
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"cityos-hub-{id(self)}"
        )
        if parts.username:
            self.client.username_pw_set(parts.username, parts.password or "")
        self.client.on_connect = lambda c, *a: c.subscribe(TOPIC, qos=1)
        self.client.on_message = self._on_message
        self.host, self.port = parts.hostname, parts.port or 1883

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            handle(self.agent, msg.topic, msg.payload)
        except Exception:  # never let one message kill the ingest thread
            log.exception("MQTT message on %s failed", msg.topic)

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
