"""NGSI-LD geo-queries (clause 4.10): parse and validate, a prefilter box, and the exact test.

Relations read "the ENTITY's geometry <georel> the QUERY geometry": ``within`` selects
entities lying inside the query polygon, ``contains`` entities whose geometry contains the
query geometry. Coordinates are WGS 84 (lon, lat). Exact predicates run on Shapely 2 in
lon/lat space (planar, as PostGIS ``geometry`` does). ``near`` uses metres: the haversine
distance (mean Earth radius 6 371 008.8 m) between the planar-nearest points of the two
geometries — exact (to the sphere's ~0.5 % deviation from WGS 84) for point-to-point, and
within a few per cent for extended geometries at city scale, where the planar-nearest pair
can differ slightly from the geodesically nearest one.
"""

from __future__ import annotations

import json
import math
from typing import Any

import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import nearest_points

from cityos.hub.errors import BadRequestData, TooComplexQuery
from cityos.hub.model import DEFAULT_GEOPROPERTY
from cityos.hub.query.model import GEORELS, GeoQuery

EARTH_RADIUS_M = 6_371_008.8
METRES_PER_DEGREE = EARTH_RADIUS_M * math.pi / 180.0

QUERY_GEOMETRIES = (
    "Point",
    "LineString",
    "Polygon",
    "MultiPoint",
    "MultiLineString",
    "MultiPolygon",
)
_AREAS = ("Polygon", "MultiPolygon")
# hardening: the size of a query geometry (a URL parameter or a subscription's geoQ)
MAX_COORDINATES_CHARS = 262_144
MAX_QUERY_POSITIONS = 10_000
MAX_COORDINATES_DEPTH = 4  # a MultiPolygon: polygons > rings > positions > numbers
_PREPARED_ATTR = "_cityos_prepared"


# ---------------------------------------------------------------------------- validation


def _position(p: Any, where: str) -> None:
    if not isinstance(p, list) or len(p) not in (2, 3):
        raise BadRequestData(f"{where}: a position must be [longitude, latitude] (got {p!r})")
    for c in p:
        if isinstance(c, bool) or not isinstance(c, int | float) or not math.isfinite(c):
            raise BadRequestData(f"{where}: coordinates must be finite numbers (got {p!r})")
    lon, lat = p[0], p[1]
    if not -180.0 <= lon <= 180.0:
        raise BadRequestData(f"{where}: longitude {lon} is outside [-180, 180]")
    if not -90.0 <= lat <= 90.0:
        raise BadRequestData(f"{where}: latitude {lat} is outside [-90, 90]")


def _positions(ps: Any, where: str, minimum: int, what: str) -> None:
    if not isinstance(ps, list) or len(ps) < minimum:
        raise BadRequestData(f"{where}: a {what} needs at least {minimum} positions")
    for p in ps:
        _position(p, where)


def _ring(ring: Any, where: str) -> None:
    _positions(ring, where, 4, "polygon ring")
    if ring[0][:2] != ring[-1][:2]:
        raise BadRequestData(f"{where}: a polygon ring must be closed (first position = last)")


def _polygon(rings: Any, where: str) -> None:
    if not isinstance(rings, list) or not rings:
        raise BadRequestData(f"{where}: a Polygon needs at least one linear ring")
    for ring in rings:
        _ring(ring, where)


