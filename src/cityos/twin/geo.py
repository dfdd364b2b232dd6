"""Small planar geometry on lon/lat: enough to lay out a few km² of city without a projection.

Distances use an equirectangular approximation around the point in question; at 11.5° N and
over a few kilometres the error is well under a metre, far below what the twin needs.
"""

from __future__ import annotations

import math

LonLat = tuple[float, float]
BBox = tuple[float, float, float, float]  # (min_lon, min_lat, max_lon, max_lat)

# Daun Penh, Phnom Penh: Wat Phnom to the Central Market and the riverfront.
DISTRICT_BBOX: BBox = (104.915, 11.560, 104.935, 11.585)
WAT_PHNOM: LonLat = (104.9230, 11.5762)
CENTRAL_MARKET: LonLat = (104.9210, 11.5697)

M_PER_DEG_LAT = 110_574.0


def m_per_deg_lon(lat: float) -> float:
    return 111_320.0 * math.cos(math.radians(lat))


def offset(p: LonLat, east_m: float, north_m: float) -> LonLat:
    """The point ``east_m`` metres east and ``north_m`` metres north of ``p``."""
    lon, lat = p
    return (lon + east_m / m_per_deg_lon(lat), lat + north_m / M_PER_DEG_LAT)


def to_metres(origin: LonLat, p: LonLat) -> tuple[float, float]:
    """(east, north) of ``p`` from ``origin`` in metres."""
    return (
        (p[0] - origin[0]) * m_per_deg_lon(origin[1]),
        (p[1] - origin[1]) * M_PER_DEG_LAT,
    )


def distance_m(a: LonLat, b: LonLat) -> float:
    east, north = to_metres(a, b)
    return math.hypot(east, north)


def line_length_m(coords: list[LonLat]) -> float:
    return sum(distance_m(a, b) for a, b in zip(coords, coords[1:], strict=False))


def interpolate(a: LonLat, b: LonLat, t: float) -> LonLat:
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)


def unit_direction(a: LonLat, b: LonLat) -> tuple[float, float]:
    """Unit vector (east, north) pointing from ``a`` to ``b``."""
    east, north = to_metres(a, b)
    norm = math.hypot(east, north) or 1.0
    return (east / norm, north / norm)


def project_onto_segment(p: LonLat, a: LonLat, b: LonLat) -> tuple[float, float]:
    """(t, distance in metres) of the point of segment a-b nearest to ``p``; t in [0, 1]."""
    bx, by = to_metres(a, b)
    px, py = to_metres(a, p)
    length2 = bx * bx + by * by or 1.0
    t = max(0.0, min(1.0, (px * bx + py * by) / length2))
    return t, math.hypot(px - t * bx, py - t * by)


def oriented_polygon(
    centre: LonLat, along: tuple[float, float], outline_m: list[tuple[float, float]]
) -> list[LonLat]:
    """A closed ring from an outline given in metres (x along ``along``, y to its left)."""
    ux, uy = along
    vx, vy = -uy, ux
    ring = [offset(centre, x * ux + y * vx, x * uy + y * vy) for x, y in outline_m]
    ring.append(ring[0])
    return ring


def rectangle_outline(width_m: float, depth_m: float) -> list[tuple[float, float]]:
    """Counter-clockwise corners of a width × depth rectangle centred on the origin."""
    w, d = width_m / 2, depth_m / 2
    return [(-w, -d), (w, -d), (w, d), (-w, d)]


def ring_area_m2(ring: list[LonLat]) -> float:
    """Shoelace area of a closed lon/lat ring, in square metres."""
    origin = ring[0]
    pts = [to_metres(origin, p) for p in ring]
    twice = sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(pts, pts[1:], strict=False))
    return abs(twice) / 2


def inside(p: LonLat, bbox: BBox) -> bool:
    return bbox[0] <= p[0] <= bbox[2] and bbox[1] <= p[1] <= bbox[3]


def rounded(p: LonLat) -> list[float]:
    """GeoJSON position rounded to 1e-6° (about 0.1 m), so output is short and stable."""
    return [round(p[0], 6), round(p[1], 6)]
