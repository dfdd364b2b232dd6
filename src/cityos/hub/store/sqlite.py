"""The embedded store: one SQLite file (WAL, JSON1, R*Tree), zero set-up.

Entities are JSON documents in stored form. Filters run inside SQLite: ``q`` and ``scopeQ``
compile to JSON1 expressions (:mod:`cityos.hub.query.sql`), entity types live in a side
table, and geometries in an R*Tree with an exact check by Shapely registered as an SQL
function — so ``limit``/``offset`` and counts are computed on the filtered set.

Geo queries are driven from the R*Tree and stop at the page's last row, so their order is
the index's (stable while the data does not change), not insertion order.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from cityos.hub.errors import AlreadyExists
from cityos.hub.model import Entity
from cityos.hub.query import geo as geoq
from cityos.hub.query import sql as qsql
from cityos.hub.query.model import EntityQuery, GeoQuery, TypeAnd, TypeExpr, TypeName, TypeOr
from cityos.hub.query.order import compile_order
from cityos.hub.store.audit import AuditStore
from cityos.hub.store.audit_sqlite import SqliteAuditStore
from cityos.hub.store.base import (
    DEFAULT_TENANT,
    AttributeUse,
    Claimed,
    HistoryRow,
    Notification,
    QueryResult,
    Store,
    StoredContext,
    Transaction,
    history_where,
)
from cityos.hub.store.claims import (
    CLAIM_SQL,
    DUE_SQL,
    PERIODIC_SQL,
    claim_params,
    periodic_start,
)

# Each step carries the schema one version forward; never edit a released step, add one.
MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_initial",
        """
        CREATE TABLE tenants(name TEXT PRIMARY KEY);
        CREATE TABLE entities(
            pk INTEGER PRIMARY KEY,
            tenant TEXT NOT NULL,
            id TEXT NOT NULL,
            doc TEXT NOT NULL,
            created_at TEXT NOT NULL,
            modified_at TEXT NOT NULL,
            UNIQUE(tenant, id)
        );
        CREATE TABLE entity_types(
            tenant TEXT NOT NULL, type TEXT NOT NULL, pk INTEGER NOT NULL,
            PRIMARY KEY(tenant, type, pk)
        ) WITHOUT ROWID;
        CREATE INDEX entity_types_pk ON entity_types(pk);
        CREATE TABLE geo(
            gid INTEGER PRIMARY KEY,
            pk INTEGER NOT NULL,
            attr TEXT NOT NULL,
            seq INTEGER NOT NULL,
            is_point INTEGER NOT NULL,
            minx REAL NOT NULL, miny REAL NOT NULL, maxx REAL NOT NULL, maxy REAL NOT NULL,
            geojson TEXT NOT NULL
        );
        CREATE INDEX geo_pk ON geo(pk, attr);
        CREATE VIRTUAL TABLE geo_rtree USING rtree(gid, minx, maxx, miny, maxy);
        CREATE TABLE history(
            hid INTEGER PRIMARY KEY,
            tenant TEXT NOT NULL,
            entity_id TEXT NOT NULL,
            entity_type TEXT NOT NULL,
            attr TEXT NOT NULL,
            dataset_id TEXT,
            instance TEXT NOT NULL,
            op TEXT NOT NULL,
            observed_at TEXT,
            recorded_at TEXT NOT NULL
        );
        CREATE INDEX history_entity ON history(tenant, entity_id, attr, recorded_at);
        CREATE INDEX history_time ON history(recorded_at);
        CREATE TABLE contexts(
            id TEXT PRIMARY KEY,
            url TEXT NOT NULL UNIQUE,
            body TEXT NOT NULL,
            kind TEXT NOT NULL,
            created_at TEXT NOT NULL,
            extra TEXT NOT NULL DEFAULT '{}'
        );
        """,
    ),
    (
        "0002_drop_history_time_index",
        # every attribute change pays for each history index; nothing reads this one
        # (time-range reads go through history_entity, retention through partitions/rowid)
        """
        DROP INDEX history_time;
        """,
    ),
    (
        "0003_subscriptions_and_outbox",
        """
        CREATE TABLE subscriptions(
            tenant TEXT NOT NULL, id TEXT NOT NULL, doc TEXT NOT NULL, seq INTEGER NOT NULL,
            PRIMARY KEY(tenant, id)
        );
        CREATE TABLE outbox(
            nid INTEGER PRIMARY KEY,
            tenant TEXT NOT NULL,
            subscription_id TEXT NOT NULL,
            payload TEXT NOT NULL,
            created_at TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_at TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending'
        );
        CREATE INDEX outbox_due ON outbox(state, next_at);
        """,
    ),
    (
        "0004_registry",
        """
        CREATE TABLE registry(
            kind TEXT NOT NULL,
            tenant TEXT NOT NULL,
            id TEXT NOT NULL,
            doc TEXT NOT NULL,
            PRIMARY KEY(kind, tenant, id)
        );
        """,
    ),
    (
        "0005_delivery_claims_and_periodic",
        """
        CREATE TABLE delivery_claims(
            tenant TEXT NOT NULL, subscription_id TEXT NOT NULL,
            owner TEXT NOT NULL, until TEXT NOT NULL,
            PRIMARY KEY(tenant, subscription_id)
        );
        ALTER TABLE subscriptions ADD COLUMN periodic_at TEXT;
        CREATE TABLE subscription_version(
            one INTEGER PRIMARY KEY CHECK (one = 1), v INTEGER NOT NULL
        );
        INSERT INTO subscription_version VALUES (1, 0);
        CREATE INDEX outbox_subscription ON outbox(tenant, subscription_id, nid);
        """,
    ),
    (
        "0007_audit_log",
        # the audit log (cityos.security.audit): records with their RFC 6962 leaf hashes,
        # the tree's frontier (one row, also the appenders' lock) and the signed tree heads
        """
        CREATE TABLE audit_log(
            seq INTEGER PRIMARY KEY,
            time TEXT NOT NULL,
            record TEXT NOT NULL,
            leaf_hash BLOB NOT NULL
        );
        CREATE TABLE audit_state(
            one INTEGER PRIMARY KEY CHECK (one = 1),
            size INTEGER NOT NULL,
            frontier BLOB NOT NULL
        );
        INSERT INTO audit_state VALUES (1, 0, x'');
        CREATE TABLE audit_heads(
            hid INTEGER PRIMARY KEY,
            tree_size INTEGER NOT NULL,
            timestamp_ms INTEGER NOT NULL,
            root_hash BLOB NOT NULL,
            signature BLOB NOT NULL,
            key_id TEXT NOT NULL
        );
        CREATE INDEX audit_heads_size ON audit_heads(tree_size, timestamp_ms);
        """,
    ),
]


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


class SqliteTransaction(Transaction):
    def __init__(self, store: SqliteStore, tenant: str) -> None:
        self.store = store
        self.tenant = tenant
        self.conn = store._conn
        self._tenant_known = tenant == DEFAULT_TENANT or tenant in store._known_tenants
        # pk and index signature of rows read by get(): update() then needs no second read
        self._seen: dict[str, tuple[int, list[str], list[Any]]] = {}
        # index rows are buffered and written with one executemany per table at commit
        self._type_rows: list[tuple[str, str, int]] = []
        self._geo_rows: list[tuple[Any, ...]] = []
        self._next_gid: int | None = None

    def _ensure_tenant(self) -> None:
        if not self._tenant_known:
            self.conn.execute("INSERT OR IGNORE INTO tenants(name) VALUES (?)", (self.tenant,))
            self.store._known_tenants.add(self.tenant)
            self._tenant_known = True

    def _stored(self, ids: list[str]) -> Iterator[tuple[int, str, Entity]]:
        """(pk, id, stored entity) of those of ``ids`` that exist."""
        for chunk in _chunks(ids, 500):
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT pk, id, doc FROM entities WHERE tenant = ? AND id IN ({marks})",
                (self.tenant, *chunk),
            )
            for pk, eid, doc in rows:
                yield pk, eid, orjson.loads(doc)

    def get(self, ids: list[str]) -> dict[str, Entity]:
        # BEGIN IMMEDIATE already holds the write lock: reads here are stable until commit.
        out: dict[str, Entity] = {}
        for pk, eid, entity in self._stored(ids):
            out[eid] = entity
            self._seen[eid] = (pk, list(entity["type"]), _geo_of(entity))
        return out

    def insert(self, entity: Entity) -> None:
        self._ensure_tenant()
        cur = self.conn.execute(
            "INSERT INTO entities(tenant, id, doc, created_at, modified_at) VALUES (?,?,?,?,?) "
            "ON CONFLICT(tenant, id) DO NOTHING",
            (
                self.tenant,
                entity["id"],
                _dumps(entity),
                entity.get("createdAt", ""),
                entity.get("modifiedAt", ""),
            ),
        )
        if cur.rowcount == 0:
            raise AlreadyExists(f"entity {entity['id']} already exists")
        pk = cur.lastrowid
        self._index(pk, entity)
        self._seen[entity["id"]] = (pk, list(entity["type"]), _geo_of(entity))

    def update(self, entity: Entity) -> None:
        eid = entity["id"]
        if eid not in self._seen:
            self.get([eid])
            if eid not in self._seen:
                raise KeyError(eid)
        pk, old_types, old_geo = self._seen[eid]
        self.conn.execute(
            "UPDATE entities SET doc = ?, modified_at = ? WHERE pk = ?",
            (_dumps(entity), entity.get("modifiedAt", ""), pk),
        )
        new_geo = _geo_of(entity)
        if old_types != entity["type"]:
            self.flush()
            self.conn.execute("DELETE FROM entity_types WHERE pk = ?", (pk,))
            self._index_types(pk, entity)
        if old_geo != new_geo:
            self._unindex_geo(pk)
            self._index_geo(pk, entity)
        self._seen[eid] = (pk, list(entity["type"]), new_geo)

    def delete(self, entity_id: str) -> bool:
        row = self.conn.execute(
            "SELECT pk FROM entities WHERE tenant = ? AND id = ?", (self.tenant, entity_id)
        ).fetchone()
        if row is None:
            return False
        pk = row[0]
        self.flush()
        self._seen.pop(entity_id, None)
        self.conn.execute("DELETE FROM entities WHERE pk = ?", (pk,))
        self.conn.execute("DELETE FROM entity_types WHERE pk = ?", (pk,))
        self._unindex_geo(pk)
        return True

    def add_history(self, rows: list[HistoryRow]) -> None:
        if not rows:
            return
        self._ensure_tenant()
        self.conn.executemany(
            "INSERT INTO history(tenant, entity_id, entity_type, attr, dataset_id, instance, op,"
            " observed_at, recorded_at) VALUES (?,?,?,?,?,?,?,?,?)",
            [
                (
                    self.tenant,
                    r.entity_id,
                    r.entity_type,
                    r.attr,
                    r.dataset_id,
                    _dumps(r.instance),
                    r.op,
                    r.observed_at,
                    r.recorded_at,
                )
                for r in rows
            ],
        )

    def subscriptions_version(self) -> int:
        row = self.conn.execute("SELECT v FROM subscription_version").fetchone()
        return int(row[0]) if row else 0

    def list_subscriptions(self) -> list[tuple[str, dict[str, Any]]]:
        rows = self.conn.execute("SELECT tenant, doc FROM subscriptions ORDER BY seq").fetchall()
        return [(r[0], orjson.loads(r[1])) for r in rows]

    def peek(self, ids: list[str]) -> dict[str, Entity]:
        return {eid: entity for _, eid, entity in self._stored(ids)}

    def add_notifications(self, rows: list[tuple[str, dict[str, Any]]], now: str) -> None:
        if rows:
            self.conn.executemany(
                "INSERT INTO outbox(tenant, subscription_id, payload, created_at, next_at)"
                " VALUES (?,?,?,?,?)",
                [(self.tenant, sid, _dumps(payload), now, now) for sid, payload in rows],
            )
            self.store._outbox_written = True

    # -- secondary indexes -------------------------------------------------------------
    def _index(self, pk: int, entity: Entity) -> None:
        self._index_types(pk, entity)
        self._index_geo(pk, entity)

    def _index_types(self, pk: int, entity: Entity) -> None:
        self._type_rows.extend((self.tenant, t, pk) for t in entity["type"])

    def _index_geo(self, pk: int, entity: Entity) -> None:
        for attr, seq, geom in _geo_of(entity):
            try:
                minx, miny, maxx, maxy = geoq.geometry_bbox(geom)
            except Exception:  # not a geometry we can index: stays unindexed, never matches
                continue
            if self._next_gid is None:
                row = self.conn.execute("SELECT max(gid) FROM geo").fetchone()
                self._next_gid = (row[0] or 0) + 1
            gid = self._next_gid
            self._next_gid += 1
            is_point = 1 if geom.get("type") == "Point" else 0
            self._geo_rows.append(
                (gid, pk, attr, seq, is_point, minx, miny, maxx, maxy, _dumps(geom))
            )

    def flush(self) -> None:
        """Write the buffered index rows (before a delete, and at commit)."""
        if self._type_rows:
            self.conn.executemany(
                "INSERT OR IGNORE INTO entity_types(tenant, type, pk) VALUES (?,?,?)",
                self._type_rows,
            )
            self._type_rows = []
        if self._geo_rows:
            self.conn.executemany(
                "INSERT INTO geo(gid, pk, attr, seq, is_point, minx, miny, maxx, maxy, geojson)"
                " VALUES (?,?,?,?,?,?,?,?,?,?)",
                self._geo_rows,
            )
            self.conn.executemany(
                "INSERT INTO geo_rtree(gid, minx, maxx, miny, maxy) VALUES (?,?,?,?,?)",
                [(r[0], r[5], r[7], r[6], r[8]) for r in self._geo_rows],
            )
            self._geo_rows = []

    def _unindex_geo(self, pk: int) -> None:
        self.flush()
        self.conn.execute(
            "DELETE FROM geo_rtree WHERE gid IN (SELECT gid FROM geo WHERE pk = ?)", (pk,)
        )
        self.conn.execute("DELETE FROM geo WHERE pk = ?", (pk,))


def _geo_of(entity: Entity) -> list[tuple[str, int, dict[str, Any]]]:
    """(attribute IRI, instance index, geometry) of every GeoProperty instance."""
    out = []
    for attr, instances in entity.get("attrs", {}).items():
        for seq, inst in enumerate(instances):
            if inst.get("type") == "GeoProperty" and isinstance(inst.get("value"), dict):
                out.append((attr, seq, inst["value"]))
    return out


def _chunks(items: list[str], n: int) -> Iterator[list[str]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


class SqliteStore(Store):
    engine = "sqlite"

    def __init__(self, path: str | os.PathLike[str] = ":memory:") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30
        )
        self._lock = threading.RLock()
        self._audit = SqliteAuditStore(self.path, self._conn, self._lock, self._write)
        c = self._conn
        if self.path != ":memory:":
            c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=NORMAL")
        # checkpoint (and fsync) every ~40 MB of WAL rather than every 4 MB: small commits
        # were paying for a checkpoint every couple of hundred writes (114 -> 63 us a commit)
        c.execute("PRAGMA wal_autocheckpoint=10000")
        c.execute("PRAGMA cache_size=-262144")  # 256 MiB
        c.execute("PRAGMA mmap_size=1073741824")
        c.execute("PRAGMA temp_store=MEMORY")
        qsql.register_sqlite_functions(c)
        c.create_function("geo_match", 2, _geo_match_sql, deterministic=True)
        self._known_tenants: set[str] = set()
        # wakes this process's deliverer when a commit queued notifications (other
        # processes on the same file find them by polling)
        self._outbox_event = threading.Event()
        self._outbox_written = False

    @classmethod
    def from_url(cls, url: str) -> SqliteStore:
        """``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or ``sqlite://:memory:``."""
        rest = url.split(":", 1)[1]
        if rest in ("//:memory:", "///:memory:", ":memory:"):
            return cls(":memory:")
        if not rest.startswith("//"):
            raise ValueError(f"bad SQLite URL {url!r}: use sqlite:///path/city.db")
        return cls(rest[3:] if rest.startswith("///") else rest[2:])

    # -- lifecycle --------------------------------------------------------------------
    def schema_version(self) -> int:
        with self._lock:
            has_meta = self._conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='cityos_schema'"
            ).fetchone()
            if not has_meta:
                return 0
            row = self._conn.execute("SELECT max(version) FROM cityos_schema").fetchone()
            return int(row[0] or 0)

    def migrate(self) -> list[str]:
        with self._lock:
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS cityos_schema(version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT (datetime('now')))"
            )
            current = self.schema_version()
            applied = []
            for version, (name, script) in enumerate(MIGRATIONS, start=1):
                if version <= current:
                    continue
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    for stmt in _split_sql(script):
                        self._conn.execute(stmt)
                    self._conn.execute(
                        "INSERT INTO cityos_schema(version, name) VALUES (?, ?)", (version, name)
                    )
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                applied.append(name)
            self._known_tenants = {r[0] for r in self._conn.execute("SELECT name FROM tenants")}
            return applied

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            c = self._conn
            size = 0
            if self.path != ":memory:":
                for suffix in ("", "-wal"):
                    p = Path(self.path + suffix)
                    if p.exists():
                        size += p.stat().st_size
            return {
                "engine": self.engine,
                "path": self.path,
                "schema_version": self.schema_version(),
                "tenants": 1
                + c.execute("SELECT count(*) FROM tenants WHERE name != ''").fetchone()[0],
                "entities": c.execute("SELECT count(*) FROM entities").fetchone()[0],
                "history_rows": c.execute("SELECT count(*) FROM history").fetchone()[0],
                "contexts": c.execute("SELECT count(*) FROM contexts").fetchone()[0],
                "size_bytes": size,
            }

    # -- tenants ------------------------------------------------------------------------
    def tenant_exists(self, tenant: str) -> bool:
        if tenant == DEFAULT_TENANT or tenant in self._known_tenants:
            return True
        with self._lock:
            row = self._conn.execute("SELECT 1 FROM tenants WHERE name = ?", (tenant,)).fetchone()
        if row:
            self._known_tenants.add(tenant)
        return row is not None

    def tenants(self) -> list[str]:
        with self._lock:
            rows = self._conn.execute("SELECT name FROM tenants ORDER BY name").fetchall()
        return [DEFAULT_TENANT] + [r[0] for r in rows if r[0] != DEFAULT_TENANT]

    # -- entities -------------------------------------------------------------------------
    @contextmanager
    def transaction(self, tenant: str) -> Iterator[Transaction]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            known = set(self._known_tenants)
            try:
                tx = SqliteTransaction(self, tenant)
                yield tx
                tx.flush()
            except BaseException:
                self._conn.execute("ROLLBACK")
                self._known_tenants = known
                raise
            self._conn.execute("COMMIT")
            if self._outbox_written:
                self._outbox_written = False
                self._outbox_event.set()

    def get_entity(self, tenant: str, entity_id: str) -> Entity | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT doc FROM entities WHERE tenant = ? AND id = ?", (tenant, entity_id)
            ).fetchone()
        return orjson.loads(row[0]) if row else None

    def query(self, tenant: str, query: EntityQuery) -> QueryResult:
        """One statement, driven from the most selective index so LIMIT can stop early:
        the R*Tree for geo-queries, the type index for a single type, else the table."""
        drive_by_type = query.geo is None and isinstance(query.types, TypeName)
        where, params = self._where(tenant, query, types=not drive_by_type)
        if query.geo is not None:
            geo_from, geo_where, geo_params = _geo_source(query.geo)
            source = f"{geo_from} CROSS JOIN entities e ON e.pk = g.pk"
            # the exact geometry test (Shapely, for shapes the box cannot decide) only for
            # rows of the asked type and q: a CASE fixes the order SQLite would not keep, so
            # the buildings in a box of traffic detectors are never tested
            *index_where, match_sql, first_sql = geo_where
            *index_params, match_key, first_key = geo_params
            exact = f"({match_sql} AND {first_sql})"
            where = [*index_where, f"(CASE WHEN {' AND '.join(where)} THEN {exact} ELSE 0 END)"]
            params = [*index_params, *params, match_key, first_key]
            order = ""
        elif drive_by_type:
            assert isinstance(query.types, TypeName)
            source = "entity_types t CROSS JOIN entities e ON e.pk = t.pk"
            where = ["t.tenant = ?", "t.type = ?", *where]
            params = [tenant, query.types.name, *params]
            order = " ORDER BY t.pk"
        else:
            source = "entities e"
            order = " ORDER BY e.pk"
        order_params: list[Any] = []
        if query.order:  # orderBy: sorted in the database, so limit/offset page one order
            order, order_params = compile_order(query.order, "sqlite", "e.doc", "e.pk")
        where_sql = " AND ".join(where) if where else "1"
        sql = f"SELECT e.doc FROM {source} WHERE {where_sql}{order} LIMIT ? OFFSET ?"
        page_params = (*params, *order_params, query.limit, query.offset)
        with self._lock:
            rows = self._conn.execute(sql, page_params).fetchall()
            count = None
            if query.count:
                count = self._conn.execute(
                    f"SELECT count(*) FROM {source} WHERE {where_sql}", params
                ).fetchone()[0]
        return QueryResult([orjson.loads(r[0]) for r in rows], count)

    def _where(
        self, tenant: str, query: EntityQuery, *, types: bool = True
    ) -> tuple[list[str], list[Any]]:
        where = ["e.tenant = ?"]
        params: list[Any] = [tenant]
        if query.ids:
            where.append(f"e.id IN ({','.join('?' * len(query.ids))})")
            params.extend(query.ids)
        if query.id_pattern:
            where.append("regexp(?, e.id)")
            params.append(f"^(?:{query.id_pattern})$")
        # JSON conditions parse the document: SQLite may evaluate WHERE terms in any order,
        # so a CASE makes it test the entity type (an index probe) first (14 -> 6 ms a query).
        json_where: list[str] = []
        json_params: list[Any] = []
        if query.attrs:
            sql, p = qsql.compile_attrs_any(query.attrs, "sqlite", "e.doc")
            json_where.append(sql)
            json_params.extend(p)
        if query.q is not None:
            sql, p = qsql.compile_q(query.q, "sqlite", "e.doc")
            json_where.append(f"({sql})")
            json_params.extend(p)
        if query.scope is not None:
            sql, p = qsql.compile_scope(query.scope, "sqlite", "e.doc")
            json_where.append(f"({sql})")
            json_params.extend(p)
        if types and query.types is not None:
            tsql, tp = _types_sql(query.types, tenant)
            if json_where:
                where.append(f"(CASE WHEN {tsql} THEN ({' AND '.join(json_where)}) ELSE 0 END)")
                params.extend([*tp, *json_params])
                return where, params
            where.append(tsql)
            params.extend(tp)
        where.extend(json_where)
        params.extend(json_params)
        return where, params

    def attribute_uses(self, tenant: str) -> list[AttributeUse]:
        sql = """
            SELECT t.type, a.key, json_extract(i.value, '$.type') AS atype,
                   count(DISTINCT e.pk)
            FROM entities e
            JOIN entity_types t ON t.pk = e.pk AND t.tenant = e.tenant
            JOIN json_each(e.doc, '$.attrs') a
            JOIN json_each(a.value) i
            WHERE e.tenant = ?
            GROUP BY t.type, a.key, atype
            ORDER BY t.type, a.key, atype
        """
        with self._lock:
            rows = self._conn.execute(sql, (tenant,)).fetchall()
        return [AttributeUse(r[0], r[1], r[2], r[3]) for r in rows]

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
        where, params = history_where(
            "?",
            tenant,
            entity_id,
            attr,
            attrs,
            time_property,
            after,
            before,
            columns=("observed_at", "recorded_at"),
        )
        sql = (
            "SELECT entity_id, entity_type, attr, dataset_id, instance, op, observed_at,"
            f" recorded_at, hid FROM history WHERE {where} ORDER BY hid LIMIT ?"
        )
        with self._lock:
            rows = self._conn.execute(sql, [*params, limit]).fetchall()
        return [
            HistoryRow(r[0], r[1], r[2], r[3], orjson.loads(r[4]), r[5], r[6], r[7], r[8])
            for r in rows
        ]

    def update_history_instance(
        self, tenant: str, entity_id: str, attr: str, instance_id: int, instance: dict[str, Any]
    ) -> bool:
        with self._lock:
            cur = self._conn.execute(
                "UPDATE history SET instance = ?, observed_at = ? WHERE hid = ? AND tenant = ?"
                " AND entity_id = ? AND attr = ?",
                (
                    _dumps(instance),
                    instance.get("observedAt"),
                    instance_id,
                    tenant,
                    entity_id,
                    attr,
                ),
            )
        return cur.rowcount > 0

    def delete_history(
        self, tenant: str, entity_id: str, attr: str | None = None, instance_id: int | None = None
    ) -> int:
        sql = "DELETE FROM history WHERE tenant = ? AND entity_id = ?"
        params: list[Any] = [tenant, entity_id]
        if attr is not None:
            sql += " AND attr = ?"
            params.append(attr)
        if instance_id is not None:
            sql += " AND hid = ?"
            params.append(instance_id)
        with self._lock:
            return self._conn.execute(sql, params).rowcount

    def purge_history(
        self,
        before: str,
        *,
        tenant: str | None = None,
        entity_type: str | None = None,
        attr: str | None = None,
    ) -> int:
        sql = "DELETE FROM history WHERE recorded_at < ?"
        params: list[Any] = [before]
        for column, value in (("tenant", tenant), ("entity_type", entity_type), ("attr", attr)):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        with self._lock:
            return self._conn.execute(sql, params).rowcount

    # -- subscriptions and the outbox ---------------------------------------------------
    def put_subscription(self, tenant: str, sub: dict[str, Any]) -> None:
        with self._write() as c:
            c.execute(
                "INSERT INTO subscriptions(tenant, id, doc, seq, periodic_at) VALUES (?, ?, ?,"
                " (SELECT coalesce(max(seq), 0) + 1 FROM subscriptions), ?)"
                " ON CONFLICT(tenant, id) DO UPDATE SET doc = excluded.doc, periodic_at ="
                " CASE WHEN excluded.periodic_at IS NULL THEN NULL"
                " ELSE coalesce(subscriptions.periodic_at, excluded.periodic_at) END",
                (tenant, sub["id"], _dumps(sub), periodic_start(sub)),
            )
            c.execute("UPDATE subscription_version SET v = v + 1")

    def put_subscription_status(self, tenant: str, sub_id: str, fields: dict[str, Any]) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE subscriptions SET doc = json_patch(doc, ?) WHERE tenant = ? AND id = ?",
                (_dumps(fields), tenant, sub_id),
            )

    def subscriptions_version(self) -> int:
        with self._lock:
            row = self._conn.execute("SELECT v FROM subscription_version").fetchone()
        return int(row[0]) if row else 0

    def claim_deliveries(self, owner: str, now: str, until: str, limit: int = 500) -> Claimed:
        with self._write() as c:
            c.execute(CLAIM_SQL, claim_params(owner, now, until))
            rows = c.execute(DUE_SQL, (owner, now, now, limit)).fetchall()
            periodic = c.execute(PERIODIC_SQL, (owner, now)).fetchall()
        return Claimed(
            [Notification(r[0], r[1], r[2], orjson.loads(r[3]), r[4]) for r in rows],
            [(r[0], r[1]) for r in periodic],
        )

    def release_deliveries(
        self,
        owner: str,
        subscriptions: list[tuple[str, str]] | None = None,
        *,
        keep: set[tuple[str, str]] | None = None,
    ) -> None:
        with self._lock:
            if subscriptions is None:
                rows = self._conn.execute(
                    "SELECT tenant, subscription_id FROM delivery_claims WHERE owner = ?",
                    (owner,),
                ).fetchall()
                subscriptions = [(t, s) for t, s in rows if (t, s) not in (keep or set())]
            self._conn.executemany(
                "DELETE FROM delivery_claims WHERE owner = ? AND tenant = ?"
                " AND subscription_id = ?",
                [(owner, t, s) for t, s in subscriptions],
            )

    def add_periodic_notification(
        self, tenant: str, sub_id: str, payload: dict[str, Any] | None, now: str, next_at: str
    ) -> None:
        with self._write() as c:
            if payload is not None:
                c.execute(
                    "INSERT INTO outbox(tenant, subscription_id, payload, created_at, next_at)"
                    " VALUES (?,?,?,?,?)",
                    (tenant, sub_id, _dumps(payload), now, now),
                )
            c.execute(
                "UPDATE subscriptions SET periodic_at = ? WHERE tenant = ? AND id = ?"
                " AND periodic_at IS NOT NULL",
                (next_at, tenant, sub_id),
            )

    def wait_for_outbox(self, timeout: float) -> None:
        if self._outbox_event.wait(timeout):
            self._outbox_event.clear()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A short write transaction of its own (BEGIN IMMEDIATE … COMMIT)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def get_subscription(self, tenant: str, sub_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT doc FROM subscriptions WHERE tenant = ? AND id = ?", (tenant, sub_id)
            ).fetchone()
        return orjson.loads(row[0]) if row else None

    def list_subscriptions(self, tenant: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        sql = "SELECT tenant, doc FROM subscriptions"
        params: list[Any] = []
        if tenant is not None:
            sql += " WHERE tenant = ?"
            params.append(tenant)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY seq", params).fetchall()
        return [(r[0], orjson.loads(r[1])) for r in rows]

    def delete_subscription(self, tenant: str, sub_id: str) -> bool:
        with self._write() as c:
            cur = c.execute(
                "DELETE FROM subscriptions WHERE tenant = ? AND id = ?", (tenant, sub_id)
            )
            c.execute(
                "DELETE FROM outbox WHERE tenant = ? AND subscription_id = ?", (tenant, sub_id)
            )
            c.execute("UPDATE subscription_version SET v = v + 1")
        return cur.rowcount > 0

    def finish_notifications(
        self, nids: list[int], *, delivered: bool, next_at: str | None
    ) -> None:
        if delivered:
            sql, rows = "DELETE FROM outbox WHERE nid = ?", [(n,) for n in nids]
        elif next_at is None:
            sql = "UPDATE outbox SET attempts = attempts + 1, state = 'failed' WHERE nid = ?"
            rows = [(n,) for n in nids]
        else:
            sql = "UPDATE outbox SET attempts = attempts + 1, next_at = ? WHERE nid = ?"
            rows = [(next_at, n) for n in nids]
        with self._write() as c:
            c.executemany(sql, rows)

    # -- registries -----------------------------------------------------------------------
    def put_doc(self, kind: str, tenant: str, doc_id: str, doc: dict[str, Any]) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO registry(kind, tenant, id, doc) VALUES (?,?,?,?)"
                " ON CONFLICT(kind, tenant, id) DO UPDATE SET doc = excluded.doc",
                (kind, tenant, doc_id, _dumps(doc)),
            )

    def get_doc(self, kind: str, tenant: str, doc_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT doc FROM registry WHERE kind = ? AND tenant = ? AND id = ?",
                (kind, tenant, doc_id),
            ).fetchone()
        return orjson.loads(row[0]) if row else None

    def list_docs(self, kind: str, tenant: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT doc FROM registry WHERE kind = ? AND tenant = ? ORDER BY id", (kind, tenant)
            ).fetchall()
        return [orjson.loads(r[0]) for r in rows]

    def delete_doc(self, kind: str, tenant: str, doc_id: str) -> bool:
        with self._lock:
            cur = self._conn.execute(
                "DELETE FROM registry WHERE kind = ? AND tenant = ? AND id = ?",
                (kind, tenant, doc_id),
            )
        return cur.rowcount > 0

    def doc_tenants(self, kind: str, doc_id: str) -> list[str]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT tenant FROM registry WHERE kind = ? AND id = ? ORDER BY tenant",
                (kind, doc_id),
            ).fetchall()
        return [r[0] for r in rows]

    # -- contexts -------------------------------------------------------------------------
    def put_context(self, ctx: StoredContext) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO contexts(id, url, body, kind, created_at, extra) VALUES (?,?,?,?,?,?)"
                " ON CONFLICT(id) DO UPDATE SET url=excluded.url, body=excluded.body,"
                " kind=excluded.kind, created_at=excluded.created_at, extra=excluded.extra",
                (ctx.id, ctx.url, _dumps(ctx.body), ctx.kind, ctx.created_at, _dumps(ctx.extra)),
            )

    def get_context(self, key: str) -> StoredContext | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT id, url, body, kind, created_at, extra FROM contexts"
                " WHERE id = ? OR url = ? LIMIT 1",
                (key, key),
            ).fetchone()
        return _ctx_row(row) if row else None

    def list_contexts(self) -> list[StoredContext]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, url, body, kind, created_at, extra FROM contexts ORDER BY created_at, id"
            ).fetchall()
        return [_ctx_row(r) for r in rows]

    def delete_context(self, key: str) -> bool:
        with self._lock:
            cur = self._conn.execute("DELETE FROM contexts WHERE id = ? OR url = ?", (key, key))
        return cur.rowcount > 0

    # -- the audit log's storage ----------------------------------------------------------
    @property
    def audit(self) -> AuditStore:
        return self._audit


