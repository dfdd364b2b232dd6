"""The privacy report, from Python and `cityos privacy`; CLI errors are one line, exit 2."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cityos.config import Settings
from cityos.hub.client import HubClient
from cityos.hub.core import Hub
from cityos.privacy import Pseudonymiser, declare, privacy_report, release_counts
from cityos.privacy.cli import app

from .conftest import KEY, TRIPS, trip

NOW = datetime(2024, 6, 30, 12, tzinfo=UTC)
CARD = "4000123456789010"


def test_the_report_says_what_is_held_why_and_what_was_released(client: HubClient) -> None:
    declare(client, TRIPS)
    client.upsert([trip("a" * 32, "2024-06-29T08:00:00.000000Z", 1),
                   trip("b" * 32, "2024-04-01T08:00:00.000000Z", 2)])  # fmt: skip
    release_counts(client, TRIPS, "2024-06-29", "od", {"A": 3}, ["A"], sensitivity=1, epsilon=0.25)
    release_counts(client, TRIPS, "2024-06-29", "od", {"A": 3}, ["A"], sensitivity=1, epsilon=0.5)
    out = privacy_report(client, now=NOW)
    [d] = out["datasets"]
    assert d["purpose"] == TRIPS.purpose and d["legalBasis"] == "public-task"
    assert d["retention"] == "P30D" and d["personal"] and d["identifierKind"] == "card"
    assert (d["recordsHeld"], d["recordsPastRetention"]) == (2, 1)
    [day] = d["released"]
    assert day["period"] == "2024-06-29" and day["releases"] == 2
    assert day["epsilonSpent"] == pytest.approx(0.75)
    assert day["epsilonLeft"] == pytest.approx(0.25)
    assert [q["epsilon"] for q in day["queries"]] == [pytest.approx(0.25), pytest.approx(0.5)]
    assert out["pseudonyms"]["rotation"] == "daily"


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("CITYOS_DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)  # no cityos.toml
    hub = Hub(Settings(database_url=url))
    client = HubClient(hub)
    declare(client, TRIPS)
    p = Pseudonymiser(KEY, timezone="Asia/Phnom_Penh")
    today = datetime.now(UTC)
    stamp = today.isoformat(timespec="microseconds").replace("+00:00", "Z")
    client.upsert([trip(p.pseudonym(CARD, "card", today), stamp, 1),
                   trip(p.pseudonym("4000999988887777", "card", today), stamp, 2)])  # fmt: skip
    hub.close()
    return url


def test_cli_report_json(database: str) -> None:
    run = CliRunner().invoke(app, ["report", "--json"])
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout)["datasets"][0]["recordsHeld"] == 2


def test_cli_access_then_erase(database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYOS_PRIVACY_KEY", KEY)
    runner = CliRunner()
    run = runner.invoke(app, ["request", "access", "--id", CARD, "--json"])
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout)["records"] == 1
    assert CARD not in run.stdout
    run = runner.invoke(app, ["request", "erase", "--id", "-", "--json"], input=CARD + "\n")
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout)["erased"] == {"trips": 1}
    run = runner.invoke(app, ["report", "--json"])
    assert json.loads(run.stdout)["datasets"][0]["recordsHeld"] == 1


def test_cli_without_a_key_is_one_line_exit_2(database: str, monkeypatch) -> None:
    monkeypatch.delenv("CITYOS_PRIVACY_KEY", raising=False)
    run = CliRunner().invoke(app, ["request", "access", "--id", CARD])
    assert run.exit_code == 2
    assert "CITYOS_PRIVACY_KEY" in run.stderr and "Traceback" not in run.output
    assert len(run.stderr.strip().splitlines()) <= 2  # one line, perhaps wrapped by Rich


def test_cli_unknown_kind_and_bad_setting(database: str, monkeypatch) -> None:
    monkeypatch.setenv("CITYOS_PRIVACY_KEY", KEY)
    run = CliRunner().invoke(app, ["request", "erase", "--id", CARD, "--kind", "mac"])
    assert run.exit_code == 2 and "no dataset is keyed by mac" in run.stderr
    monkeypatch.setenv("CITYOS_PRIVACY_SUPPRESS_BELOW", "ten")
    run = CliRunner().invoke(app, ["report"])
    assert run.exit_code == 2 and "privacy.suppress_below" in run.stderr


def test_cli_retention(database: str) -> None:
    run = CliRunner().invoke(app, ["retention", "--json"])
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout) == [
        {"dataset": "trips", "cutoff": json.loads(run.stdout)[0]["cutoff"], "deleted": 0}
    ]
