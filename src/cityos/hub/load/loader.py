"""Items -> batches -> the hub's batch upsert, with every entity's outcome counted."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from cityos.hub.core import Hub
from cityos.hub.errors import BadRequestData, NgsiLdError
from cityos.hub.representation import parse_entity

from .formats import Item, ItemError

BATCH = 1000
KEEP_ERRORS = 1000  # the report keeps this many; the count is exact


@dataclass
class LoadReport:
    read: int = 0
    created: int = 0
    replaced: int = 0
    failed: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)  # where, id, why
    seconds: float = 0.0

    @property
    def per_second(self) -> float:
        return (self.created + self.replaced) / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "created": self.created,
            "replaced": self.replaced,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "entities_per_s": round(self.per_second, 1),
            "errors": self.errors,
        }


class _Contexts:
    """An entity's own ``@context`` resolved once per distinct value; else the load's."""

    def __init__(self, hub: Hub, default: Any) -> None:
        self.hub = hub
        self.default = hub.contexts.resolve(default)
        self.seen: dict[bytes, Any] = {}

    def of(self, item: dict[str, Any]) -> Any:
        raw = item.get("@context")
        if raw is None:
            return self.default
        key = orjson.dumps(raw)
        if key not in self.seen:
            self.seen[key] = self.hub.contexts.resolve(raw)
        return self.seen[key]


def load_items(
    hub: Hub,
    items: Iterable[Item],
    *,
    tenant: str = "",
    context: Any = None,
    replace: bool = True,
    batch: int = BATCH,
    progress: Callable[[int, int], None] | None = None,
) -> LoadReport:
    """Load ``items`` (from :func:`read_items`) into ``tenant``; ``progress(entities,
    bytes)`` after each batch. ``replace=False``: an existing entity keeps the attributes
    the file does not name (``options=update``)."""
    report = LoadReport()
    contexts = _Contexts(hub, context)
    limit = hub.settings.max_attributes
    pending: list[dict[str, Any]] = []
    where_of: dict[str, str] = {}
    done_bytes = 0
    started = time.perf_counter()

    def fail(where: str, eid: Any, why: str) -> None:
        report.failed += 1
        if len(report.errors) < KEEP_ERRORS:
            report.errors.append({"where": where, "id": str(eid or ""), "error": why})

    def flush() -> None:
        if not pending:
            return
        result = hub.entities.batch_upsert(tenant, pending, replace=replace)
        report.created += len(result.created)
        report.replaced += len(result.success) - len(result.created)
        for eid, err in result.errors:
            fail(where_of.get(eid, ""), eid, err.detail if hasattr(err, "detail") else str(err))
        pending.clear()
        where_of.clear()
        if progress is not None:
            progress(report.read, done_bytes)

    for where, item, position in items:
        report.read += 1
        done_bytes = position
        eid = item.get("id") if isinstance(item, dict) else None
        try:
            if isinstance(item, ItemError):
                raise BadRequestData(item.message)
            if not isinstance(item, dict):
                raise BadRequestData("not a JSON object")
            entity = parse_entity(item, contexts.of(item))
            if len(entity["attrs"]) > limit:
                raise BadRequestData(
                    f"{len(entity['attrs'])} attributes is over the limit of {limit}"
                )
        except NgsiLdError as err:
            fail(where, eid, getattr(err, "detail", str(err)))
            continue
        except Exception as err:  # an @context that cannot be resolved, say
            fail(where, eid, f"{type(err).__name__}: {err}")
            continue
        if entity["id"] in where_of:  # twice in one batch: the later one wins, as in order
            flush()
        pending.append(entity)
        where_of[entity["id"]] = where
        if len(pending) >= batch:
            flush()
    flush()
    report.seconds = time.perf_counter() - started
    return report
