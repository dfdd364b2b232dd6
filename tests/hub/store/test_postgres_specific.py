"""What only the PostgreSQL store has: schemas per store, row locks, PostGIS georels, COPY, partitions.

The engine-neutral behaviour is pinned by test_contract.py; these tests reach into the
database (catalog, side tables) to check the SQL-side design holds.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cityos.hub.errors import AlreadyExists
from cityos.hub.query.model import EntityQuery, GeoQuery, TypeAnd, TypeName, TypeOr
from cityos.hub.store.base import HistoryRow, StoredContext
from cityos.hub.store.postgres import (
    HISTORY_MONTHS_AHEAD,
    MIGRATIONS,
    PostgresStore,
    server_unreachable,
)

pytestmark = pytest.mark.postgres

EX = "https://example.org/"
LOC = "https://uri.etsi.org/ngsi-ld/location"
T0 = "2026-01-01T00:00:00.000000Z"


@pytest.fixture
def pg(postgres_url: str) -> Iterator[PostgresStore]:
    store = PostgresStore.throwaway(postgres_url)
    try:
        yield store
    finally:
        store.drop_schema()


def raw(store: PostgresStore, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with store._pool.connection() as conn:
        return conn.execute(sql, params).fetchall()


def point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


def box(x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    return {
        "type": "Polygon",
        "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]],
    }


def ent(eid: str, *types: str, geo: Any = None, geo_attr: str = LOC, **props: Any) -> dict:
    attrs: dict[str, list[dict[str, Any]]] = {
        EX + k: [{"type": "Property", "value": v}] for k, v in props.items()
    }
    if geo is not None:
        instances = geo if isinstance(geo, list) else [geo]
        attrs[geo_attr] = [{"type": "GeoProperty", "value": g} for g in instances]
    return {
        "id": eid,
        "type": [EX + t for t in (types or ("T",))],
        "createdAt": T0,
        "modifiedAt": T0,
        "attrs": attrs,
    }


def put(store: PostgresStore, *entities: dict, tenant: str = "") -> None:
    with store.transaction(tenant) as tx:
        for e in entities:
            tx.insert(e)


def ids(store: PostgresStore, tenant: str = "", **kw: Any) -> list[str]:
    return [e["id"] for e in store.query(tenant, EntityQuery(**kw)).entities]


# ---------------------------------------------------------------------------- lifecycle


def test_throwaway_schema_is_isolated_and_dropped(pg: PostgresStore, postgres_url: str) -> None:
    other = PostgresStore.throwaway(postgres_url)
    try:
        put(pg, ent("urn:a:1"))
        assert other.get_entity("", "urn:a:1") is None
        assert pg.get_entity("", "urn:a:1") is not None
        assert other.schema != pg.schema
    finally:
        name = other.schema
        other.drop_schema()
    assert raw(pg, "SELECT 1 FROM pg_namespace WHERE nspname = %s", (name,)) == []


def test_migration_steps_are_recorded_once(postgres_url: str) -> None:
    store = PostgresStore(postgres_url, schema="cityos_test_mig_" + str(time.time_ns())[-8:])
    try:
        assert store.schema_version() == 0
        assert store.migrate() == [name for name, _ in MIGRATIONS]
        assert store.schema_version() == len(MIGRATIONS)
        assert store.migrate() == []
        rows = raw(store, "SELECT version, name FROM cityos_schema ORDER BY version")
        assert rows == [(i + 1, name) for i, (name, _) in enumerate(MIGRATIONS)]
    finally:
        store.drop_schema()


def test_history_is_partitioned_and_postgis_is_available(pg: PostgresStore) -> None:
    kind = raw(pg, "SELECT relkind FROM pg_class WHERE oid = to_regclass('history')")
    assert kind == [("p",)]
    parts = raw(pg, "SELECT count(*) FROM pg_inherits WHERE inhparent = to_regclass('history')")
    assert parts == [(1 + 1 + HISTORY_MONTHS_AHEAD,)]  # default, this month, months ahead
    assert raw(pg, "SELECT ST_AsText(ST_Point(1, 2))") == [("POINT(1 2)",)]


def test_bad_schema_name_is_refused(postgres_url: str) -> None:
    with pytest.raises(ValueError, match="schema name"):
        PostgresStore(postgres_url, schema="x; DROP TABLE y")


def test_unreachable_server_says_how_to_start_it() -> None:
    url = "postgresql://postgres@127.0.0.1:1/postgres"
    why = server_unreachable(url, timeout=1)
    assert why is not None
    assert why.startswith(
        f"PostgreSQL not reachable at {url}: start it with 'pg_ctlcluster 15 main start'"
    )
    with pytest.raises(ConnectionError, match="pg_ctlcluster"):
        PostgresStore(url, connect_timeout=1)


def test_reachable_server_has_no_complaint(postgres_url: str) -> None:
    assert server_unreachable(postgres_url) is None


def test_stats_counts_and_size(pg: PostgresStore) -> None:
    put(pg, ent("urn:a:1"), ent("urn:a:2"))
    put(pg, ent("urn:a:1"), tenant="hcmc")
    st = pg.stats()
    assert (st["engine"], st["entities"], st["tenants"], st["history_rows"]) == (
        "postgresql",
        3,
        2,
        0,
    )
    assert st["schema"] == pg.schema and st["schema_version"] == len(MIGRATIONS)
    assert st["size_bytes"] > 0


# ---------------------------------------------------------------------------- transactions


def test_duplicate_insert_keeps_the_transaction_usable(pg: PostgresStore) -> None:
    put(pg, ent("urn:a:1", n=1))
    with pg.transaction("") as tx:
        with pytest.raises(AlreadyExists, match="urn:a:1"):
            tx.insert(ent("urn:a:1", n=2))
        tx.insert(ent("urn:a:2", n=3))  # the failed insert did not abort the transaction
    assert pg.get_entity("", "urn:a:1")["attrs"][EX + "n"][0]["value"] == 1
    assert pg.get_entity("", "urn:a:2")["attrs"][EX + "n"][0]["value"] == 3


def test_exception_rolls_back_entities_history_and_tenant(pg: PostgresStore) -> None:
    with pytest.raises(RuntimeError), pg.transaction("manila") as tx:
        tx.insert(ent("urn:a:1", geo=point(1, 1)))
        tx.add_history([HistoryRow("urn:a:1", EX + "T", EX + "n", None, {}, "create", None, T0)])
        raise RuntimeError("boom")
    assert not pg.tenant_exists("manila")
    assert raw(pg, "SELECT count(*) FROM entities") == [(0,)]
    assert raw(pg, "SELECT count(*) FROM entity_geo") == [(0,)]
    assert raw(pg, "SELECT count(*) FROM history") == [(0,)]


def test_get_locks_rows_until_commit(pg: PostgresStore) -> None:
    put(pg, ent("urn:a:1", n=0))
    locked, order = threading.Event(), []

    def second() -> None:
        locked.wait(5)
        with pg.transaction("") as tx:
            got = tx.get(["urn:a:1"])["urn:a:1"]
            order.append(("second read", got["attrs"][EX + "n"][0]["value"]))

    t = threading.Thread(target=second)
    t.start()
    with pg.transaction("") as tx:
        doc = tx.get(["urn:a:1", "urn:a:missing"])
        assert list(doc) == ["urn:a:1"]
        locked.set()
        time.sleep(0.3)  # the second transaction is now waiting on the row lock
        doc["urn:a:1"]["attrs"][EX + "n"][0]["value"] = 1
        tx.update(doc["urn:a:1"])
        order.append(("first commit", 1))
    t.join(5)
    assert order == [("first commit", 1), ("second read", 1)]


def test_update_and_delete(pg: PostgresStore) -> None:
    put(pg, ent("urn:a:1", geo=point(1, 1), n=1))
    with pg.transaction("") as tx:
        e = ent("urn:a:1", "T", "U", geo=point(2, 2), n=2)
        e["modifiedAt"] = "2026-02-01T00:00:00.000000Z"
        tx.update(e)  # not read first: the geo index is rewritten unconditionally
        with pytest.raises(KeyError):
            tx.update(ent("urn:a:nope"))
    got = pg.get_entity("", "urn:a:1")
    assert got["attrs"][EX + "n"][0]["value"] == 2
    assert ids(pg, types=TypeName(EX + "U")) == ["urn:a:1"]
    assert raw(pg, "SELECT ST_AsText(geom) FROM entity_geo") == [("POINT(2 2)",)]
    assert raw(pg, "SELECT modified_at, created_at FROM entities") == [
        ("2026-02-01T00:00:00.000000Z", T0)
    ]
    with pg.transaction("") as tx:
        assert tx.delete("urn:a:1") is True
        assert tx.delete("urn:a:1") is False
    assert raw(pg, "SELECT count(*) FROM entity_geo") == [(0,)]


def test_read_modify_write_keeps_or_moves_geometry(pg: PostgresStore) -> None:
    put(pg, ent("urn:a:1", geo=point(1, 1), n=1))
    with pg.transaction("") as tx:
        doc = tx.get(["urn:a:1"])["urn:a:1"]
        doc["attrs"][EX + "n"][0]["value"] = 5  # geometry unchanged: geo rows stay
        tx.update(doc)
        doc["attrs"][LOC][0]["value"] = point(3, 3)  # then moved in the same transaction
        tx.update(doc)
    assert raw(pg, "SELECT ST_AsText(geom) FROM entity_geo") == [("POINT(3 3)",)]
    assert ids(pg, geo=GeoQuery("within", box(2, 2, 4, 4))) == ["urn:a:1"]
    assert ids(pg, geo=GeoQuery("within", box(0, 0, 2, 2))) == []


def test_concurrent_transactions_share_the_pool(pg: PostgresStore) -> None:
    def worker(k: int) -> None:
        for n in range(20):
            put(pg, ent(f"urn:w:{k}:{n}"), tenant=f"t{k % 2}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert raw(pg, "SELECT tenant, count(*) FROM entities GROUP BY tenant ORDER BY tenant") == [
        ("t0", 80),
        ("t1", 80),
    ]
    assert pg.tenants() == ["", "t0", "t1"]


# ---------------------------------------------------------------------------- queries


def test_type_expressions(pg: PostgresStore) -> None:
    put(pg, ent("urn:a:1", "A"), ent("urn:a:2", "B"), ent("urn:a:3", "A", "B"), ent("urn:a:4", "C"))
    a, b, c = (TypeName(EX + x) for x in "ABC")
    assert ids(pg, types=a) == ["urn:a:1", "urn:a:3"]
    assert ids(pg, types=TypeAnd((a, b))) == ["urn:a:3"]
    assert ids(pg, types=TypeOr((b, c))) == ["urn:a:2", "urn:a:3", "urn:a:4"]
    assert ids(pg, types=TypeOr((TypeAnd((a, b)), c))) == ["urn:a:3", "urn:a:4"]
    assert ids(pg, types=TypeAnd((TypeOr((a, c)), b))) == ["urn:a:3"]


def test_ids_pattern_attrs_paging_and_count(pg: PostgresStore) -> None:
    put(pg, *(ent(f"urn:a:{n}", n=n) for n in range(12)), ent("urn:b:1", colour="red"))
    res = pg.query("", EntityQuery(id_pattern=r"urn:a:1\d?", limit=2, offset=1, count=True))
    assert [e["id"] for e in res.entities] == ["urn:a:10", "urn:a:11"]
    assert res.count == 3
    assert ids(pg, ids=["urn:b:1", "urn:a:3", "urn:x"]) == ["urn:a:3", "urn:b:1"]
    assert ids(pg, attrs=[EX + "colour", EX + "nothing"]) == ["urn:b:1"]
    assert ids(pg, id_pattern="urn:a") == []
    assert pg.query("", EntityQuery(limit=5, offset=20, count=True)).count == 13


def test_georels(pg: PostgresStore) -> None:
    put(
        pg,
        ent("urn:p:in", geo=point(0.5, 0.5)),
        ent("urn:p:out", geo=point(5, 5)),
        ent("urn:p:edge", geo=point(1, 0.5)),
        ent("urn:poly:big", geo=box(-1, -1, 2, 2)),
        ent("urn:poly:half", geo=box(0.5, 0.5, 1.5, 1.5)),
        ent("urn:poly:same", geo=box(0, 0, 1, 1)),
        ent("urn:nogeo", n=1),
    )
    unit = box(0, 0, 1, 1)
    assert ids(pg, geo=GeoQuery("within", unit)) == ["urn:p:in", "urn:poly:same"]
    # a point contains an equal point; a polygon does not contain a point on its boundary
    assert ids(pg, geo=GeoQuery("contains", point(0.5, 0.5))) == [
        "urn:p:in",
        "urn:poly:big",
        "urn:poly:same",
    ]
    assert ids(pg, geo=GeoQuery("intersects", unit)) == [
        "urn:p:in",
        "urn:p:edge",
        "urn:poly:big",
        "urn:poly:half",
        "urn:poly:same",
    ]
    assert ids(pg, geo=GeoQuery("equals", unit)) == ["urn:poly:same"]
    assert ids(pg, geo=GeoQuery("overlaps", unit)) == ["urn:poly:half"]
    # disjoint: only entities that have the GeoProperty at all
    assert ids(pg, geo=GeoQuery("disjoint", unit)) == ["urn:p:out"]


def test_near_distances_on_the_sphere(pg: PostgresStore) -> None:
    # 0.01 degree of longitude at the equator is 1111.95 m on the mean-radius sphere
    put(pg, ent("urn:p:0", geo=point(0, 0)), ent("urn:p:1", geo=point(0.01, 0)))
    near = point(0, 0)
    assert ids(pg, geo=GeoQuery("near", near, max_distance=1112)) == ["urn:p:0", "urn:p:1"]
    assert ids(pg, geo=GeoQuery("near", near, max_distance=1111)) == ["urn:p:0"]
    assert ids(pg, geo=GeoQuery("near", near, min_distance=1111)) == ["urn:p:1"]
    assert ids(pg, geo=GeoQuery("near", near, min_distance=1113)) == []


def test_geo_on_another_geoproperty_and_multi_instances(pg: PostgresStore) -> None:
    ops = EX + "operationSpace"
    put(
        pg,
        ent("urn:a:1", geo=[point(0.5, 0.5), point(0.6, 0.6)]),  # two instances, found once
        ent("urn:a:2", geo=point(0.5, 0.5), geo_attr=ops),
        ent("urn:a:3", geo={"type": "Point", "coordinates": "nonsense"}),  # kept, never matches
    )
    unit = box(0, 0, 1, 1)
    res = pg.query("", EntityQuery(geo=GeoQuery("within", unit), count=True))
    assert [e["id"] for e in res.entities] == ["urn:a:1"] and res.count == 1
    assert ids(pg, geo=GeoQuery("within", unit, geoproperty=ops)) == ["urn:a:2"]
    assert pg.get_entity("", "urn:a:3") is not None
    assert raw(pg, "SELECT count(*) FROM entity_geo") == [(3,)]


def test_3d_coordinates_are_indexed_in_2d(pg: PostgresStore) -> None:
    put(pg, ent("urn:a:1", geo={"type": "Point", "coordinates": [0.5, 0.5, 12.0]}))
    assert ids(pg, geo=GeoQuery("within", box(0, 0, 1, 1))) == ["urn:a:1"]


# ---------------------------------------------------------------------------- the rest


def test_history_round_trip_order_and_copy(pg: PostgresStore) -> None:
    few = [
        HistoryRow(
            "urn:a:1", EX + "T", EX + "n", None, {"value": 1}, "create", "2026-01-01T00:00:00Z", T0
        ),
        HistoryRow(
            "urn:a:1", EX + "T", EX + "m", "urn:ds:1", {"value": 2}, "update", None, "not a date"
        ),
    ]
    many = [
        HistoryRow(
            "urn:a:1",
            EX + "T",
            EX + "n",
            None,
            {"value": i},
            "update",
            None,
            f"2026-01-02T00:00:{i:02d}.000000Z",
        )
        for i in range(60)
    ] + [
        HistoryRow("urn:a:2", EX + "T", EX + "n", None, {"value": 0}, "delete-entity", None, T0)
    ] * 10
    with pg.transaction("") as tx:
        tx.add_history(few)  # executemany
        tx.add_history(many)  # COPY
        tx.add_history([])
    rows = pg.history("", "urn:a:1")
    # text comes back exactly as written, odd values included; reads add the row's id
    assert [dataclasses.replace(r, instance_id=None) for r in rows[:2]] == few
    assert all(r.instance_id is not None for r in rows)
    assert [r.instance["value"] for r in rows[2:]] == list(range(60))
    assert [r.instance["value"] for r in pg.history("", "urn:a:1", EX + "n", limit=3)] == [1, 0, 1]
    assert [
        dataclasses.replace(r, instance_id=None) for r in pg.history("", "urn:a:1", EX + "m")
    ] == [few[1]]
    assert len(pg.history("", "urn:a:2")) == 10
    assert pg.history("other", "urn:a:1") == []
    assert raw(pg, "SELECT recorded_at IS NOT NULL, observed_at FROM history WHERE op = 'create'")[
        0
    ][0]


def test_attribute_uses_per_type_and_attribute_type(pg: PostgresStore) -> None:
    a = ent("urn:a:1", "B", "A", geo=point(0, 0), n=1)
    a["attrs"][EX + "n"].append({"type": "Property", "value": 2, "datasetId": "urn:ds:1"})
    b = ent("urn:a:2", "B", n=1)
    b["attrs"][EX + "n"] = [{"type": "Relationship", "object": "urn:x"}]
    put(pg, a, b, ent("urn:other", "Z"), tenant="t")
    uses = [
        (u.entity_type[len(EX) :], u.attr, u.attr_type, u.entity_count)
        for u in pg.attribute_uses("t")
    ]
    assert uses == [
        ("A", EX + "n", "Property", 1),
        ("A", LOC, "GeoProperty", 1),
        ("B", EX + "n", "Property", 1),
        ("B", EX + "n", "Relationship", 1),
        ("B", LOC, "GeoProperty", 1),
    ]
    assert pg.attribute_uses("") == []


def test_contexts(pg: PostgresStore) -> None:
    c1 = StoredContext(
        "urn:c:2", "https://x/2", {"@context": {"a": EX + "a"}}, "hosted", "2026-01-02", {"n": 1}
    )
    c2 = StoredContext("urn:c:1", "https://x/1", {"@context": {}}, "cached", "2026-01-02")
    c3 = StoredContext("urn:c:0", "https://x/0", {"@context": []}, "cached", "2026-01-03")
    for c in (c3, c1, c2):
        pg.put_context(c)
    assert [c.id for c in pg.list_contexts()] == ["urn:c:1", "urn:c:2", "urn:c:0"]
    assert pg.get_context("https://x/2") == c1
    replaced = StoredContext(
        "urn:c:2", "https://x/2b", {"@context": {"b": 1}}, "hosted", "2026-01-04"
    )
    pg.put_context(replaced)
    assert pg.get_context("urn:c:2") == replaced
    assert pg.get_context("https://x/2") is None
    assert pg.delete_context("https://x/2b") is True
    assert pg.delete_context("urn:c:2") is False
    assert [c.id for c in pg.list_contexts()] == ["urn:c:1", "urn:c:0"]


def test_tenants_sort_bytewise(pg: PostgresStore) -> None:
    for t in ("bangkok", "Manila", "hcmc"):
        put(pg, ent("urn:a:1"), tenant=t)
    assert pg.tenants() == ["", "Manila", "bangkok", "hcmc"]
    assert pg.tenant_exists("hcmc") and not pg.tenant_exists("jakarta")
    assert ids(pg, "hcmc") == ["urn:a:1"] and ids(pg, "jakarta") == []


def test_iter_entities_pages_in_insertion_order(pg: PostgresStore) -> None:
    put(pg, *(ent(f"urn:a:{n}") for n in range(25)))
    assert [e["id"] for e in pg.iter_entities("", batch=10)] == [f"urn:a:{n}" for n in range(25)]


def test_invalid_polygons_are_made_valid_not_refused(pg: PostgresStore) -> None:
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]]}
    put(
        pg,
        ent("urn:a:bowtie", geo=bowtie),
        ent("urn:a:pt", geo=point(0.5, 1)),  # inside the left lobe
        ent("urn:a:gap", geo=point(1, 0.2)),  # between the lobes
    )
    assert ids(pg, geo=GeoQuery("intersects", box(0, 0, 0.5, 2))) == ["urn:a:bowtie", "urn:a:pt"]
    assert ids(pg, geo=GeoQuery("within", bowtie)) == ["urn:a:bowtie", "urn:a:pt"]
    assert ids(pg, geo=GeoQuery("disjoint", bowtie)) == ["urn:a:gap"]


def test_near_with_a_polygon_and_the_envelope_prefilter(pg: PostgresStore) -> None:
    # 1 km east of a 0.01-degree square at the equator, and one far away
    put(pg, ent("urn:a:1", geo=point(0.01 + 0.0089932, 0.005)), ent("urn:a:2", geo=point(1, 1)))
    square = box(0, 0, 0.01, 0.01)
    assert ids(pg, geo=GeoQuery("near", square, max_distance=1001)) == ["urn:a:1"]
    assert ids(pg, geo=GeoQuery("near", square, max_distance=999)) == []
    assert ids(pg, geo=GeoQuery("near", square, min_distance=999)) == ["urn:a:1", "urn:a:2"]


def test_queued_writes_keep_their_order_and_last_update_wins(pg: PostgresStore) -> None:
    put(pg, ent("urn:a:1", geo=point(0.5, 0.5), n=0))
    with pg.transaction("") as tx:
        doc = tx.get(["urn:a:1", "urn:a:2"])["urn:a:1"]
        doc["attrs"][LOC][0]["value"] = point(5, 5)  # moved …
        tx.update(doc)
        doc["attrs"][EX + "n"][0]["value"] = 2  # … then changed again, same place
        tx.update(doc)
        doc["attrs"][EX + "n"][0]["value"] = 3  # the caller's dict changes after the call
        tx.insert(ent("urn:a:2", geo=point(0.5, 0.5)))
        tx.delete("urn:a:2")
        tx.insert(ent("urn:a:2", n=7))  # re-created without a location
    got = pg.get_entity("", "urn:a:1")
    assert got["attrs"][EX + "n"][0]["value"] == 2
    assert ids(pg, geo=GeoQuery("within", box(4, 4, 6, 6))) == ["urn:a:1"]
    assert pg.get_entity("", "urn:a:2")["attrs"][EX + "n"][0]["value"] == 7
    assert raw(pg, "SELECT count(*) FROM entity_geo") == [(1,)]


def test_queued_insert_that_loses_a_race_fails_the_transaction(pg: PostgresStore) -> None:
    with pytest.raises(AlreadyExists, match="urn:a:1"), pg.transaction("") as tx:
        assert tx.get(["urn:a:1"]) == {}
        tx.insert(ent("urn:a:1", n=1))  # queued: get() found the id absent
        put(pg, ent("urn:a:1", n=2))  # another worker commits the same id first
    assert pg.get_entity("", "urn:a:1")["attrs"][EX + "n"][0]["value"] == 2
    assert raw(pg, "SELECT count(*) FROM entities") == [(1,)]


def test_odd_point_coordinates_are_stored_unindexed(pg: PostgresStore) -> None:
    put(
        pg,
        ent("urn:a:1", geo={"type": "Point", "coordinates": [10**400, 1]}),
        ent("urn:a:3", geo={"type": "Point", "coordinates": [1, 1]}),
    )
    assert ids(pg, geo=GeoQuery("intersects", box(0, 0, 2, 2))) == ["urn:a:3"]


@pytest.mark.postgres
def test_migrate_carries_an_older_database_forward(postgres_url, monkeypatch) -> None:
    from cityos.hub.entities import EntityService
    from cityos.hub.store import postgres as pg

    name = f"cityos_test_{secrets.token_hex(5)}"
    monkeypatch.setattr(pg, "MIGRATIONS", pg.MIGRATIONS[:1])
    old = PostgresStore(postgres_url, schema=name)
    try:
        assert old.migrate() == ["0001_initial"]
        EntityService(old).create(
            "",
            {
                "id": "urn:x:1",
                "type": ["https://ex.org/T"],
                "attrs": {"https://ex.org/v": [{"type": "Property", "value": 1}]},
            },
        )
        monkeypatch.undo()
        assert old.schema_version() == 1
        assert old.migrate() == [n for n, _ in pg.MIGRATIONS[1:]]
        assert old.schema_version() == len(pg.MIGRATIONS)
        assert old.get_entity("", "urn:x:1")["attrs"]["https://ex.org/v"][0]["value"] == 1
    finally:
        old.drop_schema()


@pytest.mark.postgres
def test_synchronous_commit_setting(postgres_url) -> None:
    for wanted in ("off", "on"):
        store = PostgresStore(postgres_url, synchronous_commit=wanted, pool_size=1)
        try:
            with store._pool.connection() as conn:
                assert conn.execute("SHOW synchronous_commit").fetchone()[0] == wanted
        finally:
            store.close()
    with pytest.raises(ValueError, match="synchronous_commit"):
        PostgresStore(postgres_url, synchronous_commit="sometimes")


def test_writers_holding_every_connection_reload_subscriptions(postgres_url: str) -> None:
    """A changed subscription makes the next writes reload the compiled subscriptions. With
    as many writers as pooled connections, each holding its transaction's connection while it
    waits for the reload, the reload must not ask the pool for another (it would wait for
    ever): it reads on the writer's own connection, and every write commits and notifies."""
    from cityos.config import Settings
    from cityos.hub.core import Hub
    from cityos.hub.subscriptions import SubscriptionIndex

    store = PostgresStore.throwaway(postgres_url, pool_size=2)
    hub = Hub(Settings(database_url=postgres_url), store=store)
    try:
        for k in range(2):
            hub.entities.create("", ent(f"urn:w:{k}", "T", speed=0))
        hub.subscriptions.for_tenant("")  # compiled; the next put makes them stale
        store.put_subscription(
            "",
            {
                "id": "urn:ngsi-ld:Subscription:s1",
                "type": "Subscription",
                "entities": [{"type": EX + "T"}],
                "notification": {"endpoint": {"uri": "http://x.example/n"}},
                "isActive": True,
            },
        )
        both_in = threading.Barrier(2, timeout=10)
        compiled = SubscriptionIndex.for_tenant

        def at_once(self: SubscriptionIndex, *args: Any, **kwargs: Any) -> Any:
            both_in.wait()  # each writer holds its connection when it asks
            return compiled(self, *args, **kwargs)

        errors: list[BaseException] = []

        def write(k: int) -> None:
            try:
                hub.entities.partial_update_attr("", f"urn:w:{k}", EX + "speed", {"value": 1})
            except BaseException as exc:  # noqa: BLE001 (reported below)
                errors.append(exc)

        SubscriptionIndex.for_tenant = at_once  # type: ignore[method-assign]
        try:
            threads = [threading.Thread(target=write, args=(k,)) for k in range(2)]
            started = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
        finally:
            SubscriptionIndex.for_tenant = compiled  # type: ignore[method-assign]
        assert errors == [] and time.monotonic() - started < 20
        assert raw(store, "SELECT count(*) FROM outbox") == [(2,)]
    finally:
        store.drop_schema()
