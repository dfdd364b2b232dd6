"""The reference evaluator: q semantics over stored-form entities, types, scopes, whole queries."""

from __future__ import annotations

from typing import Any

import pytest

from cityos.hub.model import LOCATION
from cityos.hub.query.evaluate import match_q, match_query, match_scope, match_types
from cityos.hub.query.geo import parse_geo_query
from cityos.hub.query.model import EntityQuery
from cityos.hub.query.q import expand_q, parse_q, parse_scope_q, parse_type_expr

NS = "https://ex.org/"

BUS: dict[str, Any] = {
    "id": "urn:ngsi-ld:Bus:b1",
    "type": [NS + "Bus", NS + "Vehicle"],
    "scope": ["/KH/PhnomPenh/DaunPenh"],
    "createdAt": "2026-01-01T00:00:00.000000Z",
    "attrs": {
        NS + "speed": [
            {
                "type": "Property",
                "value": 42,
                "unitCode": "KMH",
                "observedAt": "2026-01-01T10:00:00.000000Z",
                NS + "accuracy": {"type": "Property", "value": 0.5},
            },
            {"type": "Property", "value": 80, "datasetId": "urn:ds:gps"},
        ],
        NS + "name": [{"type": "Property", "value": "Line 3"}],
        NS + "electric": [{"type": "Property", "value": True}],
        NS + "route": [{"type": "Relationship", "object": ["urn:r:1", "urn:r:2"]}],
        NS + "label": [{"type": "LanguageProperty", "languageMap": {"en": "Bus", "km": "ឡានក្រុង"}}],
        NS + "stops": [{"type": "ListProperty", "valueList": [3, 5, 8]}],
        NS + "address": [
            {"type": "Property", "value": {"city": "Phnom Penh", "geo": {"zip": 12202}}}
        ],
        LOCATION: [
            {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [104.92, 11.57]}}
        ],
    },
}


def q(text: str) -> bool:
    return match_q(BUS, expand_q(parse_q(text), lambda t: t if ":" in t else NS + t))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("speed==42", True),
        ("speed==80", True),  # any instance, including a non-default datasetId
        ("speed>90", False),
        ("speed==40..45", True),
        ("speed==43..79", False),
        ("speed!=42", False),  # one instance equals 42
        ("speed!=1,2", True),
        ("speed!=43..79", True),
        ('speed=="42"', False),  # strings never equal numbers
        ("name!=42", True),  # exists and does not equal
        ("missing!=42", False),
        ('name=="Line 3"', True),
        ("name~=^Line", True),
        ("name!~=^Line", False),
        ('name>"L"', True),
        ("name>5", False),
        ("electric==true", True),
        ("electric==1", False),
        ("route==urn:r:2", True),
        ("route==urn:r:3", False),
        ('label=="Bus"', True),
        ("label~=ឡាន", True),
        ("stops==5", True),
        ("stops>8", False),
        ('address[city]=="Phnom Penh"', True),
        ("address[geo.zip]==12202", True),
        ("address[geo][zip]>12203", False),
        ('address=="Phnom Penh"', False),  # compound values need a path
        ("address[city]", True),
        ("address[country]", False),
        ('speed.unitCode=="KMH"', True),
        ("speed.observedAt>=2026-01-01T10:00:00Z", True),
        ("speed.observedAt>2026-01-01T10:00:00Z", False),
        ("speed.datasetId==urn:ds:gps", True),
        ("speed.accuracy<1", True),
        ("speed.accuracy", True),
        ("name.accuracy", False),
        ("speed.observedAt.x", False),
        ("!missing", True),
        ("!speed", False),
        ("speed>50;name~=Line", True),
        ("speed>90;name~=Line", False),
        ("speed>90|name~=Line", True),
        ("(speed>90|electric==false);name", False),
    ],
)
def test_q_semantics(text: str, expected: bool) -> None:
    assert q(text) is expected


def test_types_and_scopes() -> None:
    def t(text: str) -> bool:
        return match_types(BUS, parse_type_expr(text))

    assert t(NS + "Bus") and t(f"{NS}Car,{NS}Bus") and t(f"{NS}Bus;{NS}Vehicle")
    assert not t(f"{NS}Bus;{NS}Car") and not t(NS + "Car")

    def s(text: str) -> bool:
        return match_scope(BUS, parse_scope_q(text))

    assert s("/KH/PhnomPenh/DaunPenh") and s("/KH/#") and s("/KH/+/DaunPenh") and s("/#")
    assert s("/KH/PhnomPenh/DaunPenh/#")  # a subtree includes its root
    assert not s("/KH") and not s("/KH/+") and not s("/TH/#") and not s("/KH/Phnom/#")
    assert not match_scope({"id": "x", "attrs": {}}, parse_scope_q("/#"))


def test_match_query_combines_every_filter() -> None:
    near = parse_geo_query("near;maxDistance==500", "Point", "[104.921,11.571]", None)
    far = parse_geo_query("near;maxDistance==50", "Point", "[104.93,11.58]", None)
    assert match_query(BUS, EntityQuery())
    assert match_query(
        BUS,
        EntityQuery(
            types=parse_type_expr(NS + "Bus"),
            ids=[BUS["id"]],
            id_pattern=r"urn:ngsi-ld:Bus:.*",
            attrs=[NS + "nothing", NS + "speed"],
            q=parse_q(f"{NS}speed>50"),
            scope=parse_scope_q("/KH/#"),
            geo=near,
        ),
    )
    assert not match_query(BUS, EntityQuery(ids=["urn:other"]))
    assert not match_query(BUS, EntityQuery(id_pattern="urn:ngsi-ld:Bus"))  # full match
    assert not match_query(BUS, EntityQuery(attrs=[NS + "nothing"]))
    assert not match_query(BUS, EntityQuery(geo=far))
    assert not match_query(BUS, EntityQuery(scope=parse_scope_q("/TH")))
    other_prop = parse_geo_query("near;maxDistance==500", "Point", "[104.921,11.571]", NS + "area")
    assert not match_query(BUS, EntityQuery(geo=other_prop))
