"""The traffic service under ``cityos serve``: its background task controls the configured
signals through the hub, and stays idle (saying so in /health) when none are configured."""

from __future__ import annotations

import time
from pathlib import Path

from starlette.testclient import TestClient
from typer.testing import CliRunner

from cityos.config import Settings
from cityos.devices.agent import Agent, Measure
from cityos.hub.client import HubClient
from cityos.services.traffic import Scenario
from cityos.services.traffic.service import SERVICE, TrafficSettings, diagnostics
from cityos.services.traffic.signalfile import SignalsFileError, read_signals, write_signals
from cityos.services.traffic.signalservice import (
    COMMAND,
    DETECTOR_KEY,
    SIGNAL_KEY,
    provision,
    signal_entity,
)
from cityos.services.traffic.sim.layout import read_network
from cityos.web.app import create_app


def _settings(tmp_path: Path, **traffic: object) -> Settings:
    """Settings as ``cityos serve`` reads them: ``[services.traffic]`` in cityos.toml."""
    lines = ["[services.traffic]", *(f"{k} = {v!r}" for k, v in traffic.items())]
    (tmp_path / "cityos.toml").write_text("\n".join(lines).replace("'", '"') + "\n")
    env = {"CITYOS_DATABASE_URL": f"sqlite:///{tmp_path}/hub.db"}
    return Settings.load(env=env, path=str(tmp_path / "cityos.toml"))


def _signals_file(tiny: Scenario, tmp_path: Path) -> Path:
    """Written the way a city would: ``cityos traffic signals`` from its SUMO network."""
    from cityos.cli import app

    out = tmp_path / "signals.json"
    done = CliRunner().invoke(
        app, ["traffic", "signals", "--network", str(tiny.net_file), "--out", str(out)]
    )
    assert done.exit_code == 0, done.output
    return out


def test_the_signals_file_round_trips_the_layouts(tiny: Scenario, tmp_path: Path) -> None:
    layouts = read_network(tiny.net_file).layouts
    path = write_signals(layouts, tmp_path / "s.json", network="tiny")
    assert read_signals(path) == {t: lay for t, lay in layouts.items() if lay.phases}
    (tmp_path / "bad.json").write_text('{"signals": {}}')
    for bad in (tmp_path / "bad.json", tmp_path / "missing.json"):
        try:
            read_signals(bad)
        except SignalsFileError as exc:
            assert str(bad) in str(exc)
        else:
            raise AssertionError(f"{bad} was accepted")


def _junction_reporting(hub: object, layouts: dict) -> tuple[str, int]:
    """Provision the junction's devices as a city does and report one reading from each:
    queues only on the approaches the last phase serves (max-pressure must switch to it
    from phase 0). The signal's id and the phase expected."""
    agent = Agent(hub)
    wiring = provision(agent, "", layouts)
    [(tls, signal_device)] = wiring.signal_device.items()
    wanted = layouts[tls].phases[-1]
    measures = [Measure("", SIGNAL_KEY, signal_device, {"p": 0, "e": 30.0}, None)]
    for (_, gid), device in wiring.flow_device.items():
        n = 8 if gid in wanted.serves else 0
        measures.append(Measure("", DETECTOR_KEY, device, {"c": n, "o": 40.0, "q": n}, None))
    assert all(err is None for _, err in agent.ingest_many(measures))
    return tls, wanted.index


def test_the_task_writes_setphase_commands_for_the_configured_signals(
    tiny: Scenario, tmp_path: Path
) -> None:
    signals = _signals_file(tiny, tmp_path)
    settings = _settings(tmp_path, signals=str(signals), controller="max-pressure", step_s=0.05)
    app = create_app(settings)
    tls, phase = _junction_reporting(app.state.hub, read_signals(signals))
    client = HubClient(app.state.hub)
    with TestClient(app) as http:
        deadline = time.monotonic() + 10
        command: dict = {}
        while not isinstance(command.get("value"), dict) and time.monotonic() < deadline:
            time.sleep(0.05)  # provisioning left the command empty ("") until one is written
            command = client.get(signal_entity(tls))[COMMAND]
        health = http.get("/health").json()["services"]["traffic"]
    assert isinstance(command["value"], dict), "no setPhase command was written"
    assert command["value"]["phase"] == phase != 0
    assert command["value"]["duration"] == 0.05
    assert health["status"] == "ok" and health["state"] == "running"
    assert health["signals"] == 1 and health["commands"] >= 1
    assert health["last_decision"] is not None and health["last_decision_age_s"] < 10


def test_with_no_signals_configured_the_task_does_nothing(tiny: Scenario, tmp_path: Path) -> None:
    layouts = read_network(tiny.net_file).layouts
    app = create_app(_settings(tmp_path, step_s=0.05))
    tls, _ = _junction_reporting(app.state.hub, {t: x for t, x in layouts.items() if x.phases})
    client = HubClient(app.state.hub)
    with TestClient(app) as http:
        time.sleep(0.5)  # ten steps, had it been running
        health = http.get("/health").json()["services"]["traffic"]
        signal = client.get(signal_entity(tls))
    assert health["state"] == "idle" and health["detail"] == "no signals configured"
    assert health["signals"] == 0 and health["last_decision"] is None
    assert "currentPhase" in signal  # the junction reported...
    assert signal[COMMAND]["value"] == ""  # ...and was never commanded
    assert signal[f"{COMMAND}_status"]["value"] == "UNKNOWN"


def test_a_bad_signals_file_is_reported_not_raised(tmp_path: Path) -> None:
    (tmp_path / "signals.json").write_text("not json")
    app = create_app(_settings(tmp_path, signals=str(tmp_path / "signals.json")))
    with TestClient(app) as http:
        time.sleep(0.2)
        health = http.get("/health").json()["services"]["traffic"]
    assert health["status"] == "error" and "not JSON" in health["detail"]


def test_diagnostics_name_what_is_missing(tmp_path: Path) -> None:
    class Ctx:
        settings = TrafficSettings(signals=str(tmp_path / "nowhere.json"), network="cologne1")

    checks = {c.name: c for c in diagnostics(Ctx())}
    assert checks["SUMO installed"].ok
    assert not checks["signals file"].ok and "cityos traffic signals" in checks["signals file"].hint
    assert checks["tuned parameters"].ok
    assert checks["controller"].ok
    Ctx.settings = TrafficSettings(controller="nope", network="nowhere")
    checks = {c.name: c for c in diagnostics(Ctx())}
    assert not checks["controller"].ok and not checks["tuned parameters"].ok
    assert SERVICE.settings is TrafficSettings and SERVICE.tasks and SERVICE.health
