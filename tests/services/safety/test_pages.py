"""The "Safety and alerts" page: every service's Alerts newest first, the cameras as the
safety service reports them (through the IoT agent, as `cityos safety run` does), on a map
by layer, an explanation on an empty hub, and no failure for a role that may not read
every type."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cityos.devices.agent import Agent
from cityos.hub.client import HubClient
from cityos.plug import PANEL_KINDS, Panel
from cityos.services.flows.crowding import crowding_alerts
from cityos.services.flows.model import HourLevel
from cityos.services.safety import pages as safety_pages
from cityos.services.safety.cameradevice import CameraHealth
from cityos.services.safety.counting import Interval
from cityos.services.safety.model import Camera, alert_entity
from cityos.services.safety.publish import HubPublisher
from cityos.services.safety.service import SERVICE

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)
MARKET = Camera("cam-1", "Market entrance", (104.9210, 11.5696))
RIVER = Camera("cam-2", "Riverside", (104.9310, 11.5700))
SNAPSHOT = "data:image/jpeg;base64,/9j/4AAQSkZJRgABAQAAAQABAAD"


def by_kind(found: list[Panel]) -> dict[str, list[Panel]]:
    assert all(isinstance(p, Panel) and p.kind in PANEL_KINDS for p in found)
    out: dict[str, list[Panel]] = {}
    for p in found:
        out.setdefault(p.kind, []).append(p)
    return out


def metrics(found: dict[str, list[Panel]]) -> dict[str, Any]:
    return {m["label"]: m["value"] for m in found["metrics"][0].data}


def cameras(client: HubClient) -> None:
    """Two cameras run as the CLI runs them: one reporting, one whose stream dropped."""
    agent = Agent(client.hub)
    market = HubPublisher(client, MARKET, T0, zones=["left"], agent=agent)
    market.start()
    market.interval(Interval(0.0, 60.0, frames=600, view_peak=9, view_sum=4200))
    market.health(CameraHealth("ok", 10.0, 600, 7, T0 + timedelta(minutes=59)))
    market.close()
    river = HubPublisher(client, RIVER, T0, agent=agent)
    river.start()
    river.dropped(
        "stream ended", CameraHealth("disconnected", 0.0, 40, 0, T0 + timedelta(minutes=30))
    )
    river.close()


def other_alerts(client: HubClient) -> None:
    """A camera's incident (with its masked snapshot), a crowding alert of the flows
    service (over: past its validTo), and the traffic service's jam and all-clear."""
    crowding = alert_entity(MARKET, kind="crowding", severity="high", zone="left",
                            description="camera Market entrance: 14 people in zone 'left'",
                            at=T0 + timedelta(minutes=45), snapshot=SNAPSHOT)  # fmt: skip
    hour = HourLevel("central-market", T0 - timedelta(hours=2), T0 - timedelta(hours=1),
                     6000, 0, 6000, 6000, 0)  # fmt: skip
    traffic = [
        {
            "id": f"urn:ngsi-ld:Alert:traffic-jam:e1:{n}",
            "type": "Alert",
            "category": {"type": "Property", "value": "traffic"},
            "subCategory": {"type": "Property", "value": sub},
            "severity": {"type": "Property", "value": severity},
            "description": {"type": "Property", "value": f"road segment e1: {sub}"},
            "dateIssued": {
                "type": "Property",
                "value": {"@type": "DateTime", "@value": f"2026-03-02T09:{minute}:00Z"},
            },
            "alertSource": {"type": "Relationship", "object": "urn:ngsi-ld:RoadSegment:e1"},
        }
        for n, sub, severity, minute in (
            (1, "trafficJam", "medium", 50),
            (2, "trafficJamCleared", "informational", 55),
        )
    ]
    client.upsert([crowding, *crowding_alerts([hour], 0.9), *traffic])


def test_the_page_is_in_the_plug() -> None:
    (page,) = SERVICE.pages()
    assert (page.slug, page.title, page.order) == ("safety", "Safety and alerts", 50)
    assert set(page.reads) == {"Alert", "Device"} and "Alert" in page.watch