def _list_of(value: Any, where: str, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise BadRequestData(f"{where}: {what} coordinates must be an array")
    return value


def validate_geometry(geom: Any, where: str) -> None:
    """Check a GeoJSON geometry (types, nesting, ranges, closed rings); BadRequestData otherwise."""
    if not isinstance(geom, dict):
        raise BadRequestData(f"{where}: a GeoJSON geometry object is required")
    gtype = geom.get("type")
    if gtype == "GeometryCollection":
        parts = geom.get("geometries")
        if not isinstance(parts, list):
            raise BadRequestData(f"{where}: a GeometryCollection needs 'geometries'")
        for part in parts:
            validate_geometry(part, where)
        return
    if gtype not in QUERY_GEOMETRIES:
        raise BadRequestData(
            f"{where}: unknown geometry type {gtype!r}; expected one of "
            + ", ".join(QUERY_GEOMETRIES + ("GeometryCollection",))
        )
    if "coordinates" not in geom:
        raise BadRequestData(f"{where}: the geometry has no 'coordinates'")
    coords = geom["coordinates"]
    if gtype == "Point":
        _position(coords, where)
    elif gtype == "MultiPoint":
        _positions(coords, where, 1, "MultiPoint")
    elif gtype == "LineString":
        _positions(coords, where, 2, "LineString")
    elif gtype == "MultiLineString":
        for line in _list_of(coords, where, gtype):
            _positions(line, where, 2, "LineString")
    elif gtype == "Polygon":
        _polygon(coords, where)
    else:
        for poly in _list_of(coords, where, gtype):
            _polygon(poly, where)


# ---------------------------------------------------------------------------- parsing


def _parse_georel(georel: str) -> tuple[str, float | None, float | None]:
    parts = georel.strip().split(";")
    rel = parts[0]
    if rel not in GEORELS:
        raise BadRequestData(
            f"georel: unknown relation {rel!r}; expected one of {', '.join(GEORELS)}"
        )
    max_d = min_d = None
    for mod in parts[1:]:
        name, sep, raw = mod.partition("==")
        if rel != "near" or not sep or name not in ("maxDistance", "minDistance"):
            raise BadRequestData(
                f"georel: unexpected modifier {mod!r}; only near takes maxDistance==<m> "
                "or minDistance==<m>"
            )
        try:
            dist = float(raw)
        except ValueError:
            dist = float("nan")
        if not math.isfinite(dist) or dist < 0:
            raise BadRequestData(f"georel: {name} must be a non-negative number of metres")
        if name == "maxDistance":
            max_d = dist
        else:
            min_d = dist
    if rel == "near" and (max_d is None) == (min_d is None):
        raise BadRequestData(
            "georel: near needs exactly one of maxDistance==<metres> or minDistance==<metres>"
        )
    return rel, max_d, min_d


def _bracket_depth(text: str) -> int:
    """How deep ``[`` nest in ``text``: checked before parsing, as a 1,000-deep array
    would take the JSON parser past Python's recursion limit."""
    depth = deepest = 0
    for c in text:
        if c == "[":
            depth += 1
            deepest = max(deepest, depth)
        elif c == "]":
            depth -= 1
    return deepest


def parse_geo_query(
    georel: str,
    geometry: str,
    coordinates: str | list[Any],
    geoproperty: str | None = None,
) -> GeoQuery:
    """Build a validated :class:`GeoQuery` from the ``georel``/``geometry``/``coordinates`` parameters."""
    rel, max_d, min_d = _parse_georel(georel or "")
    if geometry not in QUERY_GEOMETRIES:
        raise BadRequestData(f"geometry: {geometry!r} is not one of {', '.join(QUERY_GEOMETRIES)}")
    if isinstance(coordinates, str):
        if len(coordinates) > MAX_COORDINATES_CHARS:
            raise TooComplexQuery(
                f"coordinates are {len(coordinates)} characters long; the limit is "
                f"{MAX_COORDINATES_CHARS}"
            )
        if _bracket_depth(coordinates) > MAX_COORDINATES_DEPTH:
            raise BadRequestData(
                f"coordinates: nested deeper than any geometry ({MAX_COORDINATES_DEPTH} levels)"
            )
        try:
            coords = json.loads(coordinates)
        except ValueError as exc:
            raise BadRequestData(
                f"coordinates: not a JSON array ({exc}); e.g. [104.92,11.57]"
            ) from exc
    else:
        coords = coordinates
    if _count_positions(coords) > MAX_QUERY_POSITIONS:
        raise TooComplexQuery(
            f"coordinates: a query geometry has at most {MAX_QUERY_POSITIONS} positions"
        )
    geom = {"type": geometry, "coordinates": coords}
    validate_geometry(geom, "coordinates")
    if rel == "within" and geometry not in _AREAS:
        raise BadRequestData("geometry: within needs a Polygon or MultiPolygon to be within")
    # A self-intersecting area is taken as made valid (shapely.make_valid), as a stored one
    # is and as the PostgreSQL store does: the same polygon then matches itself (equals).
    return GeoQuery(
        georel=rel,
        geometry=geom,
        geoproperty=geoproperty or DEFAULT_GEOPROPERTY,
        max_distance=max_d,
        min_distance=min_d,
    )


def _count_positions(value: Any) -> int:
    """How many positions (innermost lists) nested lists hold; iterative, so deep nesting
    cannot exhaust the stack."""
    count, stack = 0, [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            if item and not isinstance(item[0], list):
                count += 1
            else:
                stack.extend(item)
    return count


# ---------------------------------------------------------------------------- boxes


def geometry_bbox(geom: dict[str, Any]) -> tuple[float, float, float, float]:
    """(min lon, min lat, max lon, max lat) of a GeoJSON geometry."""
    xs: list[float] = []
    ys: list[float] = []

    def walk(c: Any) -> None:
        if c and isinstance(c[0], int | float):
            xs.append(float(c[0]))
            ys.append(float(c[1]))
        else:
            for item in c:
                walk(item)

    if geom.get("type") == "GeometryCollection":
        boxes = [geometry_bbox(g) for g in geom.get("geometries", [])]
        if not boxes:
            raise BadRequestData("an empty GeometryCollection has no bounding box")
        return (
            min(b[0] for b in boxes),
            min(b[1] for b in boxes),
            max(b[2] for b in boxes),
            max(b[3] for b in boxes),
        )
    walk(geom["coordinates"])
    return min(xs), min(ys), max(xs), max(ys)


def query_bbox(gq: GeoQuery) -> tuple[float, float, float, float] | None:
    """A box every matching entity's bbox intersects (for an R-tree/GiST prefilter); None if none.

    ``disjoint`` and ``near;minDistance`` match entities anywhere, so they get no box. For
    ``near;maxDistance`` the query box grows by the distance in degrees, 1 % plus a
    millimetre wider than needed, with longitude degrees shrunk by the cosine of the
    box's most poleward latitude; near a pole the box spans every longitude.
    """
    if gq.georel == "disjoint" or (gq.georel == "near" and gq.max_distance is None):
        return None
    minx, miny, maxx, maxy = geometry_bbox(gq.geometry)
    if gq.georel != "near":
        return minx, miny, maxx, maxy
    dist = (gq.max_distance or 0.0) * 1.01 + 0.001
    dlat = dist / METRES_PER_DEGREE
    lo_lat, hi_lat = miny - dlat, maxy + dlat
    if lo_lat <= -90.0 or hi_lat >= 90.0:
        return -180.0, max(lo_lat, -90.0), 180.0, min(hi_lat, 90.0)
    cos_lat = math.cos(math.radians(max(abs(lo_lat), abs(hi_lat))))
    dlon = dlat / cos_lat
    return max(minx - dlon, -180.0), lo_lat, min(maxx + dlon, 180.0), hi_lat


# ---------------------------------------------------------------------------- exact test


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres on the mean-radius sphere."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def geodesic_distance_m(a: BaseGeometry, b: BaseGeometry) -> float:
    """Metres between two lon/lat geometries (0 when they touch)."""
    if a.intersects(b):
        return 0.0
    pa, pb = nearest_points(a, b)
    return haversine_m(pa.x, pa.y, pb.x, pb.y)


def _query_shape(gq: GeoQuery) -> BaseGeometry:
    """The query geometry, built and prepared once per GeoQuery object."""
    cached = gq.__dict__.get(_PREPARED_ATTR)
    if cached is None:
        cached = shape(gq.geometry)
        if not cached.is_valid:
            cached = shapely.make_valid(cached)
        shapely.prepare(cached)
        object.__setattr__(gq, _PREPARED_ATTR, cached)
    return cached


def _entity_shape(geom: dict[str, Any]) -> BaseGeometry | None:
    try:
        s = shape(geom)
    except (ValueError, TypeError, AttributeError, KeyError, shapely.errors.ShapelyError):
        return None
    if s.is_empty:
        return None
    return s if s.is_valid else shapely.make_valid(s)


def geo_match(stored_geom: dict[str, Any], gq: GeoQuery) -> bool:
    """Whether one stored GeoJSON geometry satisfies the geo-query (entity georel query)."""
    ent = _entity_shape(stored_geom)
    if ent is None:
        return False
    q = _query_shape(gq)
    rel = gq.georel
    if rel == "near":
        dist = geodesic_distance_m(ent, q)
        if gq.max_distance is not None:
            return dist <= gq.max_distance
        return dist >= (gq.min_distance or 0.0)
    if rel == "within":
        return q.contains(ent)
    if rel == "contains":
        return ent.contains(q)
    if rel == "intersects":
        return q.intersects(ent)
    if rel == "disjoint":
        return q.disjoint(ent)
    if rel == "overlaps":
        return q.overlaps(ent)
    if rel == "equals":
        return ent.equals(q)
    raise BadRequestData(f"georel: unknown relation {rel!r}")
