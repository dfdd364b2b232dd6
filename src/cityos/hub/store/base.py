"""The storage contract: what the hub needs from a database, implemented by SQLite and PostgreSQL.

The hub's NGSI-LD semantics (merge, append, noOverwrite, batch rules) live above this line in
:mod:`cityos.hub.entities`; a store only keeps documents in stored form (see
:mod:`cityos.hub.model`) and answers queries over them. One contract test suite
(``tests/hub/store/test_contract.py``) runs unchanged against every engine.

Writes go through a :class:`Transaction`: ``get`` locks the rows it returns, so a
read-modify-write is atomic per entity even with several workers (SQLite: ``BEGIN
IMMEDIATE``; PostgreSQL: ``SELECT … FOR UPDATE``). Every attribute change is appended to
history in the same transaction.

Tenants: ``""`` is the default tenant and always exists; any other tenant springs into
existence on its first write. Reads on a tenant that never had a write raise
:class:`~cityos.hub.errors.NonexistentTenant` (checked by the caller via ``tenant_exists``).

Results are ordered by insertion (a stable order, so ``offset`` paging is repeatable).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from cityos.hub.model import Entity
from cityos.hub.query.model import EntityQuery
from cityos.hub.store.audit import AuditStore

DEFAULT_TENANT = ""


@dataclass(slots=True)
class HistoryRow:
    """One attribute instance as it was at a change (the temporal API reads these).

    ``op`` is ``"create"``, ``"update"``, ``"delete"`` (the instance or attribute was
    removed; ``instance`` then is the last value) or ``"delete-entity"``.
    """

    entity_id: str
    entity_type: str  # the first expanded type
    attr: str  # expanded IRI
    dataset_id: str | None
    instance: dict[str, Any]
    op: str
    observed_at: str | None
    recorded_at: str  # the hub's time of the change (= modifiedAt)
    instance_id: int | None = None  # the store's id of this history row (set on reads)


@dataclass
class Claimed:
    """What one worker may deliver now: due notifications (oldest first) and the
    periodic subscriptions whose next notification is due, of subscriptions it claimed."""

    notifications: list[Notification]
    periodic: list[tuple[str, str]]


@dataclass
class Notification:
    """A notification waiting in the outbox (written in the same transaction as its change)."""

    id: int
    tenant: str
    subscription_id: str
    payload: dict[str, Any]
    attempts: int


@dataclass
class QueryResult:
    entities: list[Entity]
    count: int | None = None  # total matches, only when EntityQuery.count


@dataclass(frozen=True)
class AttributeUse:
    """One (entity type, attribute, attribute type) combination and how many entities have it."""

    entity_type: str
    attr: str
    attr_type: str
    entity_count: int


@dataclass
class StoredContext:
    id: str  # local id (a URN) the hub serves it under
    url: str  # the URL clients refer to it by (may equal the local serving URL)
    body: Any  # the JSON-LD document (a dict with "@context")
    kind: str  # "hosted" (uploaded by a user) or "cached" (fetched from an allowlisted host)
    created_at: str
    extra: dict[str, Any] = field(default_factory=dict)


def history_where(
    mark: str,
    tenant: str,
    entity_id: str,
    attr: str | None,
    attrs: list[str] | None,
    time_property: str,
    after: str | None,
    before: str | None,
    *,
    columns: tuple[str, str],
) -> tuple[str, list[Any]]:
    """The WHERE clause both engines use for history reads (``mark`` is the placeholder)."""
    where = [f"tenant = {mark}", f"entity_id = {mark}"]
    params: list[Any] = [tenant, entity_id]
    wanted = [attr] if attr is not None else list(attrs or [])
    if wanted:
        where.append("attr IN (" + ", ".join([mark] * len(wanted)) + ")")
        params.extend(wanted)
    if time_property not in ("observedAt", "recordedAt"):
        raise ValueError(f"time_property must be observedAt or recordedAt, not {time_property!r}")
    column = columns[0] if time_property == "observedAt" else columns[1]
    if after is not None:
        where.append(f"{column} >= {mark}")
        params.append(after)
    if before is not None:
        where.append(f"{column} < {mark}")
        params.append(before)
    return " AND ".join(where), params


class Transaction(ABC):
    """A write transaction on one tenant. Leaving the ``with`` block commits; an exception rolls back."""

    tenant: str

    @abstractmethod
    def get(self, ids: list[str]) -> dict[str, Entity]:
        """The current stored form of those of ``ids`` that exist, locked until commit."""

    @abstractmethod
    def insert(self, entity: Entity) -> None:
        """Insert a new entity; raises AlreadyExists if the id exists in this tenant."""

    @abstractmethod
    def update(self, entity: Entity) -> None:
        """Replace the stored document of an existing entity (same id) with ``entity``."""

    @abstractmethod
    def delete(self, entity_id: str) -> bool:
        """Delete the entity; False if it did not exist."""

    @abstractmethod
    def add_history(self, rows: list[HistoryRow]) -> None:
        """Append attribute changes to history."""

    @abstractmethod
    def subscriptions_version(self) -> int:
        """The store's subscriptions version as this transaction sees it."""

    @abstractmethod
    def add_notifications(self, rows: list[tuple[str, dict[str, Any]]], now: str) -> None:
        """Put ``(subscription id, payload)`` in the outbox, committed with the change."""

    @abstractmethod
    def list_subscriptions(self) -> list[tuple[str, dict[str, Any]]]:
        """Every tenant's (tenant, subscription), read on this transaction's own connection:
        a write that finds its compiled subscriptions stale reloads them without asking the
        pool for a second connection (several writers each holding one and waiting for
        another would wait for ever)."""

    @abstractmethod
    def peek(self, ids: list[str]) -> dict[str, Entity]:
        """The stored form of those of ``ids`` that exist, read on this transaction's own
        connection without locking them (a notification's linked entities)."""


