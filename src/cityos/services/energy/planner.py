"""A day's battery schedule for the district, from the meters in the hub.

Reads each electricity meter's (``ACMeasurement``) ``totalActivePower`` history through the
:class:`~cityos.hub.client.HubClient`, turns it into hourly energy (refusing impossible
readings, filling gaps from the same hour a day before), forecasts the day (LightGBM once
a week of history is there, seasonal-naive before), plans every home's battery with the
LP of :mod:`.mpc` against the tariff and the grid's carbon intensity, and writes the plan
back as ``EnergySchedule`` entities. When no plan exists within the limits (an infeasible
feeder limit, a solver failure), the batteries hold (the safe plan), the schedule says why,
and an ``Alert`` is raised in the hub.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

from .errors import BadReadingError, InfeasibleScheduleError
from .forecast import DAY, Calendar, Forecaster, seasonal_naive
from .mpc import Battery, Schedule, plan

MAX_BUILDING_KW = 10_000.0  # 10 MW: more than any building on a distribution feeder
HISTORY_DAYS = 28


@dataclass(frozen=True)
class Tariff:
    """Time-of-use price ($/kWh) and the grid's carbon intensity (kg CO2/kWh)."""

    offpeak: float = 0.15
    peak: float = 0.25
    peak_hours: tuple[int, int] = (17, 21)  # local hours [start, end], inclusive
    carbon_kg_per_kwh: float = 0.55

    def prices(self, hours: np.ndarray) -> np.ndarray:
        lo, hi = self.peak_hours
        return np.where((hours >= lo) & (hours <= hi), self.peak, self.offpeak)


@dataclass
class DayPlan:
    day: date
    buildings: list[str]
    meters: list[str]
    load_kwh: np.ndarray  # (B, 24) the forecast
    schedule: Schedule | None
    reason: str = ""  # why the safe plan, when it is one
    filled_hours: int = 0
    refused_readings: int = 0
    forecaster: str = "seasonal-naive"
    summary: dict[str, float] = field(default_factory=dict)

    @property
    def fallback(self) -> bool:
        return self.schedule is None


