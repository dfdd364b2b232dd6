"""``cityos traffic``: what an operator types, and what comes back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CITYOS = [sys.executable, "-m", "cityos.cli"]


def _cityos(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CITYOS, "traffic", *args], capture_output=True, text=True, timeout=240, cwd=cwd
    )


def test_run_json_reports_the_resco_metric_and_what_produced_it(tmp_path: Path) -> None:
    done = _cityos(
        "run", "--scenario", "cologne1", "--controller", "max-pressure", "--seed", "1", "--json",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["scenario"] == "cologne1"
    assert out["controller"] == "max-pressure"
    assert out["seed"] == 1
    assert out["sumo_version"] == "1.28.0"
    assert 0 < out["average_delay_s"] < 200
    assert out["vehicles"] > 1000  # the scenario's hour of demand, not a stub
    assert out["through_hub"] is False


def test_run_through_the_hub_writes_the_city_entities(tmp_path: Path) -> None:
    db = tmp_path / "traffic.db"
    done = _cityos(
        "run", "--scenario", "cologne1", "--controller", "cityos", "--json",
        "--through-hub", f"sqlite:///{db}", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["through_hub"] is True
    assert out["hub"]["commands"] == out["hub"]["steps"] > 300
    assert out["hub"]["emission_entities"] >= 1
    from cityos.config import Settings
    from cityos.hub.client import HubClient
    from cityos.hub.core import Hub

    client = HubClient(Hub(Settings(database_url=f"sqlite:///{db}")))
    assert len(client.query(type="TrafficSignal")) == 1
    segments = client.query(type="RoadSegment", limit=1000)
    assert segments and all(0 <= s["congestionIndex"]["value"] <= 1 for s in segments)
    emissions = client.query(type="TrafficEmissionObserved", limit=1000)
    assert sum(e["co2"]["value"] for e in emissions) > 0


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["run", "--scenario", "atlantis"], "unknown scenario 'atlantis'; known scenarios:"),
        (["run", "--scenario", "cologne1", "-c", "magic"], "unknown controller 'magic'"),
        (["compare", "--scenario", "cologne1", "--controllers", "fixed,nope"], "'nope'"),
        (["tune", "--scenario", "atlantis"], "unknown scenario 'atlantis'"),
        (["run", "-s", "cologne1", "--mqtt", "mqtt://127.0.0.1:1883"], "--mqtt needs a hub"),
        (
            [
                "run",
                "-s",
                "cologne1",
                "--through-hub",
                "sqlite:///hub.db",
                "--mqtt",
                "mqtt://127.0.0.1:9",
            ],
            "MQTT broker 127.0.0.1:9",
        ),
        (["tune", "--scenario", "cologne1", "--seeds", "1,x"], "must be integers"),
        (["tune", "--scenario", "cologne1", "--budget", "0"], "at least one evaluation"),
    ],
)
def test_bad_names_are_a_clear_message_not_a_traceback(
    tmp_path: Path, args: list[str], says: str
) -> None:
    done = _cityos(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert says in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr


def test_run_reports_the_setting_tuned_for_its_network(tmp_path: Path) -> None:
    from dataclasses import asdict

    from cityos.services.traffic import CityOSParams
    from cityos.services.traffic.controllers.presets import tuned_params

    done = _cityos("run", "--scenario", "cologne1", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["controller"] == "cityos"
    assert tuned_params("cologne1")  # cologne1 ships a tuned setting: the run must use it
    expected = {**asdict(CityOSParams()), **tuned_params("cologne1")}
    expected = {k: None if v == float("inf") else v for k, v in expected.items()}  # JSON null
    assert out["controller_params"] == expected


def test_tune_writes_a_setting_that_run_can_use(tmp_path: Path) -> None:
    target = tmp_path / "c1.json"
    done = _cityos(
        "tune", "--scenario", "cologne1", "--budget", "2", "--seeds", "100", "--jobs", "1",
        "--validation-seeds", "200", "--keep", "1", "--out", str(target), "--json",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["network"] == "cologne1" and out["evaluations"] == 4  # 2 trained, 2 checked
    assert out["training_seeds"] == [100] and out["validation_seeds"] == [200]
    assert out["validation_delay_s"] <= out["default_validation_delay_s"]
    written = json.loads(target.read_text())
    assert written["params"] == out["params"] and len(written["history"]) == 2
    # the written setting is what a run with --params uses
    target.write_text(json.dumps({"params": {"switch_margin": 2.5, "hold_per_moving": 1.0}}))
    done = _cityos(
        "run", "--scenario", "cologne1", "--params", str(target), "--json", cwd=tmp_path
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    used = json.loads(done.stdout)["controller_params"]
    assert used["switch_margin"] == 2.5 and used["hold_per_moving"] == 1.0


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("{not json", "are unreadable"),
        ('{"params": {"no_such_knob": 1}}', "are unreadable"),
        ('["a list"]', "are unreadable"),
    ],
)
def test_a_bad_params_file_is_a_clear_message(tmp_path: Path, content: str, says: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    done = _cityos("run", "--scenario", "cologne1", "--params", str(bad), cwd=tmp_path)
    assert done.returncode == 2 and says in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr
    done = _cityos(
        "run", "-s", "cologne1", "-c", "max-pressure", "--params", str(bad), cwd=tmp_path
    )  # fmt: skip
    assert done.returncode == 2 and "not 'max-pressure'" in " ".join(done.stderr.split())
