"""A payments ledger on each engine: SQLite in a temporary file, PostgreSQL in a schema of
its own (dropped after)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from cityos.services.payments.ledger import Ledger


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_target(request: pytest.FixtureRequest, tmp_path) -> Iterator[tuple[str, str | None]]:
    """``(database URL, PostgreSQL schema or None)`` for a fresh ledger; PostgreSQL's
    schema is dropped after the test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/ledger.db", None
        return
    url = request.getfixturevalue("postgres_url")
    schema = f"pay_test_{uuid.uuid4().hex[:10]}"
    yield url, schema
    ledger = Ledger.open(url, schema=schema)
    ledger.db.drop()
    ledger.close()


@pytest.fixture
def open_ledger(ledger_target) -> Iterator[Callable[..., Ledger]]:
    """``open_ledger(tenant="")``: a Ledger on the test's database (each call its own
    connection, as separate workers would have)."""
    url, schema = ledger_target
    opened: list[Ledger] = []

    def make(tenant: str = "") -> Ledger:
        ledger = Ledger.open(url, tenant=tenant, schema=schema)
        opened.append(ledger)
        return ledger

    yield make
    for ledger in opened:
        ledger.close()


@pytest.fixture
def ledger(open_ledger) -> Ledger:
    return open_ledger()
