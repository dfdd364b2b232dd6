"""Shared fixtures: real servers for integration tests (skipped with a reason, failed under CI)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from cityos.hub.store.base import Store

POSTGRES_URL = os.environ.get(
    "CITYOS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def require_server(name: str, reachable: bool, how: str) -> None:
    """Skip when a server is missing, but fail under CI=true where it must be there."""
    if reachable:
        return
    msg = f"{name} is not reachable: {how}"
    if os.environ.get("CI") == "true":
        pytest.fail(msg)
    pytest.skip(msg)


def postgres_reachable(url: str = POSTGRES_URL) -> bool:
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3):
            return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def postgres_url() -> str:
    require_server(
        "PostgreSQL",
        postgres_reachable(),
        f"start it ({POSTGRES_URL}) with 'pg_ctlcluster 15 main start' or set CITYOS_TEST_POSTGRES_URL",
    )
    return POSTGRES_URL


MQTT_HOST, MQTT_PORT = "127.0.0.1", 1883


@pytest.fixture(scope="session")
def mosquitto() -> tuple[str, int]:
    import socket

    try:
        with socket.create_connection((MQTT_HOST, MQTT_PORT), timeout=2):
            reachable = True
    except OSError:
        reachable = False
    require_server(
        "Mosquitto", reachable, f"start it ({MQTT_HOST}:{MQTT_PORT}) with 'mosquitto -d'"
    )
    return MQTT_HOST, MQTT_PORT


REDIS_URL = os.environ.get("CITYOS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A Redis server (rate limits shared by workers); skipped without one, failed under CI."""
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
        reachable = True
    except Exception:
        reachable = False
    require_server(
        "Redis",
        reachable,
        f"start it ({REDIS_URL}) with 'redis-server --daemonize yes' or set CITYOS_TEST_REDIS_URL",
    )
    return REDIS_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[Store]:
    """A migrated store, SQLite or PostgreSQL (in a schema of its own, dropped after): the
    contract, security and other suites run unchanged against every engine."""
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
