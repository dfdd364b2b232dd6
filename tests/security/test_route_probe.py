"""Every route, probed by a role for what lies beyond its grant, on SQLite and PostgreSQL.

The role ``prober`` may read, aggregate, write, delete and subscribe to ``Open`` entities,
read and write only ``name`` and ``location`` of ``Partial`` ones, and nothing of ``Hidden``
ones; it administers nothing. An operator seeds one of each (with history), a subscription
with endpoint credentials and a service group. The prober then calls every route of the
hub — every path parameter aimed at what it may not reach, every filter on what it may not
read, every body trying to write it — and:

* no answer holds a value it may not read (the secret, the hidden entity's name, the
  subscription's credentials, the group's API key);
* the answers to every read are the same whether the hidden values are one thing or
  another (a filter on them cannot answer yes or no);
* afterwards, what it may not change is as it was: the hidden entity, the secret and its
  history, the operator's subscription, the devices.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
from starlette.testclient import TestClient

from cityos.devices.agent import DEVICE, GROUP
from cityos.devices.api import ROUTES as DEVICE_ROUTES
from cityos.hub.api import PREFIX, ROUTES
from cityos.hub.core import Hub
from cityos.services.traffic import api as traffic_api

TENANT = "city"
RULES = {
    "roles": {
        "operator": [
            {"actions": ["read", "aggregate", "write", "delete", "subscribe", "administer"]}
        ],  # fmt: skip
        "prober": [
            {"types": ["Open"], "actions": ["read", "aggregate", "write", "delete", "subscribe"]},
            {
                "types": ["Partial"],
                "attrs": ["name", "location"],
                "actions": ["read", "aggregate", "write", "subscribe"],
            },
        ],
    }
}
OPEN, PARTIAL, HIDDEN = (f"urn:ngsi-ld:{t}:1" for t in ("Open", "Partial", "Hidden"))
SUB = "urn:ngsi-ld:Subscription:operators"
SECRET = "https://uri.etsi.org/ngsi-ld/default-context/secret"
# values only the operator may read: no answer to the prober may hold one
SENTINELS = ("S3CRET", "HIDDEN-NAME", "HOOKPASS", "GROUPKEY", "RECEIVERTOKEN", "REGTOKEN")
REG = "urn:ngsi-ld:ContextSourceRegistration:department"
T0, T1 = "2026-11-30T01:00:00Z", "2026-11-30T02:00:00Z"
POINT = {"type": "Point", "coordinates": [104.92, 11.57]}
FAR = {"type": "Point", "coordinates": [100.5, 13.75]}

ALL_ROUTES = [(PREFIX + p, m) for p, m, _, _ in ROUTES] + [(p, m) for p, m, _, _ in DEVICE_ROUTES]
ALL_ROUTES += [
    (r.path, m) for r in traffic_api.routes() for m in sorted(r.methods or ()) if m != "HEAD"
]


def _prop(value: Any, at: str = T0) -> dict[str, Any]:
    return {"type": "Property", "value": value, "observedAt": at}


def _entity(eid: str, etype: str, **attrs: Any) -> dict[str, Any]:
    return {"id": eid, "type": etype, **attrs}


@pytest.fixture
def probe(secured) -> tuple[TestClient, Hub, dict[str, str], dict[str, str]]:
    city = secured(RULES, detect=False)  # hundreds of refusals on purpose
    op, me = city.key("operator", TENANT), city.key("prober", TENANT)
    _seed(city.client, op)
    return city.client, city.hub, op, me


def _ok(r: Any, what: str) -> None:
    assert r.status_code < 300, (what, r.status_code, r.text)


def _seed(client: TestClient, op: dict[str, str]) -> None:
    geo = {"type": "GeoProperty", "value": POINT}
    entities = [
        _entity(OPEN, "Open", name=_prop("open"), location=geo),
        _entity(
            PARTIAL,
            "Partial",
            name=_prop("partial"),
            secret=_prop("S3CRET-1"),
            hideout={"type": "GeoProperty", "value": POINT},
            location=geo,
        ),  # fmt: skip
        _entity(HIDDEN, "Hidden", name=_prop("HIDDEN-NAME-1"), location=geo),
    ]
    _ok(client.post(f"{PREFIX}/entityOperations/create", json=entities, headers=op), "seed")
    for eid, attr, value in ((PARTIAL, "secret", "S3CRET-H"), (HIDDEN, "name", "HIDDEN-NAME-H")):
        r = client.patch(
            f"{PREFIX}/entities/{eid}/attrs", json={attr: _prop(value, T1)}, headers=op
        )
        _ok(r, "history")
    sub = {
        "id": SUB,
        "type": "Subscription",
        "entities": [{"type": "Partial"}],
        "isActive": False,
        "notification": {
            "endpoint": {
                "uri": "http://ops:HOOKPASS@127.0.0.1:9/hook",
                "receiverInfo": [{"key": "Authorization", "value": "RECEIVERTOKEN"}],
            }
        },
    }
    _ok(client.post(f"{PREFIX}/subscriptions", json=sub, headers=op), "subscription")
    reg = {
        "id": REG,
        "type": "ContextSourceRegistration",
        "information": [{"entities": [{"type": "Hidden"}]}],
        "endpoint": "http://127.0.0.1:9",
        "contextSourceInfo": [{"key": "Authorization", "value": "ApiKey REGTOKEN"}],
    }
    _ok(client.post(f"{PREFIX}/csourceRegistrations", json=reg, headers=op), "registration")
    csub = {**sub, "id": "urn:ngsi-ld:Subscription:sources", "entities": [{"type": "Hidden"}]}
    _ok(client.post(f"{PREFIX}/csourceSubscriptions", json=csub, headers=op), "csource sub")
    group = {"apikey": "GROUPKEY", "entity_type": "Partial",
             "attributes": [{"object_id": "s", "name": "secret"}]}  # fmt: skip
    iot = {"fiware-service": TENANT, "Authorization": op["Authorization"]}
    _ok(client.post("/iot/services", json={"services": [group]}, headers=iot), "group")
    device = {"device_id": "dev1", "apikey": "GROUPKEY", "entity_name": PARTIAL}
    _ok(client.post("/iot/devices", json={"devices": [device]}, headers=iot), "device")


def _flip(client: TestClient, op: dict[str, str], n: int) -> None:
    """Change only what the prober may not see: the secret (and where its GeoProperty
    is) and the hidden entity's name."""
    where = {"type": "GeoProperty", "value": POINT if n == 1 else FAR}
    patch = {"secret": _prop(f"S3CRET-{n}"), "hideout": where}
    _ok(client.patch(f"{PREFIX}/entities/{PARTIAL}/attrs", json=patch, headers=op), "flip")
    patch = {"name": _prop(f"HIDDEN-NAME-{n}")}
    _ok(client.patch(f"{PREFIX}/entities/{HIDDEN}/attrs", json=patch, headers=op), "flip")


