"""The flows page of the operations dashboard: each zone's crowd as the service builds it,
with the numbers written here by hand, nothing that could name a person, a plain
explanation on an empty hub, and no failure for a role that may not read every type."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

from cityos.hub.client import HubClient
from cityos.plug import PANEL_KINDS, Panel
from cityos.privacy import Pseudonymiser
from cityos.services.flows import (
    SERVICE,
    CounterReading,
    ZoneMap,
    build_day,
    ingest_counts,
    ingest_sightings,
    ingest_taps,
)
from cityos.services.flows.pages import panels
from cityos.services.flows.synthetic import sample_zones, synthetic_sightings, synthetic_taps

from .conftest import DAY, TZ, at

MARKET = "Phsar Thmei (Central Market)"  # central-market, capacity 6000


def by_kind(found: list[Panel]) -> dict[str, list[Panel]]:
    assert all(isinstance(p, Panel) and p.kind in PANEL_KINDS for p in found)
    out: dict[str, list[Panel]] = {}
    for p in found:
        out.setdefault(p.kind, []).append(p)
    return out


def reading(
    sensor: str, hour: int, count: int, direction: str = "inbound", day: date = DAY
) -> CounterReading:
    """What a counter saw cross in one local hour of ``day``."""
    start = at(hour, day=day)
    return CounterReading(sensor, start, start + timedelta(hours=1), count, direction)


def metric(found: dict[str, list[Panel]], label: str) -> Any:
    (m,) = [m for m in found["metrics"][0].data if m["label"] == label]
    return m["value"]


def test_the_page_is_in_the_plug() -> None:
    (page,) = SERVICE.pages()
    assert (page.slug, page.order) == ("flows", 40)
    assert page.panels is panels
    assert set(page.reads) == {"FlowZone", "CrowdLevel"} and "CrowdLevel" in page.watch


def test_an_empty_hub_says_what_is_missing_and_what_feeds_it(client: HubClient) -> None:
    (only,) = panels(client)
    assert only.kind == "text"
    assert "FlowZone" in only.data and "cityos flows simulate" in only.data


def test_zones_with_no_crowd_level_yet(client: HubClient, zones: ZoneMap) -> None:
    found = by_kind(panels(client))
    assert metric(found, "Zones") == 8
    assert "cityos flows build" in found["text"][0].data
    features = found["map"][0].data["features"]
    assert len(features) == 8 and {f["layer"] for f in features} == {"crowd"}
    assert all("level" not in f for f in features)
    assert all(row[1] is None for row in found["table"][0].data["rows"])
    assert "chart" not in found


def test_the_crowd_now_is_what_the_counters_counted(client: HubClient, zones: ZoneMap) -> None:
    ingest_counts(
        client,
        [
            reading("counter-central-market-1", 8, 3000),
            reading("counter-central-market-2", 9, 2000),
            reading("counter-central-market-1", 9, 500, "outbound"),
            reading("counter-wat-phnom-1", 9, 300),
        ],
    )
    build_day(client, DAY, TZ, now=at(9, 30))
    found = by_kind(panels(client))

    assert metric(found, "People now") == 4500 + 300
    assert metric(found, "Busiest zone") == MARKET
    assert metric(found, "Zones crowded") == 0  # 4500 of 6000: 75%
    features = {f["label"].split(":")[0]: f for f in found["map"][0].data["features"]}
    assert features[MARKET]["level"] == 0.75 and features[MARKET]["layer"] == "crowd"
    assert features["Wat Phnom"]["level"] == 0.1
    assert features["Night market"]["level"] == 0.0
    assert features[MARKET]["geometry"] == {"type": "Point", "coordinates": [104.921, 11.5696]}

    rows = found["table"][0].data["rows"]
    assert found["table"][0].data["columns"][:4] == ["Zone", "People present", "Capacity",
                                                      "Occupancy (%)"]  # fmt: skip
    assert rows[0][:5] == [MARKET, 4500, 6000, 75.0, "moderate"]
    assert rows[1][:4] == ["Wat Phnom", 300, 3000, 10.0]
    assert len(rows) == 8

    (chart,) = found["chart"]
    data = chart.data
    assert data["series"][0]["name"] == MARKET and len(data["series"]) == 5
    assert len(data["x"]) == 10  # local 00:00 to 09:00 (17:00 to 02:00 UTC)
    assert data["x"][-2:] == ["01:00", "02:00"]
    assert data["series"][0]["values"][-3:] == [0, 3000, 4500]
    assert all(len(s["values"]) == len(data["x"]) for s in data["series"])


def test_the_latest_day_built_is_the_one_shown(client: HubClient, zones: ZoneMap) -> None:
    ingest_counts(client, [reading("counter-central-market-1", 12, 5800)])
    build_day(client, DAY, TZ, now=at(23, 59))
    next_day = DAY + timedelta(days=1)
    ingest_counts(client, [reading("counter-riverside-1", 7, 1000, day=next_day)])
    build_day(client, next_day, TZ, now=at(8, 10, day=next_day))
    found = by_kind(panels(client))
    assert metric(found, "Busiest zone") == "Sisowath Quay riverside"
    assert metric(found, "People now") == 1000  # the market's crowd was the day before
    assert found["table"][0].data["rows"][0][-1] == f"{at(8, day=next_day):%Y-%m-%d %H:%M} UTC"


def test_nothing_on_the_page_names_a_person(
    client: HubClient, zones: ZoneMap, pseudonymiser: Pseudonymiser
) -> None:
    zone_list = sample_zones()
    taps = synthetic_taps(zone_list, DAY, TZ, cards=60, seed=5)
    sightings = synthetic_sightings(zone_list, DAY, TZ, devices=30, seed=5)
    ingest_taps(client, pseudonymiser, taps)
    ingest_sightings(client, pseudonymiser, sightings)
    build_day(client, DAY, TZ, now=at(23, 59))
    text = json.dumps([p.data for p in panels(client)], default=str)
    stored = client.query(type="AnonymousCommuterId", limit=10_000, fmt="keyValues")
    assert stored  # there is something to leak
    for record in stored:
        assert record["anonymizedId"] not in text and record["id"] not in text
    for raw in [t.card for t in taps] + [s.mac for s in sightings]:
        assert raw not in text and raw.replace(":", "") not in text


def test_a_role_that_may_not_read_every_type(viewer, client: HubClient, zones: ZoneMap) -> None:
    ingest_counts(client, [reading("counter-central-market-1", 9, 600)])
    build_day(client, DAY, TZ, now=at(9, 30))
    with viewer("FlowZone"):  # the zones, not their crowd
        found = by_kind(panels(client))
    assert metric(found, "Zones") == 8 and "cityos flows build" in found["text"][0].data
    with viewer("CrowdLevel"):  # the crowd, not the zones: named by code, no map
        found = by_kind(panels(client))
    assert metric(found, "Busiest zone") == "central-market" and "map" not in found
    with viewer("TrafficSignal"):
        (only,) = panels(client)
    assert only.kind == "text"
