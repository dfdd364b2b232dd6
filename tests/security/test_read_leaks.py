"""Reading what a role may not read (issue 11), on SQLite and PostgreSQL: every filter on an
attribute behaves, entity by entity, as if the attributes the caller may not read on that
entity's types did not exist.

The probe: two cameras identical but for a hidden attribute (its value, its observedAt, its
location, or whether it is there at all). For a role that may not read it, no query tells
them apart — not the ids, not the count — while a role that may read it is told apart by
the same query. The parkings have the same attributes, readable by the same role: its
filters on them still work (nothing is hidden too much).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.testclient import TestClient

from cityos.hub.core import Hub

BASE = "/ngsi-ld/v1"
CAM1, CAM2 = "urn:ngsi-ld:Camera:1", "urn:ngsi-ld:Camera:2"
PARK1, PARK2 = "urn:ngsi-ld:Parking:1", "urn:ngsi-ld:Parking:2"
ALL = ["read", "aggregate", "write", "delete", "subscribe", "administer"]
RULES: dict[str, Any] = {
    "roles": {
        "full": [{"actions": ALL}],
        # parkings in full; cameras without secret, plate, location (named types)
        "mixed": [
            {"types": ["Parking"], "actions": ["read", "subscribe", "aggregate"]},
            {
                "types": ["Camera"],
                "attrs": ["name", "status"],
                "actions": ["read", "subscribe", "aggregate"],
            },
        ],
        # every type with name and status; parkings in full (an all-types view)
        "wide": [
            {"attrs": ["name", "status"], "actions": ["read", "subscribe"]},
            {"types": ["Parking"], "actions": ["read", "subscribe"]},
        ],
        "aggregator": [{"types": ["Camera", "Parking"], "actions": ["aggregate"]}],
        "parker": [{"types": ["Parking"], "actions": ["read"]}],
    }
}
RESTRICTED = ("mixed", "wide")
HERE, THERE = [104.90, 11.50], [104.95, 11.55]
VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"


def prop(value: Any, observed: str | None = None) -> dict[str, Any]:
    out = {"type": "Property", "value": value}
    if observed:
        out["observedAt"] = observed
    return out


def thing(eid: str, secret: str, where: list[float], observed: str) -> dict[str, Any]:
    return {
        "id": eid,
        "type": eid.split(":")[2],
        "name": prop("same"),
        "status": prop("on"),
        "secret": prop(secret, observed),
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": where}},
    }


def entities() -> list[dict[str, Any]]:
    cam1 = {**thing(CAM1, "a", HERE, "2024-01-01T00:00:00Z"), "plate": prop("ABC-123")}
    cam2 = thing(CAM2, "b", THERE, "2024-06-01T00:00:00Z")
    park1 = {**thing(PARK1, "a", HERE, "2024-01-01T00:00:00Z"), "plate": prop("ABC-123")}
    for cam in (cam1, cam2):
        cam["serial"] = prop("S-1")  # only cameras have it: "mixed" may read it nowhere
    return [
        cam1,
        cam2,
        park1,
        thing(PARK2, "b", THERE, "2024-06-01T00:00:00Z"),
    ]


@pytest.fixture
def probe(secured) -> tuple[TestClient, dict[str, dict[str, str]], Hub]:
    city = secured(RULES, detect=False)
    client, hub = city.client, city.hub
    keys = {role: city.key(role) for role in RULES["roles"]}
    for e in entities():
        r = client.post(f"{BASE}/entities", json=e, headers=keys["full"])
        assert r.status_code == 201, r.text
    return client, keys, hub


def found(r: Any) -> tuple[set[str], int | None]:
    assert r.status_code == 200, r.text
    count = r.headers.get("NGSILD-Results-Count")
    return {e["id"] for e in r.json()}, None if count is None else int(count)


def told_apart(answer: tuple[set[str], int | None], a: str, b: str) -> bool:
    ids, count = answer
    assert count is None or count == len(ids)  # the count is the database's, over the same
    return (a in ids) != (b in ids)


def check(ask: Any) -> None:
    """``ask(role)`` answers (ids, count): the cameras are told apart only by the role that
    may read their hidden attributes; the parkings by every role that may read them."""
    assert told_apart(ask("full"), CAM1, CAM2)
    assert told_apart(ask("full"), PARK1, PARK2)
    for role in RESTRICTED:
        answer = ask(role)
        assert not told_apart(answer, CAM1, CAM2), (role, answer)
        assert told_apart(answer, PARK1, PARK2), (role, answer)


NEAR = {"georel": "near;maxDistance==2000", "geometry": "Point", "coordinates": json.dumps(HERE)}
BOX = [[[104.89, 11.49], [104.91, 11.49], [104.91, 11.51], [104.89, 11.51], [104.89, 11.49]]]
WITHIN = {"georel": "within", "geometry": "Polygon", "coordinates": json.dumps(BOX)}
FILTERS: list[dict[str, str]] = [
    {"q": 'secret=="a"'},
    {"q": 'secret!="b"'},
    {"q": "secret~=^a"},
    {"q": "secret.observedAt<2024-03-01T00:00:00Z"},
    {"q": 'name=="same";secret=="a"'},
    {"q": 'secret=="a"|status=="off"'},
    {"q": "plate"},
    {"q": "!plate"},
    {"q": "!plate;name"},
    {"attrs": "plate"},
    {"attrs": "plate,nothing", "q": "name"},
    NEAR,
    {**NEAR, "geoproperty": "location"},
    WITHIN,
    {**WITHIN, "q": "name"},
]


@pytest.mark.parametrize(
    "params", FILTERS, ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items())
)
def test_get_entities_filters_do_not_see_hidden_attributes(probe, params) -> None:
    client, keys, _ = probe

    def ask(role: str) -> tuple[set[str], int | None]:
        query = {**params, "count": "true", "limit": "100"}
        return found(client.get(f"{BASE}/entities", params=query, headers=keys[role]))

    check(ask)


def test_a_type_filter_does_not_change_it(probe) -> None:
    client, keys, _ = probe
    for params in ({"q": 'secret=="a"'}, {"attrs": "plate"}, NEAR):
        for role in RESTRICTED:
            query = {**params, "type": "Camera", "count": "true"}
            r = client.get(f"{BASE}/entities", params=query, headers=keys[role])
            assert found(r) == (set(), 0), (role, params)
        r = client.get(
            f"{BASE}/entities", params={**params, "type": "Camera"}, headers=keys["full"]
        )
        assert {e["id"] for e in r.json()} == {CAM1}


def _batch_body(params: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "Query"}
    if "q" in params:
        body["q"] = params["q"]
    if "attrs" in params:
        body["attrs"] = params["attrs"].split(",")
    if "georel" in params:
        body["geoQ"] = {
            "georel": params["georel"],
            "geometry": params["geometry"],
            "coordinates": json.loads(params["coordinates"]),
            **({"geoproperty": params["geoproperty"]} if "geoproperty" in params else {}),
        }
    return body


@pytest.mark.parametrize(
    "params", FILTERS, ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items())
)
def test_post_query_filters_do_not_see_hidden_attributes(probe, params) -> None:
    client, keys, _ = probe

    def ask(role: str) -> tuple[set[str], int | None]:
        url = f"{BASE}/entityOperations/query?count=true&limit=100"
        return found(client.post(url, json=_batch_body(params), headers=keys[role]))

    check(ask)


@pytest.mark.parametrize("params", FILTERS[:4] + [{"q": "plate"}, NEAR])
def test_temporal_query_filters_do_not_see_hidden_attributes(probe, params) -> None:
    client, keys, _ = probe

    def ask(role: str) -> tuple[set[str], int | None]:
        query = {**params, "count": "true", "limit": "100"}
        return found(client.get(f"{BASE}/temporal/entities", params=query, headers=keys[role]))

    check(ask)


def test_type_and_attribute_listings_show_only_what_the_role_may_read(probe) -> None:
    client, keys, _ = probe

    def get(path: str, role: str, **params: str) -> Any:
        return client.get(f"{BASE}{path}", params=params, headers=keys[role])

    assert sorted(get("/types", "full").json()["typeList"]) == ["Camera", "Parking"]
    assert get("/types", "parker").json()["typeList"] == ["Parking"]
    assert get("/types/Camera", "parker").status_code == 404  # as if there were none
    assert get("/types/Parking", "parker").json()["entityCount"] == 2
    details = {
        t["typeName"]: t["attributeNames"] for t in get("/types", "mixed", details="true").json()
    }
    assert details["Camera"] == ["name", "status"]
    assert "secret" in details["Parking"]
    camera = get("/types/Camera", "mixed").json()
    assert [a["attributeName"] for a in camera["attributeDetails"]] == ["name", "status"]
    assert "serial" in get("/attributes", "full").json()["attributeList"]
    assert "serial" not in get("/attributes", "mixed").json()["attributeList"]
    assert get("/attributes/serial", "mixed").status_code == 404
    assert get("/attributes/serial", "full").json()["attributeCount"] == 2
    secret = get("/attributes/secret", "mixed").json()
    assert secret["typeNames"] == ["Parking"] and secret["attributeCount"] == 2
    assert get("/attributes/secret", "full").json()["attributeCount"] == 4
    named = {
        a["attributeName"]: a["typeNames"]
        for a in get("/attributes", "mixed", details="true").json()
    }
    assert named["secret"] == ["Parking"] and named["name"] == ["Camera", "Parking"]


def _subscription(**extra: Any) -> dict[str, Any]:
    return {
        "type": "Subscription",
        "entities": [{"type": "Camera"}],
        "notification": {"endpoint": {"uri": "http://127.0.0.1:9/hook"}},
        **extra,
    }


def test_a_subscription_may_not_match_on_what_any_of_its_types_hides(probe) -> None:
    client, keys, _ = probe
    me = keys["mixed"]
    both = [{"type": "Parking"}, {"type": "Camera"}]
    for sub in (
        _subscription(
            geoQ={"georel": "near;maxDistance==2000", "geometry": "Point", "coordinates": HERE}
        ),
        _subscription(
            geoQ={
                "georel": "within",
                "geometry": "Polygon",
                "coordinates": BOX,
                "geoproperty": "location",
            }
        ),
        _subscription(entities=both, q='secret=="a"'),  # readable on parkings, not cameras
        _subscription(entities=both, watchedAttributes=["secret"]),
        _subscription(
            entities=both,
            geoQ={"georel": "near;maxDistance==2000", "geometry": "Point", "coordinates": HERE},
        ),
    ):
        r = client.post(f"{BASE}/subscriptions", json=sub, headers=me)
        assert r.status_code == 403, (sub, r.text)
    assert client.get(f"{BASE}/subscriptions", headers=me).json() == []
    parking = _subscription(
        entities=[{"type": "Parking"}],
        q='secret=="a"',
        geoQ={"georel": "near;maxDistance==2000", "geometry": "Point", "coordinates": HERE},
    )
    assert client.post(f"{BASE}/subscriptions", json=parking, headers=me).status_code == 201


def test_a_subscription_is_not_set_off_by_a_hidden_attribute_changing(probe) -> None:
    """Without watchedAttributes a subscription watches everything: a notification when
    only the hidden attribute changed would tell when it changes."""
    from cityos.hub.subscriptions import Matcher

    client, keys, hub = probe
    both = [{"type": "Parking"}, {"type": "Camera"}]
    r = client.post(
        f"{BASE}/subscriptions", json=_subscription(entities=both), headers=keys["mixed"]
    )
    assert r.status_code == 201, r.text
    mine = client.get(r.headers["Location"], headers=keys["mixed"]).json()
    assert mine["watchedAttributes"] == ["name", "status"]  # readable on both types
    assert sorted(mine["notification"]["attributes"]) == ["name", "status"]
    r = client.post(
        f"{BASE}/subscriptions", json=_subscription(entities=both), headers=keys["full"]
    )
    theirs = client.get(r.headers["Location"], headers=keys["full"]).json()
    assert "watchedAttributes" not in theirs
    old = hub.store.get_entity("city", CAM1)
    secret, named = (
        {**old, "attrs": {**old["attrs"], VOCAB + name: [{"type": "Property", "value": "z"}]}}
        for name in ("secret", "name")
    )
    for sub_id, hears_secret in ((mine["id"], False), (theirs["id"], True)):
        matcher = Matcher.compile(hub.store.get_subscription("city", sub_id), hub.contexts)
        assert matcher.matches(old, named)
        assert matcher.matches(old, secret) is hears_secret


def _speeds(client: TestClient, headers: dict[str, str]) -> None:
    """Thirty readings of a camera's speed, one a minute from midnight (values 0..29)."""
    series = [
        {"type": "Property", "value": m, "observedAt": f"2024-01-01T00:{m:02d}:00Z"}
        for m in range(30)
    ]
    url = f"{BASE}/temporal/entities/{CAM1}/attrs"
    assert client.post(url, json={"speed": series}, headers=headers).status_code == 204


