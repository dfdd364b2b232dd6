"""A city day (issue 17): `cityos demo` runs the sample district through one simulated day —
people flows, fares, the morning peak in SUMO, cameras, energy, the city's indicators —
every service through the hub, then sets the day's indicators against the same day without
CityOS. These tests run the day small and fast and look at what it left in the hub."""

from __future__ import annotations

import io
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console
from typer.testing import CliRunner

import cityos.demo
from cityos.cityday import day as day_module
from cityos.cityday.clock import DayClock, SpeedError, parse_speed
from cityos.cityday.context import MIDNIGHT
from cityos.cityday.summary import day_rows, markdown
from cityos.cli import app
from cityos.config import Settings
from cityos.hub.client import HubClient
from cityos.hub.core import Hub
from cityos.twin.district import CONTEXT_URL

runner = CliRunner()
NO_BROKER = "mqtt://127.0.0.1:9"  # nothing answers there: the replay goes over HTTP


@pytest.fixture()
def no_day(monkeypatch, tmp_path) -> None:
    """The command must refuse before any work: the day is not run."""
    monkeypatch.chdir(tmp_path)
    for name in ("CITYOS_DATABASE_URL", "CITYOS_PORT", "CITYOS_HOST", "CITYOS_CONFIG"):
        monkeypatch.delenv(name, raising=False)

    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the day was run")

    monkeypatch.setattr(cityos.demo, "run_demo", never)


@pytest.mark.parametrize(
    ("speed", "words"),
    [("0", "above 0"), ("-60", "above 0"), ("abc", "a number above 0"), ("nan", "above 0")],
)
def test_a_wrong_speed_is_one_line(no_day, speed: str, words: str) -> None:
    r = runner.invoke(app, ["demo", "--no-serve", "--speed", speed])
    lines = r.output.strip().splitlines()
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit), r.output
    assert len(lines) == 1 and "Traceback" not in r.output, r.output
    assert f"--speed {speed}" in lines[0] and words in lines[0]


def test_negative_minutes_are_one_line(no_day) -> None:
    r = runner.invoke(app, ["demo", "--no-serve", "--minutes", "-3", "--speed", "max"])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert "--minutes -3" in r.output


def test_speed_is_simulated_seconds_per_wall_second_or_max() -> None:
    assert parse_speed("600") == 600.0 and parse_speed("0.5") == 0.5
    assert parse_speed("max") == math.inf == parse_speed("MAX")
    with pytest.raises(SpeedError):
        parse_speed("-1")


def test_the_clock_paces_the_day_and_does_not_rush_after_a_long_phase() -> None:
    clock = DayClock(MIDNIGHT, speed=36_000.0)  # ten simulated hours a wall second
    ticks: list[float] = []
    clock.on_tick = ticks.append
    clock.start()
    t0 = time.monotonic()
    clock.advance(3 * 3600)  # three hours: 0.3 s
    assert 0.25 <= time.monotonic() - t0 < 1.0
    assert clock.label() == "03:00" and clock.now.hour == 3 and ticks
    time.sleep(1.0)  # a phase that took ten simulated hours
    t1 = time.monotonic()
    clock.advance(4 * 3600)  # behind: no wait, and no rush afterwards either
    assert time.monotonic() - t1 < 0.1
    t2 = time.monotonic()
    clock.advance(7 * 3600)  # three more hours take their 0.3 s again
    assert 0.25 <= time.monotonic() - t2 < 1.0
    unpaced = DayClock(MIDNIGHT, speed=math.inf)
    t3 = time.monotonic()
    unpaced.advance(86_400)
    assert time.monotonic() - t3 < 0.05 and unpaced.label() == "24:00"


def test_the_table_compares_only_what_both_runs_have() -> None:
    phases = {
        "traffic": {"average_delay_s": 74.2, "bus_time_loss_s": 49.1},
        "energy": {"day": "2026-12-01", "peak_kw": 90.0, "peak_kw_no_control": 100.0,
                   "cost": 10.0, "cost_no_control": 12.0, "carbon_kg": 5.0,
                   "carbon_kg_no_control": 5.0},
        "fares": {"passengerCount": 200, "cashlessCount": 150},
        "cameras": {"alerts": 2, "incidents": ["crowding"], "crossed_in": 11},
        "flows": {"people_counted_in": 100, "crowding_alerts": 1,
                  "peak": {"zone": "riverside", "occupancy": 1.112, "local": "18:00–19:00"}},
    }  # fmt: skip
    baseline = {"traffic": {"average_delay_s": 78.6, "bus_time_loss_s": 76.5}}
    rows = {r.key: r for r in day_rows(phases, baseline)}
    assert rows["average_delay"].change() == "-5.6 %"
    assert rows["peak_load"].change() == "-10.0 %"
    assert rows["cashless_share"].without == 0.0 and rows["cashless_share"].change() == "+75.0 pp"
    assert rows["people_counted"].with_ == 111  # the counters' and the camera line's
    for key in ("camera_alerts", "people_counted", "crowding_alerts", "crowd_peak"):
        assert rows[key].without is None and rows[key].change() == "–"
    text = markdown([r.as_dict() for r in rows.values()])
    assert "| cashless fare share | % | 0.0\\* | 75.0 (200 boardings) | +75.0 pp |" in text
    assert "111.2 (riverside, 18:00–19:00)" in text and "\\* assumed" in text
    # a phase that did not run has no row; no baseline, no traffic rows
    assert not [r for r in day_rows({"traffic": phases["traffic"]}, {})]


