"""A day's plan from meters in the hub: bad readings refused, gaps filled, the schedule
stored, and the safe plan with an Alert when no schedule fits the limits."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from cityos.config import Settings
from cityos.hub.client import HubClient
from cityos.hub.core import Hub
from cityos.services.energy.errors import BadReadingError
from cityos.services.energy.mpc import Battery
from cityos.services.energy.planner import hourly, plan_day, reading_kw, schedule_entities

DAY = date(2026, 11, 30)
START = datetime(2026, 11, 2, tzinfo=UTC)  # 28 days before DAY


def _kw(h: int, b: int) -> float:
    return 1.0 + b * 0.5 + (2.0 if 17 <= h <= 21 else 0.0)


@pytest.fixture()
def client(tmp_path: Path):
    hub = Hub(Settings(database_url=f"sqlite:///{tmp_path}/hub.db"))
    yield HubClient(hub)
    hub.close()


def _meters(client: HubClient, n: int = 2, days: int = 28, skip_day: int | None = None) -> None:
    for b in range(n):
        mid = f"urn:ngsi-ld:ACMeasurement:m{b}"
        client.create(
            {
                "id": mid,
                "type": "ACMeasurement",
                "refBuilding": {"type": "Relationship", "object": f"urn:ngsi-ld:Building:b{b}"},
            }
        )
        for k in range(days * 24):
            if skip_day is not None and k // 24 == skip_day:
                continue
            at = (START + timedelta(hours=k, minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
            value = _kw(k % 24, b)
            client.update_attrs(
                mid, {"totalActivePower": {"type": "Property", "value": value, "observedAt": at}}
            )


def test_readings_that_cannot_be_true_are_refused() -> None:
    assert reading_kw(3) == 3.0
    for bad in (-1.0, math.nan, math.inf, 1e9, "3", True, None):
        with pytest.raises(BadReadingError):
            reading_kw(bad)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    points = [
        ("2026-01-01T00:10:00Z", 2.0),
        ("2026-01-01T00:40:00Z", 4.0),
        ("2026-01-01T01:10:00Z", -5.0),  # refused: hour 1 has no reading left
        ("2026-01-01T02:10:00Z", "x"),  # refused
        ("2026-01-02T01:10:00Z", 7.0),
    ]
    series, filled, refused = hourly(points, start, 48)
    assert refused == 2 and series[0] == 3.0 and series[25] == 7.0
    # hour 1 and 2 had nothing: the same hour the day after cannot be used (it is later),
    # so the mean of that hour of the day is
    assert series[1] == 7.0 and filled == 46


def test_a_day_is_planned_and_stored(client: HubClient) -> None:
    _meters(client)
    p = plan_day(client, DAY, battery=Battery(6.4, 3.0))
    assert not p.fallback and p.forecaster == "lightgbm"
    assert p.filled_hours == 0 and p.refused_readings == 0
    assert p.load_kwh.shape == (2, 24)
    # the forecast knows the evening peak, and the batteries shave it
    assert p.load_kwh[:, 18].sum() > p.load_kwh[:, 3].sum() + 3.0
    assert p.summary["peak_kw"] < p.summary["peak_kw_no_control"]
    assert p.summary["cost"] < p.summary["cost_no_control"]
    client.upsert(schedule_entities(p))
    home = client.get("urn:ngsi-ld:EnergySchedule:b0:2026-11-30")
    assert home["status"]["value"] == "optimal" and len(home["batteryChargeKwh"]["value"]) == 24
    district = client.get("urn:ngsi-ld:EnergySchedule:district:2026-11-30")
    assert district["peak_kw"]["value"] == p.summary["peak_kw"]


def test_a_gap_is_filled_and_said(client: HubClient) -> None:
    _meters(client, n=1, skip_day=20)
    p = plan_day(client, DAY, battery=Battery(6.4, 3.0))
    assert p.filled_hours == 24 and not p.fallback
    assert np.all(p.load_kwh >= 0)


def test_no_plan_within_the_limit_is_the_safe_plan_with_an_alert(client: HubClient) -> None:
    _meters(client, n=2, days=10)
    p = plan_day(client, DAY, battery=Battery(1.0, 0.5), feeder_limit_kwh=1.0)
    assert p.fallback and "batteries hold" in p.reason
    client.upsert(schedule_entities(p))
    alert = client.get("urn:ngsi-ld:Alert:energy:schedule:2026-11-30")
    assert alert["subCategory"]["value"] == "scheduleFallback"
    home = client.get("urn:ngsi-ld:EnergySchedule:b1:2026-11-30")
    assert home["status"]["value"] == "fallback" and set(home["batteryChargeKwh"]["value"]) == {0}


def test_no_meter_is_a_clear_error(client: HubClient) -> None:
    with pytest.raises(BadReadingError, match="no electricity meter"):
        plan_day(client, DAY, battery=Battery(6.4, 3.0))
