"""Commands to devices, as the FIWARE IoT Agents send them, driven by hub subscriptions.

A device (or its service group) provisioned with ``"commands": [{"name": "switch", "type":
"command"}]`` gets, on its entity, a ``switch`` attribute plus ``switch_status`` and
``switch_info``. Commands reach devices through hub subscriptions that notify the
in-process endpoint ``local://cityos-device-commands``: one per tenant, command name and
entity type (id :func:`subscription_id`), watching that one attribute on entities of that
type — a handful per tenant, however many devices, so writes do not pay for a matcher per
device, and a notification says which command was patched even when the value is the same.
The receiver finds the device by the entity id (a small index kept at provisioning).
Every process registers that receiver, so whichever worker delivers the outbox sends the
command. Patching ``switch`` (``PATCH /ngsi-ld/v1/entities/{id}/attrs/switch``) then:

1. sets ``switch_status`` to ``PENDING`` (before publishing, so a fast answer is not
   overwritten);
2. publishes to ``/<apikey>/<device_id>/cmd`` (QoS 1): UltraLight ``<device_id>@switch|<value>``
   or, for JSON devices, ``{"switch": <value>}``; a failed publish sets ``ERROR`` and the
   reason in ``switch_info``;
3. the device answers on ``/<apikey>/<device_id>/cmdexe`` (or over HTTP, ``/iot/d`` or
   ``/iot/json/commands``) with ``<device_id>@switch|<result>`` or ``{"switch": <result>}``:
   ``switch_status`` becomes ``OK`` and ``switch_info`` the result;
4. a command still ``PENDING`` after ``device_command_timeout_s`` becomes ``ERROR`` with
   ``switch_info`` ``EXPIRED``.

Writing ``_status``/``_info`` does not re-trigger the command: the subscription watches the
command attribute only, and only its updates (``notificationTrigger: attributeUpdated``), so
provisioning another device (its entity created with the command attributes) sends nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from cityos.devices import ultralight
from cityos.devices.book import DeviceBook
from cityos.hub.errors import AlreadyExists, BadRequestData, ResourceNotFound
from cityos.hub.model import now_iso
from cityos.hub.representation import parse_attributes
from cityos.hub.subscriptions import parse_subscription

log = logging.getLogger("cityos.devices.commands")

RECEIVER = "cityos-device-commands"
SUBSCRIPTION_PREFIX = "urn:ngsi-ld:Subscription:cityos-device-commands:"
COMMAND_ENTITY = "iot-command-entity"  # registry: entity id -> the device whose commands it has
PENDING, OK, ERROR, UNKNOWN = "PENDING", "OK", "ERROR", "UNKNOWN"
EXPIRED = "EXPIRED"


def subscription_id(tenant: str, command: str, entity_type: str) -> str:
    """The subscription for one command on one entity type in a tenant; the id tells the
    receiver the tenant (a notification does not) and the command."""
    return (
        f"{SUBSCRIPTION_PREFIX}{quote(tenant, safe='')}:{quote(command, safe='')}:"
        f"{quote(entity_type, safe='')}"
    )


def parse_subscription_id(sub_id: str) -> tuple[str, str, str] | None:
    """(tenant, command, entity type) from a command subscription's id."""
    if not sub_id.startswith(SUBSCRIPTION_PREFIX):
        return None
    parts = sub_id[len(SUBSCRIPTION_PREFIX) :].split(":")
    if len(parts) != 3:
        return None
    return unquote(parts[0]), unquote(parts[1]), unquote(parts[2])


def is_json_device(device: dict[str, Any], group: dict[str, Any] | None) -> bool:
    """JSON (IoT Agent JSON) or UltraLight: the device's, else the group's, ``protocol``
    (``PDI-IoTA-JSON``, ``IoTA-JSON``, …) or a ``payloadType`` (only the JSON agent has one)."""
    for doc in (device, group or {}):
        protocol = doc.get("protocol")
        if isinstance(protocol, str) and protocol:
            return "json" in protocol.lower()
        if doc.get("payloadType"):
            return True
    return False


