"""The store at scale: PostgreSQL 15 + PostGIS, entities as JSONB documents.

Every filter of an entity query runs in one SQL statement: types through a GIN index on a
``text[]`` column, ``q`` and ``scopeQ`` compiled to JSONB expressions
(:mod:`cityos.hub.query.sql`), geo-queries through a GiST index on a side table with one
PostGIS geometry per GeoProperty instance. History is a table partitioned by
``recorded_at`` so retention can drop whole partitions instead of deleting rows.

Tests and tools can give a store its own PostgreSQL schema (``schema=``), so many stores
share one database; :meth:`PostgresStore.throwaway` makes one with a random schema and
:meth:`PostgresStore.drop_schema` removes it again.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import secrets
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import groupby
from typing import Any

import orjson
import psycopg
import shapely
from psycopg import sql as psql
from psycopg.types.json import set_json_loads
from psycopg_pool import ConnectionPool
from shapely.geometry import shape

from cityos.hub.errors import AlreadyExists, BadRequestData
from cityos.hub.model import Entity
from cityos.hub.query.model import (
    EntityQuery,
    GeoQuery,
    TypeAnd,
    TypeExpr,
    TypeName,
    TypeOr,
)
from cityos.hub.store.audit import AuditStore
from cityos.hub.store.audit_postgres import PostgresAuditStore
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
# Names are unqualified: they resolve through the connection's search_path (schema, public).
MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_initial",
        """
        CREATE TABLE tenants(name text PRIMARY KEY);
        CREATE TABLE entities(
            pk bigserial PRIMARY KEY,
            tenant text NOT NULL,
            id text NOT NULL,
            types text[] NOT NULL,
            doc jsonb NOT NULL,
            created_at text NOT NULL DEFAULT '',
            modified_at text NOT NULL DEFAULT '',
            UNIQUE(tenant, id)
        );
        CREATE INDEX entities_tenant_pk ON entities(tenant, pk);
        CREATE INDEX entities_types ON entities USING gin(types);
        CREATE TABLE entity_geo(
            pk bigint NOT NULL REFERENCES entities(pk) ON DELETE CASCADE,
            attr text NOT NULL,
            geom geometry(Geometry, 4326) NOT NULL
        );
        CREATE INDEX entity_geo_pk ON entity_geo(pk);
        CREATE INDEX entity_geo_geom ON entity_geo USING gist(geom);
        CREATE TABLE history(
            seq bigserial NOT NULL,
            tenant text NOT NULL,
            entity_id text NOT NULL,
            entity_type text NOT NULL,
            attr text NOT NULL,
            dataset_id text,
            instance jsonb NOT NULL,
            op text NOT NULL,
            observed_at timestamptz,
            recorded_at timestamptz NOT NULL,
            observed_text text,
            recorded_text text NOT NULL
        ) PARTITION BY RANGE (recorded_at);
        CREATE TABLE history_default PARTITION OF history DEFAULT;
        CREATE INDEX history_entity ON history(tenant, entity_id, attr, seq);
        CREATE INDEX history_time ON history(recorded_at);
        CREATE TABLE contexts(
            id text PRIMARY KEY,
            url text NOT NULL UNIQUE,
            body jsonb NOT NULL,
            kind text NOT NULL,
            created_at text NOT NULL,
            extra jsonb NOT NULL DEFAULT '{}'
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
            tenant text NOT NULL, id text NOT NULL, doc jsonb NOT NULL,
            seq bigserial NOT NULL, PRIMARY KEY(tenant, id)
        );
        CREATE TABLE outbox(
            nid bigserial PRIMARY KEY,
            tenant text NOT NULL,
            subscription_id text NOT NULL,
            payload jsonb NOT NULL,
            created_at text NOT NULL,
            attempts integer NOT NULL DEFAULT 0,
            next_at text NOT NULL,
            state text NOT NULL DEFAULT 'pending'
        );
        CREATE INDEX outbox_due ON outbox(state, next_at);
        """,
    ),
    (
        "0004_registry",
        """
        CREATE TABLE registry(
            kind text NOT NULL,
            tenant text NOT NULL,
            id text NOT NULL,
            doc jsonb NOT NULL,
            PRIMARY KEY(kind, tenant, id)
        );
        """,
    ),
    (
        "0005_delivery_claims_and_periodic",
        """
        CREATE TABLE delivery_claims(
            tenant text NOT NULL, subscription_id text NOT NULL,
            owner text NOT NULL, until text NOT NULL,
            PRIMARY KEY(tenant, subscription_id)
        );
        ALTER TABLE subscriptions ADD COLUMN periodic_at text;
        CREATE TABLE subscription_version(
            one integer PRIMARY KEY CHECK (one = 1), v bigint NOT NULL
        );
        INSERT INTO subscription_version VALUES (1, 0);
        CREATE INDEX outbox_subscription ON outbox(tenant, subscription_id, nid);
        """,
    ),
    (
        "0006_outbox_notify_trigger",
        # every commit that queued notifications wakes every worker's deliverer (LISTEN),
        # with no extra round trip for the writer
        """
        CREATE FUNCTION cityos_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('cityos_outbox_' || TG_TABLE_SCHEMA, '');
            RETURN NULL;
        END $$;
        CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
            FOR EACH STATEMENT EXECUTE FUNCTION cityos_outbox_notify();
        """,
    ),
    (
        "0007_audit_log",
        # the audit log (cityos.security.audit): records with their RFC 6962 leaf hashes (the
        # record as text, not jsonb: its exact bytes are hashed), the tree's frontier (one
        # row, also the appenders' lock: seq has no gaps) and the signed tree heads
        """
        CREATE TABLE audit_log(
            seq bigint PRIMARY KEY,
            time text NOT NULL,
            record text NOT NULL,
            leaf_hash bytea NOT NULL
        );
        CREATE TABLE audit_state(
            one integer PRIMARY KEY CHECK (one = 1),
            size bigint NOT NULL,
            frontier bytea NOT NULL
        );
        INSERT INTO audit_state VALUES (1, 0, ''::bytea);
        CREATE TABLE audit_heads(
            hid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tree_size bigint NOT NULL,
            timestamp_ms bigint NOT NULL,
            root_hash bytea NOT NULL,
            signature bytea NOT NULL,
            key_id text NOT NULL
        );
        CREATE INDEX audit_heads_size ON audit_heads(tree_size, timestamp_ms);
        """,
    ),
]

# The threads the API runs PostgreSQL calls on (cityos.hub.api.common.store_call): two per
# core overlap one call's round trips with another's Python; more only contend for the GIL.
# At most 8: each holds a pooled connection, and a big machine runs a worker per core.
_API_THREADS = min(8, 2 * (os.cpu_count() or 1))
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_MIGRATION_LOCK = 0x43495459  # "CITY": one migration at a time per database

UNREACHABLE_HINT = "start it with 'pg_ctlcluster 15 main start'"


log = logging.getLogger("cityos.store.postgres")
HISTORY_MONTHS_AHEAD = 2  # partitions made ahead; later rows wait in the default one


def _next_month(d: datetime) -> datetime:
    return d.replace(year=d.year + d.month // 12, month=d.month % 12 + 1)


def _dumps(obj: Any) -> str:
    try:
        return orjson.dumps(obj).decode()
    except TypeError:  # e.g. integers beyond 64 bits, which orjson refuses
        return json.dumps(obj, ensure_ascii=False)


def _parse_time(text: str | None) -> datetime | None:
    """A timestamptz for an ISO 8601 string; None when it does not parse (the text is kept)."""
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def server_unreachable(url: str, timeout: float = 3.0) -> str | None:
    """Why a PostgreSQL server cannot be used (for test skips and ``cityos db check``); None if it can."""
    try:
        with psycopg.connect(url, connect_timeout=max(1, int(timeout))) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL not reachable at {_safe_url(url)}: {UNREACHABLE_HINT} ({exc})".strip()
    return None


# ---------------------------------------------------------------------------- geometry


GeoRow = tuple[str, dict[str, Any]]  # (attribute IRI, GeoJSON geometry)


def _geo_of(entity: Entity) -> list[GeoRow]:
    """(attribute IRI, geometry) of every GeoProperty instance, in document order."""
    out: list[GeoRow] = []
    for attr, instances in (entity.get("attrs") or {}).items():
        for inst in instances:
            if inst.get("type") == "GeoProperty" and isinstance(inst.get("value"), dict):
                out.append((attr, inst["value"]))
    return out


def _point_wkb(geom: dict[str, Any]) -> bytes | None:
    """WKB of a plain 2-D or 3-D GeoJSON Point without Shapely (50x faster, the common case)."""
    if geom.get("type") != "Point":
        return None
    c = geom.get("coordinates")
    if not isinstance(c, list) or len(c) not in (2, 3):
        return None
    x, y = c[0], c[1]
    if type(x) not in (int, float) or type(y) not in (int, float):
        return None
    try:
        return struct.pack("<BIdd", 1, 1, float(x), float(y)) if math.isfinite(x + y) else None
    except OverflowError:  # an integer beyond any float
        return None


def _wkb_rows(rows: list[GeoRow]) -> tuple[list[str], list[bytes]]:
    """2-D WKB of the geometries Shapely can read; the others stay unindexed and never match."""
    attrs: list[str] = []
    wkbs: list[bytes] = []
    for attr, geom in rows:
        point = _point_wkb(geom)
        if point is not None:
            attrs.append(attr)
            wkbs.append(point)
            continue
        try:
            g = shape(geom)
            if g.is_empty:
                continue
            if not g.is_valid:  # as the embedded store does; GEOS would refuse it in queries
                g = shapely.make_valid(g)
            wkb = shapely.to_wkb(g, output_dimension=2)
        except Exception:  # malformed GeoJSON: not a geometry we can index
            continue
        attrs.append(attr)
        wkbs.append(wkb)
    return attrs, wkbs


# ---------------------------------------------------------------------------- transactions


# Queued writes go out as one statement per run of the same kind, rows passed as arrays
# in binary format (%b): the text format escapes every quote of every document in Python.
_TYPES_OF_DOC = (
    "CASE jsonb_typeof(v.d -> 'type') WHEN 'string' THEN ARRAY[v.d ->> 'type']"
    " ELSE ARRAY(SELECT jsonb_array_elements_text(v.d -> 'type')) END"
)
_INSERT_MANY = (
    "INSERT INTO entities(tenant, id, types, doc, created_at, modified_at)"
    f" SELECT %s, v.id, {_TYPES_OF_DOC}, v.d, v.c, v.m"
    " FROM (SELECT id, d::jsonb AS d, c, m, n"
    " FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[]) WITH ORDINALITY AS u(id, d, c, m, n)) v"
    " ORDER BY v.n ON CONFLICT (tenant, id) DO NOTHING RETURNING id"
)
_INSERT_GEO_MANY = (
    "INSERT INTO entity_geo(pk, attr, geom) SELECT e.pk, x.attr, ST_GeomFromWKB(x.wkb, 4326)"
    " FROM unnest(%b::text[], %b::text[], %b::bytea[]) AS x(id, attr, wkb)"
    " JOIN entities e ON e.tenant = %s AND e.id = x.id"
)
_UPDATE_MANY = (
    f"UPDATE entities e SET doc = v.d, types = {_TYPES_OF_DOC}, modified_at = v.m"
    " FROM (SELECT id, d::jsonb AS d, m FROM unnest(%b::text[], %b::text[], %b::text[]) AS u(id, d, m)) v"
    " WHERE e.tenant = %s AND e.id = v.id"
)
_HISTORY_COLUMNS = (
    "tenant, entity_id, entity_type, attr, dataset_id, instance, op,"
    " observed_at, recorded_at, observed_text, recorded_text"
)
_COPY_THRESHOLD = 64  # history rows from which COPY beats a pipelined executemany


@dataclass
class _Write:
    """An entity write, serialised when it is made (the caller may change its dict later)."""

    id: str
    doc: str = ""
    created: str = ""
    modified: str = ""
    geo: list[GeoRow] = field(default_factory=list)
    geo_attrs: list[str] = field(default_factory=list)
    geo_wkbs: list[bytes] = field(default_factory=list)
    geo_changed: bool = True

    @classmethod
    def of(cls, entity: Entity, old_geo: list[GeoRow] | None) -> _Write:
        geo = _geo_of(entity)
        changed = old_geo is None or old_geo != geo
        attrs, wkbs = _wkb_rows(geo) if changed else ([], [])
        return cls(
            entity["id"],
            _dumps(entity),
            entity.get("createdAt", ""),
            entity.get("modifiedAt", ""),
            geo,
            attrs,
            wkbs,
            changed,
        )


class PostgresTransaction(Transaction):
    """One pooled connection inside BEGIN … COMMIT; ``get`` locks rows with FOR UPDATE.

    Writes whose outcome is already known are queued and sent in one pipeline (one round
    trip) before the next read and at commit: updates and deletes of rows this
    transaction locked with ``get`` or inserted, and inserts of ids ``get`` found absent.
    Anything else runs at once, so ``insert`` of an unchecked id raises AlreadyExists
    right there. History rows are written at the flush too (COPY when many).

    ``BEGIN`` travels with the first statement and ``COMMIT`` with the last writes, so a
    read-modify-write (a PATCH) costs two round trips, not five: on a machine where the
    database shares the cores, each round trip is two context switches and a wake-up.
    """

    def __init__(self, store: PostgresStore, conn: psycopg.Connection[Any], tenant: str) -> None:
        self.store = store
        self.conn = conn
        self.tenant = tenant
        self._tenant_known = tenant == DEFAULT_TENANT or tenant in store._known_tenants
        # Geometries of rows this transaction locked or wrote: lets ``update`` skip
        # rewriting the geo index when no GeoProperty changed (the common sensor update).
        self._seen: dict[str, list[GeoRow]] = {}
        self._absent: set[str] = set()  # ids ``get`` looked for and did not find
        self._pending: list[tuple[str, _Write]] = []  # (insert|update|delete, write)
        self._history: list[HistoryRow] = []
        self._outbox: list[tuple[str, str, str, str, str]] = []
        self._sub_version: int | None = None
        self._begun = False

    @contextmanager
    def _pipe(self) -> Iterator[None]:
        """Statements sent together (one round trip), ``BEGIN`` first if not sent yet."""
        with self.conn.pipeline():
            if not self._begun:
                self.conn.execute("BEGIN")
                self._begun = True
            yield

    def commit(self) -> None:
        """The queued writes and ``COMMIT`` in one round trip where nothing needs checking.

        Queued inserts are checked (a lost race raises AlreadyExists) and many history rows
        go by COPY, which a pipeline cannot carry: those flush first, then ``COMMIT``.
        """
        if not (self._begun or self._pending or self._history or self._outbox):
            return  # nothing was read or written
        if any(kind == "insert" for kind, _ in self._pending) or (
            len(self._history) >= _COPY_THRESHOLD
        ):
            self.flush()
            self.conn.execute("COMMIT")
            return
        with self._pipe():
            self._send_pending()
            self._send_small()
            self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self._begun and not self.conn.closed:
            with suppress(psycopg.Error):
                self.conn.execute("ROLLBACK")

    def _ensure_tenant(self) -> None:
        if not self._tenant_known:
            with self._pipe():
                self.conn.execute(
                    "INSERT INTO tenants(name) VALUES (%s) ON CONFLICT DO NOTHING", (self.tenant,)
                )
            self.store._known_tenants.add(self.tenant)
            self._tenant_known = True

    def flush(self) -> None:
        """Send the queued writes; raises AlreadyExists if a queued insert lost a race."""
        checks: list[tuple[list[str], psycopg.Cursor[Any]]] = []
        if self._pending or self._outbox or 0 < len(self._history) < _COPY_THRESHOLD:
            with self._pipe():
                checks = self._send_pending()
                self._send_small()
        for wanted, cur in checks:
            done = {r[0] for r in cur.fetchall()}
            for eid in wanted:
                if eid not in done:
                    raise AlreadyExists(f"entity {eid} already exists")
        if self._history:
            rows, self._history = self._history, []
            self._copy_history(rows)

    def _send_pending(self) -> list[tuple[list[str], psycopg.Cursor[Any]]]:
        """The queued entity writes, into the open pipeline; the inserts' cursors to check."""
        checks: list[tuple[list[str], psycopg.Cursor[Any]]] = []
        pending, self._pending = self._pending, []
        for kind, run in groupby(pending, key=lambda op: op[0]):
            ops = [op[1] for op in run]
            if kind == "insert":
                checks.append(([w.id for w in ops], self._insert_many(ops)))
            elif kind == "update":
                self._update_many(ops)
            else:
                self.conn.execute(
                    "DELETE FROM entities WHERE tenant = %s AND id = ANY(%s)",
                    (self.tenant, [w.id for w in ops]),
                )
        return checks

    def _send_small(self) -> None:
        """Outbox rows and a few history rows, into the open pipeline (many go by COPY)."""
        if self._history and len(self._history) < _COPY_THRESHOLD:
            rows, self._history = self._history, []
            with self.conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO history({_HISTORY_COLUMNS})"
                    " VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s)",
                    self._history_rows(rows),
                )
        if self._outbox:
            outbox, self._outbox = self._outbox, []
            with self.conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO outbox(tenant, subscription_id, payload, created_at, next_at)"
                    " VALUES (%s, %s, %s::jsonb, %s, %s)",
                    outbox,
                )

    def _insert_many(self, ops: list[_Write], *, geo: bool = True) -> psycopg.Cursor[Any]:
        cur = self.conn.execute(
            _INSERT_MANY,
            (
                self.tenant,
                [w.id for w in ops],
                [w.doc for w in ops],
                [w.created for w in ops],
                [w.modified for w in ops],
            ),
        )
        if geo:  # in a pipeline: a lost race raises at the flush and rolls all this back
            self._insert_geo(ops)
        return cur

    def _insert_geo(self, ops: list[_Write]) -> None:
        ids = [w.id for w in ops for _ in w.geo_attrs]
        if ids:
            attrs = [a for w in ops for a in w.geo_attrs]
            wkbs = [g for w in ops for g in w.geo_wkbs]
            self.conn.execute(_INSERT_GEO_MANY, (ids, attrs, wkbs, self.tenant))

    def _update_many(self, ops: list[_Write]) -> None:
        """Whole-document replacements of rows known to exist; a later one of an id wins."""
        moved = {w.id for w in ops if w.geo_changed}
        last = list({w.id: w for w in ops}.values())
        self.conn.execute(
            _UPDATE_MANY,
            (
                [w.id for w in last],
                [w.doc for w in last],
                [w.modified for w in last],
                self.tenant,
            ),
        )
        if moved:
            self.conn.execute(
                "DELETE FROM entity_geo WHERE pk IN"
                " (SELECT pk FROM entities WHERE tenant = %s AND id = ANY(%s))",
                (self.tenant, list(moved)),
            )
            again = [w for w in last if w.id in moved]
            for w in again:
                if not w.geo_changed:  # moved by an earlier write of this run: index this one
                    w.geo_attrs, w.geo_wkbs = _wkb_rows(w.geo)
            self._insert_geo(again)

    def get(self, ids: list[str]) -> dict[str, Entity]:
        self.flush()
        if not ids:
            return {}
        with self._pipe():  # one round trip: the rows, and the subscriptions version
            cur = self.conn.execute(
                "SELECT id, doc FROM entities WHERE tenant = %s AND id = ANY(%s)"
                " ORDER BY pk FOR UPDATE",
                (self.tenant, list(ids)),
            )
            version = (
                self.conn.execute("SELECT v FROM subscription_version")
                if self._sub_version is None
                else None
            )
        rows = cur.fetchall()
        if version is not None:
            row = version.fetchone()
            self._sub_version = int(row[0]) if row else 0
        out: dict[str, Entity] = {}
        for eid, doc in rows:
            out[eid] = doc
            self._seen[eid] = _geo_of(doc)
        self._absent.update(i for i in ids if i not in out)
        return out

    def insert(self, entity: Entity) -> None:
        self._ensure_tenant()
        w = _Write.of(entity, self._seen.get(entity["id"]))
        if w.id in self._absent:
            self._absent.discard(w.id)
            self._pending.append(("insert", w))
        else:
            self.flush()
            with self._pipe():
                cur = self._insert_many([w], geo=False)
            if cur.fetchone() is None:
                raise AlreadyExists(f"entity {w.id} already exists")
            with self._pipe():
                self._insert_geo([w])
        self._seen[w.id] = w.geo

    def update(self, entity: Entity) -> None:
        old_geo = self._seen.get(entity["id"])
        w = _Write.of(entity, old_geo)
        if old_geo is None:  # not locked by this transaction: find out whether it exists
            self.flush()
            with self._pipe():
                cur = self.conn.execute(
                    "SELECT id FROM entities WHERE tenant = %s AND id = %s FOR UPDATE",
                    (self.tenant, w.id),
                )
            if cur.fetchone() is None:
                raise KeyError(w.id)
        self._pending.append(("update", w))
        self._seen[w.id] = w.geo

    def delete(self, entity_id: str) -> bool:
        known = self._seen.pop(entity_id, None) is not None
        self._absent.add(entity_id)
        if known:
            self._pending.append(("delete", _Write(entity_id)))
            return True
        self.flush()
        with self._pipe():
            cur = self.conn.execute(
                "DELETE FROM entities WHERE tenant = %s AND id = %s", (self.tenant, entity_id)
            )
        return cur.rowcount > 0

    def subscriptions_version(self) -> int:
        if self._sub_version is None:  # read with the rows by ``get`` as a rule
            with self._pipe():
                cur = self.conn.execute("SELECT v FROM subscription_version")
            row = cur.fetchone()
            self._sub_version = int(row[0]) if row else 0
        return self._sub_version

    def list_subscriptions(self) -> list[tuple[str, dict[str, Any]]]:
        self.flush()
        with self._pipe():
            cur = self.conn.execute("SELECT tenant, doc FROM subscriptions ORDER BY seq")
        return [(r[0], r[1]) for r in cur.fetchall()]

    def peek(self, ids: list[str]) -> dict[str, Entity]:
        self.flush()
        if not ids:
            return {}
        with self._pipe():
            cur = self.conn.execute(
                "SELECT id, doc FROM entities WHERE tenant = %s AND id = ANY(%s)",
                (self.tenant, list(ids)),
            )
        return dict(cur.fetchall())

    def add_notifications(self, rows: list[tuple[str, dict[str, Any]]], now: str) -> None:
        # sent with the queued writes at the flush; the insert trigger NOTIFYs the workers
        self._outbox.extend((self.tenant, sid, _dumps(p), now, now) for sid, p in rows)

    def add_history(self, rows: list[HistoryRow]) -> None:
        if not rows:
            return
        self._ensure_tenant()
        self._history.extend(rows)

    def _history_rows(self, rows: list[HistoryRow]) -> list[tuple[Any, ...]]:
        now = datetime.now(UTC)
        return [
            (
                self.tenant,
                r.entity_id,
                r.entity_type,
                r.attr,
                r.dataset_id,
                _dumps(r.instance),
                r.op,
                _parse_time(r.observed_at),
                _parse_time(r.recorded_at) or now,
                r.observed_at,
                r.recorded_at,
            )
            for r in rows
        ]

    def _copy_history(self, rows: list[HistoryRow]) -> None:
        if not self._begun:
            self.conn.execute("BEGIN")
            self._begun = True
        with (
            self.conn.cursor() as cur,
            cur.copy(f"COPY history({_HISTORY_COLUMNS}) FROM STDIN") as copy,
        ):
            for item in self._history_rows(rows):
                copy.write_row(item)