def reading_kw(value: Any) -> float:
    """A power reading as a number the service can trust, or BadReadingError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadReadingError(f"{value!r} is not a number of kW")
    if not math.isfinite(value) or value < 0 or value > MAX_BUILDING_KW:
        raise BadReadingError(f"{value} kW is not a possible building load")
    return float(value)


def hourly(
    points: list[tuple[str, Any]], start: datetime, hours: int
) -> tuple[np.ndarray, int, int]:
    """Mean kW per hour from ``start`` (one kWh per kW-hour); returns the series with gaps
    filled, how many hours were filled, and how many readings were refused."""
    sums, counts = np.zeros(hours), np.zeros(hours)
    refused = 0
    for at, value in points:
        t = datetime.fromisoformat(at.replace("Z", "+00:00"))
        k = int((t - start).total_seconds() // 3600)
        if not 0 <= k < hours:
            continue
        try:
            sums[k] += reading_kw(value)
        except BadReadingError:
            refused += 1
            continue
        counts[k] += 1
    series = np.divide(sums, counts, out=np.full(hours, np.nan), where=counts > 0)
    missing = np.isnan(series)
    filled = int(missing.sum())
    if missing.all():
        return np.zeros(hours), filled, refused
    for k in np.flatnonzero(missing):  # the same hour a day before, else the hour's mean
        back = k - DAY
        while back >= 0 and np.isnan(series[back]):
            back -= DAY
        if back >= 0:
            series[k] = series[back]
    still = np.isnan(series)
    if still.any():  # no earlier day: that hour's mean over the days that have it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an hour never measured
            by_hour = np.array([np.nanmean(series[h::DAY]) for h in range(DAY)])
        series[still] = by_hour[np.flatnonzero(still) % DAY]
        series = np.nan_to_num(series, nan=float(np.nanmean(series)))
    return series, filled, refused


def _calendar(start: datetime, steps: int) -> Calendar:
    times = [start + timedelta(hours=k) for k in range(steps)]
    return Calendar(
        month=np.array([t.month for t in times]),
        hour=np.array([t.hour + 1 for t in times]),
        day_type=np.array([t.isoweekday() for t in times]),
    )


def plan_day(
    client: Any,
    day: date,
    *,
    battery: Battery,
    tariff: Tariff | None = None,
    feeder_limit_kwh: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> DayPlan:
    """Forecast and schedule ``day`` (UTC hours) for every metered building in the hub."""
    tariff = tariff or Tariff()
    start = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(days=HISTORY_DAYS)
    hours = HISTORY_DAYS * DAY
    meters = client.query(type="ACMeasurement", limit=1000)
    series, buildings, ids = [], [], []
    filled = refused = 0
    for meter in meters:
        if progress:
            progress(meter["id"])
        points = client.history(
            meter["id"],
            "totalActivePower",
            after=start.isoformat().replace("+00:00", "Z"),
            before=(start + timedelta(hours=hours)).isoformat().replace("+00:00", "Z"),
        )
        s, f, r = hourly(points, start, hours)
        series.append(s)
        filled, refused = filled + f, refused + r
        ids.append(meter["id"])
        ref = meter.get("refBuilding", {})
        buildings.append(ref.get("object", meter["id"]) if isinstance(ref, dict) else meter["id"])
    if not series:
        raise BadReadingError("no electricity meter (ACMeasurement) in the hub to plan for")
    values = np.vstack(series)
    cal = _calendar(start, hours + DAY)
    t = hours - 1  # the last hour before the day
    model = "seasonal-naive"
    if filled <= values.size // 4:  # three weeks of data at least, mostly measured
        f = Forecaster(DAY).fit(values, cal, t)
        load = f.predict(values, cal, t)
        model = "lightgbm" if f.model is not None else model
    else:
        load = seasonal_naive(values, t, DAY)
    day_hours = np.arange(DAY)
    price = tariff.prices(day_hours)
    carbon = np.full(DAY, tariff.carbon_kg_per_kwh)
    batteries = [battery] * len(buildings)
    out = DayPlan(day, buildings, ids, load, None, filled_hours=filled, refused_readings=refused)
    out.forecaster = model
    try:
        out.schedule = plan(
            load,
            np.zeros_like(load),
            price,
            carbon,
            batteries,
            np.full(len(buildings), 0.5),
            last_district_kwh=float(values[:, t].sum()),
            feeder_limit_kwh=feeder_limit_kwh,
        )
    except InfeasibleScheduleError as exc:
        out.reason = (
            f"{exc}; the batteries hold (no charge, no discharge) until a plan within the "
            "limits exists"
        )
    out.summary = _summary(load, out.schedule, price, carbon)
    return out


def ev_limits(tariff: Tariff, max_kw: float, peak_share: float = 0.3) -> list[float]:
    """Hourly charging limits (kW) for the day's chargers: full power off-peak, a share of it
    in the tariff's peak hours, when the district's evening load is highest."""
    prices = tariff.prices(np.arange(DAY))
    return [round(max_kw * (peak_share if p == tariff.peak else 1.0), 1) for p in prices]


def _summary(
    load: np.ndarray, schedule: Schedule | None, price: np.ndarray, carbon: np.ndarray
) -> dict[str, float]:
    base = load.sum(axis=0)
    with_plan = base if schedule is None else schedule.district_kwh
    return {
        "peak_kw": round(float(with_plan.max()), 3),
        "peak_kw_no_control": round(float(base.max()), 3),
        "cost": round(float(np.sum(np.clip(with_plan, 0, None) * price)), 3),
        "cost_no_control": round(float(np.sum(np.clip(base, 0, None) * price)), 3),
        "carbon_kg": round(float(np.sum(np.clip(with_plan, 0, None) * carbon)), 3),
        "carbon_kg_no_control": round(float(np.sum(np.clip(base, 0, None) * carbon)), 3),
    }


def _prop(value: Any, **more: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value, **more}


def schedule_entities(p: DayPlan) -> list[dict[str, Any]]:
    """The plan as NGSI-LD entities: one ``EnergySchedule`` per building and one for the
    district, and an ``Alert`` when the plan is the safe fallback."""
    day = p.day.isoformat()
    issued = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = "fallback" if p.fallback else "optimal"
    out: list[dict[str, Any]] = []
    for b, building in enumerate(p.buildings):
        local = building.rsplit(":", 1)[-1]
        charge = [0.0] * DAY if p.schedule is None else p.schedule.charge_kwh[b].round(3).tolist()
        soc = [0.5] * DAY if p.schedule is None else p.schedule.soc[b].round(3).tolist()
        out.append(
            {
                "id": f"urn:ngsi-ld:EnergySchedule:{local}:{day}",
                "type": "EnergySchedule",
                "refBuilding": {"type": "Relationship", "object": building},
                "day": _prop(day),
                "status": _prop(status),
                "batteryChargeKwh": _prop(charge, unitCode="KWH"),
                "stateOfCharge": _prop(soc, unitCode="C62"),
                "forecastLoadKwh": _prop(p.load_kwh[b].round(3).tolist(), unitCode="KWH"),
                "dateIssued": _prop(issued),
            }
        )
    district = {
        "id": f"urn:ngsi-ld:EnergySchedule:district:{day}",
        "type": "EnergySchedule",
        "day": _prop(day),
        "status": _prop(status),
        "forecaster": _prop(p.forecaster),
        "filledHours": _prop(p.filled_hours),
        "refusedReadings": _prop(p.refused_readings),
        **{k: _prop(v) for k, v in p.summary.items()},
        "dateIssued": _prop(issued),
    }
    if p.reason:
        district["reason"] = _prop(p.reason)
    out.append(district)
    if p.fallback:
        out.append(
            {
                "id": f"urn:ngsi-ld:Alert:energy:schedule:{day}",
                "type": "Alert",
                "category": _prop("energy"),
                "subCategory": _prop("scheduleFallback"),
                "severity": _prop("high"),
                "description": _prop(p.reason),
                "dateIssued": _prop(issued),
            }
        )
    return out
