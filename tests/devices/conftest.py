"""Fixtures for the device tests: hubs on one database (sqlite and PostgreSQL), served."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cityos.config import Settings
from cityos.hub.core import Hub

HubFactory = Callable[[Settings], Hub]


@pytest.fixture(params=["sqlite", "postgresql"])
def hub_factory(request, tmp_path) -> Iterator[HubFactory]:
    """Make hubs on one database: each call opens the same one again (a restart)."""
    if request.param == "sqlite":
        from cityos.hub.store.sqlite import SqliteStore

        def make(settings: Settings) -> Hub:
            return Hub(settings, store=SqliteStore(tmp_path / "devices.db"))

        yield make
        return
    from cityos.hub.store.postgres import PostgresStore

    url = request.getfixturevalue("postgres_url")
    schema = f"cityos_test_{uuid.uuid4().hex[:10]}"

    def make_pg(settings: Settings) -> Hub:
        return Hub(settings, store=PostgresStore(url, schema=schema))

    yield make_pg
    PostgresStore(url, schema=schema).drop_schema()


def _wait_for(fn: Callable[[], Any], timeout: float = 10, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def wait_for() -> Callable[..., Any]:
    """``wait_for(fn, timeout=10, what=...)``: poll until ``fn()`` is truthy; return it."""
    return _wait_for
