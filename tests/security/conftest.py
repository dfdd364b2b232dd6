"""Fixtures for the security tests: a store on every engine (as tests/hub/store does)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from cityos.hub.store.base import Store


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[Store]:
    """A migrated store, SQLite or PostgreSQL (in a schema of its own, dropped after)."""
    if request.param == "sqlite":
        from cityos.hub.store.sqlite import SqliteStore

        s: Store = SqliteStore(tmp_path / "city.db")
        s.migrate()
        yield s
        s.close()
    else:
        url = request.getfixturevalue("postgres_url")
        from cityos.hub.store.postgres import PostgresStore

        s = PostgresStore(url, schema=f"cityos_test_{uuid.uuid4().hex[:10]}")
        s.migrate()
        try:
            yield s
        finally:
            s.drop_schema()
            s.close()
