"""The retention job: every declared dataset's records older than its retention are deleted,
with their history, through the HubClient; each deletion is recorded as a PrivacyAction.

A record's age is its ``time_attr`` (when the journey or sighting happened), not when the
hub stored it, so data taken in late still goes on time. History goes with the entity
(``HubClient.delete(history=True)``): a plain delete would keep the values in the temporal
store. The hub's own history rules (:mod:`cityos.hub.retention`) still apply on top.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cityos.hub.errors import ResourceNotFound

from . import actions
from .datasets import Dataset, declared

PAGE = 500


@dataclass(frozen=True)
class RetentionResult:
    dataset: str
    cutoff: str
    deleted: int


def delete_matching(client: Any, entity_type: str, q: str | None) -> int:
    """Delete every entity of ``entity_type`` matching ``q``, history included; how many."""
    deleted = 0
    while True:
        page = client.query(type=entity_type, q=q, limit=PAGE, fmt="keyValues")
        if not page:
            return deleted
        for entity in page:
            try:
                client.delete(entity["id"], history=True)
                deleted += 1
            except ResourceNotFound:  # deleted meanwhile (another job, an erasure)
                continue


def expire(client: Any, dataset: Dataset, now: datetime) -> RetentionResult:
    """Delete the dataset's records dated before ``now - retention``."""
    cutoff = actions.hub_time(now - dataset.retention)
    deleted = delete_matching(
        client, dataset.entity_type, dataset.query(f"{dataset.time_attr}<{cutoff}")
    )
    if deleted:
        actions.record(
            client, "retention", dataset.name, deleted, detail=f"dated before {cutoff}", at=now
        )
    return RetentionResult(dataset.name, cutoff, deleted)


def run_retention(
    client: Any, *, now: datetime | None = None, datasets: Iterable[Dataset] | None = None
) -> list[RetentionResult]:
    """Apply every declared dataset's retention once (or only ``datasets``'); the results."""
    now = now or datetime.now(UTC)
    chosen = list(datasets) if datasets is not None else declared(client)
    return [expire(client, d, now) for d in chosen]