def _ctx_row(r: tuple[Any, ...]) -> StoredContext:
    return StoredContext(r[0], r[1], orjson.loads(r[2]), r[3], r[4], orjson.loads(r[5]))


def _types_sql(expr: TypeExpr, tenant: str) -> tuple[str, list[Any]]:
    if isinstance(expr, TypeName):
        return (
            "EXISTS (SELECT 1 FROM entity_types t WHERE t.tenant = ? AND t.type = ? AND t.pk = e.pk)",
            [tenant, expr.name],
        )
    parts = [_types_sql(item, tenant) for item in expr.items]
    joiner = " AND " if isinstance(expr, TypeAnd) else " OR "
    assert isinstance(expr, TypeAnd | TypeOr)
    return "(" + joiner.join(p[0] for p in parts) + ")", [x for p in parts for x in p[1]]


# The exact geometry test runs in Python (Shapely); SQLite calls it only for rows the
# R*Tree box (and, for points in a box, an exact coordinate test) could not decide.
_GEO_QUERIES: dict[str, GeoQuery] = {}


def _geo_match_sql(geojson: str, key: str) -> int:
    gq = _GEO_QUERIES.get(key)
    if gq is None:
        return 0
    return 1 if geoq.geo_match(json.loads(geojson), gq) else 0


