"""The storage contract, run unchanged against SQLite and PostgreSQL (see conftest.py)."""

from __future__ import annotations

import pytest

from cityos.hub.entities import EntityService
from cityos.hub.errors import AlreadyExists, ResourceNotFound
from cityos.hub.query.model import (
    AttrPath,
    Comparison,
    EntityQuery,
    Exists,
    GeoQuery,
    Or,
    ScopeMatch,
    TypeName,
    TypeOr,
)
from cityos.hub.store.base import StoredContext

EX = "https://example.org/"
LOC = "https://uri.etsi.org/ngsi-ld/location"


def sensor(n: int, lon: float, lat: float, speed: float, *, kind: str = "Sensor", **extra) -> dict:
    attrs = {
        EX + "speed": [{"type": "Property", "value": speed, "unitCode": "KMH"}],
        EX + "name": [{"type": "Property", "value": f"sensor {n}"}],
        LOC: [{"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}}],
    }
    attrs.update(extra)
    return {"id": f"urn:ngsi-ld:{kind}:{n}", "type": [EX + kind], "attrs": attrs}


@pytest.fixture
def svc(store) -> EntityService:
    return EntityService(store)


def ids(result) -> list[str]:
    return [e["id"] for e in result.entities]


def test_migrate_is_idempotent(store) -> None:
    v = store.schema_version()
    assert v >= 1
    assert store.migrate() == []
    assert store.schema_version() == v


def test_create_get_and_system_attributes(svc, store) -> None:
    svc.create("", sensor(1, 104.92, 11.57, 30))
    got = store.get_entity("", "urn:ngsi-ld:Sensor:1")
    assert got["type"] == [EX + "Sensor"]
    assert got["attrs"][EX + "speed"][0]["value"] == 30
    assert got["createdAt"].endswith("Z") and got["modifiedAt"] == got["createdAt"]
    assert got["attrs"][EX + "speed"][0]["unitCode"] == "KMH"
    assert store.get_entity("", "urn:ngsi-ld:Sensor:2") is None


def test_duplicate_create_is_rejected_and_changes_nothing(svc, store) -> None:
    svc.create("", sensor(1, 104.92, 11.57, 30))
    with pytest.raises(AlreadyExists):
        svc.create("", sensor(1, 104.92, 11.57, 99))
    assert store.get_entity("", "urn:ngsi-ld:Sensor:1")["attrs"][EX + "speed"][0]["value"] == 30


def test_failed_transaction_rolls_back_everything(svc, store) -> None:
    with pytest.raises(RuntimeError), store.transaction("") as tx:
        tx.insert(
            {"id": "urn:a:1", "type": [EX + "T"], "attrs": {}, "createdAt": "x", "modifiedAt": "x"}
        )
        raise RuntimeError("boom")
    assert store.get_entity("", "urn:a:1") is None
    assert store.query("", EntityQuery(types=TypeName(EX + "T"))).entities == []


def test_tenants_are_separate(svc, store) -> None:
    assert store.tenant_exists("")
    assert not store.tenant_exists("bangkok")
    svc.create("bangkok", sensor(1, 100.5, 13.75, 10))
    assert store.tenant_exists("bangkok")
    assert store.get_entity("", "urn:ngsi-ld:Sensor:1") is None
    assert store.get_entity("bangkok", "urn:ngsi-ld:Sensor:1") is not None
    assert "bangkok" in store.tenants()
    assert ids(store.query("", EntityQuery(types=TypeName(EX + "Sensor")))) == []


def test_query_by_type_ids_pattern_and_paging(svc, store) -> None:
    for n in range(10):
        svc.create("", sensor(n, 104.92, 11.57, n * 10))
    svc.create("", sensor(100, 104.92, 11.57, 5, kind="Camera"))
    res = store.query("", EntityQuery(types=TypeName(EX + "Sensor"), limit=3, offset=2, count=True))
    assert ids(res) == ["urn:ngsi-ld:Sensor:2", "urn:ngsi-ld:Sensor:3", "urn:ngsi-ld:Sensor:4"]
    assert res.count == 10
    res = store.query(
        "",
        EntityQuery(types=TypeOr((TypeName(EX + "Sensor"), TypeName(EX + "Camera"))), count=True),
    )
    assert res.count == 11
    res = store.query("", EntityQuery(ids=["urn:ngsi-ld:Sensor:7", "urn:ngsi-ld:Camera:100"]))
    assert sorted(ids(res)) == ["urn:ngsi-ld:Camera:100", "urn:ngsi-ld:Sensor:7"]
    res = store.query("", EntityQuery(id_pattern=r"urn:ngsi-ld:Sensor:[1-3]"))
    assert ids(res) == ["urn:ngsi-ld:Sensor:1", "urn:ngsi-ld:Sensor:2", "urn:ngsi-ld:Sensor:3"]
    # a pattern must match the whole id
    assert ids(store.query("", EntityQuery(id_pattern="Sensor"))) == []


def test_query_q_and_attrs(svc, store) -> None:
    for n in range(6):
        svc.create("", sensor(n, 104.92, 11.57, n * 10))
    svc.create(
        "",
        {
            "id": "urn:ngsi-ld:Sensor:x",
            "type": [EX + "Sensor"],
            "attrs": {EX + "colour": [{"type": "Property", "value": "red"}]},
        },
    )
    speed = AttrPath(EX + "speed")
    q = Comparison(speed, ">=", 30)
    assert ids(store.query("", EntityQuery(q=q))) == [f"urn:ngsi-ld:Sensor:{n}" for n in (3, 4, 5)]
    q2 = Or((Comparison(speed, "==", 0), Comparison(AttrPath(EX + "colour"), "==", "red")))
    assert ids(store.query("", EntityQuery(q=q2))) == [
        "urn:ngsi-ld:Sensor:0",
        "urn:ngsi-ld:Sensor:x",
    ]
    assert ids(store.query("", EntityQuery(q=Exists(AttrPath(EX + "colour"))))) == [
        "urn:ngsi-ld:Sensor:x"
    ]
    assert ids(store.query("", EntityQuery(attrs=[EX + "colour"]))) == ["urn:ngsi-ld:Sensor:x"]
    unit = Comparison(AttrPath(EX + "speed", sub=("unitCode",)), "==", "KMH")
    assert len(store.query("", EntityQuery(q=unit)).entities) == 6


def test_geo_queries(svc, store) -> None:
    # Wat Phnom, the Central Market, and a point 5 km away
    svc.create("", sensor(1, 104.9230, 11.5762, 10))
    svc.create("", sensor(2, 104.9210, 11.5697, 20))
    svc.create("", sensor(3, 104.8800, 11.5500, 30))
    box = {
        "type": "Polygon",
        "coordinates": [
            [[104.91, 11.56], [104.93, 11.56], [104.93, 11.58], [104.91, 11.58], [104.91, 11.56]]
        ],
    }
    res = store.query("", EntityQuery(geo=GeoQuery("within", box), count=True))
    assert sorted(ids(res)) == ["urn:ngsi-ld:Sensor:1", "urn:ngsi-ld:Sensor:2"]
    assert res.count == 2
    near = GeoQuery("near", {"type": "Point", "coordinates": [104.9230, 11.5762]}, max_distance=800)
    assert sorted(ids(store.query("", EntityQuery(geo=near)))) == [
        "urn:ngsi-ld:Sensor:1",
        "urn:ngsi-ld:Sensor:2",
    ]
    near300 = GeoQuery(
        "near", {"type": "Point", "coordinates": [104.9230, 11.5762]}, max_distance=300
    )
    assert ids(store.query("", EntityQuery(geo=near300))) == ["urn:ngsi-ld:Sensor:1"]
    far = GeoQuery("near", {"type": "Point", "coordinates": [104.9230, 11.5762]}, min_distance=1000)
    assert ids(store.query("", EntityQuery(geo=far))) == ["urn:ngsi-ld:Sensor:3"]
    # geo combined with q
    q = Comparison(AttrPath(EX + "speed"), ">", 15)
    assert ids(store.query("", EntityQuery(geo=GeoQuery("within", box), q=q))) == [
        "urn:ngsi-ld:Sensor:2"
    ]
    # a moved entity is found at its new place only
    svc.merge(
        "",
        "urn:ngsi-ld:Sensor:3",
        {
            "attrs": {
                LOC: [
                    {
                        "type": "GeoProperty",
                        "value": {"type": "Point", "coordinates": [104.92, 11.57]},
                    }
                ]
            }
        },
    )
    assert len(store.query("", EntityQuery(geo=GeoQuery("within", box))).entities) == 3
    svc.delete("", "urn:ngsi-ld:Sensor:1")
    assert len(store.query("", EntityQuery(geo=GeoQuery("within", box))).entities) == 2


def test_scope_query(svc, store) -> None:
    a = sensor(1, 104.92, 11.57, 1)
    a["scope"] = ["/KH/PhnomPenh/DaunPenh"]
    b = sensor(2, 104.92, 11.57, 1)
    b["scope"] = ["/KH/Siemreap"]
    svc.create("", a)
    svc.create("", b)
    res = store.query("", EntityQuery(scope=ScopeMatch("/KH/PhnomPenh/#")))
    assert ids(res) == ["urn:ngsi-ld:Sensor:1"]
    res = store.query("", EntityQuery(scope=ScopeMatch("/KH/#")))
    assert len(res.entities) == 2


def test_history_is_appended_for_every_change(svc, store) -> None:
    svc.create("", sensor(1, 104.92, 11.57, 10))
    svc.update_attrs(
        "", "urn:ngsi-ld:Sensor:1", {EX + "speed": [{"type": "Property", "value": 20}]}
    )
    svc.delete_attr("", "urn:ngsi-ld:Sensor:1", EX + "name")
    rows = store.history("", "urn:ngsi-ld:Sensor:1", EX + "speed")
    assert [(r.op, r.instance["value"]) for r in rows] == [("create", 10), ("update", 20)]
    assert rows[0].entity_type == EX + "Sensor"
    names = store.history("", "urn:ngsi-ld:Sensor:1", EX + "name")
    assert [r.op for r in names] == ["create", "delete"]


def test_attribute_uses(svc, store) -> None:
    svc.create("", sensor(1, 104.92, 11.57, 10))
    svc.create("", sensor(2, 104.92, 11.57, 10))
    uses = {(u.entity_type, u.attr, u.attr_type): u.entity_count for u in store.attribute_uses("")}
    assert uses[(EX + "Sensor", EX + "speed", "Property")] == 2
    assert uses[(EX + "Sensor", LOC, "GeoProperty")] == 2


def test_batch_failures_leave_entities_as_they_were(svc, store) -> None:
    svc.create("", sensor(1, 104.92, 11.57, 10))
    res = svc.batch_create("", [sensor(1, 104.92, 11.57, 99), sensor(2, 104.92, 11.57, 20)])
    assert res.success == ["urn:ngsi-ld:Sensor:2"]
    assert [e for e, _ in res.errors] == ["urn:ngsi-ld:Sensor:1"]
    assert store.get_entity("", "urn:ngsi-ld:Sensor:1")["attrs"][EX + "speed"][0]["value"] == 10
    res = svc.batch_update("", [sensor(3, 0, 0, 1), sensor(2, 104.92, 11.57, 21)])
    assert res.success == ["urn:ngsi-ld:Sensor:2"]
    assert store.get_entity("", "urn:ngsi-ld:Sensor:3") is None
    res = svc.batch_delete("", ["urn:ngsi-ld:Sensor:1", "urn:ngsi-ld:Sensor:9"])
    assert res.success == ["urn:ngsi-ld:Sensor:1"]
    assert isinstance(res.errors[0][1], ResourceNotFound)


def test_batch_upsert_many(svc, store) -> None:
    ents = [sensor(n, 104.9 + n * 1e-5, 11.57, n) for n in range(1500)]
    assert len(svc.batch_upsert("", ents).success) == 1500
    ents2 = [sensor(n, 104.9, 11.57, -n) for n in range(1000, 2000)]
    svc.batch_upsert("", ents2)
    res = store.query("", EntityQuery(types=TypeName(EX + "Sensor"), count=True, limit=1))
    assert res.count == 2000
    assert (
        store.get_entity("", "urn:ngsi-ld:Sensor:1200")["attrs"][EX + "speed"][0]["value"] == -1200
    )


def test_contexts(store) -> None:
    ctx = StoredContext(
        "urn:ctx:1",
        "https://ex.org/ctx.jsonld",
        {"@context": {"a": EX + "a"}},
        "hosted",
        "2026-01-01T00:00:00Z",
    )
    store.put_context(ctx)
    assert store.get_context("urn:ctx:1").body == ctx.body
    assert store.get_context("https://ex.org/ctx.jsonld").id == "urn:ctx:1"
    assert [c.id for c in store.list_contexts()] == ["urn:ctx:1"]
    assert store.delete_context("urn:ctx:1")
    assert store.get_context("urn:ctx:1") is None


def test_stats(svc, store) -> None:
    svc.create("", sensor(1, 104.92, 11.57, 10))
    st = store.stats()
    assert st["entities"] == 1 and st["history_rows"] == 3 and st["engine"] == store.engine


def test_history_filters_by_attribute_and_time(svc, store) -> None:
    ent = sensor(1, 104.92, 11.57, 10)
    ent["attrs"][EX + "speed"][0]["observedAt"] = "2026-11-30T01:00:00.000000Z"
    svc.create("", ent)
    for minute, speed in ((5, 20), (10, 30)):
        svc.update_attrs(
            "",
            "urn:ngsi-ld:Sensor:1",
            {
                EX + "speed": [
                    {
                        "type": "Property",
                        "value": speed,
                        "observedAt": f"2026-11-30T01:{minute:02d}:00.000000Z",
                    }
                ]
            },
        )
    rows = store.history(
        "",
        "urn:ngsi-ld:Sensor:1",
        attrs=[EX + "speed"],
        time_property="observedAt",
        after="2026-11-30T01:05:00.000000Z",
    )
    assert [r.instance["value"] for r in rows] == [20, 30]
    rows = store.history(
        "",
        "urn:ngsi-ld:Sensor:1",
        attrs=[EX + "speed"],
        time_property="observedAt",
        before="2026-11-30T01:10:00.000000Z",
    )
    assert [r.instance["value"] for r in rows] == [10, 20]
    assert {
        r.attr for r in store.history("", "urn:ngsi-ld:Sensor:1", attrs=[EX + "speed", EX + "name"])
    } == {EX + "speed", EX + "name"}
    everything = store.history(
        "", "urn:ngsi-ld:Sensor:1", time_property="recordedAt", after="2000-01-01T00:00:00.000000Z"
    )
    assert len(everything) == 5


def test_registry_documents(store) -> None:
    store.put_doc("iot-device", "a", "d1", {"device_id": "d1", "n": 1})
    store.put_doc("iot-device", "a", "d1", {"device_id": "d1", "n": 2})
    store.put_doc("iot-device", "b", "d1", {"device_id": "d1", "n": 3})
    store.put_doc("iot-group", "a", "k", {"apikey": "k"})
    assert store.get_doc("iot-device", "a", "d1") == {"device_id": "d1", "n": 2}
    assert [d["n"] for d in store.list_docs("iot-device", "a")] == [2]
    assert store.doc_tenants("iot-device", "d1") == ["a", "b"]
    assert store.delete_doc("iot-device", "a", "d1") and not store.delete_doc(
        "iot-device", "a", "d1"
    )
    assert store.get_doc("iot-device", "a", "d1") is None
