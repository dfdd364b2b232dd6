"""The sample district: valid normalized NGSI-LD, inside Daun Penh, deterministic, linked."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from statistics import mean

import pytest
from shapely.geometry import Point, shape

from cityos.twin import DISTRICT_BBOX, count_by_type, generate_district
from cityos.twin.geo import CENTRAL_MARKET, WAT_PHNOM, distance_m


@pytest.fixture(scope="module")
def district() -> list[dict]:
    return generate_district(seed=0)


def by_type(entities: list[dict], entity_type: str) -> list[dict]:
    return [e for e in entities if e["type"] == entity_type]


def test_default_district_has_the_planned_mix(district):
    counts = count_by_type(district)
    assert counts == {
        "Road": 15,
        "RoadSegment": 33,
        "GtfsAgency": 1,
        "GtfsStop": 12,
        "PointOfInterest": 2,
        "Building": 60,
        "ACMeasurement": 60,
        "TrafficFlowObserved": 40,
        "AirQualityObserved": 6,
    }


def test_every_entity_is_normalized_ngsi_ld_inside_the_district(district, check_entity):
    for entity in district:
        check_entity(entity, DISTRICT_BBOX)


def test_ids_are_unique_and_relationships_resolve(district):
    ids = [e["id"] for e in district]
    assert len(ids) == len(set(ids))
    known = set(ids)
    for e in district:
        for name, attr in e.items():
            if isinstance(attr, dict) and attr.get("type") == "Relationship":
                targets = attr["object"] if isinstance(attr["object"], list) else [attr["object"]]
                assert set(targets) <= known, f"{e['id']}.{name} -> {targets}"


def test_every_building_has_exactly_one_meter(district):
    metered = [m["refBuilding"]["object"] for m in by_type(district, "ACMeasurement")]
    assert sorted(metered) == sorted(b["id"] for b in by_type(district, "Building"))


def test_buildings_do_not_overlap(district):
    shapes = [shape(b["location"]["value"]) for b in by_type(district, "Building")]
    for i, a in enumerate(shapes):
        for b in shapes[i + 1 :]:
            assert a.intersection(b).area < 1e-12


def test_landmarks_are_where_they_are(district):
    pois = {e["id"]: e for e in by_type(district, "PointOfInterest")}
    wat = pois["urn:ngsi-ld:PointOfInterest:wat-phnom"]["location"]["value"]["coordinates"]
    assert distance_m(tuple(wat), WAT_PHNOM) < 1
    market = next(b for b in by_type(district, "Building") if b["id"].endswith(":central-market"))
    assert shape(market["location"]["value"]).contains(Point(CENTRAL_MARKET))
    streets = {e["name"]["value"] for e in by_type(district, "Road")}
    assert {"Norodom Blvd", "Monivong Blvd", "Sisowath Quay", "Street 108", "Street 130"} <= streets


def test_traffic_sensors_point_at_segments_and_carry_readings(district):
    segments = {e["id"]: e for e in by_type(district, "RoadSegment")}
    for tfo in by_type(district, "TrafficFlowObserved"):
        segment = segments[tfo["refRoadSegment"]["object"]]
        assert tfo["laneDirection"]["value"] in segment["laneUsage"]["value"]
        assert 0 <= tfo["intensity"]["value"] <= 900 * segment["totalLaneNumber"]["value"]
        assert 0 <= tfo["occupancy"]["value"] <= 1
        assert tfo["intensity"]["observedAt"] == tfo["dateObserved"]["value"]


def test_same_seed_same_district_other_seed_other_district():
    a = json.dumps(generate_district(seed=7))
    assert a == json.dumps(generate_district(seed=7))
    assert a != json.dumps(generate_district(seed=8))


def test_scale_multiplies_sensors_and_buildings_within_the_same_streets(check_entity):
    big = generate_district(seed=1, scale=3)
    counts = count_by_type(big)
    assert counts["RoadSegment"] == 33
    assert counts["TrafficFlowObserved"] == 120
    assert counts["Building"] == counts["ACMeasurement"] == 180
    assert counts["GtfsStop"] == 36 and counts["AirQualityObserved"] == 18
    assert len({e["id"] for e in big}) == len(big)
    for entity in big:
        check_entity(entity, DISTRICT_BBOX)


@pytest.mark.parametrize("scale", [0, -1, 1.5])
def test_bad_scale_is_refused(scale):
    with pytest.raises(ValueError, match="scale"):
        generate_district(scale=scale)


def test_snapshot_time_shows_in_readings():
    def local(hour: int) -> datetime:
        return datetime(2026, 11, 30, hour, tzinfo=UTC) - timedelta(hours=7)

    peak, night = generate_district(at=local(8)), generate_district(at=local(3))
    flow = {
        name: mean(e["intensity"]["value"] for e in by_type(d, "TrafficFlowObserved"))
        for name, d in (("peak", peak), ("night", night))
    }
    assert flow["peak"] > 4 * flow["night"]
    pm25 = {
        name: mean(e["pm25"]["value"] for e in by_type(d, "AirQualityObserved"))
        for name, d in (("peak", peak), ("night", night))
    }
    assert pm25["peak"] > pm25["night"]
    assert by_type(peak, "AirQualityObserved")[0]["dateObserved"]["value"] == (
        "2026-11-30T01:00:00.000000Z"
    )


def test_the_shape_checks_catch_broken_entities(district, check_entity):
    """The checks above would fail on a broken entity (so passing them means something)."""
    building = json.loads(json.dumps(by_type(district, "Building")[0]))
    building["location"]["value"]["coordinates"][0].pop()
    with pytest.raises(AssertionError, match="not closed"):
        check_entity(building, DISTRICT_BBOX)
    stop = json.loads(json.dumps(by_type(district, "GtfsStop")[0]))
    stop["location"]["value"]["coordinates"] = [104.95, 11.57]
    with pytest.raises(AssertionError, match="104.95"):
        check_entity(stop, DISTRICT_BBOX)
    stop = json.loads(json.dumps(by_type(district, "GtfsStop")[0]))
    stop["operatedBy"] = {"type": "Relationship", "object": "not a urn"}
    with pytest.raises(AssertionError, match="operatedBy"):
        check_entity(stop, DISTRICT_BBOX)
