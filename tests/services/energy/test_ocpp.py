"""The OCPP 2.0.1 central system against simulated charging stations that speak the real
protocol (the ``ocpp`` package's client side, over websockets on loopback); outcomes are read
back from a real hub."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ocpp.routing import on
from ocpp.v201 import ChargePoint, call, call_result
from ocpp.v201.enums import Action
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from cityos.config import Settings
from cityos.hub.client import HubClient
from cityos.hub.core import Hub
from cityos.services.energy.errors import BadReadingError
from cityos.services.energy.ocpp import CentralSystem, StationNotConnectedError, station_from_path
from cityos.services.energy.ocpp_model import (
    ChargingProfileError,
    Reading,
    check_energy_rate,
    read_sample,
    station_id,
)

T0 = datetime(2025, 3, 1, 18, 0, tzinfo=UTC)
GOOD, BAD = "04A2B3C4D5", "DEADBEEF"


@pytest.fixture
def client(tmp_path: Path) -> HubClient:
    return HubClient(Hub(Settings(database_url=f"sqlite:///{tmp_path}/hub.db")))


class SimStation(ChargePoint):
    """A charging station: answers SetChargingProfile (Accepted, or ``answer``) and keeps
    every profile it was sent."""

    answer = "Accepted"

    def __init__(self, cp_id: str, connection: ClientConnection) -> None:
        super().__init__(cp_id, connection)
        self.connection = connection
        self.profiles: list[dict[str, Any]] = []

    @on(Action.set_charging_profile)
    def on_profile(
        self, evse_id: int, charging_profile: dict[str, Any], **_: Any
    ) -> call_result.SetChargingProfile:
        self.profiles.append({"evse_id": evse_id, **charging_profile})
        return call_result.SetChargingProfile(status=self.answer)

    async def boot(self) -> call_result.BootNotification:
        station = {"vendor_name": "OpenEVSE", "model": "Pro-22", "serial_number": "SN-1"}
        return await self.call(call.BootNotification(charging_station=station, reason="PowerUp"))

    async def authorize(self, token: str) -> str:
        result = await self.call(call.Authorize(id_token={"id_token": token, "type": "ISO14443"}))
        return result.id_token_info["status"]

    async def status(self, status: str, at: datetime = T0) -> None:
        await self.call(
            call.StatusNotification(
                timestamp=iso(at), connector_status=status, evse_id=1, connector_id=1
            )
        )

    async def event(
        self,
        event_type: str,
        seq_no: int,
        at: datetime,
        samples: list[dict[str, Any]] | None = None,
        token: str | None = None,
        **info: Any,
    ) -> call_result.TransactionEvent:
        trigger = {"Started": "Authorized", "Ended": "StopAuthorized"}.get(
            event_type, "MeterValuePeriodic"
        )
        return await self.call(
            call.TransactionEvent(
                event_type=event_type,
                timestamp=iso(at),
                trigger_reason=trigger,
                seq_no=seq_no,
                transaction_info={"transaction_id": "TX-1", **info},
                meter_value=[{"timestamp": iso(at), "sampled_value": samples}] if samples else None,
                evse={"id": 1, "connector_id": 1} if event_type == "Started" else None,
                id_token={"id_token": token, "type": "ISO14443"} if token else None,
            )
        )


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def energy(wh: float) -> dict[str, Any]:
    return {"value": wh, "measurand": "Energy.Active.Import.Register"}


def power(w: Any) -> dict[str, Any]:
    return {"value": w, "measurand": "Power.Active.Import", "unit_of_measure": {"unit": "W"}}


@contextlib.asynccontextmanager
async def csms(client: HubClient, **options: Any) -> AsyncIterator[CentralSystem]:
    async with CentralSystem(client, port=0, id_tokens={GOOD}, **options) as central:
        yield central


@contextlib.asynccontextmanager
async def station(central: CentralSystem, cp_id: str = "CP-1") -> AsyncIterator[SimStation]:
    async with connect(central.url(cp_id), subprotocols=["ocpp2.0.1"]) as ws:
        sim = SimStation(cp_id, ws)
        task = asyncio.create_task(sim.start())
        await until(lambda: cp_id in central.connected())
        try:
            yield sim
        finally:
            task.cancel()


async def until(check: Callable[[], bool], timeout: float = 3.0) -> None:
    """Wait for the server side to catch up with what the station did."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 8))


