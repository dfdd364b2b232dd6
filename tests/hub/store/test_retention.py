"""History retention: rules, the purge on both engines, and `cityos retention run`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from cityos.cli import app
from cityos.hub.entities import EntityService
from cityos.hub.ldcontext import ContextResolver, core_context
from cityos.hub.retention import parse_rules, run_retention
from cityos.hub.store.base import HistoryRow

EX = "https://example.org/"
CTX = ContextResolver().resolve(
    {"Sensor": EX + "Sensor", "speed": EX + "speed", "name": EX + "name"}
)


def test_parse_rules() -> None:
    rules = parse_rules(["Sensor.speed=90d", "Sensor=P1W", "*=12h"], CTX)
    assert [(r.entity_type, r.attr, r.keep) for r in rules] == [
        (EX + "Sensor", EX + "speed", timedelta(days=90)),
        (EX + "Sensor", None, timedelta(weeks=1)),
        (None, None, timedelta(hours=12)),
    ]
    for bad in ("Sensor", "Sensor=", "=3d", "Sensor=forever", "Sensor=P1M"):
        with pytest.raises(ValueError, match="retention rule"):
            parse_rules([bad], core_context())


def _old_and_new(store) -> None:
    svc = EntityService(store)
    svc.create(
        "",
        {
            "id": "urn:ngsi-ld:Sensor:1",
            "type": [EX + "Sensor"],
            "attrs": {
                EX + "speed": [{"type": "Property", "value": 1}],
                EX + "name": [{"type": "Property", "value": "a"}],
            },
        },
    )
    long_ago = (datetime.now(UTC) - timedelta(days=400)).isoformat(timespec="microseconds")[
        :-6
    ] + "Z"
    with store.transaction("") as tx:
        tx.add_history(
            [
                HistoryRow(
                    "urn:ngsi-ld:Sensor:1",
                    EX + "Sensor",
                    attr,
                    None,
                    {"type": "Property", "value": 0},
                    "update",
                    None,
                    long_ago,
                )
                for attr in (EX + "speed", EX + "speed", EX + "name")
            ]
        )


def test_purge_by_rule_on_both_engines(store) -> None:
    _old_and_new(store)
    results = run_retention(store, parse_rules(["Sensor.speed=90d"], CTX))
    assert [r.deleted for r in results] == [2]
    left = store.history("", "urn:ngsi-ld:Sensor:1")
    assert sorted(r.attr for r in left) == [EX + "name", EX + "name", EX + "speed"]
    results = run_retention(store, parse_rules(["*=365d"], CTX))
    assert [r.deleted for r in results] == [1]
    assert len(store.history("", "urn:ngsi-ld:Sensor:1")) == 2  # the recent creation rows stay


def test_cli_retention_run(tmp_path) -> None:
    from cityos.hub.store.sqlite import SqliteStore

    path = tmp_path / "r.db"
    store = SqliteStore(path)
    store.migrate()
    _old_and_new(store)
    store.close()
    runner = CliRunner()
    r = runner.invoke(app, ["retention", "run", "--json", "-d", f"sqlite:///{path}", "-r", "*=30d"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)[0]["deleted"] == 3
    r = runner.invoke(app, ["retention", "run", "-d", f"sqlite:///{path}", "-r", "nonsense"])
    assert r.exit_code == 2 and "retention rule" in r.output
    r = runner.invoke(app, ["retention", "run", "-d", f"sqlite:///{path}"])
    assert r.exit_code == 2 and "no retention rules" in r.output


def test_server_applies_retention_on_a_schedule(tmp_path) -> None:
    import time

    from starlette.testclient import TestClient

    from cityos.config import Settings
    from cityos.hub.core import Hub
    from cityos.hub.store.sqlite import SqliteStore
    from cityos.web.app import create_app

    settings = Settings(retention=["*=300d"], retention_interval_s=1)
    store = SqliteStore(tmp_path / "s.db")
    hub = Hub(settings, store=store)
    _old_and_new(store)
    assert len(store.history("", "urn:ngsi-ld:Sensor:1")) == 5
    with TestClient(create_app(settings, hub)):
        deadline = time.monotonic() + 10
        while len(store.history("", "urn:ngsi-ld:Sensor:1")) != 2:
            assert time.monotonic() < deadline, "retention did not run"
            time.sleep(0.1)


@pytest.mark.postgres
def test_postgres_retention_drops_whole_months(postgres_url) -> None:
    from cityos.hub.store.postgres import PostgresStore

    store = PostgresStore.throwaway(postgres_url)
    try:
        made = store.ensure_history_partitions(datetime(2020, 1, 1, tzinfo=UTC), months=1)
        assert made == ["history_y2020m01", "history_y2020m02"]

        def row(at: str) -> HistoryRow:
            p = {"type": "Property", "value": 0}
            return HistoryRow("urn:x:1", EX + "S", EX + "a", None, p, "update", None, at)

        with store.transaction("") as tx:
            tx.add_history([row("2020-01-15T00:00:00.000000Z")] * 3)
            tx.add_history([row("2020-02-15T00:00:00.000000Z")] * 2)
        deleted = store.purge_history("2020-02-10T00:00:00.000000Z")
        assert deleted == 3
        names = [n for n, _ in store.history_partitions()]
        assert "history_y2020m01" not in names and "history_y2020m02" in names  # dropped whole
        assert len(store.history("", "urn:x:1")) == 2
        # this month and the next ones exist, so new rows land in droppable partitions
        now = datetime.now(UTC)
        assert f"history_y{now.year:04d}m{now.month:02d}" in names
    finally:
        store.drop_schema()
