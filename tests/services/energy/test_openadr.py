"""Demand response over OpenADR 2.0b: real openleadr VENs talk to the city's VTN on loopback
(plain HTTP, unsigned messages), and every figure is read back from a real hub on SQLite."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cityos.config import Settings
from cityos.hub.client import HubClient
from cityos.hub.core import Hub
from cityos.hub.errors import ResourceNotFound
from cityos.services.energy.errors import EnergyError, ProtocolError
from cityos.services.energy.openadr import (
    DemandResponse,
    KnownVen,
    UnknownTargetError,
    Vtn,
    power_kw,
    watts_per_unit,
)

openleadr = pytest.importorskip("openleadr")

B1 = "urn:ngsi-ld:Building:townhall"
B2 = "urn:ngsi-ld:Building:library"
B3 = "urn:ngsi-ld:Building:pool"
REGISTRY = {"ven-townhall": B1, "ven-library": B2, "ven-pool": B3}
FAST = timedelta(seconds=1)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubClient]:
    core = Hub(Settings(database_url=f"sqlite:///{tmp_path}/hub.db"))
    yield HubClient(core)
    core.close()


def make_vtn(hub: HubClient) -> Vtn:
    return Vtn(hub, REGISTRY, port=0, poll_interval=FAST, report_interval=FAST)


@dataclass
class Building:
    """A building behind a VEN: it draws ``normal_kw``; while an event it opted in to runs it
    draws that minus the kW the event asks for. ``draw`` replaces that (a broken meter)."""

    name: str
    normal_kw: float = 10.0
    opt: str = "optIn"
    draw: Callable[[], float] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    sheds: list[tuple[datetime, datetime, float]] = field(default_factory=list)

    def on_event(self, event: dict[str, Any]) -> str:
        self.events.append(event)
        if self.opt == "optIn":
            start = event["active_period"]["dtstart"]
            end = start + event["active_period"]["duration"]
            delta_kw = event["event_signals"][0]["intervals"][0]["signal_payload"]
            self.sheds.append((start, end, -delta_kw))
        return self.opt

    def read(self) -> list[tuple[datetime, float]]:
        """The reading with its own time, so the VEN and the VTN agree on which side of the
        event's start it falls."""
        t = datetime.now(UTC)
        if self.draw is not None:
            return [(t, self.draw())]
        return [(t, self.normal_kw - sum(kw for a, b, kw in self.sheds if a <= t < b))]

    def ven(self, url: str) -> Any:
        client = openleadr.OpenADRClient(ven_name=self.name, vtn_url=url)
        client.add_report(
            callback=self.read,
            resource_id="main-meter",
            # A fresh Measurement: openleadr's enum ones are shared and add_report mutates them.
            measurement=openleadr.objects.Measurement(
                name="powerReal",
                description="RealPower",
                unit="W",
                scale="k",
                power_attributes=openleadr.objects.PowerAttributes(hertz=50, voltage=230, ac=True),
            ),
            unit="W",
            scale="k",  # add_report sets the measurement's scale to this (default "none")
            sampling_rate=FAST,
            report_duration=timedelta(hours=1),
        )
        client.add_handler("on_event", self.on_event)
        return client


@contextlib.asynccontextmanager
async def running(vtn: Vtn, buildings: list[Building]) -> AsyncIterator[list[Any]]:
    """Each building's VEN registered and polling; all stopped on the way out."""
    vens = [b.ven(vtn.url) for b in buildings]
    try:
        for ven in vens:
            await ven.run()
        yield vens
    finally:
        for ven in vens:
            await ven.stop()


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


# -- over the wire ---------------------------------------------------------------------------


