"""Per-device counters, counted in memory and kept as Smart Data Models ``Device`` entities.

Counting a message is a dictionary update; the hub is written only by :meth:`StatsBook.flush`
(every ``device_stats_flush_s`` by the agent's background thread, and at shutdown), in one
transaction per tenant for all devices that sent something since the last flush. Each
flush *adds* its deltas to the ``urn:ngsi-ld:Device:<device_id>`` entity inside the write
transaction (the row is locked while read), so several worker processes flushing the same
device never lose each other's counts, and the counters survive a restart: they are read
back from the entity. Counters of devices that are not provisioned are dropped at the
flush (an unknown device id costs no database row).

Attributes written (core @context terms): ``messagesReceived``, ``messagesAccepted``,
``messagesRejected``, ``rejectReasons`` (reason -> count), ``lastRejectReason``,
``lastError``, ``dateLastValueReported``, plus ``name`` and ``controlledAsset`` (the
device's own entity) when known.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cityos.hub.core import Hub
from cityos.hub.errors import ResourceNotFound
from cityos.hub.ldcontext import Context
from cityos.hub.model import Entity, now_iso
from cityos.hub.registry import device_entity_id
from cityos.hub.representation import parse_attributes, parse_entity, render_entity

log = logging.getLogger("cityos.devices.stats")

DEVICE_ENTITY_TYPE = "Device"
Key = tuple[str, str]  # (tenant, device_id)


@dataclass
class DeviceStats:
    accepted: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    last_error: str | None = None
    last_reason: str | None = None
    last_reject_at: str | None = None
    last_value_at: str | None = None

    def add(self, newer: DeviceStats) -> None:
        """Add ``newer``'s counts; its last-* fields, when set, replace ours."""
        self.accepted += newer.accepted
        self.rejected += newer.rejected
        self.reasons.update(newer.reasons)
        if newer.last_reason is not None:
            self.last_error = newer.last_error
            self.last_reason = newer.last_reason
            self.last_reject_at = newer.last_reject_at
        if newer.last_value_at is not None:
            self.last_value_at = newer.last_value_at

    def copy(self) -> DeviceStats:
        out = DeviceStats()
        out.add(self)
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "received": self.accepted + self.rejected,
            "reasons": dict(self.reasons),
            "lastError": self.last_error,
            "lastRejectReason": self.last_reason,
            "dateLastValueReported": self.last_value_at,
        }

    @classmethod
    def from_entity(cls, kv: dict[str, Any]) -> DeviceStats:
        """From a Device entity in keyValues form (what :meth:`fragment` wrote)."""
        reasons = kv.get("rejectReasons")
        return cls(
            accepted=_int(kv.get("messagesAccepted")),
            rejected=_int(kv.get("messagesRejected")),
            reasons=Counter(
                {str(k): _int(v) for k, v in reasons.items()} if isinstance(reasons, dict) else {}
            ),
            last_error=kv.get("lastError") if isinstance(kv.get("lastError"), str) else None,
            last_reason=_str(kv.get("lastRejectReason")),
            last_value_at=_str(kv.get("dateLastValueReported")),
        )

    def fragment(self, now: str) -> dict[str, Any]:
        """The Device entity's counter attributes (normalized NGSI-LD, core @context)."""

        def prop(value: Any) -> dict[str, Any]:
            return {"type": "Property", "value": value, "observedAt": now}

        out = {
            "messagesReceived": prop(self.accepted + self.rejected),
            "messagesAccepted": prop(self.accepted),
            "messagesRejected": prop(self.rejected),
        }
        if self.reasons:
            out["rejectReasons"] = prop(dict(self.reasons))
        if self.last_reason is not None:
            out["lastRejectReason"] = {
                "type": "Property",
                "value": self.last_reason,
                "observedAt": self.last_reject_at or now,
            }
            out["lastError"] = prop(self.last_error or "")
        if self.last_value_at is not None:
            out["dateLastValueReported"] = prop(self.last_value_at)
        return out


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class StatsBook:
    """Counts per (tenant, device); flushes deltas to Device entities; reads totals back.

    ``describe(tenant, device_id)`` says whether a device is provisioned (None: it is not,
    its counters are not persisted) and gives extra attributes for its Device entity (written
    when the entity is created; each flush then rewrites only the counters).
    """

    def __init__(
        self,
        hub: Hub,
        ctx: Context,
        describe: Callable[[str, str], dict[str, Any] | None],
    ) -> None:
        self.hub = hub
        self.ctx = ctx
        self.describe = describe
        self._lock = threading.Lock()  # guards pending (held for a dict update per message)
        self._flush_lock = threading.RLock()  # one flush at a time; reads see no gap or double
        self.pending: dict[Key, DeviceStats] = {}
        self.inflight: dict[Key, DeviceStats] = {}

    # -- counting ---------------------------------------------------------------------
    def count(
        self,
        tenant: str,
        device_id: str,
        *,
        ok: bool,
        reason: str = "",
        detail: str = "",
        n: int = 1,
    ) -> None:
        now = now_iso()
        with self._lock:
            stats = self.pending.get((tenant, device_id))
            if stats is None:
                stats = self.pending[(tenant, device_id)] = DeviceStats()
            if ok:
                stats.accepted += n
                stats.last_value_at = now
            else:
                stats.rejected += n
                stats.reasons[reason] += n
                stats.last_error = detail
                stats.last_reason = reason
                stats.last_reject_at = now

    def local(self, tenant: str, device_id: str) -> DeviceStats:
        """What this process counted and has not written yet."""
        out = DeviceStats()
        with self._lock:
            for book in (self.inflight, self.pending):
                if (tenant, device_id) in book:
                    out.add(book[(tenant, device_id)])
        return out

    def totals(self, tenant: str, device_id: str) -> DeviceStats:
        """Persisted counters (from the Device entity) plus this process's unwritten ones."""
        with self._flush_lock:
            total = DeviceStats()
            found = self.hub.store.get_entity(tenant, device_entity_id(device_id))
            if found is not None:
                total = DeviceStats.from_entity(render_entity(found, self.ctx, fmt="keyValues"))
            total.add(self.local(tenant, device_id))
            return total

    # -- persistence ------------------------------------------------------------------
    def flush(self) -> int:
        """Write every pending delta to its Device entity; how many entities were written.
        A delta that could not be written (database down) is kept for the next flush."""
        with self._flush_lock:
            with self._lock:
                self.inflight, self.pending = self.pending, {}
            by_tenant: dict[str, dict[str, DeviceStats]] = {}
            for (tenant, device_id), stats in self.inflight.items():
                by_tenant.setdefault(tenant, {})[device_id] = stats
            written = 0
            failed: dict[Key, DeviceStats] = {}
            for tenant, deltas in by_tenant.items():
                done: set[str] = set()
                try:
                    written += self._persist(tenant, deltas, done)
                except Exception:
                    log.exception("writing device counters of tenant %r failed; retrying", tenant)
                    failed.update({(tenant, d): s for d, s in deltas.items() if d not in done})
            with self._lock:
                for key, stats in failed.items():  # older than what arrived meanwhile
                    newer = self.pending.get(key)
                    self.pending[key] = stats
                    if newer is not None:
                        stats.add(newer)
                self.inflight = {}
            return written

    def _persist(self, tenant: str, deltas: dict[str, DeviceStats], done: set[str]) -> int:
        extras: dict[str, tuple[str, DeviceStats, dict[str, Any]]] = {}
        for device_id, stats in deltas.items():
            extra = self.describe(tenant, device_id)
            if extra is None:
                done.add(device_id)  # not provisioned: nothing to keep
                continue
            extras[device_entity_id(device_id)] = (device_id, stats, extra)
        if not extras:
            return 0
        entities = self.hub.entities
        now = now_iso()

        def add_delta(old: Entity, fragment: Entity, ts: str) -> tuple[Entity, list[Any]]:
            _, stats, _ = extras[old["id"]]
            total = DeviceStats.from_entity(render_entity(old, self.ctx, fmt="keyValues"))
            total.add(stats)
            attrs = parse_attributes(total.fragment(now), self.ctx)
            new, history, _ = entities._appended(old, attrs, ts, False, None)
            return new, history

        def update(ids: list[str]) -> list[str]:
            """Add the deltas inside one transaction (rows locked while read): the ids missing."""
            stubs = [{"id": eid, "type": [], "attrs": {}} for eid in ids]
            result = entities._modify_existing(tenant, stubs, add_delta)
            done.update(extras[eid][0] for eid in result.success)
            return [eid for eid, err in result.errors if isinstance(err, ResourceNotFound)]

        missing = update(list(extras))
        if missing:
            new = [
                parse_entity(
                    {
                        "id": eid,
                        "type": DEVICE_ENTITY_TYPE,
                        "name": {"type": "Property", "value": extras[eid][0]},
                        **extras[eid][2],
                        **extras[eid][1].fragment(now),
                    },
                    self.ctx,
                )
                for eid in missing
            ]
            created = entities.batch_create(tenant, new)
            done.update(extras[eid][0] for eid in created.success)
            raced = [eid for eid, _ in created.errors]  # another worker created it meanwhile
            if raced:
                update(raced)
        return len(extras)