# ---------------------------------------------------------------------------- query SQL


def _types_sql(expr: TypeExpr) -> tuple[str, list[Any]]:
    """Type expressions over the GIN-indexed ``types`` array (@> for all-of, && for any-of)."""
    if isinstance(expr, TypeName):
        return "e.types @> %s::text[]", [[expr.name]]
    if all(isinstance(i, TypeName) for i in expr.items):
        names = [i.name for i in expr.items]  # type: ignore[union-attr]
        op = "@>" if isinstance(expr, TypeAnd) else "&&"
        return f"e.types {op} %s::text[]", [names]
    parts = [_types_sql(item) for item in expr.items]
    assert isinstance(expr, TypeAnd | TypeOr)
    joiner = " AND " if isinstance(expr, TypeAnd) else " OR "
    return "(" + joiner.join(p[0] for p in parts) + ")", [x for p in parts for x in p[1]]


_QUERY_GEOM = "ST_GeomFromWKB(%s::bytea, 4326)"
_GEO_PREDICATES = {
    "within": f"ST_Within(g.geom, {_QUERY_GEOM})",
    "contains": f"ST_Contains(g.geom, {_QUERY_GEOM})",
    "intersects": f"ST_Intersects(g.geom, {_QUERY_GEOM})",
    "equals": f"ST_Equals(g.geom, {_QUERY_GEOM})",
    "disjoint": f"ST_Disjoint(g.geom, {_QUERY_GEOM})",
    "overlaps": f"ST_Overlaps(g.geom, {_QUERY_GEOM})",
}
# Distances on the sphere (use_spheroid=false), as the embedded store's haversine does.
# ST_Distance rather than ST_DWithin: DWithin's selectivity estimate on geography is far
# too low (1 row for thousands), which steers the planner to probe every match; the
# envelope below gives the index and the estimate instead.
_DISTANCE = f"ST_Distance(g.geom::geography, {_QUERY_GEOM}::geography, false)"
_METRES_PER_DEGREE = 6_371_008.8 * math.pi / 180.0


