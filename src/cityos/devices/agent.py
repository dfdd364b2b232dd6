"""The IoT agent inside the hub: service groups and devices as the FIWARE IoT Agents provision
them, and measures (UltraLight 2.0 or JSON) turned into entity updates with history.

Provisioning bodies are those of the FIWARE IoT Agent API (``/iot/services``,
``/iot/devices``), so existing provisioning scripts work unchanged; ``fiware-service``
names the tenant. A measure from an unknown API key or device, or a value of the wrong
type, is rejected and counted for the device; it never stops other devices' ingest.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from cityos.hub.core import Hub
from cityos.hub.errors import AlreadyExists, BadRequestData, NgsiLdError, ResourceNotFound
from cityos.hub.ldcontext import core_context
from cityos.hub.model import now_iso, to_hub_time
from cityos.hub.representation import is_uri, parse_attributes, parse_entity

GROUP, DEVICE = "iot-group", "iot-device"
NUMBER_TYPES = {"Number", "Float", "float", "number", "Integer", "integer", "int"}
BOOL_TYPES = {"Boolean", "boolean", "bool"}


def validate_group(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("apikey"), str) or not body["apikey"]:
        raise BadRequestData("a service group needs an apikey")
    if not isinstance(body.get("entity_type"), str) or not body["entity_type"]:
        raise BadRequestData(f"service group {body['apikey']!r} needs an entity_type")
    _check_attrs(body, f"service group {body['apikey']!r}")
    return {**body, "resource": body.get("resource") or "/iot/d"}


def validate_device(body: Any) -> dict[str, Any]:
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("device_id"), str)
        or not body["device_id"]
    ):
        raise BadRequestData("a device needs a device_id")
    name = body.get("entity_name")
    if name is not None and not is_uri(name):
        raise BadRequestData(f"device {body['device_id']!r}: entity_name {name!r} is not a URI")
    _check_attrs(body, f"device {body['device_id']!r}")
    return dict(body)


def _check_attrs(body: dict[str, Any], where: str) -> None:
    for key in ("attributes", "static_attributes", "lazy", "commands"):
        items = body.get(key, [])
        if not isinstance(items, list) or not all(
            isinstance(a, dict) and a.get("name") for a in items
        ):
            raise BadRequestData(f"{where}: {key} must be a list of objects with a name")


@dataclass
class DeviceStats:
    accepted: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    last_error: str | None = None


class Agent:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.ctx = core_context()
        self.stats: dict[tuple[str, str], DeviceStats] = {}
        self._lock = threading.Lock()

    # -- provisioning --------------------------------------------------------------------
    def add_group(self, tenant: str, body: Any) -> None:
        group = validate_group(body)
        self.hub.store.put_doc(GROUP, tenant, group["apikey"], group)

    def add_device(self, tenant: str, body: Any) -> None:
        device = validate_device(body)
        if self.hub.store.get_doc(DEVICE, tenant, device["device_id"]) is not None:
            raise AlreadyExists(f"device {device['device_id']} already exists")
        self.hub.store.put_doc(DEVICE, tenant, device["device_id"], device)

    # -- ingest ----------------------------------------------------------------------------
    def ingest(
        self,
        tenant: str,
        apikey: str,
        device_id: str,
        measures: dict[str, Any],
        timestamp: str | None,
    ) -> str:
        """Apply one device's measures; the entity id updated. Rejections are counted."""
        try:
            return self._ingest(tenant, apikey, device_id, measures, timestamp)
        except NgsiLdError as err:
            self._count(tenant, device_id, ok=False, reason=type(err).__name__, detail=err.detail)
            raise

    def _ingest(
        self,
        tenant: str,
        apikey: str,
        device_id: str,
        measures: dict[str, Any],
        timestamp: str | None,
    ) -> str:
        store = self.hub.store
        group = store.get_doc(GROUP, tenant, apikey)
        if group is None:
            raise ResourceNotFound(f"unknown API key {apikey!r}")
        device = store.get_doc(DEVICE, tenant, device_id)
        if device is None:
            raise ResourceNotFound(
                f"unknown device {device_id!r} (provision it under /iot/devices)"
            )
        if device.get("apikey") not in (None, apikey):
            raise ResourceNotFound(f"device {device_id!r} does not belong to API key {apikey!r}")
        entity_type = device.get("entity_type") or group["entity_type"]
        entity_id = device.get("entity_name") or f"urn:ngsi-ld:{entity_type}:{device_id}"
        mapping = {a.get("object_id", a["name"]): a for a in group.get("attributes", [])}
        mapping.update({a.get("object_id", a["name"]): a for a in device.get("attributes", [])})
        observed = to_hub_time(timestamp) if timestamp else now_iso()
        fragment: dict[str, Any] = {}
        for object_id, raw in measures.items():
            spec = mapping.get(object_id, {"name": object_id})
            value = _convert(raw, spec.get("type"), f"device {device_id!r}: measure {object_id!r}")
            fragment[spec["name"]] = {"type": "Property", "value": value, "observedAt": observed}
            if spec.get("unitCode"):
                fragment[spec["name"]]["unitCode"] = spec["unitCode"]
        if not fragment:
            raise BadRequestData(f"device {device_id!r}: no measures")
        attrs = parse_attributes(fragment, self.ctx)
        entities = self.hub.entities
        if store.get_entity(tenant, entity_id) is None:
            body = {"id": entity_id, "type": entity_type, **fragment}
            for static in [
                *group.get("static_attributes", []),
                *device.get("static_attributes", []),
            ]:
                body.setdefault(static["name"], {"type": "Property", "value": static.get("value")})
            entities.create(tenant, parse_entity(body, self.ctx))
        else:
            entities.append_attrs(tenant, entity_id, attrs)
        self._count(tenant, device_id, ok=True)
        return entity_id

    def _count(
        self, tenant: str, device_id: str, *, ok: bool, reason: str = "", detail: str = ""
    ) -> None:
        with self._lock:
            stats = self.stats.setdefault((tenant, device_id), DeviceStats())
            if ok:
                stats.accepted += 1
            else:
                stats.rejected += 1
                stats.reasons[reason] += 1
                stats.last_error = detail

    def device_stats(self, tenant: str, device_id: str) -> dict[str, Any]:
        with self._lock:
            s = self.stats.get((tenant, device_id), DeviceStats())
            return {
                "accepted": s.accepted,
                "rejected": s.rejected,
                "reasons": dict(s.reasons),
                "lastError": s.last_error,
            }


def _convert(raw: Any, declared: str | None, where: str) -> Any:
    """A measure's value in its declared type (UltraLight sends text)."""
    if declared in NUMBER_TYPES:
        if isinstance(raw, bool):
            raise BadRequestData(f"{where}: {raw!r} is not a number")
        try:
            number = float(raw)
        except (TypeError, ValueError):
            raise BadRequestData(f"{where}: {raw!r} is not a number") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise BadRequestData(f"{where}: {raw!r} is not a finite number")
        return (
            int(number)
            if declared in ("Integer", "integer", "int") and number.is_integer()
            else number
        )
    if declared in BOOL_TYPES:
        if isinstance(raw, bool):
            return raw
        if str(raw).lower() in ("true", "1"):
            return True
        if str(raw).lower() in ("false", "0"):
            return False
        raise BadRequestData(f"{where}: {raw!r} is not a boolean")
    if declared is None and isinstance(raw, str):
        try:
            number = float(raw)
        except ValueError:
            return raw
        if number == number and number not in (float("inf"), float("-inf")):
            return int(number) if raw.lstrip("-").isdigit() else number
    return raw