def test_an_empty_hub_says_what_is_missing_and_what_feeds_it(client: HubClient) -> None:
    (only,) = safety_pages.panels(client)
    assert only.kind == "text" and "cityos safety run" in only.data and "Alert" in only.data


def test_every_alert_newest_first_with_the_cameras(client: HubClient) -> None:
    cameras(client)
    other_alerts(client)
    found = by_kind(safety_pages.panels(client, now=NOW))

    (alerts,) = found["alerts"]
    rows = alerts.data
    assert [r["time"] for r in rows] == [
        "2026-03-02 09:55:00 UTC",
        "2026-03-02 09:50:00 UTC",
        "2026-03-02 09:45:00 UTC",
        "2026-03-02 09:30:00 UTC",
        "2026-03-02 08:00:00 UTC",
    ]
    assert [r["category"] for r in rows] == ["traffic", "traffic", "security", "security",
                                             "security"]  # fmt: skip
    assert all(set(r) == {"id", "category", "severity", "description", "time", "where"}
               for r in rows)  # fmt: skip
    assert rows[2]["severity"] == "high" and rows[2]["where"] == "Market entrance · zone left"
    assert rows[2]["id"].startswith("urn:ngsi-ld:Alert:safety:cam-1:crowding")
    assert rows[3]["where"] == "Riverside" and "stream ended" in rows[3]["description"]
    assert rows[1]["where"] == "RoadSegment e1"
    assert rows[4]["where"] == "FlowZone central-market"
    assert SNAPSHOT not in json.dumps([p.data for p in found["alerts"]])

    shown = metrics(found)
    assert shown["Cameras online"] == 1 and shown["People in view"] == 7
    assert shown["Alerts"] == 5
    # the all-clear is informational and the flows' hour is over
    assert (shown["Open critical"], shown["Open high"], shown["Open medium"]) == (0, 1, 2)

    features = found["map"][0].data["features"]
    assert {f["layer"] for f in features} == {"camera", "alert"}
    placed = {(f["layer"], tuple(f["geometry"]["coordinates"])) for f in features}
    assert placed == {
        ("camera", MARKET.location),
        ("camera", RIVER.location),
        ("alert", MARKET.location),  # the incident
        ("alert", RIVER.location),  # the dropped stream
    }  # the jam has no place of its own

    (table,) = found["table"]
    assert table.data["columns"][:3] == ["Camera", "State", "People in view"]
    assert [r[:3] for r in table.data["rows"]] == [["Market entrance", "ok", 7],
                                                   ["Riverside", "disconnected", 0]]  # fmt: skip
    assert table.data["rows"][0][4] == 600


def test_the_newest_written_alerts_when_there_are_many(
    client: HubClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(safety_pages, "MAX_ALERTS", 3)
    client.upsert([
        alert_entity(MARKET, kind="loitering", severity="low", description=f"loitering {n}",
                     at=T0 + timedelta(minutes=n))
        for n in range(5)
    ])  # fmt: skip
    found = by_kind(safety_pages.panels(client, now=NOW))
    assert [r["description"] for r in found["alerts"][0].data] == [
        "loitering 4",
        "loitering 3",
        "loitering 2",
    ]
    assert metrics(found)["Alerts"] == 5 and metrics(found)["Open low"] == 3
    assert "cityos safety run" in found["text"][0].data  # alerts, but no camera yet
    assert "table" not in found


def test_a_role_that_may_not_read_every_type(viewer, client: HubClient) -> None:
    cameras(client)
    other_alerts(client)
    with viewer("Alert"):
        found = by_kind(safety_pages.panels(client, now=NOW))
    assert len(found["alerts"][0].data) == 5 and "table" not in found
    assert metrics(found)["Cameras online"] == 0
    with viewer("Device"):
        found = by_kind(safety_pages.panels(client, now=NOW))
    assert found["alerts"][0].data == [] and metrics(found)["Alerts"] == 0
    assert len(found["table"][0].data["rows"]) == 2
    with viewer("TrafficSignal"):
        (only,) = safety_pages.panels(client, now=NOW)
    assert only.kind == "text"
