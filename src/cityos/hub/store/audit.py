"""The audit log's storage: its own interface beside :class:`~cityos.hub.store.base.Store`.

The audit log (:mod:`cityos.security.audit`) keeps an RFC 6962 Merkle tree; what it needs
from a database is only this: append records and the tree's state in one transaction, read
records, leaf hashes and signed heads back, and read its tables exactly as stored for
``cityos audit verify``. The hub owns storage, so the interface lives here (free of
security imports) and each engine implements it on its own connection or pool
(:mod:`cityos.hub.store.audit_sqlite`, :mod:`cityos.hub.store.audit_postgres`); a
:class:`Store` hands out its database's one as ``store.audit``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(slots=True)
class AuditEntry:
    """One record of the audit log (:mod:`cityos.security.audit`): ``record`` is the exact
    canonical JSON text that was hashed, ``leaf_hash`` its RFC 6962 leaf hash."""

    seq: int  # the leaf index, from 0
    time: str
    record: str
    leaf_hash: bytes


@dataclass(slots=True)
class AuditHead:
    """A signed tree head of the audit log (``timestamp`` in ms since the epoch)."""

    tree_size: int
    timestamp: int
    root_hash: bytes
    signature: bytes
    key_id: str


# (size, state) -> (entries to insert at seq size, size + 1, …; the new state)
AuditBuild = Callable[[int, bytes], tuple[list[AuditEntry], bytes]]

# the audit tables as AuditStore.raw reads them: (the key rows are read in order of, columns)
AUDIT_TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "audit_log": ("seq", ("seq", "time", "record", "leaf_hash")),
    "audit_heads": (
        "hid",
        ("hid", "tree_size", "timestamp_ms", "root_hash", "signature", "key_id"),
    ),
    "audit_state": ("one", ("size", "frontier")),
}

HEAD_COLUMNS = "SELECT tree_size, timestamp_ms, root_hash, signature, key_id FROM audit_heads"


def audit_range_sql(
    mark: str, start: int, end: int | None, limit: int | None
) -> tuple[str, list[Any]]:
    """The audit-log read both engines use (``mark`` is the placeholder)."""
    sql = f"SELECT seq, time, record, leaf_hash FROM audit_log WHERE seq >= {mark}"
    params: list[Any] = [start]
    if end is not None:
        sql += f" AND seq < {mark}"
        params.append(end)
    sql += " ORDER BY seq"
    if limit is not None:
        sql += f" LIMIT {mark}"
        params.append(limit)
    return sql, params


def heads_sql(latest: bool) -> str:
    """Signed heads by size then time, or only the newest (both engines)."""
    return HEAD_COLUMNS + (
        " ORDER BY tree_size DESC, timestamp_ms DESC, hid DESC LIMIT 1"
        if latest
        else " ORDER BY tree_size, timestamp_ms, hid"
    )


class AuditStore(ABC):
    """Where the audit log keeps its records, its state (the tree's frontier) and its signed
    tree heads. Tables ``audit_log``, ``audit_state``, ``audit_heads`` (migration
    ``0007_audit_log`` of each engine)."""

    @property
    @abstractmethod
    def database(self) -> str:
        """Which database the log lives in (the SQLite file's real path, or the PostgreSQL
        server, database and schema; never a password): anchors are kept per database."""

    @abstractmethod
    def append(self, build: AuditBuild) -> list[AuditEntry]:
        """Append in one transaction: lock the log's (size, state), call ``build(size,
        state)`` for the entries (seq ``size`` on) and the new state, store both. Appenders
        in every worker are serialised, so seq has no gaps."""

    @abstractmethod
    def state(self) -> tuple[int, bytes]:
        """The log's size (records appended) and its state (the tree's frontier)."""

    @abstractmethod
    def entries(
        self, start: int, end: int | None = None, limit: int | None = None
    ) -> list[AuditEntry]:
        """Stored records with ``start <= seq < end``, by seq (at most ``limit``)."""

    @abstractmethod
    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        """The leaf hashes of seq ``start`` to ``end - 1``, by seq."""

    @abstractmethod
    def add_head(self, head: AuditHead) -> None: ...

    @abstractmethod
    def heads(self, latest: bool = False) -> list[AuditHead]:
        """Signed tree heads by size then time (only the newest one if ``latest``)."""

    @abstractmethod
    def raw(self, table: str, start: int = 0, limit: int = 10_000) -> list[tuple[Any, ...]]:
        """Rows of an audit table (:data:`AUDIT_TABLES`) exactly as stored, for ``cityos
        audit verify``: whatever a tampered row holds comes back (int, float, str, bytes,
        None; text that is not UTF-8 as bytes; a column of another type as text), never
        coerced, so the verifier can name it. Rows with key >= ``start``, by key."""


class HasAuditStore(Protocol):
    """Anything that hands out an audit store (a :class:`~cityos.hub.store.base.Store`)."""

    @property
    def audit(self) -> AuditStore: ...


def audit_store_for(store: AuditStore | HasAuditStore) -> AuditStore:
    """The audit store itself, or the one a Store holds (so ``AuditLog(hub.store)`` works)."""
    return store if isinstance(store, AuditStore) else store.audit
