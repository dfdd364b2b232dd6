"""The sample district: Daun Penh, Phnom Penh, around Wat Phnom and the Central Market.

``generate_district(seed)`` returns NGSI-LD entities in normalized form (compacted terms,
no ``@context``; resolve them with ``DISTRICT_CONTEXT`` served at ``CONTEXT_URL``), typed
with FIWARE Smart Data Models. Real street names and landmark positions, generated
buildings and readings; the same seed always gives the same district. See docs/district.md.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from . import sensors
from .bulk import BULK_BBOX, generate_bulk
from .context import CONTEXT_URL, DISTRICT_CONTEXT, DISTRICT_TERMS
from .curves import traffic_load
from .geo import (
    CENTRAL_MARKET,
    DISTRICT_BBOX,
    WAT_PHNOM,
    LonLat,
    distance_m,
    inside,
    interpolate,
    line_length_m,
    offset,
    oriented_polygon,
    project_onto_segment,
    rectangle_outline,
    rounded,
    to_metres,
    unit_direction,
)
from .ngsi import Entity, geo, iso, point, prop, rel, urn
from .streets import STREETS, Street

__all__ = [
    "BULK_BBOX",
    "CONTEXT_URL",
    "DISTRICT_BBOX",
    "DISTRICT_CONTEXT",
    "DISTRICT_TERMS",
    "DISTRICT_TIME",
    "generate_bulk",
    "generate_district",
]

# Monday 30 November 2026, 08:00 in Phnom Penh: the morning peak.
DISTRICT_TIME = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)

AGENCY_ID = urn("GtfsAgency", "phnom-penh-city-bus")
ADDRESS_BASE = {
    "addressLocality": "Daun Penh",
    "addressRegion": "Phnom Penh",
    "addressCountry": "KH",
}

_DIRECTION_TAG = {"forward": "fwd", "backward": "bwd"}

BASE_COUNTS = {"traffic_sensors": 40, "bus_stops": 12, "buildings": 60, "air_stations": 6}

# (local id, name, use category, floors, outline in metres, centre, heading (east, north)).
_CROSS = [
    (-22.5, -75), (22.5, -75), (22.5, -22.5), (75, -22.5), (75, 22.5), (22.5, 22.5),
    (22.5, 75), (-22.5, 75), (-22.5, 22.5), (-75, 22.5), (-75, -22.5), (-22.5, -22.5),
]  # fmt: skip
_NAMED_BUILDINGS = [
    ("central-market", "Phsar Thmei (Central Market)", "retail", 2, _CROSS, CENTRAL_MARKET, (0.7071, 0.7071)),
    ("wat-phnom", "Wat Phnom Daun Penh", "temple", 1, rectangle_outline(40, 22), WAT_PHNOM, (1.0, 0.0)),
    ("hotel-le-royal", "Raffles Hotel Le Royal", "hotel", 3, rectangle_outline(90, 35), (104.9163, 11.5788), (0.0, 1.0)),
    ("national-library", "National Library of Cambodia", "public", 2, rectangle_outline(45, 25), (104.9203, 11.5758), (1.0, 0.0)),
    ("central-post-office", "Phnom Penh Central Post Office", "public", 3, rectangle_outline(50, 25), (104.9255, 11.5762), (1.0, 0.0)),
    ("canadia-tower", "Canadia Tower", "office", 28, rectangle_outline(32, 32), (104.9197, 11.5722), (1.0, 0.0)),
]  # fmt: skip

# Generic buildings: (label, Smart Data Models categories, weight, width, depth, floors).
_BUILDING_KINDS = [
    ("Shophouse", ["retail", "residential"], 45, (4.0, 5.0), (14.0, 20.0), (3, 5)),
    ("Apartments", ["apartments"], 18, (18.0, 30.0), (15.0, 24.0), (6, 15)),
    ("Office", ["office"], 12, (22.0, 36.0), (18.0, 28.0), (8, 22)),
    ("Hotel", ["hotel"], 8, (16.0, 30.0), (14.0, 22.0), (5, 14)),
    ("School", ["school"], 5, (30.0, 50.0), (15.0, 25.0), (2, 4)),
    ("Restaurant", ["commercial"], 12, (8.0, 16.0), (12.0, 20.0), (1, 3)),
]

_NAMED_STOPS = [
    ("phsar-thmei", "Phsar Thmei", (104.9196, 11.5703)),
    ("wat-phnom", "Wat Phnom", (104.9236, 11.5758)),
    ("hotel-le-royal", "Hotel Le Royal", (104.9178, 11.5790)),
    ("national-library", "National Library", (104.9212, 11.5740)),
    ("post-office", "Central Post Office", (104.9262, 11.5750)),
    ("night-market", "Night Market", (104.9282, 11.5745)),
    ("canadia-tower", "Canadia Tower", (104.9185, 11.5722)),
    ("sisowath-130", "Sisowath / Street 130", (104.9290, 11.5695)),
    ("norodom-154", "Norodom / Street 154", (104.9247, 11.5664)),
    ("monivong-154", "Monivong / Street 154", (104.9176, 11.5664)),
    ("charles-de-gaulle", "Charles de Gaulle / Street 217", (104.9168, 11.5642)),
    ("riverside-south", "Riverside South", (104.9299, 11.5625)),
]

_NAMED_AIR_STATIONS = [
    ("wat-phnom", "Wat Phnom", (104.9238, 11.5768)),
    ("phsar-thmei", "Phsar Thmei", (104.9200, 11.5708)),
    ("riverside", "Riverside", (104.9285, 11.5720)),
    ("monivong-north", "Monivong North", (104.9190, 11.5815)),
    ("norodom-south", "Norodom South", (104.9258, 11.5625)),
    ("street-136", "Street 136", (104.9230, 11.5672)),
]

_POIS = [
    ("wat-phnom", "Wat Phnom", "វត្តភ្នំ", ["temple", "touristAttraction"], WAT_PHNOM,
     "Hilltop pagoda that gave the city its name, founded 1372."),
    ("central-market", "Phsar Thmei (Central Market)", "ផ្សារធំថ្មី", ["market", "touristAttraction"],
     CENTRAL_MARKET, "Art Deco covered market under a yellow dome, opened 1937."),
]  # fmt: skip


@dataclass(frozen=True)
class _Segment:
    id: str
    local_id: str
    street: Street
    a: LonLat
    b: LonLat
    length_m: float
    start_m: float  # distance along the street where the segment starts

    @property
    def width_m(self) -> float:
        directions = 1 if self.street.one_way else 2
        return self.street.lanes_per_direction * directions * 3.5 + 6.0  # lanes + sidewalks


class _Footprints:
    """Axis-aligned boxes of placed buildings in a 25 m grid, to keep buildings apart."""

    CELL = 25.0

    def __init__(self) -> None:
        self._grid: dict[tuple[int, int], list[tuple[float, float, float, float]]] = {}

    def _box(self, ring: list[LonLat]) -> tuple[float, float, float, float]:
        pts = [to_metres(CENTRAL_MARKET, p) for p in ring]
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        return (min(xs), min(ys), max(xs), max(ys))

    def _cells(self, box: tuple[float, float, float, float]):
        c = self.CELL
        for i in range(int(box[0] // c), int(box[2] // c) + 1):
            for j in range(int(box[1] // c), int(box[3] // c) + 1):
                yield (i, j)

    def free(self, ring: list[LonLat]) -> bool:
        x0, y0, x1, y1 = self._box(ring)
        for cell in self._cells((x0, y0, x1, y1)):
            for a0, b0, a1, b1 in self._grid.get(cell, ()):
                if x0 < a1 and a0 < x1 and y0 < b1 and b0 < y1:
                    return False
        return True

    def add(self, ring: list[LonLat]) -> None:
        box = self._box(ring)
        for cell in self._cells(box):
            self._grid.setdefault(cell, []).append(box)


def generate_district(seed: int = 0, scale: int = 1, at: datetime = DISTRICT_TIME) -> list[Entity]:
    """The district as a list of normalized NGSI-LD entities, readings taken at ``at``.

    ``scale`` multiplies the sensors, stops, buildings (each with its meter) and air
    stations; the streets stay the real ones (33 segments), so density grows.
    """
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return _DistrictBuilder(random.Random(seed), seed, scale, at).build()


def count_by_type(entities: list[Entity]) -> dict[str, int]:
    """{type: how many}, in first-seen order: a quick summary for demos and tests."""
    counts: dict[str, int] = {}
    for e in entities:
        counts[e["type"]] = counts.get(e["type"], 0) + 1
    return counts


class _DistrictBuilder:
    def __init__(self, rng: random.Random, seed: int, scale: int, at: datetime) -> None:
        self.rng, self.seed, self.scale, self.at = rng, seed, scale, at
        self.ts = iso(at)
        self.segments: list[_Segment] = []
        self.segment_entities: dict[str, Entity] = {}
        self.footprints = _Footprints()
        self.used_ids: set[str] = set()

    def build(self) -> list[Entity]:
        out: list[Entity] = []
        out += self.roads()
        out.append(self.agency())
        out += self.bus_stops()
        out += self.points_of_interest()
        out += self.buildings_and_meters()
        out += self.traffic_sensors()
        out += self.air_stations()
        return out

    # -- roads -------------------------------------------------------------------------

    def roads(self) -> list[Entity]:
        out: list[Entity] = []
        for street in STREETS:
            seg_entities = []
            start = 0.0
            pairs = list(zip(street.waypoints, street.waypoints[1:], strict=False))
            for k, (a, b) in enumerate(pairs, start=1):
                local = f"{street.slug}-{k}"
                seg = _Segment(
                    urn("RoadSegment", local), local, street, a, b, distance_m(a, b), start
                )
                start += seg.length_m
                self.segments.append(seg)
                entity = self.road_segment(seg, k, len(pairs))
                self.segment_entities[seg.id] = entity
                seg_entities.append(entity)
            road = {
                "id": urn("Road", street.slug),
                "type": "Road",
                "name": prop(street.name),
                "roadClass": prop(street.road_class),
                "length": prop(round(line_length_m(list(street.waypoints)), 1), "MTR"),
                "refRoadSegment": rel([e["id"] for e in seg_entities]),
            }
            out.append(road)
            out += seg_entities
        return out

    def road_segment(self, seg: _Segment, k: int, n: int) -> Entity:
        s = seg.street
        vehicles = ["car", "motorcycle", "moped", "bicycle"]
        if s.road_class in ("primary", "secondary"):
            vehicles += ["bus", "lorry"]
        directions = ["forward"] if s.one_way else ["forward", "backward"]
        return {
            "id": seg.id,
            "type": "RoadSegment",
            "name": prop(s.name),
            "description": prop(f"{s.name}, section {k} of {n}"),
            "refRoad": rel(urn("Road", s.slug)),
            "location": geo(
                {"type": "LineString", "coordinates": [rounded(seg.a), rounded(seg.b)]}
            ),
            "length": prop(round(seg.length_m, 1), "MTR"),
            "laneUsage": prop(directions),
            "totalLaneNumber": prop(s.lanes_per_direction * len(directions)),
            "maximumAllowedSpeed": prop(s.max_speed_kmh, "KMH"),
            "allowedVehicleType": prop(vehicles),
        }

    def nearest_on_segments(self, p: LonLat, segments: list[_Segment]) -> tuple[_Segment, float]:
        best = min(segments, key=lambda s: project_onto_segment(p, s.a, s.b)[1])
        return best, project_onto_segment(p, best.a, best.b)[0]

    def beside(self, seg: _Segment, t: float, side: int, metres: float) -> LonLat:
        """A point ``metres`` to the right (side=1) or left (side=-1) of the segment at t."""
        ux, uy = unit_direction(seg.a, seg.b)
        return offset(interpolate(seg.a, seg.b, t), side * metres * uy, -side * metres * ux)

    # -- public transport -------------------------------------------------------------

    def agency(self) -> Entity:
        return {
            "id": AGENCY_ID,
            "type": "GtfsAgency",
            "name": prop("Phnom Penh City Bus"),
            "timezone": prop("Asia/Phnom_Penh"),
            "language": prop("km"),
        }

    def bus_stops(self) -> list[Entity]:
        corridor = [s for s in self.segments if s.street.bus_corridor]
        places: list[tuple[str, str, _Segment, float]] = []
        for local, name, p in _NAMED_STOPS:
            seg, t = self.nearest_on_segments(p, corridor)
            places.append((local, name, seg, t))
        for k in range(len(_NAMED_STOPS), BASE_COUNTS["bus_stops"] * self.scale):
            seg = self.rng.choice(corridor)
            places.append(
                (
                    f"{seg.local_id}-{k}",
                    f"{seg.street.name} stop {k}",
                    seg,
                    self.rng.uniform(0.1, 0.9),
                )
            )
        out = []
        for n, (local, name, seg, t) in enumerate(places, start=1):
            side = 1 if n % 2 else -1
            if seg.street.one_way:
                side = 1
            p = self.beside(seg, t, side, seg.width_m / 2)
            out.append(
                {
                    "id": urn("GtfsStop", local),
                    "type": "GtfsStop",
                    "name": prop(name),
                    "code": prop(f"PP{n:04d}"),
                    "description": prop(f"Bus stop on {seg.street.name}"),
                    "location": geo(point(*rounded(p))),
                    "operatedBy": rel(AGENCY_ID),
                }
            )
        return out

    def points_of_interest(self) -> list[Entity]:
        return [
            {
                "id": urn("PointOfInterest", local),
                "type": "PointOfInterest",
                "name": prop(name),
                "alternateName": prop(khmer),
                "category": prop(categories),
                "description": prop(about),
                "address": prop({"streetAddress": name, **ADDRESS_BASE}),
                "location": geo(point(*rounded(p))),
            }
            for local, name, khmer, categories, p, about in _POIS
        ]

    # -- buildings and their meters -----------------------------------------------------

    def buildings_and_meters(self) -> list[Entity]:
        out: list[Entity] = []
        for local, name, use, floors, outline, centre, heading in _NAMED_BUILDINGS:
            ring = oriented_polygon(centre, heading, outline)
            self.footprints.add(ring)
            address = {"streetAddress": name, **ADDRESS_BASE}
            out += self.building(local, name, [use], floors, ring, centre, address)
        lengths = [s.length_m for s in self.segments]
        for _ in range(BASE_COUNTS["buildings"] * self.scale - len(_NAMED_BUILDINGS)):
            out += self.generic_building(lengths)
        return out

    def generic_building(self, lengths: list[float]) -> list[Entity]:
        rng = self.rng
        weights = [k[2] for k in _BUILDING_KINDS]
        for attempt in range(60):
            label, categories, _, widths, depths, floors = rng.choices(_BUILDING_KINDS, weights)[0]
            seg = rng.choices(self.segments, lengths)[0]
            t, side = rng.uniform(0.04, 0.96), rng.choice((-1, 1))
            width, depth = rng.uniform(*widths), rng.uniform(*depths)
            centre = self.beside(seg, t, side, seg.width_m / 2 + 1.5 + depth / 2)
            ring = oriented_polygon(
                centre, unit_direction(seg.a, seg.b), rectangle_outline(width, depth)
            )
            if not all(inside(p, DISTRICT_BBOX) for p in ring):
                continue
            if self.footprints.free(ring) or attempt == 59:
                break
        self.footprints.add(ring)
        number = int((seg.start_m + t * seg.length_m) / 4) * 2 + (1 if side < 0 else 2)
        local = f"{seg.street.slug}-{number}"
        while local in self.used_ids:
            number += 2
            local = f"{seg.street.slug}-{number}"
        address = {"streetAddress": f"No. {number}, {seg.street.name}", **ADDRESS_BASE}
        name = f"{label} No. {number}, {seg.street.name}"
        return self.building(local, name, categories, rng.randint(*floors), ring, centre, address)

    def building(
        self, local: str, name: str, categories: list[str], floors: int, ring: list[LonLat],
        centre: LonLat, address: dict,
    ) -> list[Entity]:  # fmt: skip
        self.used_ids.add(local)
        building = {
            "id": urn("Building", local),
            "type": "Building",
            "name": prop(name),
            "category": prop(categories),
            "address": prop(address),
            "floorsAboveGround": prop(floors),
            "location": geo({"type": "Polygon", "coordinates": [[rounded(p) for p in ring]]}),
        }
        return [building, self.meter(building, centre)]

    def meter(self, building: Entity, centre: LonLat) -> Entity:
        peak = sensors.building_peak_kw(building)
        use = sensors.building_use(building)
        started = self.at - timedelta(days=self.rng.randint(90, 900))
        hours = (self.at - started).total_seconds() / 3600
        energy = peak * 0.45 * hours
        noise = self.rng.gauss(0.0, 0.05)
        reading, _ = sensors.meter_reading(use, peak, energy, self.at, noise, self.ts)
        return {
            "id": urn("ACMeasurement", f"meter-{building['id'].rsplit(':', 1)[1]}"),
            "type": "ACMeasurement",
            "name": prop(f"Electricity meter, {building['name']['value']}"),
            "phaseType": prop("threePhase" if peak > 15 else "singlePhase"),
            "dateEnergyMeteringStarted": prop(iso(started)),
            **reading,
            "location": geo(point(*rounded(centre))),
            "refBuilding": rel(building["id"]),
        }

    # -- sensors ----------------------------------------------------------------------

    def traffic_sensors(self) -> list[Entity]:
        slots = [(seg, "forward") for seg in self.segments]
        slots += [(seg, "backward") for seg in self.segments if not seg.street.one_way]
        wanted = BASE_COUNTS["traffic_sensors"] * self.scale
        chosen = [slots[i % len(slots)] for i in range(wanted)]
        if wanted < len(slots):
            chosen = self.rng.sample(slots, wanted)
            chosen.sort(key=lambda s: (self.segments.index(s[0]), s[1] == "backward"))
        seen: dict[tuple[str, str], int] = {}
        out = []
        for seg, direction in chosen:
            k = seen[(seg.id, direction)] = seen.get((seg.id, direction), 0) + 1
            local = f"{seg.local_id}-{_DIRECTION_TAG[direction]}-{k}"
            t = self.rng.uniform(0.2, 0.8)
            side = 1 if direction == "forward" else -1
            p = self.beside(seg, t, side, seg.width_m / 4)
            entity: Entity = {
                "id": urn("TrafficFlowObserved", local),
                "type": "TrafficFlowObserved",
                "laneDirection": prop(direction),
                "laneId": prop(1 + (k - 1) % seg.street.lanes_per_direction),
                "refRoadSegment": rel(seg.id),
                "location": geo(point(*rounded(p))),
            }
            sensor = sensors.flow_sensor(entity, self.segment_entities[seg.id], self.seed)
            reading, _ = sensors.flow_reading(sensor, self.at, self.rng.gauss(0.0, 0.05), self.ts)
            entity.update(reading)
            out.append(entity)
        return out

    def air_stations(self) -> list[Entity]:
        places = list(_NAMED_AIR_STATIONS)
        for k in range(len(places), BASE_COUNTS["air_stations"] * self.scale):
            lon = self.rng.uniform(DISTRICT_BBOX[0] + 0.001, DISTRICT_BBOX[2] - 0.001)
            lat = self.rng.uniform(DISTRICT_BBOX[1] + 0.001, DISTRICT_BBOX[3] - 0.001)
            places.append((f"station-{k + 1}", f"Air quality station {k + 1}", (lon, lat)))
        out = []
        for local, name, p in places:
            station_id = urn("AirQualityObserved", local)
            exposure = sensors.air_exposure(station_id, self.seed)
            reading = sensors.air_reading(
                self.at, traffic_load(self.at), exposure, self.rng.gauss(0.0, 0.05), self.ts
            )
            out.append(
                {
                    "id": station_id,
                    "type": "AirQualityObserved",
                    "name": prop(f"{name} air quality station"),
                    **reading,
                    "location": geo(point(*rounded(p))),
                }
            )
        return out