def _instance_id(client: TestClient, op: dict[str, str]) -> str:
    r = client.get(f"{PREFIX}/temporal/entities/{PARTIAL}", params={"attrs": "secret"}, headers=op)
    _ok(r, "instance id")
    values = r.json()["secret"]
    return (values if isinstance(values, list) else [values])[0]["instanceId"]


# -- what the prober tries ---------------------------------------------------------------
FILTERS = [  # query strings of reads: each aims a filter at what it may not read
    {"type": "Hidden"},
    {"type": "Partial,Hidden"},
    {"type": "Partial", "q": 'secret=="S3CRET-1"'},
    {"type": "Partial", "q": "secret"},
    {"type": "Partial", "q": "!secret"},
    {"type": "Partial", "q": 'secret~=".*1"'},
    {"type": "Partial,Open", "q": 'name=="HIDDEN-NAME-1"|secret=="S3CRET-1"'},
    {"type": "Partial", "attrs": "secret"},
    {"type": "Partial", "pick": "id,secret"},
    {"type": "Partial", "orderBy": "secret"},
    {"type": "Hidden", "q": 'name=="HIDDEN-NAME-1"'},
    {"idPattern": ".*", "q": 'name~=".*1"'},
    {
        "type": "Partial",
        "georel": "near;maxDistance==1000",
        "geometry": "Point",
        "coordinates": "[104.92,11.57]",
        "geoproperty": "hideout",
    },  # fmt: skip
    {
        "type": "Partial",
        "georel": "within",
        "geometry": "Polygon",
        "coordinates": "[[[104,11],[105,11],[105,12],[104,12],[104,11]]]",
        "geoproperty": "hideout",
    },  # fmt: skip
    {"id": HIDDEN},
    {"id": f"{HIDDEN},{PARTIAL}", "options": "sysAttrs"},
    {"type": "Partial", "count": "true", "q": 'secret=="S3CRET-1"'},
    {"attrs": "secret"},
    {"type": "Partial", "options": "keyValues"},
]
TEMPORAL = [
    {"timerel": "after", "timeAt": "2026-01-01T00:00:00Z"},
    {"timerel": "after", "timeAt": "2026-01-01T00:00:00Z", "attrs": "secret"},
    {
        "timerel": "after",
        "timeAt": "2026-01-01T00:00:00Z",
        "timeproperty": "observedAt",
        "lastN": "1",
        "attrs": "secret,name",
    },  # fmt: skip
    {
        "timerel": "after",
        "timeAt": "2026-01-01T00:00:00Z",
        "aggrMethods": "max,min,avg,count",
        "aggrPeriodDuration": "PT1S",
        "attrs": "secret",
    },  # fmt: skip
    {
        "timerel": "after",
        "timeAt": "2026-01-01T00:00:00Z",
        "aggrMethods": "max,count",
        "aggrPeriodDuration": "P1D",
    },  # fmt: skip
]