def test_boot_status_and_authorize_reach_the_hub(client: HubClient) -> None:
    """A station boots (Accepted, with the heartbeat interval), reports its status; only
    the allow-listed token is accepted, and no token is written to the hub."""

    async def scenario() -> None:
        async with csms(client, heartbeat_interval_s=60) as central, station(central) as cp:
            boot = await cp.boot()
            assert (boot.status, boot.interval) == ("Accepted", 60)
            beat = await cp.call(call.Heartbeat())
            assert datetime.fromisoformat(beat.current_time) > T0
            await cp.status("Available")
            assert await cp.authorize(GOOD) == "Accepted"
            assert await cp.authorize(BAD) == "Invalid"
            assert central.stats.authorizations_refused == 1

    run(scenario)
    cs = client.get(station_id("CP-1"))
    assert cs["type"] == "EVChargingStation"
    assert cs["manufacturerName"]["value"] == "OpenEVSE"
    assert cs["modelName"]["value"] == "Pro-22"
    assert cs["serialNumber"]["value"] == "SN-1"
    assert cs["status"] == {"type": "Property", "value": "Available", "observedAt": iso(T0)}
    assert cs["connected"]["value"] is False  # the station hung up at the end
    assert cs["connected"]["observedAt"].endswith("Z")
    assert GOOD not in str(cs) and BAD not in str(cs)


def test_a_charging_session_with_bad_readings_and_a_charging_limit(client: HubClient) -> None:
    """Start, meter (three impossible values refused, the rest of the message kept), a
    limit and an hourly schedule sent and received, stop; the hub holds the outcome."""
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        async with csms(client) as central, station(central) as cp:
            await cp.boot()
            started = await cp.event("Started", 0, T0, [energy(1000.0)], token=GOOD)
            assert started.id_token_info["status"] == "Accepted"
            await cp.status("Occupied")
            t1 = T0 + timedelta(minutes=15)
            await cp.event(
                "Updated", 1, t1, [energy(2850.0), power(7400.0)], charging_state="Charging"
            )
            seen["mid"] = client.get(station_id("CP-1"))
            # negative register, NaN power, 2 MW power: refused; the energy in kWh is kept
            t2 = T0 + timedelta(minutes=30)
            bad = [energy(-5.0), power(math.nan), power(2_000_000.0)]
            kwh = {"value": 4.7, "unit_of_measure": {"unit": "kWh"}}
            await cp.call(
                call.MeterValues(
                    evse_id=1, meter_value=[{"timestamp": iso(t2), "sampled_value": [*bad, kwh]}]
                )
            )
            assert central.stats.readings_refused == 3
            assert len(central.stats.refusals) == 3
            seen["after_bad"] = client.get(station_id("CP-1"))

            status = await central.set_charging_profile("CP-1", 7.4, t2, t2 + timedelta(hours=2))
            assert status == "Accepted"
            status = await central.set_charging_schedule("CP-1", [11.0, 7.4, 3.7], t2)
            assert status == "Accepted"
            seen["profiles"] = cp.profiles
            seen["with_profile"] = client.get(station_id("CP-1"))

            t3 = T0 + timedelta(minutes=45)
            await cp.event("Ended", 2, t3, [energy(6100.0)], stopped_reason="EVDisconnected")
            assert central.transactions("CP-1") == []

    run(scenario)
    mid = seen["mid"]
    assert mid["transactionId"]["value"] == "TX-1"
    assert mid["transactionStatus"]["value"] == "active"
    assert mid["chargingState"]["value"] == "Charging"
    assert mid["powerKw"] == {
        "type": "Property", "value": 7.4, "unitCode": "KWT",
        "observedAt": iso(T0 + timedelta(minutes=15)),
    }  # fmt: skip
    assert mid["energyImportedKwh"]["value"] == 2.85
    assert mid["transactionEnergyKwh"]["value"] == 1.85

    after_bad = seen["after_bad"]
    assert after_bad["powerKw"]["value"] == 7.4  # the NaN and 2 MW readings wrote nothing
    assert after_bad["energyImportedKwh"]["value"] == 4.7  # the good value beside them did
    assert after_bad["energyImportedKwh"]["observedAt"] == iso(T0 + timedelta(minutes=30))

    flat, hourly = seen["profiles"]
    assert flat["charging_profile_purpose"] == "TxDefaultProfile"
    assert flat["evse_id"] == 0
    [schedule] = flat["charging_schedule"]
    assert schedule["charging_rate_unit"] == "W"
    assert schedule["charging_schedule_period"] == [{"start_period": 0, "limit": 7400.0}]
    assert schedule["duration"] == 7200
    assert flat["valid_from"].startswith("2025-03-01T18:30:00")
    assert flat["valid_to"].startswith("2025-03-01T20:30:00")
    periods = hourly["charging_schedule"][0]["charging_schedule_period"]
    assert [(p["start_period"], p["limit"]) for p in periods] == [
        (0, 11000.0), (3600, 7400.0), (7200, 3700.0),
    ]  # fmt: skip
    kept = seen["with_profile"]["chargingProfile"]["value"]
    assert kept["limitsKw"] == [11.0, 7.4, 3.7]
    assert kept["periodStartsS"] == [0, 3600, 7200]

    cs = client.get(station_id("CP-1"))
    assert cs["transactionStatus"]["value"] == "ended"
    assert cs["stoppedReason"]["value"] == "EVDisconnected"
    assert cs["powerKw"]["value"] == 0.0
    assert cs["energyImportedKwh"]["value"] == 6.1
    assert cs["transactionEnergyKwh"]["value"] == 5.1
    assert cs["status"]["value"] == "Occupied"
    assert client.query(type="Alert") == []  # it hung up after the session ended