def test_known_vens_register_and_report_unknown_and_bad_ones_are_refused(hub: HubClient) -> None:
    """A known VEN registers and its 10 kW lands on its meter entity in the hub (and it may
    leave again); a VEN not in the registry gets no registration; a meter reporting negative
    and 20 MW values is refused value by value and nothing of it reaches the hub."""
    bad_values = iter([-5.0, 20_000.0] * 50)
    buildings = [
        Building("ven-townhall"),
        Building("ven-stranger"),
        Building("ven-pool", draw=lambda: next(bad_values)),
    ]

    now = datetime.now(UTC)
    since, until_ = now - timedelta(minutes=1), now + timedelta(minutes=1)

    async def scenario() -> None:
        async with make_vtn(hub) as vtn, running(vtn, buildings) as vens:
            await until(lambda: vtn.refused_readings >= 2 and vtn.readings(B1, since, until_))
            assert vens[0].registration_id and vens[0].ven_id == "ven-townhall"
            assert vens[1].registration_id is None
            assert vens[2].registration_id
            assert vtn.refused_registrations == ["ven-stranger"]
            assert set(vtn.registrations) == {"ven-townhall", "ven-pool"}
            assert vtn.readings(B3, since, until_) == []
            await vens[0].cancel_party_registration()  # and a VEN may leave
            assert vens[0].registration_id is None
            assert set(vtn.registrations) == {"ven-pool"}

    asyncio.run(scenario())

    meter = hub.get("urn:ngsi-ld:ACMeasurement:openadr-ven-townhall")
    power = meter["totalActivePower"]
    assert power["value"] == 10.0 and power["unitCode"] == "KWT"
    assert power["observedAt"].endswith("Z")
    assert meter["refBuilding"]["object"] == B1
    with pytest.raises(ResourceNotFound):
        hub.get("urn:ngsi-ld:ACMeasurement:openadr-ven-pool")


@pytest.mark.slow
def test_a_shed_event_reaches_the_vens_and_its_measured_shed_lands_in_the_hub(
    hub: HubClient,
) -> None:
    """The town hall opts in and sheds the 4 kW asked of it (10 kW before, 6 kW during); the
    library opts out and keeps drawing 10 kW. The hub ends with their opts and measured sheds
    of 4 and 0 kW, on the event entity and on the town hall's Building entity."""
    hub.upsert([{"id": B1, "type": "Building", "name": {"type": "Property", "value": "Hall"}}])
    townhall, library = Building("ven-townhall"), Building("ven-library", opt="optOut")

    async def scenario() -> tuple[str, dict[str, float | None]]:
        async with make_vtn(hub) as vtn:
            dr = DemandResponse(vtn)
            async with running(vtn, [townhall, library]):
                start = datetime.now(UTC) + timedelta(seconds=2.5)
                event_id = dr.request_shed(
                    [B1, "ven-library"], start, timedelta(seconds=3), 4.0, event_id="test-1"
                )
                await until(lambda: "pending" not in dr.event(event_id).opts.values())
                assert datetime.now(UTC) < start, "the opts came too late to test the shed"
                with pytest.raises(EnergyError, match="measure it after"):
                    dr.measure(event_id)
                end = dr.event(event_id).end
                await asyncio.sleep((end - datetime.now(UTC)).total_seconds() + 1.2)
                return event_id, dr.measure(event_id)

    event_id, measured = asyncio.run(scenario())

    assert measured == {B1: 4.0, B2: 0.0}
    [received] = townhall.events
    signal = received["event_signals"][0]
    assert signal["signal_name"] == "LOAD_DISPATCH" and signal["signal_type"] == "delta"
    assert signal["intervals"][0]["signal_payload"] == -4.0
    assert len(library.events) == 1

    event = hub.get(event_id)
    assert event["type"] == "DemandResponseEvent"
    assert event["status"]["value"] == "measured"
    assert event["participation"]["value"] == {B1: "optIn", B2: "optOut"}
    assert event["requestedShedKw"]["value"] == {B1: 4.0, B2: 4.0}
    assert event["measuredShedKw"]["value"] == {B1: 4.0, B2: 0.0}
    assert event["measuredShedKw"]["unitCode"] == "KWT"
    assert event["baselineKw"]["value"] == {B1: 10.0, B2: 10.0}
    assert sorted(event["refBuilding"]["object"]) == sorted([B1, B2])
    shed = hub.get(B1)["demandResponseShed"]
    assert shed["value"] == 4.0 and shed["refDemandResponseEvent"]["object"] == event_id
    with pytest.raises(ResourceNotFound):
        hub.get(B2)  # the hub holds no library: its shed stays on the event entity