def _read_urls(inst: str) -> list[str]:
    """Every read route (GET), path parameters aimed at the forbidden, with the filters."""
    urls: list[str] = []
    values = {
        "entity_id": [HIDDEN, PARTIAL, OPEN],
        "attr": ["secret", "name", "hideout"],
        "type": ["Hidden", "Partial"],
        "subscription_id": [SUB],
        "device_id": ["dev1"],
        "instance_id": [inst],
        "context_id": ["nope"],
        "registration_id": [REG],
    }
    for template, method in ALL_ROUTES:
        if method != "GET":
            continue
        for path in _fill(template, values):
            queries: list[dict[str, str]] = [{}]
            if path in (f"{PREFIX}/entities", f"{PREFIX}/temporal/entities"):
                queries = FILTERS
            if path.startswith(f"{PREFIX}/temporal/entities"):
                queries = [{**f, **t} for f in queries[:6] for t in TEMPORAL]
            elif "/gtfs-rt/" in path:
                queries = [{"format": "json"}]  # read as JSON: its clock left out below
            elif path.startswith(f"{PREFIX}/entities/"):
                queries = [{}, {"attrs": "secret"}, {"pick": "secret"}, {"options": "sysAttrs"},
                           {"format": "keyValues"}]  # fmt: skip
            for q in queries:
                query = urlencode(q)
                urls.append(path + ("?" + query if query else ""))
    return urls


def _fill(template: str, values: dict[str, list[str]]) -> list[str]:
    paths = [template]
    for name, options in values.items():
        if "{" + name + "}" in template:
            paths = [p.replace("{" + name + "}", v) for p in paths for v in options]
    return paths


# DELETE /entities (purge), aimed at the forbidden: whole entities, attributes by keep/drop
_PURGES = [
    ("DELETE", f"{PREFIX}/entities?type=Hidden", None),
    ("DELETE", f"{PREFIX}/entities?type=Partial&drop=secret", None),
    ("DELETE", f"{PREFIX}/entities?type=Partial&keep=name", None),
    ("DELETE", f"{PREFIX}/entities?q=secret==%22S3CRET-1%22", None),
    ("DELETE", f"{PREFIX}/entities?id={HIDDEN},{PARTIAL}", None),
]