def _geo_key(gq: GeoQuery) -> str:
    key = _dumps([gq.georel, gq.geometry, gq.geoproperty, gq.max_distance, gq.min_distance])
    if key not in _GEO_QUERIES:
        if len(_GEO_QUERIES) > 1024:
            _GEO_QUERIES.clear()
        _GEO_QUERIES[key] = gq
    return key


def _is_box(geometry: dict[str, Any]) -> tuple[float, float, float, float] | None:
    """The (minx, miny, maxx, maxy) of an axis-aligned rectangle polygon, else None."""
    if geometry.get("type") != "Polygon":
        return None
    rings = geometry.get("coordinates") or []
    if len(rings) != 1 or len(rings[0]) != 5:
        return None
    xs = {round(p[0], 12) for p in rings[0]}
    ys = {round(p[1], 12) for p in rings[0]}
    if len(xs) != 2 or len(ys) != 2:
        return None
    return min(xs), min(ys), max(xs), max(ys)


def _geo_source(gq: GeoQuery) -> tuple[str, list[str], list[Any]]:
    """FROM clause and conditions that drive a geo query from the R*Tree."""
    key = _geo_key(gq)
    bbox = geoq.query_bbox(gq)
    where = ["g.attr = ?"]
    params: list[Any] = [gq.geoproperty]
    match = "geo_match(g.geojson, ?)"
    box = _is_box(gq.geometry) if gq.georel in ("within", "intersects") else None
    if box is not None:
        # A point inside an axis-aligned box needs no Shapely call: compare coordinates.
        match = f"(CASE WHEN g.is_point THEN (g.minx BETWEEN {box[0]!r} AND {box[2]!r} AND g.miny BETWEEN {box[1]!r} AND {box[3]!r}) ELSE {match} END)"
    if bbox is not None:
        source = "geo_rtree r CROSS JOIN geo g ON g.gid = r.gid"
        where[:0] = ["r.minx <= ?", "r.maxx >= ?", "r.miny <= ?", "r.maxy >= ?"]
        params[:0] = [bbox[2], bbox[0], bbox[3], bbox[1]]
    else:
        source = "geo g"
    where.append(match)
    params.append(key)
    # An entity whose GeoProperty has several instances must appear once: keep the first match.
    where.append(
        f"(g.seq = 0 OR NOT EXISTS (SELECT 1 FROM geo g0 WHERE g0.pk = g.pk AND g0.attr = g.attr"
        f" AND g0.seq < g.seq AND {match.replace('g.', 'g0.')}))"
    )
    params.append(key)
    return source, where, params


def _split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