def _near_envelope(geometry: dict[str, Any], metres: float) -> list[float] | None:
    """A lon/lat box holding everything within ``metres`` of the geometry, or None if it wraps.

    ``geom && box`` lets the planner use the geometry GiST index and its statistics (which
    estimate well, unlike geography's) before the exact spherical distance test.
    """
    try:
        x0, y0, x1, y1 = shape(geometry).bounds
    except Exception:
        return None
    dlat = metres / _METRES_PER_DEGREE * 1.01 + 1e-9
    lat = max(abs(y0), abs(y1)) + dlat
    if lat >= 89.0:
        return None
    dlon = dlat / math.cos(math.radians(lat))
    box = [x0 - dlon, y0 - dlat, x1 + dlon, y1 + dlat]
    if box[0] < -180.0 or box[2] > 180.0:
        return None
    return box


def _query_wkb(geometry: dict[str, Any]) -> bytes:
    """The query geometry as 2-D WKB, made valid first as the embedded store does."""
    try:
        g = shape(geometry)
    except Exception as exc:
        raise BadRequestData(f"geometry: not a GeoJSON geometry ({exc})") from exc
    if not g.is_valid:
        g = shapely.make_valid(g)
    return shapely.to_wkb(g, output_dimension=2)


def _geo_sql(gq: GeoQuery) -> tuple[str, list[Any]]:
    """Entities with an instance of the GeoProperty that satisfies the georel."""
    pred, params = _geo_pred(gq)
    return f"e.pk IN (SELECT g.pk FROM entity_geo g WHERE {pred})", params