def _writes(inst: str) -> list[tuple[str, str, Any]]:
    """Every write route, aimed at what the prober may not change."""
    secret = {"secret": _prop("PWNED")}
    hidden_new = _entity("urn:ngsi-ld:Hidden:new", "Hidden", name=_prop("x"))
    mixed = _entity("urn:ngsi-ld:Open:mixed", ["Open", "Hidden"], name=_prop("x"))
    add_type = _entity(OPEN, ["Open", "Partial"], secret=_prop("PWNED"))
    sub = {"type": "Subscription", "entities": [{"type": "Partial"}],
           "notification": {"endpoint": {"uri": "http://127.0.0.1:9/n"}}}  # fmt: skip
    out: list[tuple[str, str, Any]] = []
    for eid in (HIDDEN, PARTIAL):
        e = f"{PREFIX}/entities/{eid}"
        out += [
            ("PUT", e, {"name": _prop("PWNED"), **secret}),
            ("PATCH", e, {**secret, "name": _prop("PWNED")}),
            ("POST", f"{e}/attrs", {**secret, "name": _prop("PWNED")}),
            ("PATCH", f"{e}/attrs", {**secret, "name": _prop("PWNED")}),
            ("PATCH", f"{e}/attrs/secret", {"value": "PWNED"}),
            ("PUT", f"{e}/attrs/secret", _prop("PWNED")),
            ("DELETE", f"{e}/attrs/secret", None),
            ("PATCH", f"{e}/attrs/name", {"value": "PWNED"}),
            ("DELETE", e, None),
            ("POST", f"{PREFIX}/temporal/entities/{eid}/attrs", {"secret": [_prop("PWNED")]}),
            ("DELETE", f"{PREFIX}/temporal/entities/{eid}/attrs/secret", None),
            ("DELETE", f"{PREFIX}/temporal/entities/{eid}/attrs/secret/{inst}", None),
            ("PATCH", f"{PREFIX}/temporal/entities/{eid}/attrs/secret/{inst}", _prop("PWNED")),
            ("DELETE", f"{PREFIX}/temporal/entities/{eid}", None),
        ]
    for op in ("create", "upsert", "update", "merge"):
        body = [hidden_new, mixed, {"id": PARTIAL, "type": "Partial", **secret}, add_type]
        out.append(("POST", f"{PREFIX}/entityOperations/{op}", body))
    out += [
        ("POST", f"{PREFIX}/entities", hidden_new),
        ("POST", f"{PREFIX}/entities", mixed),
        ("POST", f"{PREFIX}/entities/{OPEN}/attrs", {"type": "Partial"}),
        ("POST", f"{PREFIX}/entityOperations/delete", [HIDDEN, PARTIAL]),
        *_PURGES,
        ("POST", f"{PREFIX}/temporal/entities", {**hidden_new, "name": [_prop("x")]}),
        (
            "POST",
            f"{PREFIX}/temporal/entities",
            {"id": PARTIAL, "type": "Partial", "secret": [_prop("PWNED", T1)]},
        ),  # fmt: skip
        ("POST", f"{PREFIX}/subscriptions", {**sub, "entities": [{"type": "Hidden"}]}),
        ("POST", f"{PREFIX}/subscriptions", {**sub, "watchedAttributes": ["secret"]}),
        ("POST", f"{PREFIX}/subscriptions", {**sub, "q": 'secret=="S3CRET-1"'}),
        (
            "POST",
            f"{PREFIX}/subscriptions",
            {
                **sub,
                "geoQ": {
                    "georel": "near;maxDistance==10",
                    "geometry": "Point",
                    "coordinates": [104.92, 11.57],
                    "geoproperty": "hideout",
                },
            },
        ),  # fmt: skip
        (
            "PATCH",
            f"{PREFIX}/subscriptions/{SUB}",
            {"notification": {"endpoint": {"uri": "http://127.0.0.1:9/stolen"}}},
        ),  # fmt: skip
        ("DELETE", f"{PREFIX}/subscriptions/{SUB}", None),
        ("POST", f"{PREFIX}/jsonldContexts", {"@context": {"secret": "urn:x:secret"}}),
        (
            "POST",
            f"{PREFIX}/csourceRegistrations",
            {
                "type": "ContextSourceRegistration",
                "information": [{"entities": [{"type": "Open"}]}],
                "endpoint": "http://127.0.0.1:9/mine",
            },
        ),  # fmt: skip
        ("PATCH", f"{PREFIX}/csourceRegistrations/{REG}", {"endpoint": "http://127.0.0.1:9/x"}),
        ("DELETE", f"{PREFIX}/csourceRegistrations/{REG}", None),
        (
            "POST",
            f"{PREFIX}/csourceSubscriptions",
            {
                "type": "Subscription",
                "entities": [{"type": "Hidden"}],
                "notification": {"endpoint": {"uri": "http://127.0.0.1:9/mine"}},
            },
        ),  # fmt: skip
        ("DELETE", f"{PREFIX}/csourceSubscriptions/urn:ngsi-ld:Subscription:sources", None),
        ("POST", "/iot/services", {"services": [{"apikey": "mine", "entity_type": "Partial"}]}),
        ("POST", "/iot/devices", {"devices": [{"device_id": "d9", "entity_name": PARTIAL}]}),
        ("DELETE", "/iot/devices/dev1", None),
        ("DELETE", "/iot/services?apikey=GROUPKEY", None),
        ("POST", "/iot/d?k=GROUPKEY&i=dev1", "s|PWNED"),
        ("POST", "/iot/json?k=GROUPKEY&i=dev1", {"s": "PWNED"}),
    ]
    return out


