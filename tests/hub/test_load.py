"""``cityos load``: the bulk path stores exactly what the per-entity API path stores —
current state, history, notifications and which entities are refused — over generated
files; and each format and each wrong input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cityos.cli import app
from cityos.config import Settings
from cityos.hub.core import Hub
from cityos.hub.errors import NgsiLdError
from cityos.hub.load import LoadFormatError, load_items, read_items
from cityos.hub.representation import parse_entity
from cityos.hub.subscriptions import parse_subscription

TIMES = {"createdAt", "modifiedAt", "recordedAt", "deletedAt"}

# -- generated entities: mostly good, some refused, ids repeated (replacements) --------------
values = st.one_of(
    st.integers(-1000, 1000),
    st.floats(-1e6, 1e6, allow_nan=False),
    st.text(max_size=8),
    st.booleans(),
)
good_attr = st.one_of(
    values.map(lambda v: {"type": "Property", "value": v}),
    values.map(lambda v: {"type": "Property", "value": v, "observedAt": "2026-12-01T00:00:00Z"}),
    st.integers(0, 9).map(lambda n: {"type": "Relationship", "object": f"urn:ngsi-ld:Road:{n}"}),
    st.tuples(st.floats(100, 110), st.floats(10, 12)).map(
        lambda c: {"type": "GeoProperty", "value": {"type": "Point", "coordinates": list(c)}}
    ),
)
bad_attr = st.sampled_from(
    [
        {"type": "Property"},  # no value
        {"type": "Relationship", "object": "not a uri"},
        {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [500, 1]}},
        {"type": "Nonsense", "value": 1},
    ]
)


@st.composite
def raw_entity(draw: Any) -> Any:
    n = draw(st.integers(0, 12))  # few ids: repeats replace what came before
    kind = draw(st.sampled_from(["Meter", "Building"]))
    attrs = draw(
        st.dictionaries(
            st.sampled_from(["power", "name", "refRoad", "location", "height"]),
            good_attr,
            max_size=4,
        )
    )
    entity: dict[str, Any] = {"id": f"urn:ngsi-ld:{kind}:{n}", "type": kind, **attrs}
    broken = draw(st.integers(0, 9))
    if broken == 0:
        entity["status"] = draw(bad_attr)
    elif broken == 1:
        entity["id"] = "no uri"
    elif broken == 2:
        del entity["type"]
    elif broken == 3:
        return "not an object"
    return entity


def _hub(tmp: Path, name: str) -> Hub:
    hub = Hub(Settings(database_url=f"sqlite:///{tmp}/{name}.db"))
    for etype in ("Meter", "Building"):
        doc = parse_subscription(
            {
                "id": f"urn:ngsi-ld:Subscription:{etype}",
                "type": "Subscription",
                "entities": [{"type": etype}],
                "notification": {"endpoint": {"uri": "http://example.org/n"}},
            },
            hub.contexts.resolve(None),
        )
        hub.store.put_subscription("", doc)
    hub.subscriptions.invalidate()
    return hub


def _one_at_a_time(hub: Hub, items: list[tuple[str, Any, int]]) -> list[str]:
    """The per-entity API path: POST /entities for a new id, PUT (replace) for a known one."""
    refused = []
    ctx = hub.contexts.resolve(None)
    for where, item, _ in items:
        try:
            if not isinstance(item, dict):
                raise LoadFormatError("not an object")
            entity = parse_entity(item, ctx)
            if hub.store.get_entity("", entity["id"]) is None:
                hub.entities.create("", entity)
            else:
                hub.entities.replace("", entity["id"], entity)
        except (NgsiLdError, LoadFormatError):
            refused.append(where)
    return refused


def _timeless(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if k not in TIMES and k != "notifiedAt"}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    return value


def _state(hub: Hub) -> tuple[Any, Any, Any]:
    ids = sorted({e["id"] for e in hub.store.query("", _all()).entities})
    current = [_timeless(hub.store.get_entity("", i)) for i in ids]
    history = [
        (r.entity_id, r.attr, r.dataset_id, _timeless(r.instance), r.op, r.observed_at)
        for i in ids
        for r in hub.store.history("", i, None, limit=100_000)
    ]
    claimed = hub.store.claim_deliveries(
        "t", "9999-01-01T00:00:00Z", "9999-01-01T00:01:00Z", 100_000
    )
    notified = sorted(
        (n.subscription_id, e["id"], json.dumps(_timeless(e), sort_keys=True))
        for n in claimed.notifications
        for e in n.payload.get("data", [])
    )
    return current, sorted(history, key=repr), notified


def _all() -> Any:
    from cityos.hub.query.model import EntityQuery

    return EntityQuery(limit=100_000, offset=0)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(raw_entity(), min_size=1, max_size=40), st.integers(1, 7))
def test_the_bulk_path_stores_what_the_per_entity_path_stores(
    tmp_path_factory, raws, batch
) -> None:
    tmp = tmp_path_factory.mktemp("load")
    items = [(f"entity {n}", raw, n) for n, raw in enumerate(raws, 1)]
    bulk, single = _hub(tmp, "bulk"), _hub(tmp, "single")
    try:
        report = load_items(bulk, items, batch=batch)
        refused = _one_at_a_time(single, items)
        assert [e["where"] for e in report.errors] == refused
        assert report.failed == len(refused) and report.read == len(items)
        assert report.created + report.replaced + report.failed == len(items)
        assert _state(bulk) == _state(single)
    finally:
        bulk.close()
        single.close()


# -- formats -------------------------------------------------------------------------------


def test_geojson_features_become_entities_with_their_location(tmp_path) -> None:
    path = tmp_path / "trees.geojson"
    path.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "id": "urn:ngsi-ld:Tree:1",
                        "properties": {"species": "Tamarind", "height": 9.5},
                        "geometry": {"type": "Point", "coordinates": [104.92, 11.56]},
                    },
                    {"type": "Feature", "properties": {"species": "no id"}, "geometry": None},
                ],
            }
        )
    )
    hub = Hub(Settings(database_url=f"sqlite:///{tmp_path}/h.db"))
    report = load_items(hub, read_items(path, entity_type="Tree"))
    assert (report.created, report.failed) == (1, 1)
    assert report.errors[0]["where"] == "feature 2" and "no id" in report.errors[0]["error"]
    tree = hub.store.get_entity("", "urn:ngsi-ld:Tree:1")
    attrs = {k.rsplit("/", 1)[-1]: v[0] for k, v in tree["attrs"].items()}
    assert attrs["location"]["value"]["coordinates"] == [104.92, 11.56]
    assert attrs["height"]["value"] == 9.5 and attrs["species"]["value"] == "Tamarind"


def test_csv_rows_follow_the_mapping(tmp_path) -> None:
    (tmp_path / "meters.csv").write_text(
        "ref,kw,lon,lat,smart\nA1,3.5,104.9,11.5,yes\nA2,lots,104.9,11.5,no\nA3,,104.91,11.51,no\n"
    )
    mapping = {
        "id": "urn:ngsi-ld:ElectricityMeter:{ref}",
        "type": "ElectricityMeter",
        "location": {"lon": "lon", "lat": "lat"},
        "attributes": {
            "power": {"column": "kw", "kind": "number", "unitCode": "KWT"},
            "smart": {"column": "smart", "kind": "boolean"},
        },
    }
    (tmp_path / "map.json").write_text(json.dumps(mapping))
    result = CliRunner().invoke(
        app,
        [
            "load",
            str(tmp_path / "meters.csv"),
            "--mapping",
            str(tmp_path / "map.json"),
            "-d",
            f"sqlite:///{tmp_path}/h.db",
            "--json",
        ],
    )
    assert result.exit_code == 1  # one row refused
    report = json.loads(result.stdout)
    assert (report["created"], report["failed"]) == (2, 1)
    assert (
        report["errors"][0]["where"] == "row 3"
        and "'lots' is not a number" in report["errors"][0]["error"]
    )
    hub = Hub(Settings(database_url=f"sqlite:///{tmp_path}/h.db"))
    a3 = hub.store.get_entity("", "urn:ngsi-ld:ElectricityMeter:A3")
    assert not any(k.endswith("/power") for k in a3["attrs"])  # an empty cell: no attribute


@pytest.mark.parametrize(
    ("name", "content", "args", "message"),
    [
        ("x.txt", "[]", [], "cannot tell the format"),
        ("x.json", "{not json", [], "is not JSON"),
        ("x.csv", "a,b\n1,2\n", [], "needs --mapping"),
        ("x.geojson", "[]", [], "holds a FeatureCollection"),
        ("x.jsonl", "{}", ["--format", "xml"], "--format 'xml'"),
        ("x.jsonl", "{}", ["--tenant", "no spaces"], "--tenant 'no spaces'"),
        ("x.jsonl", "{}", ["--context", "https://nowhere.invalid/c.jsonld"], "cannot be resolved"),
    ],
)
def test_a_wrong_input_is_one_line(tmp_path, name, content, args, message) -> None:
    (tmp_path / name).write_text(content)
    result = CliRunner().invoke(
        app, ["load", str(tmp_path / name), "-d", f"sqlite:///{tmp_path}/h.db", *args]
    )
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1


def test_a_mapping_naming_a_missing_column_is_refused_before_loading(tmp_path) -> None:
    (tmp_path / "m.csv").write_text("ref\nA\n")
    (tmp_path / "map.toml").write_text(
        'id = "urn:ngsi-ld:M:{ref}"\ntype = "M"\n[attributes]\npower = "kw"\n'
    )
    result = CliRunner().invoke(
        app,
        [
            "load",
            str(tmp_path / "m.csv"),
            "--mapping",
            str(tmp_path / "map.toml"),
            "-d",
            f"sqlite:///{tmp_path}/h.db",
        ],
    )
    assert result.exit_code == 2 and "no column(s) ['kw']" in result.stderr


def test_jsonl_is_streamed_with_each_bad_line_named(tmp_path) -> None:
    lines = [orjson.dumps({"id": f"urn:ngsi-ld:M:{i}", "type": "M"}) for i in range(2500)]
    lines.insert(1200, b"{broken")
    (tmp_path / "m.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    hub = Hub(Settings(database_url=f"sqlite:///{tmp_path}/h.db"))
    seen: list[int] = []
    report = load_items(hub, read_items(tmp_path / "m.jsonl"), progress=lambda n, b: seen.append(b))
    assert (report.created, report.failed) == (2500, 1)
    assert report.errors[0]["where"] == "line 1201"
    assert seen == sorted(seen) and seen[-1] == (tmp_path / "m.jsonl").stat().st_size


def test_a_template_without_column_names_and_an_unreadable_row_are_one_line(tmp_path) -> None:
    (tmp_path / "m.csv").write_text("ref\nA\n")
    (tmp_path / "positional.toml").write_text('id = "urn:ngsi-ld:M:{}"\ntype = "M"\n')
    (tmp_path / "unclosed.toml").write_text('id = "urn:ngsi-ld:M:{ref"\ntype = "M"\n')
    # a bad byte far enough in that the header reads fine: the load stops there, saying so
    (tmp_path / "late.csv").write_bytes(b"ref\n" + b"A\n" * 20_000 + b"\xff\xfe\n")
    (tmp_path / "ok.toml").write_text('id = "urn:ngsi-ld:M:{ref}"\ntype = "M"\n')
    db = ["-d", f"sqlite:///{tmp_path}/h.db"]
    for csv_name, mapping, message in (
        ("m.csv", "positional.toml", "name a column in each {…}"),
        ("m.csv", "unclosed.toml", "expected '}'"),
        ("late.csv", "ok.toml", "cannot be read past line"),
    ):
        args = ["load", str(tmp_path / csv_name), "--mapping", str(tmp_path / mapping), *db]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and message in result.stderr, result.stderr
        assert "Traceback" not in result.output
