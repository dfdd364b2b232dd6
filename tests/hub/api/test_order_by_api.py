"""orderBy (NGSI-LD v1.9.1 clause 4.23) on the entity and temporal queries, both engines.

The entities are created out of id order (2, 1, 3), with names and sub-properties that
sort like the ids, so every criterion gives an order that insertion order does not.
"""

from __future__ import annotations

import pytest

BASE = "/ngsi-ld/v1"
IDS = [f"urn:ngsi-ld:Building:{n}" for n in (1, 2, 3)]
ASC, DESC, CREATED = IDS, IDS[::-1], [IDS[1], IDS[0], IDS[2]]
ANY_TIME = {"timerel": "after", "timeAt": "1970-01-01T00:00:00Z", "timeproperty": "createdAt"}


def building(n: int, name: object, sub: int) -> dict[str, object]:
    return {
        "id": f"urn:ngsi-ld:Building:{n}",
        "type": "Building",
        "name": {
            "type": "Property",
            "value": name,
            "subProperty": {"type": "Property", "value": sub},
        },
    }


@pytest.fixture
def buildings(client):
    for n, name in ((2, "B"), (1, "A"), (3, "C")):
        assert client.post(f"{BASE}/entities", json=building(n, name, n)).status_code == 201
    return client


def ids(r) -> list[str]:
    assert r.status_code == 200, r.text
    return [e["id"] for e in r.json()]


CASES = [
    ("name", ASC),
    ("id", ASC),
    ("id;desc", DESC),
    ("createdAt", CREATED),
    ("name.createdAt", CREATED),
    ("name.subProperty", ASC),
    ("name;asc", ASC),
    ("name;desc", DESC),
    ("type,name", ASC),
    ("type;asc,name.subProperty;desc,name;asc", DESC),
]


@pytest.mark.parametrize(("order_by", "expected"), CASES)
def test_query_entities_order_by(buildings, order_by: str, expected: list[str]) -> None:
    r = buildings.get(f"{BASE}/entities", params={"type": "Building", "orderBy": order_by})
    assert ids(r) == expected


@pytest.mark.parametrize(("order_by", "expected"), CASES)
def test_query_temporal_order_by(buildings, order_by: str, expected: list[str]) -> None:
    params = {"type": "Building", "orderBy": order_by, **ANY_TIME}
    assert ids(buildings.get(f"{BASE}/temporal/entities", params=params)) == expected


def test_post_queries_take_order_by_from_the_url(buildings) -> None:
    body = {"type": "Query", "entities": [{"type": "Building"}]}
    r = buildings.post(f"{BASE}/entityOperations/query?orderBy=name;desc", json=body)
    assert ids(r) == DESC
    body["temporalQ"] = ANY_TIME
    r = buildings.post(f"{BASE}/temporal/entityOperations/query?orderBy=name;desc", json=body)
    assert ids(r) == DESC


def test_paging_follows_the_order(buildings) -> None:
    pages = [
        ids(
            buildings.get(
                f"{BASE}/entities",
                params={"type": "Building", "orderBy": "name;desc", "limit": 1, "offset": k},
            )
        )
        for k in range(3)
    ]
    assert pages == [[i] for i in DESC]


def test_missing_values_sort_last_and_numbers_before_strings(client) -> None:
    for n, name in ((1, "A"), (2, 10), (3, 2)):
        assert client.post(f"{BASE}/entities", json=building(n, name, n)).status_code == 201
    bare = {"id": "urn:ngsi-ld:Building:0", "type": "Building"}
    assert client.post(f"{BASE}/entities", json=bare).status_code == 201
    want = ["urn:ngsi-ld:Building:3", "urn:ngsi-ld:Building:2", "urn:ngsi-ld:Building:1"]
    r = client.get(f"{BASE}/entities", params={"type": "Building", "orderBy": "name"})
    assert ids(r) == [*want, "urn:ngsi-ld:Building:0"]
    r = client.get(f"{BASE}/entities", params={"type": "Building", "orderBy": "name;desc"})
    assert ids(r) == [*want[::-1], "urn:ngsi-ld:Building:0"]  # the reverse, missing still last


@pytest.mark.parametrize(
    "bad", ["", "name;up", "name;", ",name", "name,,id", "a==1", "name;asc;desc"]
)
def test_malformed_order_by_is_bad_request(buildings, bad: str) -> None:
    r = buildings.get(f"{BASE}/entities", params={"type": "Building", "orderBy": bad})
    assert r.status_code == 400, (bad, r.text)
    assert r.json()["type"].endswith("BadRequestData")
    params = {"type": "Building", "orderBy": bad, **ANY_TIME}
    assert buildings.get(f"{BASE}/temporal/entities", params=params).status_code == 400
