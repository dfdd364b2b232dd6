"""Geo-queries: parameter parsing and validation, prefilter boxes, exact relations."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cityos.hub.errors import BadRequestData
from cityos.hub.model import LOCATION
from cityos.hub.query.geo import (
    geo_match,
    geometry_bbox,
    haversine_m,
    parse_geo_query,
    query_bbox,
    validate_geometry,
)

WAT_PHNOM = [104.9230, 11.5763]
SQUARE = [[[104.91, 11.56], [104.93, 11.56], [104.93, 11.58], [104.91, 11.58], [104.91, 11.56]]]


def point(lon: float, lat: float) -> dict:
    return {"type": "Point", "coordinates": [lon, lat]}


def test_parse_near_and_defaults() -> None:
    gq = parse_geo_query("near;maxDistance==2000", "Point", "[104.923,11.5763]", None)
    assert gq.georel == "near" and gq.max_distance == 2000.0 and gq.min_distance is None
    assert gq.geometry == point(104.923, 11.5763)
    assert gq.geoproperty == LOCATION
    gq = parse_geo_query("near;minDistance==10", "Point", [1, 2], "https://ex.org/area")
    assert gq.min_distance == 10.0 and gq.geoproperty == "https://ex.org/area"


@pytest.mark.parametrize(
    ("georel", "geometry", "coords", "message"),
    [
        ("near", "Point", "[1,2]", "exactly one of maxDistance"),
        ("near;maxDistance==-1", "Point", "[1,2]", "non-negative"),
        ("near;maxDistance==abc", "Point", "[1,2]", "non-negative"),
        ("near;maxDistance==1;minDistance==2", "Point", "[1,2]", "exactly one"),
        ("within;maxDistance==1", "Polygon", SQUARE, "only near takes"),
        ("close", "Point", "[1,2]", "unknown relation"),
        ("within", "Point", "[1,2]", "Polygon or MultiPolygon"),
        ("intersects", "Circle", "[1,2]", "is not one of"),
        ("intersects", "Point", "[1,2", "not a JSON array"),
        ("intersects", "Point", "[181,2]", "longitude 181"),
        ("intersects", "Point", "[1,-91]", "latitude -91"),
        ("intersects", "Point", "[1]", "[longitude, latitude]"),
        ("intersects", "Point", '[1,"2"]', "finite numbers"),
        ("intersects", "Point", "[1,NaN]", "finite numbers"),
        ("intersects", "LineString", "[[1,2]]", "at least 2"),
        ("intersects", "Polygon", "[[[0,0],[1,0],[1,1],[0,0.5]]]", "closed"),
        ("intersects", "Polygon", "[[[0,0],[1,0],[0,0]]]", "at least 4"),
    ],
)
def test_bad_geo_queries(georel: str, geometry: str, coords: object, message: str) -> None:
    with pytest.raises(BadRequestData, match=message):
        parse_geo_query(georel, geometry, coords, None)  # type: ignore[arg-type]


def test_validate_geometry_names_where() -> None:
    validate_geometry({"type": "MultiPolygon", "coordinates": [SQUARE]}, "location")
    validate_geometry({"type": "GeometryCollection", "geometries": [point(1, 2)]}, "location")
    with pytest.raises(BadRequestData, match="attrs.location: unknown geometry type"):
        validate_geometry({"type": "Circle", "coordinates": [1, 2]}, "attrs.location")
    with pytest.raises(BadRequestData, match="location: the geometry has no"):
        validate_geometry({"type": "Point"}, "location")
    with pytest.raises(BadRequestData, match="location: a position"):
        validate_geometry({"type": "MultiLineString", "coordinates": [[[1, 2], 3]]}, "location")


def test_bboxes() -> None:
    assert geometry_bbox({"type": "Polygon", "coordinates": SQUARE}) == (
        104.91,
        11.56,
        104.93,
        11.58,
    )
    assert query_bbox(parse_geo_query("within", "Polygon", SQUARE, None)) == (
        104.91,
        11.56,
        104.93,
        11.58,
    )
    assert query_bbox(parse_geo_query("disjoint", "Polygon", SQUARE, None)) is None
    assert query_bbox(parse_geo_query("near;minDistance==5", "Point", WAT_PHNOM, None)) is None
    box = query_bbox(parse_geo_query("near;maxDistance==1000", "Point", WAT_PHNOM, None))
    assert box is not None
    assert box[0] < WAT_PHNOM[0] < box[2] and box[1] < WAT_PHNOM[1] < box[3]
    # 1 km is ~0.009 degrees of latitude; longitude degrees are shorter at 11.6 N
    assert 0.0089 < WAT_PHNOM[1] - box[1] < 0.0092
    assert WAT_PHNOM[0] - box[0] > WAT_PHNOM[1] - box[1]
    polar = query_bbox(parse_geo_query("near;maxDistance==50000", "Point", [10, 89.9], None))
    assert polar is not None and polar[0] == -180.0 and polar[2] == 180.0


@settings(max_examples=300, deadline=None)
@given(
    lat=st.floats(-80, 80),
    lon=st.floats(-170, 170),
    dist=st.floats(1, 100_000),
    bearing=st.floats(0, 2 * math.pi),
    frac=st.floats(0, 0.999),
)
def test_near_box_contains_every_point_within_distance(
    lat: float, lon: float, dist: float, bearing: float, frac: float
) -> None:
    gq = parse_geo_query(f"near;maxDistance=={dist}", "Point", [lon, lat], None)
    box = query_bbox(gq)
    assert box is not None
    # a point at frac*dist along a great circle from the centre
    d = frac * dist / 6_371_008.8
    p1, l1 = math.radians(lat), math.radians(lon)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(bearing))
    l2 = l1 + math.atan2(
        math.sin(bearing) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2)
    )
    plon, plat = math.degrees(l2), math.degrees(p2)
    assert haversine_m(lon, lat, plon, plat) <= dist
    assert geo_match(point(plon, plat), gq)
    assert box[0] <= plon <= box[2] and box[1] <= plat <= box[3]


def test_near_distances() -> None:
    # Wat Phnom to a point near the Central Market: about 750 m
    market = point(104.9206, 11.5697)
    d = haversine_m(*WAT_PHNOM, 104.9206, 11.5697)
    assert 700 < d < 800
    assert geo_match(market, parse_geo_query("near;maxDistance==800", "Point", WAT_PHNOM, None))
    assert not geo_match(market, parse_geo_query("near;maxDistance==700", "Point", WAT_PHNOM, None))
    assert geo_match(market, parse_geo_query("near;minDistance==700", "Point", WAT_PHNOM, None))
    assert not geo_match(market, parse_geo_query("near;minDistance==800", "Point", WAT_PHNOM, None))
    # distance to a polygon is to its edge, zero inside
    inside = parse_geo_query("near;maxDistance==0", "Polygon", SQUARE, None)
    assert geo_match(point(104.92, 11.57), inside)
    edge = parse_geo_query("near;maxDistance==1200", "Polygon", SQUARE, None)
    assert geo_match(point(104.94, 11.57), edge)  # ~1.09 km east of the square
    assert not geo_match(point(104.95, 11.57), edge)


def test_relations_read_entity_relation_query() -> None:
    within = parse_geo_query("within", "Polygon", SQUARE, None)
    assert geo_match(point(104.92, 11.57), within)
    assert not geo_match(point(104.95, 11.57), within)
    big = {
        "type": "Polygon",
        "coordinates": [[[104.9, 11.5], [105, 11.5], [105, 11.6], [104.9, 11.6], [104.9, 11.5]]],
    }
    contains = parse_geo_query("contains", "Point", [104.92, 11.57], None)
    assert geo_match(big, contains)
    assert not geo_match(point(104.92, 11.57), parse_geo_query("contains", "Polygon", SQUARE, None))
    line = {"type": "LineString", "coordinates": [[104.90, 11.57], [104.95, 11.57]]}
    assert geo_match(line, parse_geo_query("intersects", "Polygon", SQUARE, None))
    assert not geo_match(line, parse_geo_query("disjoint", "Polygon", SQUARE, None))
    assert geo_match(point(0, 0), parse_geo_query("disjoint", "Polygon", SQUARE, None))
    shifted = {
        "type": "Polygon",
        "coordinates": [
            [[104.92, 11.57], [104.94, 11.57], [104.94, 11.59], [104.92, 11.59], [104.92, 11.57]]
        ],
    }
    assert geo_match(shifted, parse_geo_query("overlaps", "Polygon", SQUARE, None))
    assert not geo_match(big, parse_geo_query("overlaps", "Polygon", SQUARE, None))
    same = {"type": "Polygon", "coordinates": [list(reversed(SQUARE[0]))]}
    assert geo_match(same, parse_geo_query("equals", "Polygon", SQUARE, None))
    assert not geo_match(big, parse_geo_query("equals", "Polygon", SQUARE, None))
    assert not geo_match({"type": "Point", "coordinates": []}, within)


def test_self_intersecting_query_polygon_is_made_valid() -> None:
    """A bowtie is taken as its two lobes (as a stored one is), not refused."""
    bowtie = "[[[0,0],[1,1],[1,0],[0,1],[0,0]]]"
    gq = parse_geo_query("within", "Polygon", bowtie, None)
    assert geo_match({"type": "Point", "coordinates": [0.1, 0.5]}, gq)
    assert not geo_match({"type": "Point", "coordinates": [0.5, 0.9]}, gq)
    same = parse_geo_query("equals", "Polygon", bowtie, None)
    assert geo_match({"type": "Polygon", "coordinates": json.loads(bowtie)}, same)
