"""The audit log's storage in the embedded SQLite database (the store's own connection)."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from cityos.hub.store.audit import (
    AUDIT_TABLES,
    AuditBuild,
    AuditEntry,
    AuditHead,
    AuditStore,
    audit_range_sql,
    heads_sql,
)


class SqliteAuditStore(AuditStore):
    """On a :class:`~cityos.hub.store.sqlite.SqliteStore`'s connection and lock, so an
    append is one ``BEGIN IMMEDIATE`` transaction like every other write."""

    def __init__(
        self,
        path: str,
        conn: sqlite3.Connection,
        lock: threading.RLock,
        write: Callable[[], AbstractContextManager[sqlite3.Connection]],
    ) -> None:
        self.path = path
        self._conn = conn
        self._lock = lock
        self._write = write

    @property
    def database(self) -> str:
        return "sqlite:" + os.path.realpath(self.path)

    def append(self, build: AuditBuild) -> list[AuditEntry]:
        with self._write() as c:
            size, state = c.execute("SELECT size, frontier FROM audit_state").fetchone()
            entries, new_state = build(size, bytes(state))
            c.executemany(
                "INSERT INTO audit_log(seq, time, record, leaf_hash) VALUES (?, ?, ?, ?)",
                [(e.seq, e.time, e.record, e.leaf_hash) for e in entries],
            )
            c.execute(
                "UPDATE audit_state SET size = ?, frontier = ?", (size + len(entries), new_state)
            )
        return entries

    def state(self) -> tuple[int, bytes]:
        with self._lock:
            size, state = self._conn.execute("SELECT size, frontier FROM audit_state").fetchone()
        return size, bytes(state)

    def entries(
        self, start: int, end: int | None = None, limit: int | None = None
    ) -> list[AuditEntry]:
        sql, params = audit_range_sql("?", start, end, limit)
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return [AuditEntry(r[0], r[1], r[2], bytes(r[3])) for r in rows]

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT leaf_hash FROM audit_log WHERE seq >= ? AND seq < ? ORDER BY seq",
                (start, end),
            ).fetchall()
        return [bytes(r[0]) for r in rows]

    def add_head(self, head: AuditHead) -> None:
        with self._write() as c:
            c.execute(
                "INSERT INTO audit_heads(tree_size, timestamp_ms, root_hash, signature, key_id)"
                " VALUES (?, ?, ?, ?, ?)",
                (head.tree_size, head.timestamp, head.root_hash, head.signature, head.key_id),
            )

    def heads(self, latest: bool = False) -> list[AuditHead]:
        with self._lock:
            rows = self._conn.execute(heads_sql(latest)).fetchall()
        return [AuditHead(r[0], r[1], bytes(r[2]), bytes(r[3]), r[4]) for r in rows]

    def raw(self, table: str, start: int = 0, limit: int = 10_000) -> list[tuple[Any, ...]]:
        key, columns = AUDIT_TABLES[table]
        # typeof + the bytes: SQLite keeps any value in any column, and fetching text that
        # is not UTF-8 would raise
        values = ", ".join(f"typeof({c}), CAST({c} AS BLOB)" for c in columns)
        sql = f"SELECT {values} FROM {table} WHERE {key} >= ? ORDER BY {key} LIMIT ?"
        with self._lock:
            rows = self._conn.execute(sql, (start, limit)).fetchall()
        return [tuple(_stored(r[i], r[i + 1]) for i in range(0, len(r), 2)) for r in rows]


def _stored(kind: str, raw: bytes | None) -> Any:
    """A value as SQLite holds it, from its type and CAST(... AS BLOB) (a number's digits,
    text's bytes); text that is not UTF-8 stays bytes."""
    if raw is None or kind == "null":
        return None
    if kind == "integer":
        return int(raw)
    if kind == "real":
        return float(raw)
    if kind == "text":
        try:
            return raw.decode()
        except UnicodeDecodeError:
            return raw
    return bytes(raw)