def _forbidden_state(hub: Hub) -> str:
    """What the prober may not change, read straight from the store."""
    store = hub.store
    hidden = store.get_entity(TENANT, HIDDEN)
    partial = store.get_entity(TENANT, PARTIAL) or {}
    history = [
        orjson.dumps(row, default=str, option=orjson.OPT_SORT_KEYS)
        for eid in (HIDDEN, PARTIAL)
        for row in store.history(TENANT, eid, limit=100_000)
        if eid == HIDDEN or row.attr == SECRET
    ]
    subs = [d for _, d in store.list_subscriptions(TENANT)]
    docs = store.list_docs(GROUP, TENANT) + store.list_docs(DEVICE, TENANT)
    docs += store.list_docs("csource-registration", TENANT)
    docs += store.list_docs("csource-subscription", TENANT)
    return orjson.dumps(
        {
            "hidden": hidden,
            "secret": (partial.get("attrs") or {}).get(SECRET),
            "types": partial.get("type"),
            "history": sorted(history),
            "subs": sorted((s for s in subs if s["id"] == SUB), key=str),
            "others' subs": len([s for s in subs if "Hidden" in str(s.get("entities"))]),
            "iot": sorted(docs, key=str),
            "hidden new": store.get_entity(TENANT, "urn:ngsi-ld:Hidden:new"),
            "mixed": store.get_entity(TENANT, "urn:ngsi-ld:Open:mixed"),
        },
        default=str,
        option=orjson.OPT_SORT_KEYS,
    ).decode()


def _answers(client: TestClient, who: dict[str, str], urls: list[str]) -> dict[str, Any]:
    out = {}
    for url in urls:
        r = client.get(url, headers=who)
        assert r.status_code < 500, (url, r.text)
        for sentinel in SENTINELS:
            assert sentinel not in r.text, (url, sentinel, r.text[:500])
        out[url] = (r.status_code, r.headers.get("NGSILD-Results-Count"), _timeless(r.text))
    return out