def _geo_pred(gq: GeoQuery, alias: str = "g") -> tuple[str, list[Any]]:
    """The condition on one ``entity_geo`` row (alias ``alias``) for the georel."""
    sql, params = _geo_pred_g(gq)
    return re.sub(r"\bg\.", f"{alias}.", sql), params


def _geo_pred_g(gq: GeoQuery) -> tuple[str, list[Any]]:
    geom = _query_wkb(gq.geometry)
    if gq.georel == "near":
        if gq.max_distance is not None:
            pred, params = f"{_DISTANCE} <= %s", [geom, float(gq.max_distance)]
            box = _near_envelope(gq.geometry, float(gq.max_distance))
            if box is not None:
                pred = f"g.geom && ST_MakeEnvelope(%s, %s, %s, %s, 4326) AND {pred}"
                params = [*box, *params]
        elif gq.min_distance is not None:
            pred, params = f"{_DISTANCE} >= %s", [geom, float(gq.min_distance)]
        else:
            raise ValueError("near needs maxDistance or minDistance")
    elif gq.georel in _GEO_PREDICATES:
        pred, params = _GEO_PREDICATES[gq.georel], [geom]
    else:
        raise ValueError(f"unknown georel {gq.georel!r}")
    return f"g.attr = %s AND {pred}", [gq.geoproperty, *params]