def _ul_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def encode_command(device_id: str, name: str, value: Any, *, json_payload: bool) -> bytes:
    """The ``/cmd`` payload: ``{"<name>": <value>}`` or UltraLight ``<device_id>@<name>|<value>``
    (an object value becomes ``|key=value`` pairs, as the FIWARE UltraLight agent does)."""
    if json_payload:
        return json.dumps({name: value}, separators=(",", ":")).encode()
    if isinstance(value, dict):
        params = "".join(f"|{k}={_ul_value(v)}" for k, v in value.items())
        return f"{device_id}@{name}{params}".encode()
    return f"{device_id}@{name}|{_ul_value(value)}".encode()


def parse_ul_result(device_id: str, text: str) -> dict[str, str]:
    """``<device_id>@<command>|<result>`` -> {command: result}."""
    head, sep, result = text.strip().partition("|")
    target, at, command = head.partition("@")
    if not at or not command:
        raise ultralight.UltraLightError(
            f"a command result is <device_id>@<command>|<result>, got {text[:80]!r}"
        )
    if target != device_id:
        raise ultralight.UltraLightError(
            f"a command result for device {target!r} arrived as device {device_id!r}"
        )
    return {command: result if sep else ""}


def publish_mqtt(url: str, topic: str, payload: bytes, timeout_s: float) -> tuple[bool, str | None]:
    """Publish one message (QoS 1) and wait for the broker's acknowledgement."""
    import paho.mqtt.client as mqtt

    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        return False, f"no MQTT broker to send commands to (CITYOS_MQTT_URL is {url!r})"
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"cityos-cmd-{uuid.uuid4().hex[:12]}"
    )
    if parts.username:
        client.username_pw_set(unquote(parts.username), unquote(parts.password or ""))
    if parts.scheme == "mqtts":
        client.tls_set()
    client.connect_timeout = timeout_s
    try:
        client.connect(
            parts.hostname, parts.port or (8883 if parts.scheme == "mqtts" else 1883), keepalive=30
        )
        client.loop_start()
        info = client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=timeout_s)
        if not info.is_published():
            return False, "MQTT publish not acknowledged in time"
        return True, None
    except (OSError, ValueError, RuntimeError) as exc:
        return False, f"MQTT {type(exc).__name__}: {exc}"
    finally:
        # disconnect first: it wakes the network thread, which loop_stop then joins at once
        # (the other way round, loop_stop waits out the thread's select, up to a second)
        client.disconnect()
        client.loop_stop()


