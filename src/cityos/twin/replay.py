"""Replay: a stream of sensor readings for the district, as a hub would receive them.

``sensor_updates(entities, start)`` walks time in steps and, at each step, yields one
attribute fragment per sensor: traffic detectors follow the daily load curve (morning peak
07:00–08:00 local) with slowly drifting noise, air-quality stations follow the traffic
around them, meters follow their building's use and accumulate energy. Deterministic for a
seed; observedAt only moves forward.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

from . import curves, sensors
from .geo import distance_m
from .ngsi import Entity, iso

AIR_RADIUS_M = 600.0  # traffic within this distance of a station reaches its inlet


class _Drift:
    """AR(1) noise: readings wander smoothly instead of jumping every minute."""

    def __init__(self, rng: random.Random, sigma: float, keep: float = 0.85) -> None:
        self.rng, self.sigma, self.keep, self.x = rng, sigma, keep, 0.0

    def step(self) -> float:
        self.x = self.keep * self.x + (1 - self.keep) ** 0.5 * self.rng.gauss(0.0, self.sigma)
        return self.x


def sensor_updates(
    entities: Iterable[Entity],
    start: datetime,
    minutes: int = 60,
    step_s: int = 60,
    seed: int = 0,
) -> Iterator[tuple[str, dict[str, dict]]]:
    """Yield ``(entity_id, fragment)``: normalized attributes, each with ``observedAt``.

    ``entities`` are normalized district entities (``generate_district()`` or read back
    from a hub); sensors are the TrafficFlowObserved, AirQualityObserved and ACMeasurement
    among them. Every sensor reports at every step, ``start`` included, for ``minutes``.
    Naive datetimes are taken as UTC.
    """
    if step_s <= 0 or minutes < 0:
        raise ValueError("step_s must be > 0 and minutes >= 0")
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    entities = list(entities)
    by_id = {e["id"]: e for e in entities}
    rng = random.Random(seed)

    flows = [
        sensors.flow_sensor(e, by_id.get(sensors.value(e, "refRoadSegment")), seed)
        for e in entities
        if e["type"] == "TrafficFlowObserved"
    ]
    flow_drift = [_Drift(rng, 0.06) for _ in flows]

    stations = [e for e in entities if e["type"] == "AirQualityObserved"]
    exposure = [sensors.air_exposure(e["id"], seed) for e in stations]
    nearby = [_flows_near(sensors.location(e), flows) for e in stations]
    air_drift = [_Drift(rng, 0.05) for _ in stations]

    meters = [e for e in entities if e["type"] == "ACMeasurement"]
    meter_state = []
    for m in meters:
        building = by_id.get(sensors.value(m, "refBuilding"))
        use = sensors.building_use(building) if building else "commercial"
        peak = sensors.building_peak_kw(building) if building else 10.0
        energy = float(sensors.value(m, "totalActiveEnergyImport", 0.0))
        meter_state.append([use, peak, energy])
    meter_drift = [_Drift(rng, 0.05) for _ in meters]

    for k in range(int(minutes * 60 // step_s)):
        t = start + timedelta(seconds=k * step_s)
        ts = iso(t)
        demand = []
        for sensor, drift in zip(flows, flow_drift, strict=True):
            fragment, x = sensors.flow_reading(sensor, t, drift.step(), ts)
            demand.append(x)
            yield sensor.id, fragment
        for station, exp, near, drift in zip(stations, exposure, nearby, air_drift, strict=True):
            traffic = sum(demand[i] for i in near) / len(near) if near else curves.traffic_load(t)
            yield station["id"], sensors.air_reading(t, traffic, exp, drift.step(), ts)
        for meter, state, drift in zip(meters, meter_state, meter_drift, strict=True):
            use, peak, energy = state
            fragment, power = sensors.meter_reading(use, peak, energy, t, drift.step(), ts)
            state[2] = energy + power * step_s / 3600
            yield meter["id"], fragment


def _flows_near(p, flows: list[sensors.FlowSensor]) -> list[int]:
    if p is None:
        return []
    return [
        i
        for i, f in enumerate(flows)
        if f.location is not None and distance_m(p, f.location) <= AIR_RADIUS_M
    ]
