"""The IoT agent inside the hub: service groups and devices as the FIWARE IoT Agents provision
them, and measures (UltraLight 2.0 or JSON) turned into entity updates with history.

Provisioning bodies are those of the FIWARE IoT Agent API (``/iot/services``,
``/iot/devices``), so existing provisioning scripts work unchanged; ``fiware-service``
names the tenant. A measure from an unknown API key or device, a value of the wrong type,
a message over ``device_max_message_bytes`` or beyond the device's token bucket
(``device_rate_per_s``, ``device_burst``) is rejected and counted for the device; it never
stops other devices' ingest. Counters live in memory and are flushed in batches to one
Smart Data Models ``Device`` entity per device (:mod:`cityos.devices.stats`); commands are
in :mod:`cityos.devices.commands`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from cityos.devices.commands import RECEIVER, Commands
from cityos.devices.limits import RateLimiter
from cityos.devices.stats import DeviceStats, StatsBook
from cityos.hub.core import Hub
from cityos.hub.entities import Attrs
from cityos.hub.errors import (
    AlreadyExists,
    BadRequestData,
    NgsiLdError,
    PayloadTooLarge,
    ResourceNotFound,
)
from cityos.hub.ldcontext import Context, core_context
from cityos.hub.model import MAX_ID_BYTES, MAX_NAME_BYTES, check_size, now_iso, to_hub_time
from cityos.hub.registry import DEVICE, GROUP
from cityos.hub.representation import is_uri, parse_attributes, parse_entity

log = logging.getLogger("cityos.devices")
__all__ = ["DEVICE", "GROUP", "Agent", "DeviceStats", "RateLimited"]
NUMBER_TYPES = {"Number", "Float", "float", "number", "Integer", "integer", "int"}
BOOL_TYPES = {"Boolean", "boolean", "bool"}
GEO_TYPES = {"geo:point", "GeoProperty"}  # a position: stored as a GeoJSON Point
_NOT_IN_COMMAND = " \t\r\n<>\"'=;()|@#/&?"  # attribute-name rules, plus what UltraLight uses


def validate_group(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("apikey"), str) or not body["apikey"]:
        raise BadRequestData("a service group needs an apikey")
    check_size(body["apikey"], MAX_ID_BYTES, "service group apikey")  # the registry's key
    if not isinstance(body.get("entity_type"), str) or not body["entity_type"]:
        raise BadRequestData(f"service group {body['apikey']!r} needs an entity_type")
    check_size(body["entity_type"], MAX_NAME_BYTES, "service group entity_type")
    _check_attrs(body, f"service group {body['apikey']!r}")
    context = body.get("jsonLdContext")
    if context is not None and not (isinstance(context, str) and context):
        raise BadRequestData(f"service group {body['apikey']!r}: jsonLdContext must be a URL")
    return {**body, "resource": body.get("resource") or "/iot/d"}


def validate_device(body: Any) -> dict[str, Any]:
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("device_id"), str)
        or not body["device_id"]
    ):
        raise BadRequestData("a device needs a device_id")
    check_size(body["device_id"], MAX_ID_BYTES, "device_id")  # the registry's key
    if isinstance(body.get("entity_type"), str):
        check_size(body["entity_type"], MAX_NAME_BYTES, "device entity_type")
    name = body.get("entity_name")
    if isinstance(name, str):
        check_size(name, MAX_ID_BYTES, "device entity_name")
    if name is not None and not is_uri(name):
        raise BadRequestData(f"device {body['device_id']!r}: entity_name {name!r} is not a URI")
    _check_attrs(body, f"device {body['device_id']!r}")
    return dict(body)


def _passthrough(device: dict[str, Any], group: dict[str, Any] | None) -> bool:
    """Whether measures the provisioning does not declare are written under their own name
    (FIWARE's ``explicitAttrs: false``). Off unless the device, else its group, says so: a
    device writes only the attributes its provisioning allowed."""
    for doc in (device, group or {}):
        if "explicitAttrs" in doc:
            return doc["explicitAttrs"] is False
    return False


def _check_attrs(body: dict[str, Any], where: str) -> None:
    explicit = body.get("explicitAttrs")
    if explicit is not None and not isinstance(explicit, bool):
        raise BadRequestData(f"{where}: explicitAttrs must be true or false")
    for key in ("attributes", "static_attributes", "lazy", "commands"):
        items = body.get(key, [])
        if not isinstance(items, list) or not all(
            isinstance(a, dict) and a.get("name") for a in items
        ):
            raise BadRequestData(f"{where}: {key} must be a list of objects with a name")
    for command in body.get("commands", []):
        name = command["name"]
        if not isinstance(name, str) or any(c in _NOT_IN_COMMAND for c in name):
            raise BadRequestData(
                f"{where}: command name {name!r} must be text without spaces or any of "
                f"{_NOT_IN_COMMAND.strip()!r}"
            )


class RateLimited(NgsiLdError):
    """A device sent more than its token bucket allows (HTTP 429); counted as RateLimited."""

    type_name = "InvalidRequest"
    status = 429
    title = "Too many requests"


class Agent:
    """The IoT agent of one process: provisioning, ingest, limits, counters and commands.

    Every process that serves the hub makes one; it registers the command receiver
    (``local://cityos-device-commands``) in the hub's in-process receivers, so whichever
    worker delivers a command notification can send it. :meth:`start` runs the background
    work (counters flushed to Device entities, commands expired); :meth:`stop` ends it with a
    last flush.
    """

    DEVICE, GROUP = DEVICE, GROUP
    TENANTS_TTL_S = 5.0
    DOCS_TTL_S = 5.0

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.ctx = core_context()
        settings = hub.settings
        self.max_message_bytes = settings.device_max_message_bytes
        self.limiter = RateLimiter(
            settings.device_rate_per_s, settings.device_burst, redis_url=settings.redis_url
        )
        self.book = StatsBook(hub, self.ctx, self._describe)
        self.commands = Commands(self)
        hub.local_receivers[RECEIVER] = self.commands.receive
        self.flush_interval_s = settings.device_stats_flush_s
        self._tenants: dict[str, tuple[float, list[str]]] = {}
        self.unknown_key_messages = 0  # MQTT messages under an API key no tenant has
        self.accepted_total = 0  # messages applied by this process (progress of a replay)
        self._tenants_lock = threading.Lock()
        self._docs: dict[tuple[str, str, str], tuple[float, dict[str, Any]]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.detector: Any = None  # detection: a cityos.security.detect.Detector, set by the app

    # -- provisioning --------------------------------------------------------------------
    def add_group(self, tenant: str, body: Any) -> None:
        group = validate_group(body)
        self.hub.store.put_doc(GROUP, tenant, group["apikey"], group)
        self._forget_tenants(group["apikey"])
        self._forget_doc(GROUP, tenant, group["apikey"])

    def delete_group(self, tenant: str, apikey: str) -> bool:
        self._forget_tenants(apikey)
        self._forget_doc(GROUP, tenant, apikey)
        return self.hub.store.delete_doc(GROUP, tenant, apikey)

    def add_device(self, tenant: str, body: Any) -> None:
        device = validate_device(body)
        if self.hub.store.get_doc(DEVICE, tenant, device["device_id"]) is not None:
            raise AlreadyExists(f"device {device['device_id']} already exists")
        self.hub.store.put_doc(DEVICE, tenant, device["device_id"], device)
        self._forget_doc(DEVICE, tenant, device["device_id"])
        try:
            self.commands.provision(tenant, device)
        except Exception:
            self.hub.store.delete_doc(DEVICE, tenant, device["device_id"])
            raise

    def delete_device(self, tenant: str, device_id: str) -> bool:
        device = self.hub.store.get_doc(DEVICE, tenant, device_id)
        self._forget_doc(DEVICE, tenant, device_id)
        if device is None or not self.hub.store.delete_doc(DEVICE, tenant, device_id):
            return False
        self.commands.forget(tenant, device)
        return True

    # -- what a device is ------------------------------------------------------------------
    def doc(self, kind: str, tenant: str, doc_id: str) -> dict[str, Any] | None:
        """A group or device document, kept DOCS_TTL_S seconds once found: the ingest reads
        both for every message. This process forgets a document it changes at once;
        another worker's change is seen within DOCS_TTL_S."""
        key = (kind, tenant, doc_id)
        now = time.monotonic()
        hit = self._docs.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        doc = self.hub.store.get_doc(kind, tenant, doc_id)
        if doc is not None:
            if len(self._docs) > 100_000:
                self._docs.clear()
            self._docs[key] = (now + self.DOCS_TTL_S, doc)
        return doc

    def _forget_doc(self, kind: str, tenant: str, doc_id: str) -> None:
        self._docs.pop((kind, tenant, doc_id), None)

    def group_of(
        self, tenant: str, device: dict[str, Any], apikey: str | None = None
    ) -> dict[str, Any] | None:
        """The device's service group: by the message's API key, the device's own, or the
        tenant's only group (FIWARE devices may leave the API key to their group)."""
        key = apikey or device.get("apikey")
        if key:
            return self.doc(GROUP, tenant, key)
        groups = self.hub.store.list_docs(GROUP, tenant)
        return groups[0] if len(groups) == 1 else None

    def device_and_group(
        self, tenant: str, apikey: str, device_id: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        group = self.doc(GROUP, tenant, apikey)
        if group is None:
            raise ResourceNotFound(f"unknown API key {apikey!r}")
        device = self.doc(DEVICE, tenant, device_id)
        if device is None:
            raise ResourceNotFound(
                f"unknown device {device_id!r} (provision it under /iot/devices)"
            )
        if device.get("apikey") not in (None, apikey):
            raise ResourceNotFound(f"device {device_id!r} does not belong to API key {apikey!r}")
        return device, group

    @staticmethod
    def command_names(device: dict[str, Any], group: dict[str, Any] | None) -> list[str]:
        names = [
            c["name"] for c in [*device.get("commands", []), *(group or {}).get("commands", [])]
        ]
        return list(dict.fromkeys(names))

    @staticmethod
    def entity_of(device: dict[str, Any], group: dict[str, Any] | None) -> tuple[str, str]:
        """The (id, type) of the entity a device's measures update."""
        entity_type = device.get("entity_type") or (group or {}).get("entity_type")
        if not entity_type:
            raise BadRequestData(
                f"device {device['device_id']!r}: no entity_type (none on the device or its group)"
            )
        return device.get(
            "entity_name"
        ) or f"urn:ngsi-ld:{entity_type}:{device['device_id']}", entity_type

    @staticmethod
    def static_attrs(device: dict[str, Any], group: dict[str, Any] | None) -> dict[str, Any]:
        """The group's, then the device's (which win), static attributes as NGSI-LD."""
        out: dict[str, Any] = {}
        for static in [
            *(group or {}).get("static_attributes", []),
            *device.get("static_attributes", []),
        ]:
            if static.get("type") == "Relationship":  # a link to another entity (by its URI)
                out[static["name"]] = {"type": "Relationship", "object": static.get("value")}
            else:
                out[static["name"]] = {"type": "Property", "value": static.get("value")}
        return out

    def parse_entity(self, body: dict[str, Any]) -> Any:
        return parse_entity(body, self.ctx)

    def _describe(self, tenant: str, device_id: str) -> dict[str, Any] | None:
        """For the Device entity: None when the device is not provisioned (not persisted)."""
        device = self.doc(DEVICE, tenant, device_id)
        if device is None:
            return None
        try:
            entity_id, _ = self.entity_of(device, self.group_of(tenant, device))
        except BadRequestData:
            return {}
        return {"controlledAsset": {"type": "Relationship", "object": entity_id}}

    # -- admission: flood and size limits ------------------------------------------------
    def tenants_for(self, apikey: str) -> list[str]:
        """The tenants whose service group owns an API key (cached briefly when found)."""
        now = time.monotonic()
        with self._tenants_lock:
            hit = self._tenants.get(apikey)
            if hit is not None and hit[0] > now:
                return hit[1]
        tenants = self.hub.store.doc_tenants(GROUP, apikey)
        if tenants:
            with self._tenants_lock:
                if len(self._tenants) > 10_000:
                    self._tenants.clear()
                self._tenants[apikey] = (now + self.TENANTS_TTL_S, tenants)
        return tenants

    def _forget_tenants(self, apikey: str) -> None:
        with self._tenants_lock:
            self._tenants.pop(apikey, None)

    def admit(self, tenants: list[str], apikey: str, device_id: str, size: int) -> bool:
        """Whether a message may be ingested: under the device's rate and the size limit.
        A refused message is counted for the device in each tenant and goes no further."""
        try:
            self.check(apikey, device_id, size)
        except NgsiLdError as err:
            for tenant in tenants or [""]:
                self.count(
                    tenant, device_id, ok=False, reason=type(err).__name__, detail=err.detail
                )
            return False
        return True

    def check(self, apikey: str, device_id: str, size: int | None = None) -> None:
        """Raise RateLimited or PayloadTooLarge (not counted: the caller counts)."""
        if not self.limiter.allow((apikey, device_id)):
            raise RateLimited(
                f"device {device_id!r} sends more than {self.limiter.rate:g} messages/s "
                f"(burst {self.limiter.burst}); message dropped"
            )
        if size is not None and size > self.max_message_bytes:
            raise PayloadTooLarge(
                f"a device message is limited to {self.max_message_bytes} bytes, got {size}"
            )

    def context_of(self, group: dict[str, Any]) -> Context:
        """The @context a group's measure and type names are read with: its ``jsonLdContext``
        (hosted in the hub or on an allowed host), else the core context."""
        url = group.get("jsonLdContext")
        return self.hub.contexts.resolve(url) if url else self.ctx

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
        [(entity_id, error)] = self.ingest_many(
            [Measure(tenant, apikey, device_id, measures, timestamp)]
        )
        if error is not None:
            raise error
        return entity_id

    def ingest_many(self, measures: list[Measure]) -> list[tuple[str, NgsiLdError | None]]:
        """Apply many devices' measures, one transaction per tenant (what a busy MQTT
        stream is cut into); per measure, the entity id and the error that refused it (each
        counted for its device). One bad measure never stops the others."""
        out: list[tuple[str, NgsiLdError | None]] = [("", None)] * len(measures)
        by_tenant: dict[str, list[tuple[int, str, Attrs, Any]]] = {}
        for n, m in enumerate(measures):
            try:
                entity_id, attrs, create = self._prepare(m)
            except NgsiLdError as err:
                self.count(
                    m.tenant, m.device_id, ok=False, reason=type(err).__name__, detail=err.detail
                )
                out[n] = ("", err)
                continue
            by_tenant.setdefault(m.tenant, []).append((n, entity_id, attrs, create))
        applied: list[tuple[str, str, str, Attrs]] | None = (
            [] if self.detector is not None else None
        )
        for tenant, writes in by_tenant.items():
            batch = [(eid, attrs, create) for _, eid, attrs, create in writes]
            try:
                results = self.hub.entities.apply_measures(tenant, batch)
            except AlreadyExists:  # another worker created one of the entities first: again
                results = self.hub.entities.apply_measures(tenant, batch)
            for (n, eid, attrs, _), error in zip(writes, results, strict=True):
                m = measures[n]
                if error is None:
                    self.count(tenant, m.device_id, ok=True)
                    if applied is not None:  # detection
                        applied.append((tenant, m.device_id, eid, attrs))
                else:
                    self.count(
                        tenant,
                        m.device_id,
                        ok=False,
                        reason=type(error).__name__,
                        detail=error.detail,
                    )
                out[n] = (eid, error)
        if applied:  # detection: one queue append for the whole batch
            self.detector.observe_applied(applied)
        return out

    def _prepare(self, m: Measure) -> tuple[str, Attrs, Any]:
        """What a measure writes: (entity id, attributes, the entity to create if missing)."""
        device, group = self.device_and_group(m.tenant, m.apikey, m.device_id)
        entity_id, entity_type = self.entity_of(device, group)
        mapping = {a.get("object_id", a["name"]): a for a in group.get("attributes", [])}
        mapping.update({a.get("object_id", a["name"]): a for a in device.get("attributes", [])})
        observed = to_hub_time(m.timestamp) if m.timestamp else now_iso()
        passthrough = _passthrough(device, group)
        undeclared = sorted(o for o in m.measures if o not in mapping)
        if undeclared and not passthrough:
            raise BadRequestData(
                f"device {m.device_id!r}: measure(s) {', '.join(map(repr, undeclared[:8]))} "
                "not provisioned; declare them in the device's or its service group's "
                'attributes (or provision it with "explicitAttrs": false)'
            )
        fragment: dict[str, Any] = {}
        for object_id, raw in m.measures.items():
            spec = mapping.get(object_id, {"name": object_id})
            value = _convert(
                raw, spec.get("type"), f"device {m.device_id!r}: measure {object_id!r}"
            )
            kind = "GeoProperty" if spec.get("type") in GEO_TYPES else "Property"
            fragment[spec["name"]] = {"type": kind, "value": value, "observedAt": observed}
            if spec.get("unitCode"):
                fragment[spec["name"]]["unitCode"] = spec["unitCode"]
        if not fragment:
            raise BadRequestData(f"device {m.device_id!r}: no measures")
        ctx = self.context_of(group)

        def create() -> Any:  # only for a device's first measure
            body = {"id": entity_id, "type": entity_type, **fragment}
            for name, static in self.static_attrs(device, group).items():
                body.setdefault(name, static)
            return parse_entity(body, ctx)

        return entity_id, parse_attributes(fragment, ctx), create

    def command_result(
        self, tenant: str, apikey: str, device_id: str, results: dict[str, Any]
    ) -> str:
        """A device's answer to commands ({command: result}); counted like a measure."""
        try:
            entity_id = self.commands.result(tenant, apikey, device_id, results)
        except NgsiLdError as err:
            self.count(tenant, device_id, ok=False, reason=type(err).__name__, detail=err.detail)
            raise
        self.count(tenant, device_id, ok=True)
        return entity_id

    # -- counters ------------------------------------------------------------------------
    def count(
        self, tenant: str, device_id: str, *, ok: bool, reason: str = "", detail: str = ""
    ) -> None:
        self.book.count(tenant, device_id, ok=ok, reason=reason, detail=detail)
        if ok:
            self.accepted_total += 1

    def device_stats(self, tenant: str, device_id: str) -> dict[str, Any]:
        """The device's counters: persisted in its Device entity plus this process's unwritten."""
        return self.book.totals(tenant, device_id).as_json()

    def flush_stats(self) -> int:
        """Write the counters to the Device entities now; how many entities were written."""
        return self.book.flush()

    # -- background work -------------------------------------------------------------------
    def tick(self) -> None:
        """One round of background work: flush counters, expire commands, drop idle buckets."""
        self.flush_stats()
        try:
            self.commands.expire()
        except Exception:
            log.exception("expiring device commands failed")
        self.limiter.prune()
        now = time.monotonic()
        with self._tenants_lock:
            for key in [k for k, (until, _) in self._tenants.items() if until <= now]:
                del self._tenants[key]

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="cityos-device-agent", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        interval = max(0.05, self.flush_interval_s)
        while not self._stop.wait(interval):
            try:
                self.tick()
            except Exception:  # the loop outlives any one failure
                log.exception("device agent background work failed")

    def stop(self) -> None:
        """Stop the background work and write the counters one last time."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        try:
            self.flush_stats()
        except Exception:
            log.exception("the last flush of device counters failed")


@dataclass
class Measure:
    """One device message's measures, as they arrived."""

    tenant: str
    apikey: str
    device_id: str
    measures: dict[str, Any]
    timestamp: str | None


def _geo_point(raw: Any, where: str) -> dict[str, Any]:
    """FIWARE's ``geo:point``: ``"lat,lon"`` text (UltraLight) or a ``[lon, lat]`` array
    (GeoJSON order, JSON devices) -> a GeoJSON Point."""
    try:
        if isinstance(raw, str):
            lat, lon = (float(part) for part in raw.split(","))
        elif isinstance(raw, list | tuple) and len(raw) == 2:
            lon, lat = (float(part) for part in raw)
        else:
            raise ValueError
    except (TypeError, ValueError):
        raise BadRequestData(f"{where}: {raw!r} is not a position ('lat,lon')") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise BadRequestData(f"{where}: {raw!r} is outside [-90, 90] x [-180, 180]")
    return {"type": "Point", "coordinates": [lon, lat]}


def _convert(raw: Any, declared: str | None, where: str) -> Any:
    """A measure's value in its declared type (UltraLight sends text)."""
    if declared in GEO_TYPES:
        return _geo_point(raw, where)
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
