"""The junction cabinet on the real broker: readings up as device messages, commands down."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cityos.config import Settings
from cityos.hub.client import HubClient
from cityos.hub.core import Hub
from cityos.services.traffic import Scenario, SimulationError, make_controller, run_scenario
from cityos.services.traffic.signalservice import COMMAND
from cityos.services.traffic.sim.hubloop import run_through_hub


def _hub(tmp_path: Path, mqtt_url: str) -> Hub:
    hub = Hub(Settings(database_url=f"sqlite:///{tmp_path}/hub.db", mqtt_url=mqtt_url))
    hub.store.migrate()
    return hub


def test_a_cabinet_on_mosquitto_runs_the_junction_as_in_process(
    tiny: Scenario, tmp_path: Path, mosquitto: tuple[str, int]
) -> None:
    """Every reading crosses the broker into the hub's MQTT ingest, every setPhase leaves the
    hub on the broker and is answered on cmdexe: the decisions equal direct access's."""
    host, port = mosquitto
    hub = _hub(tmp_path, f"mqtt://{host}:{port}")
    direct = run_scenario(tiny, make_controller("max-pressure"))
    result, stats = asyncio.run(
        run_through_hub(tiny, make_controller("max-pressure"), hub, over_mqtt=True)
    )
    assert result.average_delay_s == pytest.approx(direct.average_delay_s, abs=1e-9)
    assert stats.commands == stats.steps == round(tiny.duration / tiny.step_s)
    assert stats.commands_rejected == 0
    client = HubClient(hub)
    [signal] = client.query(type="TrafficSignal")
    assert signal[f"{COMMAND}_status"]["value"] == "OK"  # the answer came back over cmdexe
    flows = client.query(type="TrafficFlowObserved", limit=100)
    assert len(flows) >= 4
    history = hub.store.history("", flows[0]["id"], limit=10_000)
    assert len([h for h in history if h.attr.endswith("intensity")]) == stats.steps


def test_no_broker_is_a_clear_error(tiny: Scenario, tmp_path: Path) -> None:
    hub = _hub(tmp_path, "mqtt://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(SimulationError, match="MQTT broker 127.0.0.1:9"):
        asyncio.run(run_through_hub(tiny, make_controller("max-pressure"), hub, over_mqtt=True))
    hub = _hub(tmp_path / "x", "")
    with pytest.raises(SimulationError, match="needs the hub's MQTT broker"):
        asyncio.run(run_through_hub(tiny, make_controller("max-pressure"), hub, over_mqtt=True))