def test_aggregates_without_read_give_no_raw_series(probe) -> None:
    client, keys, _ = probe
    _speeds(client, keys["full"])
    url = f"{BASE}/temporal/entities/{CAM1}"
    base = {"aggrMethods": "totalCount,sum", "attrs": "speed"}
    # the full role may read: any period, lastN
    raw = client.get(url, params={**base, "aggrPeriodDuration": "PT1M"}, headers=keys["full"])
    assert raw.status_code == 200 and len(raw.json()["speed"]["sum"]) == 30
    me = keys["aggregator"]
    for refused in (
        {"aggrPeriodDuration": "PT1M"},
        {"aggrPeriodDuration": "PT14M59S"},
        {"aggrPeriodDuration": "PT20M"},  # not on the 15-minute grid
        {},  # one bucket as wide as the client's window
        {"aggrPeriodDuration": "PT15M", "lastN": "1"},
    ):
        r = client.get(url, params={**base, **refused}, headers=me)
        assert r.status_code == 403, (refused, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    detail = client.get(url, params={**base, "aggrPeriodDuration": "PT1M"}, headers=me).json()
    assert "900" in detail["detail"]
    listed = client.get(
        f"{BASE}/temporal/entities",
        params={**base, "type": "Camera", "aggrPeriodDuration": "PT1M"},
        headers=me,
    )
    assert listed.status_code == 403
    # 15-minute buckets on the grid, whatever window is asked: 15 + 15 readings
    for window in (
        {},
        {
            "timerel": "between",
            "timeAt": "2024-01-01T00:07:00Z",
            "endTimeAt": "2024-01-01T00:22:00Z",
        },
    ):
        r = client.get(url, params={**base, "aggrPeriodDuration": "PT15M", **window}, headers=me)
        assert r.status_code == 200, r.text
        counts = r.json()["speed"]["totalCount"]
        assert [c[:2] for c in counts] == [
            [15, "2024-01-01T00:00:00Z"],
            [15, "2024-01-01T00:15:00Z"],
        ]
    hourly = client.get(url, params={**base, "aggrPeriodDuration": "PT1H"}, headers=me).json()
    assert hourly["speed"]["sum"][0][0] == sum(range(30))


def test_renderings_leave_hidden_attributes_out(probe) -> None:
    client, keys, _ = probe
    me = keys["mixed"]
    hidden = {"secret", "plate", "serial", "location"}

    def one(eid: str, role: str = "mixed", accept: str = "application/json", **params: str) -> Any:
        r = client.get(
            f"{BASE}/entities/{eid}", params=params, headers={**keys[role], "Accept": accept}
        )
        assert r.status_code == 200, r.text
        return r.json()

    # attrs naming only a hidden attribute: 404 as for one that does not exist (clause
    # 5.7.1), the same answer whether or not the entity holds it
    answers = [
        client.get(f"{BASE}/entities/{eid}", params={"attrs": "secret"}, headers=me)
        for eid in (CAM1, CAM2)
    ]
    assert [r.status_code for r in answers] == [404, 404]
    assert answers[0].text.replace(CAM1, "X") == answers[1].text.replace(CAM2, "X")
    for params in (
        {"pick": "id,secret,plate"},
        {"options": "keyValues,sysAttrs"},
    ):
        first, second = one(CAM1, **params), one(CAM2, **params)
        assert not hidden & first.keys(), params
        same = {"id": None, "createdAt": None, "modifiedAt": None}
        assert {**first, **same} == {**second, **same}, params  # nothing tells them apart
    assert "secret" in one(CAM1, "full", attrs="secret")
    geo = "application/geo+json"
    assert one(CAM1, accept=geo, geometryProperty="location")["geometry"] is None
    assert one(PARK1, accept=geo, geometryProperty="location")["geometry"]["coordinates"] == HERE
    assert one(CAM1, "full", accept=geo)["geometry"]["coordinates"] == HERE
    collection = client.get(
        f"{BASE}/entities",
        params={"type": "Camera", "options": "keyValues"},
        headers={**me, "Accept": geo},
    ).json()
    assert all(
        f["geometry"] is None and not hidden & f["properties"].keys()
        for f in collection["features"]
    )
