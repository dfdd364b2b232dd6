"""The bulk generator: n entities, unique ids, valid shapes, predictable selectivity."""

from __future__ import annotations

import itertools
import json
from collections import Counter

import pytest

from cityos.twin import BULK_BBOX, bulk_box, generate_bulk


def first_position(entity: dict) -> list[float]:
    geometry = entity["location"]["value"]
    coords = geometry["coordinates"]
    if geometry["type"] == "Point":
        return coords
    return coords[0] if geometry["type"] == "LineString" else coords[0][0]


@pytest.fixture(scope="module")
def sample() -> list[dict]:
    return list(generate_bulk(20_000, seed=3))


def test_yields_exactly_n_entities_with_unique_ids(sample):
    assert len(sample) == 20_000
    assert len({e["id"] for e in sample}) == 20_000
    assert list(generate_bulk(0)) == []


def test_is_lazy_and_deterministic():
    gen = generate_bulk(10**9, seed=5)  # a generator: nothing is built up front
    head = list(itertools.islice(gen, 50))
    assert json.dumps(head) == json.dumps(list(generate_bulk(50, seed=5)))
    assert json.dumps(head) != json.dumps(list(generate_bulk(50, seed=6)))


def test_negative_n_is_refused():
    with pytest.raises(ValueError, match="n must be"):
        list(generate_bulk(-1))


def test_entities_are_valid_and_inside_the_bulk_area(sample, check_entity):
    for entity in sample[:3000]:
        check_entity(entity, BULK_BBOX)


def test_type_mix_and_query_selectivity(sample):
    counts = Counter(e["type"] for e in sample)
    assert set(counts) == {
        "TrafficFlowObserved",
        "ACMeasurement",
        "Building",
        "AirQualityObserved",
        "GtfsStop",
        "RoadSegment",
    }
    assert 0.37 < counts["TrafficFlowObserved"] / len(sample) < 0.43
    busy = [e for e in sample if "intensity" in e and e["intensity"]["value"] > 500]
    assert 0.02 < len(busy) / len(sample) < 0.07


def test_a_2km_box_holds_about_one_percent(sample):
    box = bulk_box(2.0)
    inside = [
        e
        for e in sample
        if box[0] <= first_position(e)[0] <= box[2] and box[1] <= first_position(e)[1] <= box[3]
    ]
    assert 0.005 < len(inside) / len(sample) < 0.02