def _where(tenant: str, query: EntityQuery, *, geo: bool = True) -> tuple[list[str], list[Any]]:
    where = ["e.tenant = %s"]
    params: list[Any] = [tenant]
    if query.ids:
        where.append("e.id = ANY(%s::text[])")
        params.append(list(query.ids))
    if query.id_pattern:
        where.append("e.id ~ %s")
        params.append(f"^(?:{query.id_pattern})$")
    if query.types is not None:
        s, p = _types_sql(query.types)
        where.append(s)
        params.extend(p)
    if query.attrs:
        where.append("(e.doc -> 'attrs') ?| %s::text[]")
        params.append(list(query.attrs))
    if query.q is not None or query.scope is not None:
        from cityos.hub.query import sql as qsql  # imported on first use: keeps imports light
    if query.q is not None:
        s, p = qsql.compile_q(query.q, "postgresql", "e.doc")
        where.append(f"({s})")
        params.extend(p)
    if query.scope is not None:
        s, p = qsql.compile_scope(query.scope, "postgresql", "e.doc")
        where.append(f"({s})")
        params.extend(p)
    if geo and query.geo is not None:
        s, p = _geo_sql(query.geo)
        where.append(s)
        params.extend(p)
    return where, params


def _page_sql(tenant: str, query: EntityQuery) -> tuple[str, list[Any]]:
    """The page query. A geo-query is driven from the GiST index through a nested loop, with
    no ORDER BY, so it stops at the page's last row instead of sorting every candidate in the
    area (40 ms → 2 ms for a 2 km box over a million entities); its order is the index's."""
    if query.order:  # orderBy: sorted in the database, so limit/offset page one order
        from cityos.hub.query.order import compile_order

        where, params = _where(tenant, query)
        order, order_params = compile_order(query.order, "postgresql", "e.doc", "e.pk")
        sql = f"SELECT e.doc FROM entities e WHERE {' AND '.join(where)}{order}"
        return sql + " LIMIT %s OFFSET %s", [*params, *order_params, query.limit, query.offset]
    if query.geo is None:
        where, params = _where(tenant, query)
        sql = f"SELECT e.doc FROM entities e WHERE {' AND '.join(where)} ORDER BY e.pk"
        return sql + " LIMIT %s OFFSET %s", [*params, query.limit, query.offset]
    where, params = _where(tenant, query, geo=False)
    pred, gparams = _geo_pred(query.geo)
    pred0, gparams0 = _geo_pred(query.geo, alias="g0")
    # An entity whose GeoProperty has several matching instances is returned once.
    once = (
        "NOT EXISTS (SELECT 1 FROM entity_geo g0 WHERE g0.pk = g.pk AND g0.ctid < g.ctid"
        f" AND {pred0})"
    )
    sql = (
        f"SELECT e.doc FROM entity_geo g JOIN entities e ON e.pk = g.pk WHERE {pred} AND {once}"
        f" AND {' AND '.join(where)} LIMIT %s OFFSET %s"
    )
    return sql, [*gparams, *gparams0, *params, query.limit, query.offset]


# ---------------------------------------------------------------------------- the store