# -- in process ------------------------------------------------------------------------------


def test_measured_shed_uses_the_hour_before_or_a_given_baseline(hub: HubClient) -> None:
    """Readings fed as reports would be: the baseline is the mean of the hour before the
    start (a reading two hours before does not count), the event mean of those during it."""
    vtn = make_vtn(hub)
    start = datetime(2025, 7, 1, 14, tzinfo=UTC)
    for minutes, kw in [(-120, 50.0), (-30, 10.0), (-10, 12.0), (5, 7.0), (20, 5.0), (70, 30.0)]:
        vtn.ingest("ven-townhall", start + timedelta(minutes=minutes), kw)
    for minutes, kw in [(10, 8.0)]:
        vtn.ingest("ven-library", start + timedelta(minutes=minutes), kw)
    dr = DemandResponse(vtn)
    hour = timedelta(hours=1)
    own = dr.request_shed([B1, B2, B3], start, hour, {B1: 5, B2: 1, B3: 2}, event_id="a")
    given = dr.request_shed([B1, B2], start, hour, 3.0, baseline_kw={B1: 9, B2: 9.5}, event_id="b")

    assert dr.measure(own, now=start + 2 * hour) == {B1: 5.0, B2: None, B3: None}
    assert dr.measure(given, now=start + 2 * hour) == {B1: 3.0, B2: 1.5}
    assert hub.get(own)["measuredShedKw"]["value"] == {B1: 5.0}
    assert hub.get(own)["baselineKw"]["value"] == {B1: 11.0}
    assert hub.get(own)["measuredShedKw"]["observedAt"] == "2025-07-01T15:00:00Z"  # its end
    assert hub.get(own)["startTime"]["value"] == {
        "@type": "DateTime",
        "@value": "2025-07-01T14:00:00Z",
    }
    assert hub.get(given)["measuredShedKw"]["value"] == {B1: 3.0, B2: 1.5}
    assert hub.get(own)["participation"]["value"] == {B1: "pending", B2: "pending", B3: "pending"}


def test_bad_readings_are_refused_and_counted_good_ones_are_converted_to_kw(
    hub: HubClient,
) -> None:
    vtn = make_vtn(hub)
    at = datetime(2025, 7, 1, 12, tzinfo=UTC)
    for value in ["12", None, True, math.nan, math.inf, -0.5, 10_000.5, [3.0]]:
        assert vtn.ingest("ven-townhall", at, value) is None
    assert vtn.refused_readings == vtn.refused_by_ven["ven-townhall"] == 8
    with pytest.raises(UnknownTargetError, match="ven-nobody"):
        vtn.ingest("ven-nobody", at, 1.0)
    with pytest.raises(ResourceNotFound):
        hub.get("urn:ngsi-ld:ACMeasurement:openadr-ven-townhall")

    assert vtn.ingest("ven-townhall", at, 2500, watts=watts_per_unit("W", "none")) == 2.5
    assert vtn.ingest("ven-townhall", at, 0.5, watts=watts_per_unit("W", "M")) == 500.0
    assert (
        hub.get("urn:ngsi-ld:ACMeasurement:openadr-ven-townhall")["totalActivePower"]["value"]
        == 500.0
    )
    assert power_kw(10_000.0) == 10_000.0  # 10 MW is the most a building may draw
    with pytest.raises(ProtocolError, match="not understood"):
        watts_per_unit("Wh", "k")
    # a report of another quantity, or power in a unit we do not know, is not requested
    assert vtn.on_register_report("ven-townhall", "m", "Voltage", "V", "none", FAST, FAST) is None
    assert (
        vtn.on_register_report("ven-townhall", "m", "RealPower", "hp", "none", FAST, FAST) is None
    )
    callback, interval = vtn.on_register_report(
        "ven-townhall", "m", "RealPower", "W", "k", timedelta(seconds=5), timedelta(minutes=5)
    )
    assert interval == timedelta(seconds=5)  # ours (1 s) raised to the VEN's fastest


