"""What only the SQLite engine has: its file, its migrations from an older schema, its index."""

from __future__ import annotations

import sqlite3

import pytest

from cityos.hub.entities import EntityService
from cityos.hub.query.model import EntityQuery, GeoQuery
from cityos.hub.store import open_store
from cityos.hub.store import sqlite as sqlite_store
from cityos.hub.store.sqlite import SqliteStore

EX = "https://example.org/"
LOC = "https://uri.etsi.org/ngsi-ld/location"


def point_entity(n: int, lon: float, lat: float) -> dict:
    return {
        "id": f"urn:ngsi-ld:P:{n}",
        "type": [EX + "P"],
        "attrs": {
            EX + "v": [{"type": "Property", "value": n}],
            LOC: [{"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}}],
        },
    }


def test_migrate_carries_an_older_database_forward(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.db"
    monkeypatch.setattr(sqlite_store, "MIGRATIONS", sqlite_store.MIGRATIONS[:1])
    old = SqliteStore(path)
    assert old.migrate() == ["0001_initial"]
    EntityService(old).create("", point_entity(1, 104.92, 11.57))
    old.close()
    monkeypatch.undo()
    new = SqliteStore(path)
    assert new.schema_version() == 1
    applied = new.migrate()
    assert applied == [name for name, _ in sqlite_store.MIGRATIONS[1:]]
    assert new.schema_version() == len(sqlite_store.MIGRATIONS)
    assert new.get_entity("", "urn:ngsi-ld:P:1")["attrs"][EX + "v"][0]["value"] == 1
    indexes = {
        r[0]
        for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type='index'")
    }
    assert "history_time" not in indexes and "history_entity" in indexes


def test_open_store_urls(tmp_path) -> None:
    s = open_store(f"sqlite:///{tmp_path}/x.db")
    assert isinstance(s, SqliteStore) and s.path.endswith("x.db")
    s.close()
    with pytest.raises(ValueError, match="unsupported database URL"):
        open_store("mysql://x")
    with pytest.raises(ValueError, match="bad SQLite URL"):
        open_store("sqlite:x.db")


def test_wal_mode_and_file_survives_reopen(tmp_path) -> None:
    path = tmp_path / "city.db"
    s = SqliteStore(path)
    s.migrate()
    EntityService(s).create("", point_entity(1, 104.92, 11.57))
    assert s._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    s.close()
    again = SqliteStore(path)
    again.migrate()
    assert again.get_entity("", "urn:ngsi-ld:P:1") is not None


def test_geo_index_agrees_with_exact_check_in_many_places(tmp_path) -> None:
    """Points just inside and just outside a box edge: the R*Tree (float32) never decides alone."""
    s = SqliteStore(tmp_path / "g.db")
    s.migrate()
    svc = EntityService(s)
    eps = 1e-7
    svc.batch_create(
        "",
        [
            point_entity(1, 104.92 - eps, 11.57),
            point_entity(2, 104.92 + eps, 11.57),
            point_entity(3, 104.93 + eps, 11.575),
            point_entity(4, 104.93 - eps, 11.575),
        ],
    )
    box = {
        "type": "Polygon",
        "coordinates": [
            [[104.92, 11.56], [104.93, 11.56], [104.93, 11.58], [104.92, 11.58], [104.92, 11.56]]
        ],
    }
    found = sorted(e["id"] for e in s.query("", EntityQuery(geo=GeoQuery("within", box))).entities)
    assert found == ["urn:ngsi-ld:P:2", "urn:ngsi-ld:P:4"]
    # a triangle (not a box) goes through the exact Shapely check
    tri = {
        "type": "Polygon",
        "coordinates": [[[104.91, 11.56], [104.94, 11.56], [104.91, 11.59], [104.91, 11.56]]],
    }
    found = sorted(e["id"] for e in s.query("", EntityQuery(geo=GeoQuery("within", tri))).entities)
    assert found == ["urn:ngsi-ld:P:1", "urn:ngsi-ld:P:2"]  # P:4 lies beyond the hypotenuse
