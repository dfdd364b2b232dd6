"""Daily curves of a Phnom Penh weekday: traffic load, air quality and electricity demand.

One module so the district snapshot and the replay agree: a sensor read at 08:00 in the
snapshot shows the same morning peak the replay drives through. Times are UTC datetimes;
the curves are written in local time (Indochina Time, UTC+7, no daylight saving).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

LOCAL_UTC_OFFSET = timedelta(hours=7)


def local_hour(t: datetime) -> float:
    """Hour of day in Phnom Penh as a float (08:30 -> 8.5)."""
    local = t + LOCAL_UTC_OFFSET
    return local.hour + local.minute / 60 + local.second / 3600


def is_weekend(t: datetime) -> bool:
    return (t + LOCAL_UTC_OFFSET).weekday() >= 5


def _bump(h: float, centre: float, width: float) -> float:
    return math.exp(-0.5 * ((h - centre) / width) ** 2)


def traffic_load(t: datetime) -> float:
    """Demand as a share of road capacity: a sharp morning peak (07:00–08:00, school run
    and commute), a lunch bump, a broader evening peak, quiet nights. Weekends are lower
    and start later."""
    h = local_hour(t)
    if is_weekend(t):
        return 0.08 + 0.62 * max(_bump(h, 10.5, 2.5), 0.9 * _bump(h, 18.0, 2.0))
    day = 0.62 * min(1.0, max(0.0, (h - 6.5) / 2.0)) * min(1.0, max(0.0, (21.0 - h) / 3.0))
    peaks = max(1.08 * _bump(h, 7.5, 0.8), 0.78 * _bump(h, 12.0, 0.9), 0.98 * _bump(h, 17.5, 1.1))
    return 0.07 + max(day, peaks)


@dataclass(frozen=True)
class TrafficState:
    intensity: int  # vehicles per hour in this direction
    occupancy: float  # share of time the detector is occupied, 0..1
    average_speed_kmh: float
    congested: bool


def traffic_state(capacity_vph: int, free_speed_kmh: float, demand: float) -> TrafficState:
    """Flow, occupancy and speed at a demand/capacity ratio (BPR-style speed drop).

    Flow cannot exceed capacity; past it the queue shows in occupancy and speed instead.
    """
    x = max(0.0, demand)
    flow = capacity_vph * min(x, 1.0)
    occupancy = min(0.95, 0.03 + 0.55 * x**2)
    speed = max(4.0, free_speed_kmh / (1.0 + 1.2 * x**4))
    congested = occupancy > 0.5 or speed < 0.4 * free_speed_kmh
    return TrafficState(round(flow), round(occupancy, 3), round(speed, 1), congested)


@dataclass(frozen=True)
class AirState:
    no2: float  # µg/m³
    pm25: float  # µg/m³
    pm10: float  # µg/m³
    temperature: float  # °C
    relative_humidity: float  # 0..1


def air_state(t: datetime, traffic: float, exposure: float) -> AirState:
    """Air at a station: traffic (0..~1.2) near it drives NO2 and part of PM2.5; a night and
    morning inversion traps more of it; heat peaks mid-afternoon (dry season values)."""
    h = local_hour(t)
    inversion = 1.0 + 0.35 * max(_bump(h, 6.5, 2.0), _bump(h, 22.0, 2.5))
    pm25 = (16.0 + 30.0 * traffic * exposure) * inversion
    no2 = (12.0 + 48.0 * traffic * exposure) * inversion
    temperature = 29.5 + 4.0 * math.cos(2 * math.pi * (h - 14.5) / 24)
    humidity = 0.70 - 0.14 * math.cos(2 * math.pi * (h - 14.5) / 24)
    return AirState(
        round(no2, 1), round(pm25, 1), round(pm25 * 1.7, 1), round(temperature, 1),
        round(humidity, 3),
    )  # fmt: skip


# Peak electrical load per square metre of floor, by building use (air-conditioned tropics).
PEAK_W_PER_M2: dict[str, float] = {
    "residential": 25.0,
    "apartments": 25.0,
    "retail": 45.0,
    "commercial": 40.0,
    "office": 50.0,
    "hotel": 45.0,
    "school": 20.0,
    "public": 35.0,
    "temple": 8.0,
}


def demand_profile(use: str, t: datetime) -> float:
    """Share of peak load a building of this use draws at ``t``."""
    h = local_hour(t)
    weekend = is_weekend(t)
    if use in ("residential", "apartments"):
        return 0.25 + 0.35 * _bump(h, 6.5, 1.0) + 0.75 * _bump(h, 20.0, 2.0)
    if use == "office":
        base = 0.15 if weekend else 0.15 + 0.85 * _bump(h, 13.0, 3.2)
        return min(1.0, base)
    if use == "school":
        return 0.08 if weekend else 0.08 + 0.9 * _bump(h, 11.0, 3.0)
    if use == "hotel":
        return 0.55 + 0.25 * _bump(h, 14.0, 3.0) + 0.2 * _bump(h, 21.0, 2.0)
    if use == "temple":
        return 0.3 + 0.5 * _bump(h, 7.0, 2.0) + 0.3 * _bump(h, 18.5, 1.5)
    # retail, commercial, public, the market: open roughly 06:00–20:00, cooling peaks at 14:00.
    return 0.12 + 0.88 * _bump(h, 13.5, 3.5)


def building_peak_kw(use: str, footprint_m2: float, floors: int) -> float:
    return PEAK_W_PER_M2.get(use, 35.0) * footprint_m2 * max(1, floors) / 1000.0
