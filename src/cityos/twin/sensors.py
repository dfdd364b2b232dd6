"""Readings of the district's sensors, derived from their entities alone.

The snapshot (``district.py``) and the replay (``replay.py``) both call these, so a sensor
reads the same way in both; and because everything is taken from the entities themselves
(lanes and speed limit of the road segment, floor area of the building), the replay also
works on entities read back from a hub.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import curves
from .geo import LonLat, ring_area_m2
from .ngsi import Entity, prop

VEHICLES_PER_LANE_HOUR = 900


def stable_uniform(seed: int, key: str, lo: float, hi: float) -> float:
    """A per-object constant drawn from (seed, key) alone, whatever order objects come in."""
    return random.Random(f"{seed}:{key}").uniform(lo, hi)


def value(entity: Entity, attr: str, default: Any = None) -> Any:
    """The value (or object) of a normalized attribute, ``default`` when absent."""
    a = entity.get(attr)
    if not isinstance(a, dict):
        return default
    return a.get("value", a.get("object", default))


def location(entity: Entity) -> LonLat | None:
    geom = value(entity, "location")
    if not geom or geom.get("type") != "Point":
        return None
    lon, lat = geom["coordinates"][:2]
    return (lon, lat)


@dataclass(frozen=True)
class FlowSensor:
    """A TrafficFlowObserved detector: what it needs to produce a reading."""

    id: str
    capacity_vph: int
    free_speed_kmh: float
    demand_factor: float
    location: LonLat | None


def flow_sensor(tfo: Entity, segment: Entity | None, seed: int) -> FlowSensor:
    lanes, directions, limit = 2, 2, 30
    if segment is not None:
        lanes = int(value(segment, "totalLaneNumber", lanes))
        directions = max(1, len(value(segment, "laneUsage", ["forward", "backward"])))
        limit = float(value(segment, "maximumAllowedSpeed", limit))
    capacity = VEHICLES_PER_LANE_HOUR * max(1, lanes // directions)
    return FlowSensor(
        id=tfo["id"],
        capacity_vph=capacity,
        free_speed_kmh=0.95 * limit,
        demand_factor=stable_uniform(seed, tfo["id"], 0.7, 1.2),
        location=location(tfo),
    )


def flow_reading(sensor: FlowSensor, t: datetime, noise: float, ts: str) -> tuple[dict, float]:
    """The sensor's attributes at ``t`` and its demand/capacity ratio (for air quality)."""
    demand = curves.traffic_load(t) * sensor.demand_factor * (1.0 + noise)
    s = curves.traffic_state(sensor.capacity_vph, sensor.free_speed_kmh, demand)
    fragment = {
        "intensity": prop(s.intensity, observed_at=ts),
        "occupancy": prop(s.occupancy, observed_at=ts),
        "averageVehicleSpeed": prop(s.average_speed_kmh, "KMH", ts),
        "congested": prop(s.congested, observed_at=ts),
        "dateObserved": prop(ts, observed_at=ts),
    }
    return fragment, demand


def air_exposure(station_id: str, seed: int) -> float:
    """How strongly traffic near a station reaches its inlet (kerbside high, park low)."""
    return stable_uniform(seed, station_id, 0.7, 1.3)


def air_reading(
    t: datetime, traffic: float, exposure: float, noise: float, ts: str
) -> dict[str, dict]:
    a = curves.air_state(t, traffic, exposure)
    k = 1.0 + noise
    return {
        "no2": prop(round(a.no2 * k, 1), "GQ", ts),
        "pm25": prop(round(a.pm25 * k, 1), "GQ", ts),
        "pm10": prop(round(a.pm10 * k, 1), "GQ", ts),
        "temperature": prop(a.temperature, "CEL", ts),
        "relativeHumidity": prop(a.relative_humidity, observed_at=ts),
        "dateObserved": prop(ts, observed_at=ts),
    }


def building_use(building: Entity) -> str:
    category = value(building, "category", ["commercial"])
    return category[0] if isinstance(category, list) and category else str(category)


def building_peak_kw(building: Entity) -> float:
    geom = value(building, "location", {})
    area = ring_area_m2(geom["coordinates"][0]) if geom.get("type") == "Polygon" else 200.0
    floors = int(value(building, "floorsAboveGround", 1))
    return curves.building_peak_kw(building_use(building), area, floors)


def meter_reading(
    use: str, peak_kw: float, energy_kwh: float, t: datetime, noise: float, ts: str
) -> tuple[dict[str, dict], float]:
    """Meter attributes at ``t``; returns the power in kW too, to integrate energy."""
    power = max(0.0, peak_kw * curves.demand_profile(use, t) * (1.0 + noise))
    fragment = {
        "totalActivePower": prop(round(power, 2), "KWT", ts),
        "totalActiveEnergyImport": prop(round(energy_kwh, 2), "KWH", ts),
        "dateObserved": prop(ts, observed_at=ts),
    }
    return fragment, power
