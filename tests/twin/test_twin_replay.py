"""Replay: deterministic, time moves forward, readings stay plausible and follow the day."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from statistics import mean

import pytest

from cityos.twin import DISTRICT_TIME, generate_district, sensor_updates
from cityos.twin.context import CORE_TERMS, DISTRICT_TERMS


def local(hour: int, minute: int = 0) -> datetime:
    """A Phnom Penh wall-clock time on the district's Monday, as UTC."""
    return datetime(2026, 11, 30, hour, minute, tzinfo=UTC) - timedelta(hours=7)


@pytest.fixture(scope="module")
def district() -> list[dict]:
    return generate_district(seed=0)


@pytest.fixture(scope="module")
def hour(district) -> list[tuple[str, dict]]:
    return list(sensor_updates(district, DISTRICT_TIME, seed=0))


def test_every_sensor_reports_every_minute(district, hour):
    sensors = [
        e
        for e in district
        if e["type"] in ("TrafficFlowObserved", "AirQualityObserved", "ACMeasurement")
    ]
    assert len(hour) == 60 * len(sensors) == 60 * 106
    assert updates_per_entity(hour) == {e["id"]: 60 for e in sensors}


def updates_per_entity(updates):
    counts: dict[str, int] = defaultdict(int)
    for entity_id, _ in updates:
        counts[entity_id] += 1
    return dict(counts)


def test_observed_at_moves_forward(hour, check_attribute):
    last_global = ""
    last: dict[str, str] = {}
    for entity_id, fragment in hour:
        stamps = {a["observedAt"] for a in fragment.values()}
        assert len(stamps) == 1, f"{entity_id}: one observation time per update"
        ts = stamps.pop()
        assert ts >= last_global
        assert ts > last.get(entity_id, ""), f"{entity_id}: {ts} not after {last.get(entity_id)}"
        last_global = last[entity_id] = ts
        assert fragment["dateObserved"]["value"] == ts
        for name, attr in fragment.items():
            assert name in DISTRICT_TERMS or name in CORE_TERMS
            check_attribute(name, attr, (-180, -90, 180, 90), entity_id)
    assert hour[0][1]["dateObserved"]["value"] == "2026-11-30T01:00:00.000000Z"
    assert hour[-1][1]["dateObserved"]["value"] == "2026-11-30T01:59:00.000000Z"


def test_readings_stay_in_plausible_ranges(hour):
    energy: dict[str, list[float]] = defaultdict(list)
    for entity_id, f in hour:
        if "intensity" in f:
            assert 0 <= f["intensity"]["value"] <= 2700
            assert 0 <= f["occupancy"]["value"] <= 1
            assert 4 <= f["averageVehicleSpeed"]["value"] <= 40
            assert isinstance(f["congested"]["value"], bool)
        elif "pm25" in f:
            assert 5 <= f["pm25"]["value"] <= 150
            assert f["pm10"]["value"] >= f["pm25"]["value"]
            assert 0 < f["no2"]["value"] < 200
            assert 20 <= f["temperature"]["value"] <= 40
            assert 0 < f["relativeHumidity"]["value"] < 1
        else:
            assert f["totalActivePower"]["value"] >= 0
            assert f["totalActivePower"]["unitCode"] == "KWT"
            energy[entity_id].append(f["totalActiveEnergyImport"]["value"])
    for readings in energy.values():
        assert readings == sorted(readings)
        assert readings[-1] > readings[0]


def test_energy_accumulates_the_power_drawn(hour):
    meter = "urn:ngsi-ld:ACMeasurement:meter-canadia-tower"
    readings = [f for entity_id, f in hour if entity_id == meter]
    drawn = sum(f["totalActivePower"]["value"] for f in readings[:-1]) / 60  # kW over 1 min
    gained = (
        readings[-1]["totalActiveEnergyImport"]["value"]
        - readings[0]["totalActiveEnergyImport"]["value"]
    )
    assert gained == pytest.approx(drawn, rel=0.01)


def test_same_seed_same_stream(district):
    def run(seed: int) -> str:
        return json.dumps(list(sensor_updates(district, DISTRICT_TIME, minutes=5, seed=seed)))

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_morning_rush_builds_up_and_air_follows(district):
    updates = list(sensor_updates(district, local(5, 30), minutes=120, step_s=300))

    def mean_of(attr: str, first: bool) -> float:
        values = [f[attr]["value"] for _, f in updates if attr in f]
        n = len(values) // 4
        return mean(values[:n] if first else values[-n:])

    assert mean_of("intensity", first=False) > 2.5 * mean_of("intensity", first=True)
    assert mean_of("pm25", first=False) > mean_of("pm25", first=True)


def test_naive_start_is_utc_and_bad_steps_are_refused(district):
    naive = list(sensor_updates(district, datetime(2026, 11, 30, 1), minutes=1))
    aware = list(sensor_updates(district, DISTRICT_TIME, minutes=1))
    assert naive == aware
    with pytest.raises(ValueError):
        list(sensor_updates(district, DISTRICT_TIME, step_s=0))
