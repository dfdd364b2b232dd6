"""The audit log's storage in PostgreSQL (the store's own connection pool)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from psycopg_pool import ConnectionPool

from cityos.hub.store.audit import (
    AUDIT_TABLES,
    AuditBuild,
    AuditEntry,
    AuditHead,
    AuditStore,
    audit_range_sql,
    heads_sql,
)

_RAW_TYPES = {"bigint", "integer", "smallint", "text", "bytea"}


class PostgresAuditStore(AuditStore):
    """On a :class:`~cityos.hub.store.postgres.PostgresStore`'s pool (its schema, its
    ``synchronous_commit``); appenders in every worker serialise on ``audit_state FOR
    UPDATE``."""

    def __init__(self, pool: ConnectionPool[Any], url: str, schema: str | None) -> None:
        self._pool = pool
        self.url = url
        self.schema = schema

    @property
    def database(self) -> str:
        parts = urlsplit(self.url)
        # (the same text as before the audit store had its own interface: anchors keep their names)
        return f"postgresql:{parts.hostname}:{parts.port}{parts.path}#{self.schema}"

    def append(self, build: AuditBuild) -> list[AuditEntry]:
        with self._pool.connection() as conn, conn.transaction():
            row = conn.execute("SELECT size, frontier FROM audit_state FOR UPDATE").fetchone()
            assert row is not None
            size, state = row
            entries, new_state = build(size, bytes(state))
            # one statement, one round trip (a pipelined executemany costs more for one row)
            columns = [(e.seq, e.time, e.record, e.leaf_hash) for e in entries]
            if len(entries) == 1:
                rows = "VALUES (%s, %s, %s, %s)"
                params: list[Any] = list(columns[0])
            else:
                rows = "SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::bytea[])"
                params = [list(col) for col in zip(*columns, strict=True)]
            conn.execute(
                f"WITH rows AS (INSERT INTO audit_log(seq, time, record, leaf_hash) {rows})"
                " UPDATE audit_state SET size = %s, frontier = %s",
                (*params, size + len(entries), new_state),
            )
        return entries

    def state(self) -> tuple[int, bytes]:
        with self._pool.connection() as conn:
            row = conn.execute("SELECT size, frontier FROM audit_state").fetchone()
        assert row is not None
        return row[0], bytes(row[1])

    def entries(
        self, start: int, end: int | None = None, limit: int | None = None
    ) -> list[AuditEntry]:
        sql, params = audit_range_sql("%s", start, end, limit)
        with self._pool.connection() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [AuditEntry(r[0], r[1], r[2], bytes(r[3])) for r in rows]

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        with self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT leaf_hash FROM audit_log WHERE seq >= %s AND seq < %s ORDER BY seq",
                (start, end),
            ).fetchall()
        return [bytes(r[0]) for r in rows]

    def add_head(self, head: AuditHead) -> None:
        with self._pool.connection() as conn:
            conn.execute(
                "INSERT INTO audit_heads(tree_size, timestamp_ms, root_hash, signature, key_id)"
                " VALUES (%s, %s, %s, %s, %s)",
                (head.tree_size, head.timestamp, head.root_hash, head.signature, head.key_id),
            )

    def heads(self, latest: bool = False) -> list[AuditHead]:
        with self._pool.connection() as conn:
            rows = conn.execute(heads_sql(latest)).fetchall()
        return [AuditHead(r[0], r[1], bytes(r[2]), bytes(r[3]), r[4]) for r in rows]

    def raw(self, table: str, start: int = 0, limit: int = 10_000) -> list[tuple[Any, ...]]:
        key, columns = AUDIT_TABLES[table]
        with self._pool.connection() as conn:
            # a column altered to another type is read as text (its loader might refuse it)
            types = dict(
                conn.execute(
                    "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
                    " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                    (table,),
                ).fetchall()
            )
            values = ", ".join(c if types.get(c) in _RAW_TYPES else f"{c}::text" for c in columns)
            rows = conn.execute(
                f"SELECT {values} FROM {table} WHERE {key} >= %s ORDER BY {key} LIMIT %s",
                (start, limit),
            ).fetchall()
        return [tuple(r) for r in rows]
