"""Crowd levels per zone and hour, crowding alerts, dwell times and the forecast."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cityos.hub.client import HubClient
from cityos.privacy import Pseudonymiser
from cityos.services.flows import (
    CounterReading,
    Presence,
    ZoneMap,
    build_day,
    ingest_counts,
    ingest_sightings,
)
from cityos.services.flows.crowd import hour_levels, readings_of_day
from cityos.services.flows.crowding import crowding_alerts
from cityos.services.flows.dwell import dwell_stats
from cityos.services.flows.forecast import forecast, smooth
from cityos.services.flows.model import HourLevel, Sighting
from cityos.services.flows.synthetic import sample_zones, synthetic_counts

from .conftest import DAY, TZ, at


def _reading(sensor: str, hour: int, n: int, direction: str) -> CounterReading:
    return CounterReading(sensor, at(hour), at(hour) + timedelta(minutes=30), n, direction)


def test_people_present_accumulate_entries_minus_exits(client: HubClient, zones: ZoneMap) -> None:
    readings = [
        _reading("counter-wat-phnom-1", 8, 1000, "inbound"),
        _reading("counter-wat-phnom-2", 8, 500, "inbound"),
        _reading("counter-wat-phnom-1", 9, 300, "outbound"),
        _reading("counter-wat-phnom-1", 10, 5000, "outbound"),  # never below zero
        _reading("unknown-counter", 8, 7, "inbound"),
        _reading("counter-wat-phnom-1", 11, 5, "sideways"),
    ]
    result = ingest_counts(client, readings)
    assert (result.stored, result.unknown_sensors, result.refused) == (4, 1, 1)
    levels = hour_levels(zones, DAY, TZ, readings_of_day(client, DAY, TZ), [])
    wat = {h.start.astimezone(TZ).hour: h for h in levels if h.zone == "wat-phnom"}
    assert len(wat) == 24
    assert (wat[8].entries, wat[8].present) == (1500, 1500)
    assert (wat[9].exits, wat[9].present) == (300, 1200)
    assert wat[10].present == 0 and wat[23].present == 0
    assert wat[8].occupancy == pytest.approx(0.5)


def test_wifi_devices_are_counted_in_the_hours_they_were_there(zones: ZoneMap) -> None:
    stays = [Presence("p1", "riverside", at(8, 10), at(10, 5)),
             Presence("p2", "riverside", at(9, 0), at(9, 0))]  # fmt: skip
    levels = hour_levels(zones, DAY, TZ, [], stays)
    seen = {h.start.astimezone(TZ).hour: h.wifi_devices for h in levels if h.zone == "riverside"}
    assert (seen[7], seen[8], seen[9], seen[10], seen[11]) == (0, 1, 2, 1, 0)


def test_an_alert_per_crowded_zone_hour_with_its_severity() -> None:
    def hour(present: int) -> HourLevel:
        return HourLevel("riverside", at(18), at(19), 0, 0, present, 1000, 0)

    alerts = crowding_alerts([hour(850), hour(900), hour(1100), hour(1300)], 0.9)
    assert [a["severity"]["value"] for a in alerts] == ["medium", "high", "critical"]
    a = alerts[0]
    assert a["category"]["value"] == "security" and a["subCategory"]["value"] == "overcrowding"
    assert a["alertSource"]["object"] == "urn:ngsi-ld:FlowZone:riverside"


def test_a_synthetic_day_builds_levels_alerts_dwell_and_forecast(
    client: HubClient, zones: ZoneMap, pseudonymiser: Pseudonymiser
) -> None:
    ingest_counts(client, synthetic_counts(sample_zones(), DAY, TZ, step_min=30))
    ingest_sightings(client, pseudonymiser, [
        Sighting("02:00:00:00:00:01", "ap-riverside-1", at(18, 0)),
        Sighting("02:00:00:00:00:01", "ap-riverside-1", at(18, 45)),
        Sighting("02:00:00:00:00:02", "ap-riverside-1", at(19, 0)),
    ])  # fmt: skip
    built = build_day(client, DAY, TZ, now=at(23, 59) + timedelta(hours=1))
    assert built.hours == 8 * 24 and built.alerts >= 1
    assert built.peak is not None and built.peak.zone == "riverside"
    assert client.count(type="CrowdLevel") == 8 * 24
    alerts = client.query(type="Alert", fmt="keyValues", limit=100)
    assert alerts and all(a["alertSource"].endswith(":riverside") for a in alerts)
    dwell = client.get("urn:ngsi-ld:CrowdDwellTime:riverside:2024-05-01", fmt="keyValues")
    assert dwell["devices"] == 2 and dwell["medianMinutes"] == pytest.approx(22.5)
    fc = client.get("urn:ngsi-ld:CrowdForecast:riverside", fmt="keyValues")
    assert len(fc["hours"]["json"]) == 24 and "seasonal exponential" in fc["method"]
    # a second build replaces, it does not add
    build_day(client, DAY, TZ, now=at(23, 59) + timedelta(hours=1))
    assert client.count(type="CrowdLevel") == 8 * 24
    assert len(client.query(type="Alert", limit=100)) == len(alerts)


def test_seasonal_smoothing() -> None:
    assert smooth([], 0.5) is None
    assert smooth([100], 0.5) == 100  # one day: the seasonal naive forecast
    assert smooth([100, 200], 0.5) == 150
    assert smooth([100, 200, 400], 0.5) == pytest.approx(275)


def test_the_forecast_of_an_hour_is_that_hours_smoothed_past(zones: ZoneMap) -> None:
    history = [
        HourLevel("riverside", at(h) - timedelta(days=d), at(h + 1) - timedelta(days=d),
                  0, 0, 100 * h + 10 * d, 5000, 0)
        for d in (1, 2) for h in range(20)
    ]  # fmt: skip
    out = forecast(history, zones, now=at(7, 30), tz=TZ, alpha=0.5, hours=3)
    rows = out["riverside"]
    # 08:00 local: 2 days ago 820, yesterday 810 -> 0.5*810 + 0.5*820
    assert [r["peoplePresent"] for r in rows] == [815, 915, 1015]
    assert rows[0]["crowdLevel"] == "low" and out["wat-phnom"] == []
    with pytest.raises(ValueError, match="forecast_alpha"):
        forecast(history, zones, now=at(7), tz=TZ, alpha=0)


def test_dwell_statistics() -> None:
    stays = [Presence("a", "z", at(8), at(8, 10)), Presence("b", "z", at(8), at(9, 30)),
             Presence("c", "z", at(8), at(13))]  # fmt: skip
    s = dwell_stats(stays)["z"]
    assert s["devices"] == 3 and s["medianMinutes"] == 90
    assert s["histogram"]["0-15min"] == 1 and s["histogram"]["60-120min"] == 1
    assert s["histogram"]["240+min"] == 1
