"""Origin-destination flows: the internal matrix, its DP release, and the errors of a query."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cityos.hub.client import HubClient
from cityos.privacy import BudgetExceeded, InvalidRelease, Ledger, Pseudonymiser
from cityos.services.flows import (
    FlowsSettings,
    Journey,
    Tap,
    UnknownZone,
    ZoneMap,
    build_od,
    ingest_taps,
    od_release,
)
from cityos.services.flows.cli import app

from .conftest import DAY, KEY, PRIVACY, at


def _journey(card: str, o: str, d: str, hour: int) -> Journey:
    return Journey(card, o, d, at(hour), at(hour, 30))


def test_the_matrix_counts_journeys_and_bounds_each_card() -> None:
    journeys = [_journey("p1", "a", "b", h) for h in range(8, 14)] + [
        _journey("p2", "b", "a", 9),
        _journey("p2", "b", "z", 10),  # a zone outside the query: counts toward p2's bound
    ]
    od = build_od(journeys, ["a", "b"], day="2024-05-01", max_per_card=4)
    assert od.cell("a", "b") == 4 and od.cell("b", "a") == 1
    assert (od.journeys, od.dropped, od.outside) == (5, 2, 1)
    assert od.domain() == [("a", "a"), ("a", "b"), ("b", "a"), ("b", "b")]
    assert od.as_rows() == [[0, 4], [1, 0]]
    assert build_od(journeys, ["a", "b"]).cell("a", "b") == 6  # internal: no bound


def _some_taps() -> list[Tap]:
    taps = []
    for n in range(40):
        card = f"4000{n:012d}"
        taps += [Tap(card, "stop-riverside-1", at(8, n % 50), "in"),
                 Tap(card, "stop-wat-phnom-1", at(9, n % 50), "out")]  # fmt: skip
    return taps


def test_the_release_covers_every_zone_pair_and_says_how_private_it_is(
    client: HubClient, zones: ZoneMap, pseudonymiser: Pseudonymiser
) -> None:
    ingest_taps(client, pseudonymiser, _some_taps())
    settings = FlowsSettings(epsilon_per_day=5.0)
    release = od_release(client, DAY, epsilon=2.0, zones=["riverside", "wat-phnom"],
                         settings=settings, privacy=PRIVACY)  # fmt: skip
    out = release.as_dict()
    assert set(out["cells"]) == {"riverside->riverside", "riverside->wat-phnom",
                                 "wat-phnom->riverside", "wat-phnom->wat-phnom"}  # fmt: skip
    assert out["privacy"]["epsilon"] == pytest.approx(2.0)
    assert out["privacy"]["sensitivity"] == FlowsSettings().max_journeys_per_day
    assert out["period"] == "2024-05-01" and out["dataset"] == "transit-journeys"
    true = 40
    noisy = release.value("riverside->wat-phnom")
    assert noisy is not None and abs(noisy - true) < 40  # 2 / 2.0 scale: > 20 std away
    assert any("at most 4 journeys" in n for n in out["notes"])


def test_an_unknown_zone_is_an_error_and_nothing_is_charged(
    client: HubClient, zones: ZoneMap
) -> None:
    with pytest.raises(UnknownZone, match=r"unknown zone 'atlantis'; known zones: central-market"):
        od_release(client, DAY, epsilon=1.0, zones=["riverside", "atlantis"], privacy=PRIVACY)
    with pytest.raises(InvalidRelease, match="epsilon must be a number above 0"):
        od_release(client, DAY, epsilon=0.0, privacy=PRIVACY)
    assert Ledger(client).entries("transit-journeys") == []


def test_the_days_budget_runs_out(client: HubClient, zones: ZoneMap) -> None:
    od_release(client, DAY, epsilon=0.6, privacy=PRIVACY)
    with pytest.raises(BudgetExceeded, match="transit-journeys has ε=0.4"):
        od_release(client, DAY, epsilon=0.6, privacy=PRIVACY)
    od_release(client, DAY, epsilon=0.4, privacy=PRIVACY)  # what is left is still there


@pytest.fixture
def cli_env(db_path: Path, zones: ZoneMap, client: HubClient, pseudonymiser, monkeypatch) -> None:
    ingest_taps(client, pseudonymiser, _some_taps())
    monkeypatch.setenv("CITYOS_DATABASE_URL", f"sqlite:///{db_path}")
    monkeypatch.setenv("CITYOS_PRIVACY_KEY", KEY)
    monkeypatch.chdir(db_path.parent)


def test_cli_od_json(cli_env: None) -> None:
    run = CliRunner().invoke(app, ["od", "--day", "2024-05-01", "--epsilon", "0.5", "--json"])
    assert run.exit_code == 0, run.output
    out = json.loads(run.stdout)
    assert len(out["cells"]) == 64 and out["privacy"]["epsilon"] == pytest.approx(0.5)
    assert out["privacy"]["mechanism"] == "OpenDP discrete Laplace"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--zone", "atlantis"], "unknown zone 'atlantis'"),
        (["--epsilon", "0"], "epsilon must be a number above 0"),
        (["--epsilon", "-1"], "epsilon must be a number above 0"),
        (["--mechanism", "gaussian"], "needs delta > 0"),
    ],
)
def test_cli_od_errors_are_one_line_exit_2(cli_env: None, args: list[str], message: str) -> None:
    run = CliRunner().invoke(app, ["od", "--day", "2024-05-01", *args])
    assert run.exit_code == 2, run.output
    assert message in run.stderr and "Traceback" not in run.output
    assert len(run.stderr.strip().splitlines()) <= 2


def test_cli_od_bad_day_and_over_budget(cli_env: None) -> None:
    run = CliRunner().invoke(app, ["od", "--day", "May 1st"])
    assert run.exit_code == 2 and "is not a date" in run.stderr
    runner = CliRunner()
    assert runner.invoke(app, ["od", "--day", "2024-05-01", "--epsilon", "1"]).exit_code == 0
    run = runner.invoke(app, ["od", "--day", "2024-05-01", "--epsilon", "0.1"])
    assert run.exit_code == 2 and "refused" in run.stderr