class Commands:
    """Provisioning, sending, answers and expiry of device commands (one per agent)."""

    def __init__(self, agent: DeviceBook) -> None:
        self.agent = agent
        self.hub = agent.hub
        self.ctx = agent.ctx
        settings = agent.hub.settings
        self.timeout_s = settings.device_command_timeout_s
        self.publish_timeout_s = max(0.5, min(5.0, settings.notify_timeout_s / 2))
        self.publish = lambda topic, payload: publish_mqtt(
            settings.mqtt_url, topic, payload, self.publish_timeout_s
        )
        # commands this process sent and not seen answered: (tenant, device, command) -> sent at
        self._pending: dict[tuple[str, str, str], tuple[float, str]] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()  # notification ids (redeliveries)
        self._lock = threading.Lock()

    # -- provisioning ---------------------------------------------------------------------
    def provision(self, tenant: str, device: dict[str, Any]) -> None:
        """Give the device's entity its command attributes (creating the entity if need be),
        index it to the device, and make sure the command subscriptions exist. Idempotent."""
        group = self.agent.group_of(tenant, device)
        names = self.agent.command_names(device, group)
        if not names:
            return
        apikey = device.get("apikey") or (group or {}).get("apikey")
        if not apikey:
            raise BadRequestData(
                f"device {device['device_id']!r} has commands but no apikey: give it one "
                "(the tenant has no single service group to take it from)"
            )
        entity_id, entity_type = self.agent.entity_of(device, group)
        wanted: dict[str, Any] = {}
        for name in names:
            wanted[name] = {"type": "Property", "value": ""}
            wanted[f"{name}_status"] = {"type": "Property", "value": UNKNOWN}
            wanted[f"{name}_info"] = {"type": "Property", "value": ""}
        entities = self.hub.entities
        current = self.hub.store.get_entity(tenant, entity_id)
        if current is None:
            body = {"id": entity_id, "type": entity_type, **self.agent.static_attrs(device, group)}
            body.update(wanted)
            try:
                entities.create(tenant, self.agent.parse_entity(body))
            except AlreadyExists:  # created meanwhile (a measure, another worker)
                current = self.hub.store.get_entity(tenant, entity_id)
        if current is not None:
            have = set(current["attrs"])
            missing = {k: v for k, v in wanted.items() if self.ctx.expand_term(k) not in have}
            if missing:
                entities.append_attrs(
                    tenant, entity_id, parse_attributes(missing, self.ctx), no_overwrite=True
                )
        store = self.hub.store
        store.put_doc(COMMAND_ENTITY, tenant, entity_id, {"device_id": device["device_id"]})
        changed = False
        for name in names:
            sub_id = subscription_id(tenant, name, entity_type)
            if store.get_subscription(tenant, sub_id) is not None:
                continue  # same id, same content: nothing to do
            body = {
                "id": sub_id,
                "type": "Subscription",
                "description": f"command {name} of {entity_type} devices (CityOS IoT agent)",
                "entities": [{"type": entity_type}],
                "watchedAttributes": [name],
                # a patch of the command, never the attribute appearing (a new device's
                # entity, commands added at provisioning)
                "notificationTrigger": ["attributeUpdated"],
                "notification": {
                    "endpoint": {"uri": f"local://{RECEIVER}"},
                    "attributes": [name],
                    "format": "normalized",
                },
            }
            store.put_subscription(tenant, parse_subscription(body, self.ctx, allow_local=True))
            changed = True
        if changed:
            self.hub.subscriptions.invalidate()

    def forget(self, tenant: str, device: dict[str, Any]) -> None:
        """The device is gone: its entity no longer takes commands (the subscriptions stay
        for the other devices of its type; without devices they only cost a few matchers)."""
        device_id = device["device_id"]
        try:
            entity_id, _ = self.agent.entity_of(device, self.agent.group_of(tenant, device))
        except BadRequestData:
            return
        ref = self.hub.store.get_doc(COMMAND_ENTITY, tenant, entity_id)
        if ref is not None and ref.get("device_id") == device_id:
            self.hub.store.delete_doc(COMMAND_ENTITY, tenant, entity_id)
        with self._lock:
            for key in [k for k in self._pending if k[:2] == (tenant, device_id)]:
                del self._pending[key]

    # -- sending (the local receiver) -----------------------------------------------------
    async def receive(self, notification: dict[str, Any]) -> None:
        """The ``local://cityos-device-commands`` receiver: a notification of a patched
        command attribute. Runs the blocking work off the event loop."""
        await asyncio.to_thread(self.send, notification)

    def send(self, notification: dict[str, Any]) -> int:
        """Send every command a notification carries; how many were published."""
        nid = notification.get("id")
        with self._lock:
            if isinstance(nid, str):
                if nid in self._seen:
                    return 0  # a redelivery of what we already sent
                self._seen[nid] = None
                while len(self._seen) > 10_000:
                    self._seen.popitem(last=False)
        target = parse_subscription_id(str(notification.get("subscriptionId", "")))
        if target is None:
            log.warning("command notification from an unknown subscription: %s", notification)
            return 0
        tenant, name, _ = target
        store = self.hub.store
        sent = 0
        for entity in notification.get("data") or []:
            attr = entity.get(name)
            if not isinstance(attr, dict) or "value" not in attr:
                continue  # the attribute was deleted, or has several datasetIds
            ref = store.get_doc(COMMAND_ENTITY, tenant, str(entity.get("id")))
            device = ref and store.get_doc(self.agent.DEVICE, tenant, ref["device_id"])
            if not device:
                continue  # not a device's entity (or deprovisioned since)
            group = self.agent.group_of(tenant, device)
            if name not in self.agent.command_names(device, group):
                continue
            self._send_one(tenant, device, group, str(entity["id"]), name, attr["value"])
            sent += 1
        return sent

    def _send_one(
        self,
        tenant: str,
        device: dict[str, Any],
        group: dict[str, Any] | None,
        entity_id: str,
        name: str,
        value: Any,
    ) -> None:
        device_id = device["device_id"]
        apikey = device.get("apikey") or (group or {}).get("apikey")
        sent_at = now_iso()
        self._set(tenant, entity_id, name, PENDING, None, sent_at)
        with self._lock:
            self._pending[(tenant, device_id, name)] = (time.monotonic(), sent_at)
        if not apikey:
            ok, error = False, f"device {device_id!r} has no apikey to address its commands"
        else:
            payload = encode_command(
                device_id, name, value, json_payload=is_json_device(device, group)
            )
            ok, error = self.publish(f"/{apikey}/{device_id}/cmd", payload)
        if not ok:
            log.warning("command %s to device %s failed: %s", name, device_id, error)
            with self._lock:
                self._pending.pop((tenant, device_id, name), None)
            self._set(tenant, entity_id, name, ERROR, error or "publish failed", now_iso())

    def _set(self, tenant: str, entity_id: str, name: str, status: str, info: Any, at: str) -> None:
        fragment: dict[str, Any] = {
            f"{name}_status": {"type": "Property", "value": status, "observedAt": at}
        }
        if info is not None:
            fragment[f"{name}_info"] = {"type": "Property", "value": info, "observedAt": at}
        try:
            attrs = parse_attributes(fragment, self.ctx)
        except BadRequestData:  # a result NGSI-LD cannot hold as a value: keep it as text
            fragment[f"{name}_info"]["value"] = json.dumps(info)
            attrs = parse_attributes(fragment, self.ctx)
        try:
            self.hub.entities.append_attrs(tenant, entity_id, attrs)
        except ResourceNotFound:
            log.warning("command %s: entity %s is gone", name, entity_id)

    # -- answers ---------------------------------------------------------------------------
    def result(self, tenant: str, apikey: str, device_id: str, results: dict[str, Any]) -> str:
        """A device's answer ({command: result}): ``<command>_status`` OK and ``_info``."""
        device, group = self.agent.device_and_group(tenant, apikey, device_id)
        names = set(self.agent.command_names(device, group))
        if not results:
            raise BadRequestData(f"device {device_id!r}: an empty command result")
        unknown = [c for c in results if c not in names]
        if unknown:
            raise BadRequestData(f"device {device_id!r} has no command {unknown[0]!r}")
        entity_id, _ = self.agent.entity_of(device, group)
        at = now_iso()
        for name, value in results.items():
            self._set(tenant, entity_id, name, OK, "" if value is None else value, at)
            with self._lock:
                self._pending.pop((tenant, device_id, name), None)
        return entity_id

    # -- expiry ------------------------------------------------------------------------
    def expire(self) -> int:
        """Commands this process sent that are still PENDING past the timeout: ERROR, EXPIRED."""
        limit = time.monotonic() - self.timeout_s
        with self._lock:
            due = [(k, at) for k, (t, at) in self._pending.items() if t <= limit]
            for k, _ in due:
                del self._pending[k]
        expired = 0
        for (tenant, device_id, name), sent_at in due:
            device = self.hub.store.get_doc(self.agent.DEVICE, tenant, device_id)
            if device is None:
                continue
            entity_id, _ = self.agent.entity_of(device, self.agent.group_of(tenant, device))
            found = self.hub.store.get_entity(tenant, entity_id)
            status = (found or {}).get("attrs", {}).get(self.ctx.expand_term(f"{name}_status"))
            inst = status[0] if status else {}
            # still our PENDING (a later command, sent elsewhere, has its own clock)
            if inst.get("value") == PENDING and inst.get("observedAt") == sent_at:
                self._set(tenant, entity_id, name, ERROR, EXPIRED, now_iso())
                expired += 1
        return expired