def test_a_station_lost_mid_transaction_raises_an_alert(client: HubClient) -> None:
    """The socket drops without a close frame (a power cut): the transaction is marked
    interrupted, the station Unavailable, and a FIWARE Alert names the station."""

    async def scenario() -> None:
        async with csms(client) as central:
            async with station(central, "CP-7") as cp:
                await cp.boot()
                await cp.event("Started", 0, T0, [energy(0.0), power(11000.0)], token=GOOD)
                cp.connection.transport.abort()
            await until(lambda: central.connected() == [])
            assert [t.status for t in central.transactions("CP-7")] == ["interrupted"]
            assert central.stats.alerts == 1
            with pytest.raises(StationNotConnectedError, match="not connected"):
                await central.set_charging_profile("CP-7", 3.0, T0, T0 + timedelta(hours=1))

    run(scenario)
    cs = client.get(station_id("CP-7"))
    assert cs["connected"]["value"] is False
    assert cs["status"]["value"] == "Unavailable"
    assert cs["transactionStatus"]["value"] == "interrupted"
    assert cs["transactionId"]["value"] == "TX-1"
    [alert] = client.query(type="Alert")
    assert alert["category"]["value"] == "energy"
    assert alert["subCategory"]["value"] == "chargerDisconnected"
    assert alert["severity"]["value"] == "medium"
    assert alert["alertSource"]["object"] == station_id("CP-7")
    assert "TX-1" in alert["description"]["value"]
    assert alert["dateIssued"]["value"]["@value"].endswith("Z")


def test_reconnecting_replaces_the_old_socket_and_the_session_goes_on(client: HubClient) -> None:
    """A station that dials in again (without booting) keeps its transaction; the older
    socket is closed without an alert, and the session can end normally."""

    async def scenario() -> None:
        async with csms(client) as central:
            async with station(central, "CP-2") as first:
                await first.event("Started", 0, T0, [energy(0.0)], token=GOOD)
                async with station(central, "CP-2") as second:
                    await until(lambda: first.connection.close_code is not None)
                    assert central.connected() == ["CP-2"]
                    await second.event("Ended", 1, T0 + timedelta(hours=1), [energy(7000.0)])
            await until(lambda: central.connected() == [])
            assert central.stats.alerts == 0

    run(scenario)
    assert client.query(type="Alert") == []
    cs = client.get(station_id("CP-2"))
    assert cs["transactionStatus"]["value"] == "ended"
    assert cs["transactionEnergyKwh"]["value"] == 7.0


def test_our_own_shutdown_raises_no_alert(client: HubClient) -> None:
    """Stopping the CSMS closes every socket; the stations did nothing wrong."""

    async def scenario() -> None:
        central = CentralSystem(client, port=0, id_tokens={GOOD})
        await central.start()
        async with station(central, "CP-3") as cp:
            await cp.event("Started", 0, T0, [energy(0.0)], token=GOOD)
            await central.stop()
            await until(lambda: central.connected() == [])
        assert central.stats.alerts == 0

    run(scenario)
    assert client.query(type="Alert") == []
    cs = client.get(station_id("CP-3"))
    assert cs["connected"]["value"] is False
    assert cs["transactionStatus"]["value"] == "active"


