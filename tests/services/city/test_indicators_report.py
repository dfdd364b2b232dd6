"""The report: its history as KeyPerformanceIndicator entities, and ``cityos indicators``."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from cityos.config import Settings
from cityos.hub.client import HubClient
from cityos.hub.core import Hub
from cityos.services.city.indicators import (
    INDICATORS,
    KPI_TYPE,
    CityFacts,
    Period,
    compute_report,
    indicator,
    kpi_history,
    kpi_id,
    store_report,
)
from cityos.services.city.indicators_cli import app
from cityos.services.city.indicators_render import CSV_COLUMNS
from cityos.web.app import create_app

PERIOD = Period(datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
FIRST = datetime(2026, 12, 31, 12, tzinfo=UTC)
SECOND = datetime(2027, 1, 1, 12, tzinfo=UTC)
runner = CliRunner()


def signal(local: str, adaptive: bool) -> dict[str, Any]:
    mode = "adaptive" if adaptive else "fixedTime"
    return {
        "id": f"urn:ngsi-ld:TrafficSignal:{local}",
        "type": "TrafficSignal",
        "controlMode": {"type": "Property", "value": mode},
    }


@pytest.fixture
def hub(tmp_path: Any) -> Any:
    h = Hub(Settings(database_url=f"sqlite:///{tmp_path}/hub.db"))
    yield h
    h.close()


def test_two_reports_leave_a_history_of_each_indicator(hub: Hub) -> None:
    client = HubClient(hub)
    key = "adaptive-traffic-signal-share"
    only = [indicator(key), indicator("pm25-concentration")]
    client.upsert([signal("a", True), signal("b", False)])
    store_report(client, compute_report(client, PERIOD, CityFacts(), indicators=only), at=FIRST)
    client.upsert([signal("b", True)])  # the city makes junction b adaptive
    rows = compute_report(client, PERIOD, CityFacts("Tiny"), indicators=only)
    assert store_report(client, rows, at=SECOND, organization="Tiny") == [
        kpi_id(key),
        kpi_id("pm25-concentration"),
    ]
    assert kpi_history(client, key) == [
        ("2026-12-31T12:00:00.000000Z", 50.0),
        ("2027-01-01T12:00:00.000000Z", 100.0),
    ]
    kpi = client.get(kpi_id(key), fmt="keyValues")
    assert kpi["type"] == KPI_TYPE
    assert kpi["kpiValue"] == 100.0
    assert kpi["calculationPeriod"] == {
        "from": "2026-01-01T00:00:00Z",
        "to": "2027-01-01T00:00:00Z",
    }
    assert kpi["organization"] == "Tiny" and kpi["dataStatus"] == "ok"
    assert kpi["aggregatedData"] == [
        {"entityType": "TrafficSignal", "attrs": ["setPhase", "controlMode"]}
    ]
    # no data twice: the entity says so and why, with no kpiValue history
    empty = client.get(kpi_id("pm25-concentration"), fmt="keyValues")
    assert empty["dataStatus"] == "no-data" and "AirQualityObserved" in empty["dataStatusReason"]
    assert "kpiValue" not in empty
    # the same history through the NGSI-LD temporal API
    http = TestClient(create_app(hub.settings, hub))
    r = http.get(f"/ngsi-ld/v1/temporal/entities/{kpi_id(key)}", params={"attrs": "kpiValue"})
    assert r.status_code == 200, r.text
    instances = r.json()["kpiValue"]
    assert sorted(i["value"] for i in instances) == [50.0, 100.0]


def _db(tmp_path: Any) -> str:
    url = f"sqlite:///{tmp_path}/city.db"
    hub = Hub(Settings(database_url=url))
    HubClient(hub).upsert([signal("a", True), signal("b", False)])
    hub.close()
    return url


def _report(url: str, fmt: str, *more: str) -> Any:
    args = ["report", "--format", fmt, "--database-url", url, "--population", "1000",
            "--area-km2", "2", "--from", "2026-01-01", "--to", "2027-01-01", *more]  # fmt: skip
    return runner.invoke(app, args)


def test_report_json_lists_every_indicator_with_its_status(tmp_path: Any) -> None:
    result = _report(_db(tmp_path), "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["id"] for r in rows] == [i.key for i in INDICATORS]
    by_id = {r["id"]: r for r in rows}
    signals = by_id["adaptive-traffic-signal-share"]
    assert signals["value"] == 50.0 and signals["status"] == "ok" and signals["unit"] == "%"
    assert signals["standard"].startswith("ISO 37122:2019")
    pm25 = by_id["pm25-concentration"]
    assert pm25["value"] is None and pm25["status"] == "no-data"
    assert pm25["why"] and pm25["missing"] == ["AirQualityObserved"]
    for r in rows:
        assert {"id", "standard", "name", "value", "unit", "status", "why"} <= r.keys()


def test_report_csv_and_html(tmp_path: Any) -> None:
    url = _db(tmp_path)
    result = _report(url, "csv")
    assert result.exit_code == 0, result.output
    lines = list(csv.DictReader(io.StringIO(result.stdout)))
    assert tuple(lines[0].keys()) == CSV_COLUMNS
    assert len(lines) == len(INDICATORS)
    row = next(r for r in lines if r["id"] == "adaptive-traffic-signal-share")
    assert (row["value"], row["status"]) == ("50.0", "ok")
    out = tmp_path / "report.html"
    result = _report(url, "html", "--out", str(out), "--city-name", "Tiny <City>")
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and '<table id="indicators">' in page
    assert page.count("<tr class=") == len(INDICATORS)
    assert "Tiny &lt;City&gt;" in page  # escaped
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "<link" not in page


def test_report_stores_the_history_and_cli_shows_it(tmp_path: Any) -> None:
    url = _db(tmp_path)
    assert _report(url, "json").exit_code == 0
    assert _report(url, "json").exit_code == 0
    result = runner.invoke(
        app, ["history", "adaptive-traffic-signal-share", "--database-url", url, "--json"]
    )
    assert result.exit_code == 0, result.output
    assert [p["value"] for p in json.loads(result.stdout)] == [50.0, 50.0]
    assert _report(url, "json", "--no-store").exit_code == 0
    result = runner.invoke(
        app, ["history", "adaptive-traffic-signal-share", "--database-url", url, "--json"]
    )
    assert len(json.loads(result.stdout)) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "--format", "pdf"], "--format 'pdf'"),
        (["report", "--population", "0"], "population must be a positive number"),
        (["report", "--from", "2027-01-01", "--to", "2026-01-01"], "must end after"),
        (["report", "--to", "soon"], "not an ISO 8601 date"),
        (["history", "nope"], "no indicator 'nope'"),
        (["history", "pm25-concentration"], "no report has stored pm25-concentration"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Any, args: list[str], message: str) -> None:
    result = runner.invoke(app, [*args, "--database-url", _db(tmp_path)])
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_missing_database_is_not_created(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/none.db"
    result = runner.invoke(app, ["report", "--database-url", url])
    assert result.exit_code == 2 and "no hub database at" in result.output
    assert not (tmp_path / "none.db").exists()


def test_list_describes_every_indicator() -> None:
    result = runner.invoke(app, ["list", "--json"])
    assert result.exit_code == 0
    listed = json.loads(result.stdout)
    assert [i["id"] for i in listed] == [i.key for i in INDICATORS]
    assert all(i["reads"] and i["formula"] for i in listed)


def test_the_doc_lists_every_indicator_and_counts_them_right() -> None:
    from pathlib import Path

    doc = (Path(__file__).parents[3] / "docs" / "indicators.md").read_text()
    for i in INDICATORS:
        assert f"| `{i.key}` | {i.standard} | {i.name} |" in doc, i.key
    standard = sum(1 for i in INDICATORS if i.standards != ("CityOS",))
    assert f"{len(INDICATORS)} of\nthem, {standard} taken from" in doc