def _client(url: str, context: str | None = None) -> tuple[Hub, HubClient]:
    hub = Hub(Settings(database_url=url))
    return hub, HubClient(hub, context=context) if context else HubClient(hub)


@pytest.mark.sumo
@pytest.mark.slow
def test_a_day_through_the_hub_against_the_day_without_cityos(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CITYOS_MQTT_URL", NO_BROKER)
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path}/day.db"
    args = ["demo", "--no-serve", "--json", "--minutes", "3", "--speed", "max", "-d", url]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    day = summary["day"]
    assert day["skipped"] == [] and day["date"] == "2026-11-30" and day["speed"] == "max"
    assert set(day["phases"]) == {"flows", "fares", "traffic", "cameras", "energy", "indicators"}
    hub, client = _client(url)
    district = client.for_context(CONTEXT_URL)
    try:
        # traffic: the district's nine signals ran under CityOS's controller, through the hub
        assert district.count(type="TrafficSignal") == 9
        assert (
            summary["traffic"]["hub"]["commands"]
            > 0
            == summary["traffic"]["hub"]["messages_refused"]
        )
        # energy: tomorrow's schedule for every building and the district
        assert district.count(type="EnergySchedule") == 61
        # people flows: eight zones, each hour of the day's crowd level, the crowding alerts
        assert client.count(type="FlowZone") == 8
        assert client.count(type="CrowdLevel") == 8 * 24
        crowding = client.count(type="Alert", q='subCategory=="overcrowding"')
        assert crowding == day["phases"]["flows"]["crowding_alerts"] >= 1
        # cameras: the camera as a device, its alerts with masked snapshots, and its line's
        # crossings counted for the Central Market's zone
        [camera] = client.query(type="Device", q='deviceCategory=="camera"', fmt="keyValues")
        assert camera["deviceState"] == "ok" and camera["framesProcessed"] > 0
        alerts = client.query(type="Alert", q='category=="security"', fmt="keyValues", limit=99)
        security = [a for a in alerts if a["alertSource"] == camera["id"]]
        assert sorted(a["subCategory"] for a in security) == [
            "crowding", "restrictedAreaAfterHours",
        ]  # fmt: skip
        assert all(a["snapshot"].startswith("data:image/jpeg;base64,") for a in security)
        crossings = client.query(type="CrowdFlowObserved",
                                 q='sensor=="central-market-east";direction=="inbound"',
                                 fmt="keyValues", limit=100)  # fmt: skip
        assert crossings and {c["zoneCode"] for c in crossings} == {"central-market"}
        assert sum(c["peopleCount"] for c in crossings) == day["phases"]["cameras"]["crossed_in"]
        # fares: every stop's day, as the ledger counted it
        fares = client.query(type="FareCollectionObserved", fmt="keyValues", limit=100)
        assert len(fares) == 12 and all(f["id"].endswith(":2026-11-30") for f in fares)
        assert sum(f["passengerCount"] for f in fares) == day["phases"]["fares"]["passengerCount"]
        assert 0 < day["phases"]["fares"]["cashless_share"] < 1
        # the city's indicators, computed from all of it and stored
        assert client.count(type="KeyPerformanceIndicator") == 39
        assert day["phases"]["indicators"]["computed"] >= 10
        # every entity the day made is counted for the phase that made it
        assert hub.store.stats()["entities"] == sum(day["entities"].values())
    finally:
        hub.close()
    rows = {r["key"]: r for r in day["rows"]}
    # measured in both runs: both columns, and CityOS's differs from the fixed-time day
    for key in ("average_delay", "bus_time_loss", "peak_load", "energy_cost"):
        assert rows[key]["without_cityos"] is not None and rows[key]["with_cityos"] is not None
    traffic, fixed = day["phases"]["traffic"], day["baseline"]["traffic"]
    assert traffic["vehicles"] == fixed["vehicles"]  # the same demand
    assert traffic["average_delay_s"] != fixed["average_delay_s"]
    assert traffic["bus_time_loss_s"] < fixed["bus_time_loss_s"]  # bus priority
    assert rows["peak_load"]["with_cityos"] <= rows["peak_load"]["without_cityos"]
    # the cash-only day is an assumption, and said to be one
    assert rows["cashless_share"]["without_cityos"] == 0.0
    assert rows["cashless_share"]["note"].startswith("* assumed")
    # what a city without CityOS does not know is not invented
    for key in ("camera_alerts", "people_counted", "crowding_alerts", "crowd_peak", "indicators"):
        assert rows[key]["without_cityos"] is None and rows[key]["change"] == "–"
        assert rows[key]["with_cityos"] is not None
    assert rows["camera_alerts"]["with_cityos"] == 2


