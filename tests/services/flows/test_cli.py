"""`cityos flows` from files and the simulated day; one-line errors, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cityos.services.flows.cli import app

from .conftest import KEY


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CITYOS_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    monkeypatch.setenv("CITYOS_PRIVACY_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.slow
def test_simulate_then_build_and_release(env: Path) -> None:
    runner = CliRunner()
    run = runner.invoke(app, ["simulate", "--day", "2024-05-01", "--cards", "300",
                              "--devices", "50", "--json"])  # fmt: skip
    assert run.exit_code == 0, run.output
    out = json.loads(run.stdout)
    assert out["taps"]["journeys"] > 300 and out["build"]["alerts"] >= 1
    run = runner.invoke(app, ["zones", "--json"])
    assert len(json.loads(run.stdout)) == 8
    run = runner.invoke(app, ["crowd", "--day", "2024-05-01", "--epsilon", "0.2",
                              "--zone", "riverside", "--json"])  # fmt: skip
    assert run.exit_code == 0, run.output
    assert len(json.loads(run.stdout)["cells"]) == 24
    run = runner.invoke(app, ["dwell", "--day", "2024-05-01", "--epsilon", "0.2"])
    assert run.exit_code == 0 and "riverside:30-60min" in run.stdout
    run = runner.invoke(app, ["od", "--day", "2024-05-01", "--epsilon", "0.2"])
    assert run.exit_code == 0 and "journeys (origin rows" in run.stdout


def test_ingest_files(env: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["simulate", "--day", "2024-05-01", "--cards", "0",
                               "--devices", "0", "--step-min", "60"]).exit_code == 0  # fmt: skip
    (env / "taps.csv").write_text(
        "card,stop,time,kind\n"
        "4000555566667777,stop-riverside-1,2024-05-02T08:00:00+07:00,in\n"
        "4000555566667777,stop-wat-phnom-1,2024-05-02T08:20:00+07:00,out\n"
    )
    (env / "wifi.csv").write_text(
        "mac,sensor,time\n02:aa:bb:cc:dd:ee,ap-riverside-1,2024-05-02T09:00:00Z\n"
    )
    run = runner.invoke(app, ["ingest", "--taps", "taps.csv", "--sightings", "wifi.csv", "--json"])
    assert run.exit_code == 0, run.output
    out = json.loads(run.stdout)
    assert out["taps"]["journeys"] == 1 and out["sightings"]["stays"] == 1
    db = b"".join(p.read_bytes() for p in env.glob("cli.db*"))
    assert b"4000555566667777" not in db and b"02:aa:bb:cc:dd:ee" not in db


def test_a_bad_line_names_its_number_not_its_card(env: Path) -> None:
    (env / "taps.csv").write_text("card,stop,time,kind\n4000999900001111,stop-1,noon,in\n")
    (env / "bad.csv").write_text("card,when\n")
    run = CliRunner().invoke(app, ["ingest", "--taps", "bad.csv"])
    assert run.exit_code == 2 and "needs columns card, stop, time, kind" in run.stderr
    CliRunner().invoke(
        app,
        ["simulate", "--day", "2024-05-01", "--cards", "0", "--devices", "0", "--step-min", "60"],
    )
    run = CliRunner().invoke(app, ["ingest", "--taps", "taps.csv"])
    assert run.exit_code == 2
    assert "taps.csv:2: not a valid taps line" in run.stderr
    assert "4000999900001111" not in run.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ingest"], "give at least one of --taps"),
        (["ingest", "--taps", "missing.csv"], "cannot read it"),
        (["od", "--day", "2024-05-01"], "no zones registered"),
        (["build", "--day", "2024-13-01"], "is not a date"),
    ],
)
def test_errors_are_one_line(env: Path, args: list[str], message: str) -> None:
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 2, run.output
    assert message in run.stderr and "Traceback" not in run.output


def test_without_a_key_taps_are_refused(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CITYOS_PRIVACY_KEY")
    (env / "taps.csv").write_text("card,stop,time,kind\n")
    run = CliRunner().invoke(app, ["ingest", "--taps", "taps.csv"])
    assert run.exit_code == 2 and "CITYOS_PRIVACY_KEY" in run.stderr