def test_an_event_for_an_unknown_building_or_with_bad_values_changes_nothing(
    hub: HubClient,
) -> None:
    vtn = make_vtn(hub)
    dr = DemandResponse(vtn)
    start, hour = datetime.now(UTC) + timedelta(minutes=5), timedelta(hours=1)
    with pytest.raises(UnknownTargetError, match="urn:ngsi-ld:Building:nowhere"):
        dr.request_shed([B1, "urn:ngsi-ld:Building:nowhere"], start, hour, 4.0)
    with pytest.raises(UnknownTargetError, match="empty"):
        dr.request_shed([], start, hour, 4.0)
    with pytest.raises(EnergyError, match="shed_kw for"):
        dr.request_shed([B1], start, hour, -1.0)
    with pytest.raises(EnergyError, match="no value for"):
        dr.request_shed([B1, B2], start, hour, {B1: 1.0})
    with pytest.raises(EnergyError, match="time zone"):
        dr.request_shed([B1], start.replace(tzinfo=None), hour, 4.0)
    with pytest.raises(EnergyError, match="whole number of seconds"):
        dr.request_shed([B1], start, timedelta(seconds=1.5), 4.0)
    assert hub.count(type="DemandResponseEvent") == 0
    assert vtn.server.events == {}
    with pytest.raises(EnergyError, match="no demand-response event"):
        dr.measure("urn:ngsi-ld:DemandResponseEvent:never")


def test_cancel_marks_the_event_cancelled_for_the_vens_and_in_the_hub(hub: HubClient) -> None:
    vtn = make_vtn(hub)
    dr = DemandResponse(vtn)
    event_id = dr.request_shed(B1, datetime.now(UTC) + timedelta(hours=1), timedelta(hours=1), 2)
    dr.cancel(event_id)
    [queued] = vtn.server.events["ven-townhall"]
    assert queued.event_descriptor.event_status == "cancelled"
    assert hub.get(event_id)["status"]["value"] == "cancelled"
    with pytest.raises(EnergyError, match="requested already"):
        dr.request_shed(B1, datetime.now(UTC), timedelta(hours=1), 2, event_id=event_id[-32:])


def test_registration_needs_a_known_name_and_the_agreed_certificate(hub: HubClient) -> None:
    """Over TLS openleadr adds the client certificate's fingerprint to the request; a VEN
    whose fingerprint was agreed must present exactly that one."""
    vens = [KnownVen("ven-townhall", B1, fingerprint="AA:BB"), KnownVen("ven-library", B2)]
    vtn = Vtn(hub, vens, port=0)
    ask = {"ven_name": "ven-townhall", "fingerprint": "AA:BB"}
    assert vtn.on_create_party_registration(ask)[0] == "ven-townhall"
    assert vtn.on_create_party_registration({**ask, "fingerprint": "CC:DD"}) is False
    assert vtn.on_create_party_registration({"ven_name": "ven-library"})[0] == "ven-library"
    assert vtn.on_create_party_registration({"ven_name": None}) is False
    assert vtn.ven_lookup("ven-townhall")["fingerprint"] == "AA:BB"
    assert vtn.ven_lookup("ven-nobody") is None
    with pytest.raises(EnergyError, match="once"):
        Vtn(hub, [KnownVen("a", B1), KnownVen("b", B1)])
