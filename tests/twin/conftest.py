"""Shape checks shared by the twin tests: what "valid normalized NGSI-LD" means here.

Offered as fixtures because the suite imports test modules with ``importlib`` (no sys.path
entry for this folder).
"""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from shapely.geometry import shape

from cityos.hub.model import ATTRIBUTE_TYPES
from cityos.twin.context import CORE_TERMS, DISTRICT_TERMS

URN = re.compile(r"^urn:ngsi-ld:([A-Za-z]+):[A-Za-z0-9._-]+$")


def positions(geometry: dict) -> list[list[float]]:
    """Every [lon, lat] of a Point, LineString or Polygon."""
    coords = geometry["coordinates"]
    if geometry["type"] == "Point":
        return [coords]
    if geometry["type"] == "LineString":
        return coords
    if geometry["type"] == "Polygon":
        return [p for ring in coords for p in ring]
    raise AssertionError(f"unexpected geometry type {geometry['type']}")


def check_geometry(geometry: dict, bbox: tuple[float, float, float, float], where: str) -> None:
    for lon, lat in positions(geometry):
        assert bbox[0] <= lon <= bbox[2] and bbox[1] <= lat <= bbox[3], f"{where}: {lon},{lat}"
    if geometry["type"] == "Polygon":
        for ring in geometry["coordinates"]:
            assert len(ring) >= 4, f"{where}: ring has {len(ring)} positions"
            assert ring[0] == ring[-1], f"{where}: ring not closed"
    assert shape(geometry).is_valid, f"{where}: invalid geometry"


def check_timestamp(text: str, where: str) -> None:
    assert text.endswith("Z"), f"{where}: {text} is not UTC"
    datetime.fromisoformat(text.replace("Z", "+00:00"))


def check_attribute(name: str, attr: dict, bbox, where: str) -> None:
    assert name in DISTRICT_TERMS or name in CORE_TERMS, f"{where}: term {name} not in context"
    assert isinstance(attr, dict) and attr.get("type") in ATTRIBUTE_TYPES, f"{where}.{name}"
    if attr["type"] == "Property":
        assert "value" in attr and attr["value"] is not None, f"{where}.{name} has no value"
    elif attr["type"] == "Relationship":
        targets = attr["object"] if isinstance(attr["object"], list) else [attr["object"]]
        assert targets and all(URN.match(t) for t in targets), f"{where}.{name}: {targets}"
    elif attr["type"] == "GeoProperty":
        check_geometry(attr["value"], bbox, f"{where}.{name}")
    if "observedAt" in attr:
        check_timestamp(attr["observedAt"], f"{where}.{name}.observedAt")
    if "unitCode" in attr:
        assert isinstance(attr["unitCode"], str) and attr["unitCode"].isupper()


def check_entity(entity: dict, bbox) -> None:
    match = URN.match(entity["id"])
    assert match, f"bad id {entity['id']}"
    assert match.group(1) == entity["type"], f"{entity['id']}: id type != {entity['type']}"
    assert entity["type"] in DISTRICT_TERMS, f"type {entity['type']} not in context"
    assert "@context" not in entity
    if entity["type"] not in ("Road", "GtfsAgency"):
        assert "location" in entity, f"{entity['id']} has no location"
    for name, attr in entity.items():
        if name not in ("id", "type"):
            check_attribute(name, attr, bbox, entity["id"])


@pytest.fixture(name="check_entity")
def _check_entity_fixture():
    return check_entity


@pytest.fixture(name="check_attribute")
def _check_attribute_fixture():
    return check_attribute