@pytest.mark.slow
def test_a_missing_service_is_skipped_and_the_day_goes_on(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    installed = day_module.registered()
    gone = ("traffic", "safety", "payments")
    monkeypatch.setattr(day_module, "registered",
                        lambda: {k: v for k, v in installed.items() if k not in gone})  # fmt: skip
    url = f"sqlite:///{tmp_path}/day.db"
    settings = Settings(database_url=url, mqtt_url=NO_BROKER)
    out = io.StringIO()
    summary = cityos.demo.run_demo(settings, minutes=1, speed=math.inf,
                                   console=Console(file=out, width=200))  # fmt: skip
    day = summary["day"]
    assert day["skipped"] == ["payments", "traffic", "safety"]
    for name in gone:
        assert f"The {name} service is not installed: its part of the day is skipped." in (
            out.getvalue()
        )
    assert set(day["phases"]) == {"flows", "energy", "indicators"}
    keys = {r["key"] for r in day["rows"]}
    assert {"peak_load", "people_counted", "crowd_peak", "indicators"} <= keys
    assert not keys & {"average_delay", "bus_time_loss", "cashless_share", "camera_alerts"}
    assert "traffic" not in summary and summary["energy"]["buildings"] == 60
    hub, client = _client(url)
    try:
        assert client.for_context(CONTEXT_URL).count(type="TrafficSignal") == 0
        assert client.count(type="FareCollectionObserved") == 0
        assert client.count(type="Alert", q='subCategory=="crowding"') == 0  # no camera
        assert client.count(type="CrowdLevel") == 8 * 24
        assert client.for_context(CONTEXT_URL).count(type="EnergySchedule") == 61
    finally:
        hub.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.sumo
@pytest.mark.slow
def test_the_dashboard_is_served_while_the_day_runs(tmp_path) -> None:
    port = _free_port()
    env = {**os.environ, "CITYOS_MQTT_URL": NO_BROKER}
    env.pop("CITYOS_DATABASE_URL", None)
    log = tmp_path / "out.txt"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cityos.cli", "demo", "--port", str(port), "--minutes", "1",
             "--speed", "7200", "-d", f"sqlite:///{tmp_path}/day.db"],
            stdout=sink, stderr=subprocess.STDOUT, cwd=tmp_path, env=env,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        during = None
        while "Ctrl-C to stop" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            text = log.read_text()
            if f"{base}/" in text and "Fares:" in text and during is None:
                # the day is under way: the hub and the dashboard answer already
                during = httpx.get(f"{base}/ngsi-ld/v1/entities?type=FlowZone", timeout=10)
                assert httpx.get(f"{base}/", timeout=10).status_code == 200
            time.sleep(0.2)
        text = log.read_text()
        assert text.index(f"The day runs live on the dashboard: {base}/") < text.index(
            "The district:"
        )
        assert during is not None and during.status_code == 200 and len(during.json()) == 8
        pages = httpx.get(f"{base}/ui/api/pages", timeout=10)
        assert pages.status_code == 200
        assert "The day in numbers" in text
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: the server stops cleanly
        code = proc.wait(60)
    assert code == 0, Path(log).read_text()[-2000:]


def test_the_readme_shows_the_recorded_day() -> None:
    """The README's table is benchmarks/city_day.py's, from its recorded results."""
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("city_day", root / "benchmarks" / "city_day.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    recorded = json.loads((root / "benchmarks" / "results" / "city-day.json").read_text())
    assert {r["key"] for r in recorded["rows"]} >= {"average_delay", "cashless_share"}
    assert script.readme_block(recorded) in (root / "README.md").read_text()
