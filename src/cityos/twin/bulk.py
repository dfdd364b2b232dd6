"""Up to millions of entities over greater Phnom Penh, fast, for load and query benchmarks.

The mix of types and attributes mirrors the sample district, but placement is uniform over
a ~20 km × 20 km box and values are drawn independently, so selectivity is predictable:

* a 2 km × 2 km box (``bulk_box(2.0)``) holds about 1 % of the entities;
* 40 % are TrafficFlowObserved, and about 11 % of those have ``intensity>500``, so
  ``q=intensity>500`` keeps about 4.3 % of all entities (and of any box);
* ``q=congested==true`` keeps about 4 %, ``q=pm25>50`` about 0.7 %.

Speed matters more than realism here: each entity is one dict literal (~100k/s on one core;
when keeping millions in memory, ``gc.freeze()`` or ``gc.disable()`` avoids GC stalls).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from .ngsi import Entity, iso

# Greater Phnom Penh: ~19.9 km east-west, ~19.9 km north-south, centred near Wat Phnom.
BULK_BBOX = (104.8315, 11.4860, 105.0145, 11.6660)
BULK_TIME = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)

# Cumulative shares of the type mix.
_MIX = (
    (0.40, "TrafficFlowObserved"),
    (0.65, "ACMeasurement"),
    (0.80, "Building"),
    (0.90, "AirQualityObserved"),
    (0.95, "GtfsStop"),
    (1.00, "RoadSegment"),
)
_CATEGORIES = (["retail", "residential"], ["apartments"], ["office"], ["hotel"], ["school"])


def bulk_box(km: float = 2.0, centre: tuple[float, float] = (104.9230, 11.5762)) -> tuple:
    """(min_lon, min_lat, max_lon, max_lat) of a ``km`` square around ``centre`` (Wat Phnom)."""
    half_lon = km * 500 / 109_058
    half_lat = km * 500 / 110_574
    lon, lat = centre
    return (lon - half_lon, lat - half_lat, lon + half_lon, lat + half_lat)


def generate_bulk(n: int, seed: int = 0) -> Iterator[Entity]:
    """Yield ``n`` normalized entities with unique ids ``urn:ngsi-ld:<Type>:bulk-<i>``."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(seed)
    rand, uniform = rng.random, rng.uniform
    # Positions in integer micro-degrees: int() and one division are much cheaper than round().
    # Keep 0.002° of margin so a building's far corner or a segment's end stays in the box.
    lon0, lat0 = int(BULK_BBOX[0] * 1e6) + 2000, int(BULK_BBOX[1] * 1e6) + 2000
    d_lon = int((BULK_BBOX[2] - BULK_BBOX[0]) * 1e6) - 4000
    d_lat = int((BULK_BBOX[3] - BULK_BBOX[1]) * 1e6) - 4000
    stamps = [iso(BULK_TIME + timedelta(seconds=60 * k)) for k in range(60)]
    segment_id = "urn:ngsi-ld:RoadSegment:bulk-0"
    for i in range(n):
        r = rand()
        x = lon0 + int(d_lon * rand())
        y = lat0 + int(d_lat * rand())
        lon, lat = x / 1e6, y / 1e6
        ts = stamps[i % 60]
        local = f"bulk-{i}"
        if r < 0.40:
            u = rand()
            intensity = 30 + int(1170 * u**8)
            occupancy = int(20 + 900 * u**6) / 1000
            yield {
                "id": "urn:ngsi-ld:TrafficFlowObserved:" + local,
                "type": "TrafficFlowObserved",
                "intensity": {"type": "Property", "value": intensity, "observedAt": ts},
                "occupancy": {"type": "Property", "value": occupancy, "observedAt": ts},
                "averageVehicleSpeed": {
                    "type": "Property",
                    "value": int(450 - 380 * u**4) / 10,
                    "unitCode": "KMH",
                    "observedAt": ts,
                },
                "congested": {"type": "Property", "value": occupancy > 0.5, "observedAt": ts},
                "laneDirection": {
                    "type": "Property",
                    "value": "forward" if u < 0.5 else "backward",
                },
                "dateObserved": {"type": "Property", "value": ts},
                "refRoadSegment": {"type": "Relationship", "object": segment_id},
                "location": {
                    "type": "GeoProperty",
                    "value": {"type": "Point", "coordinates": [lon, lat]},
                },
            }
        elif r < 0.65:
            power = int(200 + 30000 * rand() ** 3) / 100
            yield {
                "id": "urn:ngsi-ld:ACMeasurement:" + local,
                "type": "ACMeasurement",
                "phaseType": {
                    "type": "Property",
                    "value": "threePhase" if power > 15 else "singlePhase",
                },
                "totalActivePower": {
                    "type": "Property",
                    "value": power,
                    "unitCode": "KWT",
                    "observedAt": ts,
                },
                "totalActiveEnergyImport": {
                    "type": "Property",
                    "value": int(power * uniform(2000, 9000)),
                    "unitCode": "KWH",
                    "observedAt": ts,
                },
                "dateObserved": {"type": "Property", "value": ts},
                "location": {
                    "type": "GeoProperty",
                    "value": {"type": "Point", "coordinates": [lon, lat]},
                },
            }
        elif r < 0.80:
            e = (x + 50 + int(200 * rand())) / 1e6
            nn = (y + 50 + int(200 * rand())) / 1e6
            yield {
                "id": "urn:ngsi-ld:Building:" + local,
                "type": "Building",
                "name": {"type": "Property", "value": f"Building {i}"},
                "category": {"type": "Property", "value": _CATEGORIES[i % 5]},
                "floorsAboveGround": {"type": "Property", "value": 1 + int(20 * rand() ** 2)},
                "location": {
                    "type": "GeoProperty",
                    "value": {
                        "type": "Polygon",
                        "coordinates": [[[lon, lat], [e, lat], [e, nn], [lon, nn], [lon, lat]]],
                    },
                },
            }
        elif r < 0.90:
            pm25 = int(80 + 520 * rand() ** 3) / 10
            yield {
                "id": "urn:ngsi-ld:AirQualityObserved:" + local,
                "type": "AirQualityObserved",
                "pm25": {"type": "Property", "value": pm25, "unitCode": "GQ", "observedAt": ts},
                "pm10": {
                    "type": "Property",
                    "value": int(pm25 * 17) / 10,
                    "unitCode": "GQ",
                    "observedAt": ts,
                },
                "no2": {
                    "type": "Property",
                    "value": int(100 + 600 * rand()) / 10,
                    "unitCode": "GQ",
                    "observedAt": ts,
                },
                "temperature": {
                    "type": "Property",
                    "value": int(260 + 80 * rand()) / 10,
                    "unitCode": "CEL",
                },
                "dateObserved": {"type": "Property", "value": ts},
                "location": {
                    "type": "GeoProperty",
                    "value": {"type": "Point", "coordinates": [lon, lat]},
                },
            }
        elif r < 0.95:
            yield {
                "id": "urn:ngsi-ld:GtfsStop:" + local,
                "type": "GtfsStop",
                "name": {"type": "Property", "value": f"Stop {i}"},
                "code": {"type": "Property", "value": f"PPB{i:07d}"},
                "location": {
                    "type": "GeoProperty",
                    "value": {"type": "Point", "coordinates": [lon, lat]},
                },
            }
        else:
            segment_id = "urn:ngsi-ld:RoadSegment:" + local
            e2 = (x + int(4000 * rand()) - 2000) / 1e6
            n2 = (y + int(4000 * rand()) - 2000) / 1e6
            yield {
                "id": segment_id,
                "type": "RoadSegment",
                "name": {"type": "Property", "value": f"Street {i % 600 + 1}"},
                "totalLaneNumber": {"type": "Property", "value": 1 + i % 4},
                "maximumAllowedSpeed": {
                    "type": "Property",
                    "value": 30 + 10 * (i % 3),
                    "unitCode": "KMH",
                },
                "location": {
                    "type": "GeoProperty",
                    "value": {"type": "LineString", "coordinates": [[lon, lat], [e2, n2]]},
                },
            }
