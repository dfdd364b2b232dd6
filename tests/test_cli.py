"""The command line as a user runs it: demo, db init/migrate/stats, --json outputs."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cityos.cli import app
from cityos.hub.store.sqlite import SqliteStore

CORE_VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
SDM = "https://smartdatamodels.org/"

runner = CliRunner()


@pytest.mark.parametrize("transport", ["mqtt", "http"])
def test_demo_no_serve_loads_replays_and_answers(tmp_path, transport, request, monkeypatch) -> None:
    if transport == "mqtt":
        host, port = request.getfixturevalue("mosquitto")
        monkeypatch.setenv("CITYOS_MQTT_URL", f"mqtt://{host}:{port}")
    else:  # no broker answers there: the replay falls back to HTTP
        monkeypatch.setenv("CITYOS_MQTT_URL", "mqtt://127.0.0.1:9")
    url = f"sqlite:///{tmp_path}/demo.db"
    args = ["demo", "--no-serve", "--json", "--minutes", "5", "--speed", "max", "-d", url]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["replay_transport"] == transport
    # the subscription heard the morning peak: notifications, each with one or more flows
    assert "congestion_alerts" not in summary
    assert 0 < summary["congestion_notifications"] <= summary["congested_flows_reported"]
    store = SqliteStore(tmp_path / "demo.db")
    flow = store.get_entity("", "urn:ngsi-ld:TrafficFlowObserved:norodom-blvd-1-fwd-1")
    store.close()
    assert flow is not None
    # readings landed on the district's attributes (its @context), not on look-alikes
    assert not [a for a in flow["attrs"] if a.startswith(CORE_VOCAB)]
    speeds = flow["attrs"][SDM + "dataModel.Transportation/averageVehicleSpeed"]
    assert speeds[0]["observedAt"] == "2026-11-30T01:04:00.000000Z"  # the 5th minute
    assert summary["loaded"] == sum(summary["entities"].values()) > 200
    # the traffic service ran the district's signals and buses through the same hub
    traffic = summary["traffic"]
    assert traffic["hub"]["signals"] == 9 and traffic["hub"]["commands"] > 0
    assert traffic["vehicles"] > 0 and traffic["bus_trips"] >= 1
    assert traffic["hub"]["messages_refused"] == 0
    assert summary["entities"]["TrafficFlowObserved"] == 40
    # the energy service planned every metered building and ran the chargers over OCPP
    energy = summary["energy"]
    assert energy["buildings"] == 60 and energy["status"] == "optimal"
    assert energy["peak_kw"] <= energy["peak_kw_no_control"]
    assert [c["profiles"] for c in energy["chargers"]] == [1, 1, 1]
    assert all(c["kwh"] > 0 for c in energy["chargers"])
    assert energy["entities"] == 60 + 1 + 3  # schedules, the district's, the chargers
    assert summary["updates"] > 0
    # every sensor update went into history: first sensor has its creation rows plus 6 steps
    assert summary["history_rows_first_sensor"] > 6
    by_title = {q["title"]: q for q in summary["queries"]}
    assert by_title["Buildings (count only)"]["count"] == 60
    stops = by_title["Bus stops within 400 m of the Central Market"]["results"]
    assert any(s["id"] == "urn:ngsi-ld:GtfsStop:phsar-thmei" for s in stops)
    assert all(
        q["pm25"] > 35
        for q in by_title["Air-quality stations with PM2.5 above 35 µg/m³"]["results"]
    )
    assert any("curl" in line for line in summary["curl"])
    # the replay read back through the temporal API: 5 minutes fall in one 15-minute bucket
    buckets = summary["history"]["pm25"]["avg"]
    assert len(buckets) == 1 and buckets[0][1] == "2026-11-30T01:00:00Z" and buckets[0][0] > 0
    stats = runner.invoke(app, ["db", "stats", "--json", "-d", url])
    assert stats.exit_code == 0, stats.output
    # and, with devices, each sensor's Device entity holding its message counters; every
    # other entity was made by one part of the day (tests/test_city_day.py looks at those)
    made = summary["day"]["entities"]
    assert made["district"] == summary["loaded"] + summary["devices"]
    assert made["traffic"] == summary["traffic"]["entities"]
    assert made["energy"] == summary["energy"]["entities"]
    assert json.loads(stats.stdout)["entities"] == sum(made.values())
    assert (summary["devices"] == 106) == (transport == "mqtt")


def test_db_init_migrate_stats(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/city.db"
    r = runner.invoke(app, ["db", "stats", "-d", url])
    assert r.exit_code == 1 and "cityos db init" in r.output
    r = runner.invoke(app, ["db", "init", "--json", "-d", url])
    assert r.exit_code == 0
    out = json.loads(r.stdout)
    assert out["from"] == 0 and out["to"] >= 1 and out["applied"]
    r = runner.invoke(app, ["db", "migrate", "--json", "-d", url])
    assert json.loads(r.stdout)["applied"] == []
    r = runner.invoke(app, ["db", "stats", "--json", "-d", url])
    assert json.loads(r.stdout)["entities"] == 0


def test_bad_database_url_is_a_clear_error(tmp_path) -> None:
    r = runner.invoke(app, ["db", "migrate", "-d", "mysql://nope"])
    assert r.exit_code == 1
    assert "unsupported database URL" in r.output


def test_help_everywhere() -> None:
    for args in (
        ["--help"],
        ["serve", "--help"],
        ["demo", "--help"],
        ["db", "--help"],
        ["db", "stats", "--help"],
    ):
        r = runner.invoke(app, args)
        assert r.exit_code == 0 and "Usage" in r.output