def test_a_role_sees_and_changes_nothing_beyond_its_grant_on_any_route(probe) -> None:
    client, hub, op, me = probe
    inst = _instance_id(client, op)
    urls = _read_urls(inst)
    assert len(urls) > 80
    _flip(client, op, 1)
    first = _answers(client, me, urls)
    _flip(client, op, 2)
    second = _answers(client, me, urls)
    differ = [u for u in urls if first[u] != second[u]]
    assert not differ, f"answers that tell the hidden values apart: {differ[:10]}"
    # the operator's own answers do differ: the probe would see a leak if there was one
    assert _answers_differ(client, op, [f"{PREFIX}/entities?type=Partial&q=secret==%22S3CRET-2%22"])

    before = _forbidden_state(hub)
    refused = 0
    for method, path, body in _writes(inst):
        headers = dict(me)
        kw: dict[str, Any] = {"json": body} if not isinstance(body, str) else {"content": body}
        if path.startswith("/iot/"):
            headers["fiware-service"] = headers.pop("NGSILD-Tenant")
            if isinstance(body, str):
                headers["Content-Type"] = "text/plain"
        r = client.request(method, path, headers=headers, **kw)
        assert r.status_code < 500, (method, path, r.text)
        for sentinel in SENTINELS:
            assert sentinel not in r.text, (method, path, sentinel)
        refused += r.status_code >= 400
        assert _forbidden_state(hub) == before, (method, path, r.status_code, r.text)
    # the batches may apply their allowed parts; a purge of what one may not see or change
    # is an empty purge (204), so it counts as done, not refused
    assert refused >= len(_writes(inst)) - 4 - len(_PURGES)


# the temporal reads by POST (a Query body): each selector and filter aimed at the forbidden
_TEMPORAL_QUERIES = [
    {"type": "Query", "entities": [{"type": t}], "temporalQ": q, **extra}
    for t in ("Hidden", "Partial", "Open")
    for q in ({"timerel": "after", "timeAt": "2026-01-01T00:00:00Z"}, {"timerel": "before", "timeAt": T1, "lastN": 1})
    for extra in ({}, {"attrs": ["secret"]}, {"q": 'secret=="S3CRET-1"'})
]  # fmt: skip
_TEMPORAL_QUERY_PARAMS = [{}, {"options": "temporalValues"}, {"options": "sysAttrs"},
                          {"aggrMethods": "max,totalCount", "aggrPeriodDuration": "P1D"}]  # fmt: skip


def test_a_role_reads_nothing_beyond_its_grant_through_a_posted_temporal_query(probe) -> None:
    client, hub, op, me = probe
    url = f"{PREFIX}/temporal/entityOperations/query"

    def answers(who: dict[str, str]) -> list[Any]:
        out = []
        for body in _TEMPORAL_QUERIES:
            for params in _TEMPORAL_QUERY_PARAMS:
                r = client.post(url, json=body, params=params, headers=who)
                assert r.status_code < 500, (body, params, r.text)
                if who is me:
                    for sentinel in SENTINELS:
                        assert sentinel not in r.text, (body, params, sentinel, r.text[:500])
                out.append((r.status_code, _timeless(r.text)))
        return out

    _flip(client, op, 1)
    first, op_first = answers(me), answers(op)
    _flip(client, op, 2)
    assert answers(me) == first, "a posted temporal query tells the hidden values apart"
    assert answers(op) != op_first  # the operator's do differ: a leak would show
    assert any(code == 200 and "Partial" in text for code, text in first)  # it reads its own


def _timeless(text: str) -> str:
    """An answer without the time it was made at (a GTFS-Realtime feed's header)."""
    try:
        body = json.loads(text)
    except ValueError:
        return text
    if isinstance(body, dict) and isinstance(body.get("header"), dict):
        body["header"].pop("timestamp", None)
    return json.dumps(body, sort_keys=True)


def _answers_differ(client: TestClient, who: dict[str, str], urls: list[str]) -> bool:
    a = [client.get(u, headers=who).text for u in urls]
    _flip(client, who, 1)
    b = [client.get(u, headers=who).text for u in urls]
    _flip(client, who, 2)
    return a != b
