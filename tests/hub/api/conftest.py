from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from cityos.config import Settings
from cityos.hub.core import Hub


@pytest.fixture(params=["sqlite", "postgresql"])
def client(request: pytest.FixtureRequest, tmp_path) -> Iterator[TestClient]:
    """An HTTP client on a fresh hub, once per storage engine."""
    from cityos.web.app import create_app

    settings = Settings(max_body_bytes=64 * 1024)
    if request.param == "sqlite":
        from cityos.hub.store.sqlite import SqliteStore

        store = SqliteStore(tmp_path / "api.db")
    else:
        from cityos.hub.store.postgres import PostgresStore

        url = request.getfixturevalue("postgres_url")
        store = PostgresStore(url, schema=f"cityos_test_{uuid.uuid4().hex[:10]}")
    hub = Hub(settings, store=store)
    with TestClient(create_app(settings, hub), base_url="http://127.0.0.1:1026") as c:
        yield c
    if request.param == "postgresql":
        reopened = PostgresStore(url, schema=store.schema)
        reopened.drop_schema()
        reopened.close()