class Store(ABC):
    """A database holding every tenant's entities, their history and the hosted @contexts."""

    engine: str  # "sqlite" or "postgresql"
    # A call waits on network round trips (a database server): the API runs it off the event
    # loop so other requests go on meanwhile. An embedded engine's calls are CPU work, and a
    # thread hop would cost more than it saves.
    waits_on_network: bool = False
    call_threads: int = 1  # with waits_on_network: how many calls the API runs at once

    # -- lifecycle ------------------------------------------------------------------
    @abstractmethod
    def migrate(self) -> list[str]:
        """Create or carry the schema forward to the newest version; the names of the steps run."""

    @abstractmethod
    def schema_version(self) -> int:
        """The schema version the database is at (0: empty)."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def stats(self) -> dict[str, Any]:
        """Counts for ``cityos db stats``: tenants, entities, history rows, size on disk."""

    # -- tenants --------------------------------------------------------------------
    @abstractmethod
    def tenant_exists(self, tenant: str) -> bool: ...

    @abstractmethod
    def tenants(self) -> list[str]: ...

    # -- entities -------------------------------------------------------------------
    @abstractmethod
    def transaction(self, tenant: str) -> AbstractContextManager[Transaction]: ...

    @abstractmethod
    def get_entity(self, tenant: str, entity_id: str) -> Entity | None: ...

    @abstractmethod
    def query(self, tenant: str, query: EntityQuery) -> QueryResult:
        """Entities matching every filter of ``query``, paged; filtering happens in the database."""

    @abstractmethod
    def attribute_uses(self, tenant: str) -> list[AttributeUse]:
        """What ``/types`` and ``/attributes`` report, computed over the tenant's entities."""

    @abstractmethod
    def history(
        self,
        tenant: str,
        entity_id: str,
        attr: str | None = None,
        limit: int = 1000,
        *,
        attrs: list[str] | None = None,
        time_property: str = "recordedAt",
        after: str | None = None,
        before: str | None = None,
    ) -> list[HistoryRow]:
        """History rows of one entity, oldest first (by the hub's recording order).

        ``attr``/``attrs`` restrict to attributes; ``after`` (inclusive) and ``before``
        (exclusive) bound ``time_property`` — ``"observedAt"`` or ``"recordedAt"`` (the hub's
        modifiedAt) — compared as hub-format timestamps (UTC, microseconds, ``Z``).
        """

    @abstractmethod
    def update_history_instance(
        self, tenant: str, entity_id: str, attr: str, instance_id: int, instance: dict[str, Any]
    ) -> bool:
        """Replace one stored instance of an attribute's history; False if there is none."""

    @abstractmethod
    def delete_history(
        self, tenant: str, entity_id: str, attr: str | None = None, instance_id: int | None = None
    ) -> int:
        """Delete an entity's history (one attribute, or one instance of it); rows deleted."""

    @abstractmethod
    def purge_history(
        self,
        before: str,
        *,
        tenant: str | None = None,
        entity_type: str | None = None,
        attr: str | None = None,
    ) -> int:
        """Retention: delete history recorded before ``before`` (all tenants unless given)."""

    # -- subscriptions and the outbox -------------------------------------------------
    @abstractmethod
    def put_subscription(self, tenant: str, sub: dict[str, Any]) -> None:
        """Insert or replace a subscription document (keyed by its ``id``)."""

    @abstractmethod
    def get_subscription(self, tenant: str, sub_id: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def list_subscriptions(self, tenant: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        """(tenant, subscription) pairs, oldest first; every tenant's when ``tenant`` is None."""

    @abstractmethod
    def delete_subscription(self, tenant: str, sub_id: str) -> bool: ...

    @abstractmethod
    def put_subscription_status(self, tenant: str, sub_id: str, fields: dict[str, Any]) -> None:
        """Merge delivery status fields into a subscription without touching what it selects
        (so no worker has to recompile its matchers for a ``timesSent`` bump)."""

    @abstractmethod
    def subscriptions_version(self) -> int:
        """A number that changes whenever a subscription is created, changed or deleted, read
        inside write transactions so every worker matches against the current set."""

    @abstractmethod
    def claim_deliveries(self, owner: str, now: str, until: str, limit: int = 500) -> Claimed:
        """Claim, until ``until``, every subscription with something due that no other live
        worker has claimed, and return what is due for them. One owner per subscription keeps
        its order and sends nothing twice; several workers split the subscriptions."""

    @abstractmethod
    def release_deliveries(
        self,
        owner: str,
        subscriptions: list[tuple[str, str]] | None = None,
        *,
        keep: set[tuple[str, str]] | None = None,
    ) -> None:
        """Give back this owner's claims on these (tenant, subscription id)s, or all of them
        but ``keep`` (a dead owner's claims lapse at their ``until``)."""

    @abstractmethod
    def add_periodic_notification(
        self, tenant: str, sub_id: str, payload: dict[str, Any] | None, now: str, next_at: str
    ) -> None:
        """Queue a ``timeInterval`` notification (None: nothing to send) and schedule the next,
        in one transaction."""

    def wait_for_outbox(self, timeout: float) -> None:
        """Block until a notification may be waiting (or ``timeout`` seconds pass)."""
        time.sleep(timeout)

    @abstractmethod
    def finish_notifications(
        self, nids: list[int], *, delivered: bool, next_at: str | None
    ) -> None:
        """Delivered: remove them. Else: count the attempt and retry at ``next_at`` (None:
        give up)."""

    def finish_notification(self, nid: int, *, delivered: bool, next_at: str | None) -> None:
        self.finish_notifications([nid], delivered=delivered, next_at=next_at)

    # -- registries (device groups, devices, …): small documents by kind ----------------
    @abstractmethod
    def put_doc(self, kind: str, tenant: str, doc_id: str, doc: dict[str, Any]) -> None: ...

    @abstractmethod
    def get_doc(self, kind: str, tenant: str, doc_id: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def list_docs(self, kind: str, tenant: str) -> list[dict[str, Any]]: ...

    @abstractmethod
    def delete_doc(self, kind: str, tenant: str, doc_id: str) -> bool: ...

    @abstractmethod
    def doc_tenants(self, kind: str, doc_id: str) -> list[str]:
        """The tenants that hold a document of this kind and id (an MQTT API key's owners)."""

    # -- @contexts ------------------------------------------------------------------
    @abstractmethod
    def put_context(self, ctx: StoredContext) -> None:
        """Insert or replace a hosted or cached context (contexts are not per tenant)."""

    @abstractmethod
    def get_context(self, key: str) -> StoredContext | None:
        """By local id or by URL."""

    @abstractmethod
    def list_contexts(self) -> list[StoredContext]: ...

    @abstractmethod
    def delete_context(self, key: str) -> bool: ...

    # -- the audit log's storage (its own interface) -------------------------------------
    @property
    @abstractmethod
    def audit(self) -> AuditStore:
        """The audit log's storage in this database (:mod:`cityos.hub.store.audit`), on this
        store's connection or pool; the audit log needs nothing else from a store."""

    # -- bulk -----------------------------------------------------------------------
    def iter_entities(self, tenant: str, batch: int = 1000) -> Iterator[Entity]:
        """Every entity of a tenant, in insertion order (for exports and tools)."""
        offset = 0
        while True:
            res = self.query(tenant, EntityQuery(limit=batch, offset=offset))
            yield from res.entities
            if len(res.entities) < batch:
                return
            offset += batch