class PostgresStore(Store):
    """PostgreSQL + PostGIS behind the storage contract.

    ``url`` is a libpq URL (``postgresql://user@host:5432/db``); ``pool_size`` bounds the
    connections held (default: one per thread the API runs store calls on, plus two);
    ``schema`` puts every table in that PostgreSQL schema (created by :meth:`migrate`), with
    PostGIS looked up in ``public``.

    ``synchronous_commit`` is PostgreSQL's setting for the hub's sessions. The default,
    ``"off"``, acknowledges a write once it is in PostgreSQL's WAL buffers: a crash of the hub
    loses nothing, a crash of the database server or the machine can lose the last fraction
    of a second (at most 3 × ``wal_writer_delay``) — the same promise the embedded SQLite
    store makes with ``synchronous=NORMAL``. ``"on"`` waits for the disk on every commit
    (measured: about 2,000 commits/s here, against tens of thousands).
    """

    engine = "postgresql"
    waits_on_network = True

    def __init__(
        self,
        url: str,
        *,
        pool_size: int | None = None,
        schema: str | None = None,
        connect_timeout: float = 10.0,
        synchronous_commit: str = "off",
    ) -> None:
        if synchronous_commit not in ("on", "off", "local", "remote_write", "remote_apply"):
            raise ValueError(
                f"synchronous_commit must be on, off, local, remote_write or remote_apply, not {synchronous_commit!r}"
            )
        if schema is not None and not _SCHEMA_NAME.match(schema):
            raise ValueError(
                f"bad PostgreSQL schema name {schema!r}: use lower-case letters, digits and _"
            )
        self.url = url
        self.schema = schema
        # JIT compiles expressions for 50-100 ms: a loss for short OLTP queries like ours.
        options = f"-c jit=off -c synchronous_commit={synchronous_commit}"
        if schema is not None:
            options += f" -c search_path={schema},public"
        kwargs: dict[str, Any] = {"autocommit": True, "options": options}
        self.call_threads = _API_THREADS
        if pool_size is None:  # a connection for each thread the API runs store calls on
            pool_size = _API_THREADS + 2  # and the ingest and delivery threads
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max(1, pool_size),
            kwargs=kwargs,
            configure=_configure,
            open=True,
            name=f"cityos-{schema or 'default'}",
        )
        try:
            self._pool.wait(timeout=connect_timeout)
        except Exception as exc:
            self._pool.close()
            raise ConnectionError(
                f"PostgreSQL not reachable at {_safe_url(url)}: {UNREACHABLE_HINT}"
            ) from exc
        self._audit = PostgresAuditStore(self._pool, url, schema)
        self._known_tenants: set[str] = set()
        self._kwargs = kwargs
        self.outbox_channel = f"cityos_outbox_{schema or 'public'}"
        self._listen_conn: psycopg.Connection[Any] | None = None

    # -- test and tool helpers ------------------------------------------------------------
    @classmethod
    def throwaway(
        cls, url: str, *, pool_size: int = 4, prefix: str = "cityos_test_"
    ) -> PostgresStore:
        """A migrated store in a new random schema; call :meth:`drop_schema` when done."""
        store = cls(url, pool_size=pool_size, schema=prefix + secrets.token_hex(6))
        try:
            store.migrate()
        except BaseException:
            store.drop_schema()
            raise
        return store

    def drop_schema(self) -> None:
        """Drop this store's schema with everything in it, and close the pool (tests only)."""
        if self.schema is None:
            raise ValueError("drop_schema() needs a store opened with schema=…")
        with self._pool.connection() as conn:
            conn.execute(
                psql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(psql.Identifier(self.schema))
            )
        self.close()

    # -- lifecycle ------------------------------------------------------------------------
    def schema_version(self) -> int:
        with self._pool.connection() as conn:
            return _schema_version(conn, self.schema)

    def migrate(self) -> list[str]:
        applied: list[str] = []
        with self._pool.connection() as conn:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                if self.schema is not None:
                    conn.execute(
                        psql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                            psql.Identifier(self.schema)
                        )
                    )
                    conn.execute("CREATE EXTENSION IF NOT EXISTS postgis SCHEMA public")
                else:
                    conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS cityos_schema(version int PRIMARY KEY,"
                    " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
                )
            for version, (name, script) in enumerate(MIGRATIONS, start=1):
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                    if _schema_version(conn, self.schema) >= version:
                        continue
                    conn.execute(script.encode())
                    conn.execute(
                        "INSERT INTO cityos_schema(version, name) VALUES (%s, %s)",
                        (version, name),
                    )
                applied.append(name)
            rows = conn.execute("SELECT name FROM tenants").fetchall()
        self._known_tenants = {r[0] for r in rows}
        self.ensure_history_partitions()
        return applied

    # -- history partitions: retention drops whole months -----------------------------
    def ensure_history_partitions(
        self, first: datetime | None = None, months: int = HISTORY_MONTHS_AHEAD
    ) -> list[str]:
        """Monthly history partitions from ``first`` (default: this month) for ``months``
        months; called at startup and by each retention run. A month whose rows already sit
        in the default partition keeps them there (PostgreSQL refuses the new partition);
        those rows are purged row by row like any others."""
        start = (first or datetime.now(UTC)).replace(
            day=1, hour=0, minute=0, second=0, microsecond=0
        )
        made = []
        with self._pool.connection() as conn:
            for _ in range(months + 1):
                end = _next_month(start)
                name = f"history_y{start.year:04d}m{start.month:02d}"
                try:
                    with conn.transaction():
                        conn.execute(
                            psql.SQL(
                                "CREATE TABLE IF NOT EXISTS {} PARTITION OF history"
                                " FOR VALUES FROM ({}) TO ({})"
                            ).format(
                                psql.Identifier(name),
                                psql.Literal(start.isoformat()),
                                psql.Literal(end.isoformat()),
                            )
                        )
                    made.append(name)
                except psycopg.Error as exc:  # rows of that month already in the default one
                    log.info("history partition %s not created: %s", name, exc)
                start = end
        return made

    def history_partitions(self) -> list[tuple[str, datetime]]:
        """(name, end) of each monthly history partition, oldest first."""
        with self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'history'::regclass AND c.relname LIKE 'history_y%%'"
                " ORDER BY c.relname"
            ).fetchall()
        out = []
        for (name,) in rows:
            year, month = int(name[9:13]), int(name[14:16])
            out.append((name, _next_month(datetime(year, month, 1, tzinfo=UTC))))
        return out

    def close(self) -> None:
        if self._listen_conn is not None:
            self._listen_conn.close()
            self._listen_conn = None
        self._pool.close()

    def wait_for_outbox(self, timeout: float) -> None:
        """LISTEN on the outbox channel (its own connection); a NOTIFY from any worker's
        commit wakes this one at once."""
        try:
            if self._listen_conn is None or self._listen_conn.closed:
                self._listen_conn = psycopg.connect(self.url, **self._kwargs)
                self._listen_conn.execute(f'LISTEN "{self.outbox_channel}"')
            for _ in self._listen_conn.notifies(timeout=timeout, stop_after=1):
                pass
        except psycopg.Error:
            self._listen_conn = None
            time.sleep(timeout)

    def stats(self) -> dict[str, Any]:
        with self._pool.connection() as conn:
            one = conn.execute(
                "SELECT (SELECT count(*) FROM tenants WHERE name <> ''),"
                " (SELECT count(*) FROM entities), (SELECT count(*) FROM history),"
                " (SELECT count(*) FROM contexts), pg_database_size(current_database()),"
                " current_database()"
            ).fetchone()
            version = _schema_version(conn, self.schema)
        assert one is not None
        return {
            "engine": self.engine,
            "url": _safe_url(self.url),
            "database": one[5],
            "schema": self.schema or "public",
            "schema_version": version,
            "tenants": 1 + one[0],
            "entities": one[1],
            "history_rows": one[2],
            "contexts": one[3],
            "size_bytes": one[4],
        }

    # -- tenants --------------------------------------------------------------------------
    def tenant_exists(self, tenant: str) -> bool:
        if tenant == DEFAULT_TENANT or tenant in self._known_tenants:
            return True
        with self._pool.connection() as conn:
            row = conn.execute("SELECT 1 FROM tenants WHERE name = %s", (tenant,)).fetchone()
        if row:
            self._known_tenants.add(tenant)
        return row is not None

    def tenants(self) -> list[str]:
        with self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT name FROM tenants WHERE name <> '' ORDER BY name COLLATE \"C\""
            ).fetchall()
        return [DEFAULT_TENANT] + [r[0] for r in rows]

    # -- entities -------------------------------------------------------------------------
    @contextmanager
    def transaction(self, tenant: str) -> Iterator[Transaction]:
        with self._pool.connection() as conn:
            known = set(self._known_tenants)
            tx = PostgresTransaction(self, conn, tenant)
            try:
                yield tx
                tx.commit()
            except BaseException:
                self._known_tenants = known
                tx.rollback()
                raise

    def get_entity(self, tenant: str, entity_id: str) -> Entity | None:
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT doc FROM entities WHERE tenant = %s AND id = %s", (tenant, entity_id)
            ).fetchone()
        return row[0] if row else None

    def query(self, tenant: str, query: EntityQuery) -> QueryResult:
        page, page_params = _page_sql(tenant, query)
        with self._pool.connection() as conn:
            # Never server-side prepared: a generic plan would not see how selective the
            # geometry or the types are, and the right plan depends on exactly that.
            rows = conn.execute(page, page_params, prepare=False).fetchall()
            count = None
            if query.count:
                where, params = _where(tenant, query)
                where_sql = " AND ".join(where)
                got = conn.execute(
                    f"SELECT count(*) FROM entities e WHERE {where_sql}", params, prepare=False
                ).fetchone()
                count = got[0] if got else 0
        return QueryResult([r[0] for r in rows], count)

    def explain(self, tenant: str, query: EntityQuery) -> str:
        """The plan PostgreSQL picks for a query's page (benchmarks and diagnostics)."""
        page, params = _page_sql(tenant, query)
        with self._pool.connection() as conn:
            rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + page, params).fetchall()
        return "\n".join(r[0] for r in rows)

    def attribute_uses(self, tenant: str) -> list[AttributeUse]:
        rows_sql = """
            SELECT t.type, a.key, i.value ->> 'type' AS atype, count(DISTINCT e.pk)
            FROM entities e
            CROSS JOIN LATERAL unnest(e.types) AS t(type)
            CROSS JOIN LATERAL jsonb_each(e.doc -> 'attrs') AS a
            CROSS JOIN LATERAL jsonb_array_elements(a.value) AS i
            WHERE e.tenant = %s
            GROUP BY t.type, a.key, i.value ->> 'type'
            ORDER BY t.type COLLATE "C", a.key COLLATE "C",
                     (i.value ->> 'type') COLLATE "C" NULLS FIRST
        """
        with self._pool.connection() as conn:
            rows = conn.execute(rows_sql, (tenant,)).fetchall()
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
            "%s",
            tenant,
            entity_id,
            attr,
            attrs,
            time_property,
            after,
            before,
            columns=("observed_text", "recorded_text"),
        )
        sql = (
            "SELECT entity_id, entity_type, attr, dataset_id, instance, op, observed_text,"
            f" recorded_text, seq FROM history WHERE {where} ORDER BY seq LIMIT %s"
        )
        with self._pool.connection() as conn:
            rows = conn.execute(sql, [*params, limit]).fetchall()
        return [HistoryRow(*r) for r in rows]

    def update_history_instance(
        self, tenant: str, entity_id: str, attr: str, instance_id: int, instance: dict[str, Any]
    ) -> bool:
        observed = instance.get("observedAt")
        with self._pool.connection() as conn:
            cur = conn.execute(
                "UPDATE history SET instance = %s::jsonb, observed_text = %s, observed_at = %s"
                " WHERE seq = %s AND tenant = %s AND entity_id = %s AND attr = %s",
                (
                    _dumps(instance),
                    observed,
                    _parse_time(observed),
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
        sql = "DELETE FROM history WHERE tenant = %s AND entity_id = %s"
        params: list[Any] = [tenant, entity_id]
        if attr is not None:
            sql += " AND attr = %s"
            params.append(attr)
        if instance_id is not None:
            sql += " AND seq = %s"
            params.append(instance_id)
        with self._pool.connection() as conn:
            return conn.execute(sql, params).rowcount

    def purge_history(
        self,
        before: str,
        *,
        tenant: str | None = None,
        entity_type: str | None = None,
        attr: str | None = None,
    ) -> int:
        # a rule over everything drops each month that ended before the cutoff whole; the
        # rest is deleted by rows, and recorded_at (the partition key) prunes what is scanned
        cutoff = _parse_time(before)
        deleted = 0
        if tenant is None and entity_type is None and attr is None and cutoff is not None:
            for name, end in self.history_partitions():
                if end > cutoff:
                    break
                with self._pool.connection() as conn, conn.transaction():
                    table = psql.Identifier(name)
                    count = conn.execute(
                        psql.SQL("SELECT count(*) FROM {}").format(table)
                    ).fetchone()
                    conn.execute(psql.SQL("DROP TABLE {}").format(table))
                deleted += int(count[0]) if count else 0
            self.ensure_history_partitions()
        sql = "DELETE FROM history WHERE recorded_at < %s"
        params: list[Any] = [cutoff]
        for column, value in (("tenant", tenant), ("entity_type", entity_type), ("attr", attr)):
            if value is not None:
                sql += f" AND {column} = %s"
                params.append(value)
        with self._pool.connection() as conn:
            return deleted + conn.execute(sql, params).rowcount

    # -- subscriptions and the outbox ---------------------------------------------------
    def put_subscription(self, tenant: str, sub: dict[str, Any]) -> None:
        periodic = periodic_start(sub)
        with self._pool.connection() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO subscriptions(tenant, id, doc, periodic_at)"
                " VALUES (%s, %s, %s::jsonb, %s)"
                " ON CONFLICT (tenant, id) DO UPDATE SET doc = excluded.doc, periodic_at ="
                " CASE WHEN excluded.periodic_at IS NULL THEN NULL"
                " ELSE coalesce(subscriptions.periodic_at, excluded.periodic_at) END",
                (tenant, sub["id"], _dumps(sub), periodic),
            )
            conn.execute("UPDATE subscription_version SET v = v + 1")

    def put_subscription_status(self, tenant: str, sub_id: str, fields: dict[str, Any]) -> None:
        with self._pool.connection() as conn:
            conn.execute(
                "UPDATE subscriptions SET doc = doc || %s::jsonb WHERE tenant = %s AND id = %s",
                (_dumps(fields), tenant, sub_id),
            )

    def subscriptions_version(self) -> int:
        with self._pool.connection() as conn:
            row = conn.execute("SELECT v FROM subscription_version").fetchone()
        return int(row[0]) if row else 0

    def claim_deliveries(self, owner: str, now: str, until: str, limit: int = 500) -> Claimed:
        with self._pool.connection() as conn, conn.transaction():
            conn.execute(CLAIM_SQL.replace("?", "%s"), claim_params(owner, now, until))
            rows = conn.execute(DUE_SQL.replace("?", "%s"), (owner, now, now, limit)).fetchall()
            periodic = conn.execute(PERIODIC_SQL.replace("?", "%s"), (owner, now)).fetchall()
        return Claimed([Notification(*r) for r in rows], [(r[0], r[1]) for r in periodic])

    def release_deliveries(
        self,
        owner: str,
        subscriptions: list[tuple[str, str]] | None = None,
        *,
        keep: set[tuple[str, str]] | None = None,
    ) -> None:
        with self._pool.connection() as conn:
            if subscriptions is None:
                rows = conn.execute(
                    "SELECT tenant, subscription_id FROM delivery_claims WHERE owner = %s",
                    (owner,),
                ).fetchall()
                subscriptions = [(t, s) for t, s in rows if (t, s) not in (keep or set())]
            if subscriptions:
                with conn.cursor() as cur:
                    cur.executemany(
                        "DELETE FROM delivery_claims WHERE owner = %s AND tenant = %s"
                        " AND subscription_id = %s",
                        [(owner, t, s) for t, s in subscriptions],
                    )

    def add_periodic_notification(
        self, tenant: str, sub_id: str, payload: dict[str, Any] | None, now: str, next_at: str
    ) -> None:
        with self._pool.connection() as conn, conn.transaction():
            if payload is not None:
                conn.execute(
                    "INSERT INTO outbox(tenant, subscription_id, payload, created_at, next_at)"
                    " VALUES (%s, %s, %s::jsonb, %s, %s)",
                    (tenant, sub_id, _dumps(payload), now, now),
                )
            conn.execute(
                "UPDATE subscriptions SET periodic_at = %s WHERE tenant = %s AND id = %s"
                " AND periodic_at IS NOT NULL",
                (next_at, tenant, sub_id),
            )

    def get_subscription(self, tenant: str, sub_id: str) -> dict[str, Any] | None:
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT doc FROM subscriptions WHERE tenant = %s AND id = %s", (tenant, sub_id)
            ).fetchone()
        return row[0] if row else None

    def list_subscriptions(self, tenant: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        sql = "SELECT tenant, doc FROM subscriptions"
        params: list[Any] = []
        if tenant is not None:
            sql += " WHERE tenant = %s"
            params.append(tenant)
        with self._pool.connection() as conn:
            rows = conn.execute(sql + " ORDER BY seq", params).fetchall()
        return [(r[0], r[1]) for r in rows]

    def delete_subscription(self, tenant: str, sub_id: str) -> bool:
        with self._pool.connection() as conn, conn.transaction():
            cur = conn.execute(
                "DELETE FROM subscriptions WHERE tenant = %s AND id = %s", (tenant, sub_id)
            )
            conn.execute(
                "DELETE FROM outbox WHERE tenant = %s AND subscription_id = %s", (tenant, sub_id)
            )
            conn.execute("UPDATE subscription_version SET v = v + 1")
        return cur.rowcount > 0

    def finish_notifications(
        self, nids: list[int], *, delivered: bool, next_at: str | None
    ) -> None:
        with self._pool.connection() as conn:
            if delivered:
                conn.execute("DELETE FROM outbox WHERE nid = ANY(%s)", (nids,))
            elif next_at is None:
                conn.execute(
                    "UPDATE outbox SET attempts = attempts + 1, state = 'failed'"
                    " WHERE nid = ANY(%s)",
                    (nids,),
                )
            else:
                conn.execute(
                    "UPDATE outbox SET attempts = attempts + 1, next_at = %s WHERE nid = ANY(%s)",
                    (next_at, nids),
                )

    # -- registries -----------------------------------------------------------------------
    def put_doc(self, kind: str, tenant: str, doc_id: str, doc: dict[str, Any]) -> None:
        with self._pool.connection() as conn:
            conn.execute(
                "INSERT INTO registry(kind, tenant, id, doc) VALUES (%s, %s, %s, %s::jsonb)"
                " ON CONFLICT (kind, tenant, id) DO UPDATE SET doc = excluded.doc",
                (kind, tenant, doc_id, _dumps(doc)),
            )

    def get_doc(self, kind: str, tenant: str, doc_id: str) -> dict[str, Any] | None:
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT doc FROM registry WHERE kind = %s AND tenant = %s AND id = %s",
                (kind, tenant, doc_id),
            ).fetchone()
        return row[0] if row else None

    def list_docs(self, kind: str, tenant: str) -> list[dict[str, Any]]:
        with self._pool.connection() as conn:
            rows = conn.execute(
                'SELECT doc FROM registry WHERE kind = %s AND tenant = %s ORDER BY id COLLATE "C"',
                (kind, tenant),
            ).fetchall()
        return [r[0] for r in rows]

    def delete_doc(self, kind: str, tenant: str, doc_id: str) -> bool:
        with self._pool.connection() as conn:
            cur = conn.execute(
                "DELETE FROM registry WHERE kind = %s AND tenant = %s AND id = %s",
                (kind, tenant, doc_id),
            )
        return cur.rowcount > 0

    def doc_tenants(self, kind: str, doc_id: str) -> list[str]:
        with self._pool.connection() as conn:
            rows = conn.execute(
                'SELECT tenant FROM registry WHERE kind = %s AND id = %s ORDER BY tenant COLLATE "C"',
                (kind, doc_id),
            ).fetchall()
        return [r[0] for r in rows]

    # -- contexts -------------------------------------------------------------------------
    def put_context(self, ctx: StoredContext) -> None:
        with self._pool.connection() as conn:
            conn.execute(
                "INSERT INTO contexts(id, url, body, kind, created_at, extra)"
                " VALUES (%s, %s, %s::jsonb, %s, %s, %s::jsonb)"
                " ON CONFLICT (id) DO UPDATE SET url = excluded.url, body = excluded.body,"
                " kind = excluded.kind, created_at = excluded.created_at, extra = excluded.extra",
                (ctx.id, ctx.url, _dumps(ctx.body), ctx.kind, ctx.created_at, _dumps(ctx.extra)),
            )

    def get_context(self, key: str) -> StoredContext | None:
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT id, url, body, kind, created_at, extra FROM contexts"
                " WHERE id = %s OR url = %s ORDER BY (id = %s) DESC LIMIT 1",
                (key, key, key),
            ).fetchone()
        return StoredContext(*row) if row else None

    def list_contexts(self) -> list[StoredContext]:
        with self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT id, url, body, kind, created_at, extra FROM contexts"
                ' ORDER BY created_at COLLATE "C", id COLLATE "C"'
            ).fetchall()
        return [StoredContext(*r) for r in rows]

    def delete_context(self, key: str) -> bool:
        with self._pool.connection() as conn:
            cur = conn.execute("DELETE FROM contexts WHERE id = %s OR url = %s", (key, key))
        return cur.rowcount > 0

    # -- the audit log's storage ----------------------------------------------------------
    @property
    def audit(self) -> AuditStore:
        return self._audit


def _configure(conn: psycopg.Connection[Any]) -> None:
    """Every pooled connection parses JSONB with orjson (several times faster than json)."""
    set_json_loads(orjson.loads, conn)


def _schema_version(conn: psycopg.Connection[Any], schema: str | None) -> int:
    # Qualified when the store has its own schema: an unqualified name would find public's.
    table = f"{schema}.cityos_schema" if schema else "cityos_schema"
    if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() in (None, (None,)):
        return 0
    row = conn.execute("SELECT max(version) FROM cityos_schema").fetchone()
    return int(row[0] or 0) if row else 0