def test_commands_and_connections_that_cannot_work_are_refused(client: HubClient) -> None:
    """Unknown station, wrong path, no OCPP subprotocol, unregistered station, impossible
    limits, a TxProfile with no transaction, and a station that rejects the profile."""

    async def scenario() -> None:
        async with csms(client, stations={"CP-1"}) as central:
            with pytest.raises(StationNotConnectedError, match="never connected"):
                await central.set_charging_profile("CP-9", 3.0, T0, T0 + timedelta(hours=1))
            for url, subprotocols, code in [
                (central.url("CP-1").replace("/ocpp/", "/other/"), ["ocpp2.0.1"], 404),
                (central.url("CP-1"), ["ocpp1.6"], 400),
                (central.url("CP-2"), ["ocpp2.0.1"], 403),
            ]:
                with pytest.raises(InvalidStatus) as refused:
                    async with connect(url, subprotocols=subprotocols):
                        pass
                assert refused.value.response.status_code == code
            async with station(central) as cp:
                with pytest.raises(ChargingProfileError, match="finite number"):
                    await central.set_charging_schedule("CP-1", [3.0, -1.0], T0)
                with pytest.raises(ChargingProfileError, match="before it starts"):
                    await central.set_charging_profile("CP-1", 3.0, T0, T0 - timedelta(hours=1))
                with pytest.raises(ChargingProfileError, match="TxProfile"):
                    await central.set_charging_profile(
                        "CP-1", 3.0, T0, T0 + timedelta(hours=1), purpose="TxProfile"
                    )
                cp.answer = "Rejected"
                status = await central.set_charging_profile("CP-1", 3.0, T0, T0 + timedelta(1))
                assert status == "Rejected"
                assert cp.profiles and "chargingProfile" not in client.get(station_id("CP-1"))

    run(scenario)


def test_a_tx_profile_names_the_running_transaction(client: HubClient) -> None:
    async def scenario() -> None:
        async with csms(client) as central, station(central) as cp:
            await cp.event("Started", 0, T0, token=GOOD)
            status = await central.set_charging_profile(
                "CP-1", 5.0, T0, T0 + timedelta(hours=1), purpose="TxProfile"
            )
            assert status == "Accepted"
            [profile] = cp.profiles
            assert (profile["transaction_id"], profile["evse_id"]) == ("TX-1", 1)
            assert profile["charging_profile_purpose"] == "TxProfile"

    run(scenario)


@pytest.mark.parametrize(
    ("sample", "why"),
    [
        ({"value": -1.0}, "negative"),
        ({"value": "12"}, "not a number"),
        ({"value": math.inf, "measurand": "Power.Active.Import"}, "finite"),
        ({"value": 1.2, "measurand": "Power.Active.Import", "unit_of_measure": {"unit": "MW"}}, "MW"),
        ({"value": 1001.0, "measurand": "Power.Active.Import", "unit_of_measure": {"unit": "kW"}}, "1 MW"),
        ({"value": 2.0, "unit_of_measure": {"unit": "Wh", "multiplier": 12}}, "multiplier"),
    ],
)  # fmt: skip
def test_impossible_samples_are_refused(sample: dict[str, Any], why: str) -> None:
    with pytest.raises(BadReadingError, match=why):
        read_sample(sample, iso(T0))


def test_samples_are_scaled_and_unused_ones_skipped() -> None:
    kwh = {"value": 1.5, "unit_of_measure": {"unit": "kWh"}}
    assert read_sample(kwh, iso(T0)) == Reading("Energy.Active.Import.Register", 1500.0, iso(T0))
    kw = {"value": 2.2, "measurand": "Power.Active.Import", "unit_of_measure": {"unit": "kW"}}
    assert read_sample(kw, iso(T0)).value == pytest.approx(2200.0)  # type: ignore[union-attr]
    assert read_sample({"value": 230.0, "measurand": "Voltage"}, iso(T0)) is None
    assert (
        read_sample({"value": 3.0, "measurand": "Power.Active.Import", "phase": "L1"}, "") is None
    )


def test_a_register_rising_faster_than_a_megawatt_is_refused() -> None:
    before = Reading("Energy.Active.Import.Register", 1000.0, iso(T0))
    one_minute = iso(T0 + timedelta(minutes=1))
    check_energy_rate(before, Reading(before.measurand, 1000.0 + 16_000.0, one_minute))  # 960 kW
    with pytest.raises(BadReadingError, match="above 1 MW"):
        check_energy_rate(before, Reading(before.measurand, 1000.0 + 17_000.0, one_minute))
    check_energy_rate(before, Reading(before.measurand, 10.0, one_minute))  # a per-session reset


def test_station_ids_come_from_the_path() -> None:
    assert station_from_path("/ocpp/CP-1") == "CP-1"
    assert station_from_path("/ocpp/CP-1?token=x") == "CP-1"
    assert station_from_path("/ocpp/a/b") is None
    assert station_from_path("/ocpp/" + "x" * 49) is None
