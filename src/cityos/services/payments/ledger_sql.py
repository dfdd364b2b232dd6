"""The payments tables, in the hub's own database, on SQLite or PostgreSQL: one SQL layer.

The ledger is financial data, not NGSI-LD entities, so it keeps tables of its own
(``pay_*``) beside the entity store's, in the database ``CITYOS_DATABASE_URL`` names (or
``CITYOS_PAYMENTS_DATABASE_URL``). Statements are written once with ``?`` placeholders and
run on either engine; what differs is how a writing transaction excludes the others:

* SQLite: ``BEGIN IMMEDIATE`` takes the database's write lock at the start, so a
  transaction's reads stay true until it commits (other processes wait, ``busy_timeout``);
  ``synchronous=FULL`` so that a commit survives a power cut, not only a crash.
* PostgreSQL: READ COMMITTED with ``SELECT … FOR UPDATE`` on the accounts a transaction
  touches, always in the order of their ids (no deadlock between two transfers); a
  transaction that still fails on a serialization failure, a deadlock or a unique key
  taken by a concurrent one (the same idempotency key, the same ticket nonce) is run again
  from the start (:meth:`Database.run`). ``synchronous_commit=on`` for these connections
  whatever the hub uses for its own.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# ids per IN (...) list: under the SQLite's limit of variables (32,766 from 3.32 on, 999 before)
SQLITE_CHUNK = 30_000 if sqlite3.sqlite_version_info >= (3, 32) else 900

# Amounts are BIGINT minor units; times BIGINT microseconds since the epoch (UTC).
DDL = [
    """CREATE TABLE IF NOT EXISTS pay_accounts (
        tenant TEXT NOT NULL,
        id TEXT NOT NULL,
        currency TEXT NOT NULL,
        kind TEXT NOT NULL,
        overdraft_limit BIGINT,
        debits_posted BIGINT NOT NULL DEFAULT 0,
        credits_posted BIGINT NOT NULL DEFAULT 0,
        debits_pending BIGINT NOT NULL DEFAULT 0,
        credits_pending BIGINT NOT NULL DEFAULT 0,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (tenant, id)
    ){rowid}""",
    """CREATE TABLE IF NOT EXISTS pay_transfers (
        tenant TEXT NOT NULL,
        id TEXT NOT NULL,
        debit TEXT NOT NULL,
        credit TEXT NOT NULL,
        amount BIGINT NOT NULL,
        currency TEXT NOT NULL,
        pending INTEGER NOT NULL,
        state TEXT NOT NULL,
        posted_amount BIGINT NOT NULL,
        reference TEXT,
        memo TEXT NOT NULL DEFAULT '',
        at BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        resolved_at BIGINT,
        expires_at BIGINT,
        PRIMARY KEY (tenant, id)
    ){rowid}""",
    "CREATE INDEX IF NOT EXISTS pay_transfers_at ON pay_transfers (tenant, at)",
    "CREATE INDEX IF NOT EXISTS pay_transfers_ref ON pay_transfers (tenant, reference) "
    "WHERE reference IS NOT NULL",
    """CREATE TABLE IF NOT EXISTS pay_nonces (
        tenant TEXT NOT NULL,
        nonce TEXT NOT NULL,
        expires_at BIGINT NOT NULL,
        PRIMARY KEY (tenant, nonce)
    ){rowid}""",
    """CREATE TABLE IF NOT EXISTS pay_taps (
        tenant TEXT NOT NULL,
        id TEXT NOT NULL,
        rider TEXT NOT NULL,
        account TEXT,
        day TEXT NOT NULL,
        at BIGINT NOT NULL,
        stop TEXT NOT NULL,
        kind TEXT NOT NULL,
        medium TEXT NOT NULL,
        product TEXT NOT NULL,
        concession TEXT NOT NULL DEFAULT '',
        terminal TEXT NOT NULL DEFAULT '',
        charged BIGINT NOT NULL,
        transfer_id TEXT,
        PRIMARY KEY (tenant, id)
    ){rowid}""",
    "CREATE INDEX IF NOT EXISTS pay_taps_rider ON pay_taps (tenant, rider, day)",
    "CREATE INDEX IF NOT EXISTS pay_taps_day ON pay_taps (tenant, day, stop)",
]


class Tx:
    """One transaction's cursor, speaking ``?`` placeholders on either engine."""

    def __init__(self, conn: Any, dialect: str) -> None:
        self.conn = conn
        self.dialect = dialect
        self._pg = dialect == "postgresql"

    def _sql(self, sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s") if self._pg else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(self._sql(sql), params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if not rows:
            return
        if self._pg:
            with self.conn.cursor() as cur:
                cur.executemany(self._sql(sql), rows)
        else:
            self.conn.executemany(sql, rows)

    def insert_many(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        """Many rows into ``table``: COPY on PostgreSQL (one round trip), executemany on
        SQLite."""
        if not rows:
            return
        if self._pg:
            with (
                self.conn.cursor() as cur,
                cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
            return
        marks = ", ".join("?" * len(columns))
        self.conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    def update_accounts(self, tenant: str, rows: list[tuple[Any, ...]]) -> None:
        """Set ``(debits_posted, credits_posted, debits_pending, credits_pending, id)`` of
        many accounts: one ``UPDATE … FROM unnest(arrays)`` on PostgreSQL."""
        if not rows:
            return
        if self._pg:
            cols = list(zip(*rows, strict=True))
            self.conn.execute(
                "UPDATE pay_accounts AS a SET debits_posted = v.dp, credits_posted = v.cp, "
                "debits_pending = v.dq, credits_pending = v.cq FROM unnest(%s::bigint[], "
                "%s::bigint[], %s::bigint[], %s::bigint[], %s::text[]) AS v(dp, cp, dq, cq, id) "
                "WHERE a.tenant = %s AND a.id = v.id",
                [list(c) for c in cols] + [tenant],
            )
            return
        self.conn.executemany(
            "UPDATE pay_accounts SET debits_posted = ?, credits_posted = ?, debits_pending = ?, "
            "credits_pending = ? WHERE tenant = ? AND id = ?",
            [(*r[:4], tenant, r[4]) for r in rows],
        )

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        return self.execute(sql, params).fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self.execute(sql, params).fetchall())

    def where_in(
        self, sql: str, column: str, values: Sequence[str], params: Sequence[Any] = ()
    ) -> list[tuple[Any, ...]]:
        """``sql`` with ``{in}`` replaced by ``column IN (values)``, run in chunks on SQLite
        (one ``= ANY(array)`` on PostgreSQL); ``params`` come before the values."""
        if not values:
            return []
        if self._pg:
            return self.all(sql.replace("{in}", f"{column} = ANY(?)"), [*params, list(values)])
        out: list[tuple[Any, ...]] = []
        for i in range(0, len(values), SQLITE_CHUNK):
            chunk = values[i : i + SQLITE_CHUNK]
            marks = ",".join("?" * len(chunk))
            out += self.all(sql.replace("{in}", f"{column} IN ({marks})"), [*params, *chunk])
        return out

    @property
    def for_update(self) -> str:
        """Row locks on PostgreSQL; SQLite's BEGIN IMMEDIATE already holds the write lock."""
        return " FOR UPDATE" if self._pg else ""


class Database:
    """The payments tables of one database; thread-safe (SQLite: one connection behind a
    lock, other processes wait on the file's lock; PostgreSQL: a small pool)."""

    def __init__(
        self, url: str, *, schema: str | None = None, pool_size: int = 4, durable: bool = True
    ) -> None:
        self.url = url
        self.schema = schema
        if url.startswith("sqlite:"):
            self.dialect = "sqlite"
            self.path = _sqlite_path(url)
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=60
            )
            self._lock = threading.Lock()
            if self.path != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit survives a power cut; NORMAL (durable=False, benchmarks): a
            # crash of the process, not of the machine
            self._conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._conn.execute("PRAGMA busy_timeout=60000")
            self._conn.execute("PRAGMA cache_size=-65536")  # 64 MiB
        elif url.startswith(("postgresql:", "postgres:")):
            from psycopg_pool import ConnectionPool

            self.dialect = "postgresql"
            if schema is not None and not _SCHEMA_NAME.match(schema):
                raise ValueError(f"bad PostgreSQL schema name {schema!r}")
            options = f"-c synchronous_commit={'on' if durable else 'off'}"
            if schema is not None:
                options += f" -c search_path={schema},public"
            self._pool = ConnectionPool(
                url,
                min_size=1,
                max_size=max(1, pool_size),
                kwargs={"options": options, "autocommit": False},
                open=True,
                name=f"cityos-payments-{schema or 'default'}",
            )
            self._pool.wait(timeout=10)
        else:
            raise ValueError(
                f"unsupported database URL {url!r}: use sqlite:///path/city.db or "
                "postgresql://user@host/db"
            )
        if self.dialect == "postgresql" and schema is not None:
            with self._pool.connection() as conn:
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        self.migrate()

    # -- transactions ------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        """A writing transaction: committed when the block ends, rolled back on an error."""
        if self.dialect == "sqlite":
            with self._lock:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield Tx(self._conn, "sqlite")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
        else:
            with self._pool.connection() as conn, conn.transaction():
                yield Tx(conn, "postgresql")

    @contextlib.contextmanager
    def reading(self) -> Iterator[Tx]:
        """A read-only snapshot (one statement's or one transaction's)."""
        if self.dialect == "sqlite":
            with self._lock:
                self._conn.execute("BEGIN")
                try:
                    yield Tx(self._conn, "sqlite")
                finally:
                    self._conn.execute("ROLLBACK")
        else:
            with self._pool.connection() as conn, conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                yield Tx(conn, "postgresql")

    def run(self, work: Callable[[Tx], T], *, attempts: int = 8) -> T:
        """``work(tx)`` in a writing transaction, run again from the start when PostgreSQL
        reports a conflict with a concurrent transaction (serialization failure, deadlock,
        a unique key a concurrent one took first); SQLite's lock has none of these."""
        if self.dialect == "sqlite":
            with self.transaction() as tx:
                return work(tx)
        import psycopg.errors as pgerr

        retry = (pgerr.SerializationFailure, pgerr.DeadlockDetected, pgerr.UniqueViolation)
        for attempt in range(attempts):
            try:
                with self.transaction() as tx:
                    return work(tx)
            except retry:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.001 * (2**attempt))
        raise AssertionError("unreachable")

    # -- lifecycle ---------------------------------------------------------------------
    def migrate(self) -> None:
        """Create the payments tables where they are missing (idempotent)."""
        rowid = " WITHOUT ROWID" if self.dialect == "sqlite" else ""
        if self.dialect == "postgresql":
            with self._pool.connection() as conn, conn.transaction():
                # two workers starting at once: one creates, the other waits for it
                conn.execute("SELECT pg_advisory_xact_lock(7316021)")
                for ddl in DDL:
                    conn.execute(ddl.replace("{rowid}", rowid))
            return
        with self.transaction() as tx:
            for ddl in DDL:
                tx.execute(ddl.replace("{rowid}", rowid))

    def drop(self) -> None:
        """Drop the payments tables (tests; a PostgreSQL schema of its own with them)."""
        if self.dialect == "postgresql" and self.schema:
            with self._pool.connection() as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
            return
        with self.transaction() as tx:
            for table in ("pay_taps", "pay_nonces", "pay_transfers", "pay_accounts"):
                tx.execute(f"DROP TABLE IF EXISTS {table}")

    def close(self) -> None:
        if self.dialect == "sqlite":
            with self._lock:
                self._conn.close()
        else:
            self._pool.close()


def _sqlite_path(url: str) -> str:
    """``sqlite:///relative.db``, ``sqlite:////absolute.db`` or ``sqlite://:memory:``."""
    rest = url.split(":", 1)[1]
    if rest in ("//:memory:", "///:memory:", ":memory:"):
        return ":memory:"
    if not rest.startswith("//"):
        raise ValueError(f"bad SQLite URL {url!r}: use sqlite:///path/city.db")
    return rest[3:] if rest.startswith("///") else rest[2:]
