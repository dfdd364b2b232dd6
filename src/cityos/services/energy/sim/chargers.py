"""Simulated charging stations that speak OCPP 2.0.1 (the ``ocpp`` package's client side)
to the service's central system: the demo's chargers, and a way to try a schedule.

Each station boots, reports its connector, authorises a driver's card, charges for a while
(meter values at the station's power, as a real charger sends them), takes the charging
profile the central system sets from the day's plan, and ends the transaction.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ocpp.routing import on
from ocpp.v201 import ChargePoint, call, call_result
from ocpp.v201.enums import Action

SUBPROTOCOL = "ocpp2.0.1"


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


class SimCharger(ChargePoint):
    """One station: one EVSE, one connector; keeps the charging profiles it is sent."""

    def __init__(self, cp_id: str, connection: Any) -> None:
        super().__init__(cp_id, connection)
        self.profiles: list[dict[str, Any]] = []

    @on(Action.set_charging_profile)
    def on_profile(
        self, evse_id: int, charging_profile: dict[str, Any], **_: Any
    ) -> call_result.SetChargingProfile:
        self.profiles.append(charging_profile)
        return call_result.SetChargingProfile(status="Accepted")

    async def session(
        self, token: str, start: datetime, power_kw: float, minutes: int, step_min: int = 15
    ) -> float:
        """Boot, authorise, charge ``minutes`` at ``power_kw``; the kWh delivered."""
        station = {"vendor_name": "CityOS-sim", "model": "AC-22", "serial_number": self.id}
        await self.call(call.BootNotification(charging_station=station, reason="PowerUp"))
        await self.call(
            call.StatusNotification(
                timestamp=_iso(start), connector_status="Occupied", evse_id=1, connector_id=1
            )
        )
        card = {"id_token": token, "type": "ISO14443"}
        info = await self.call(call.Authorize(id_token=card))
        if info.id_token_info["status"] != "Accepted":
            return 0.0
        tx = {"transaction_id": f"TX-{self.id}"}
        wh = 0.0
        for seq, k in enumerate(range(0, minutes + 1, step_min)):
            at = start + timedelta(minutes=k)
            kind = "Started" if k == 0 else ("Ended" if k + step_min > minutes else "Updated")
            samples = [
                {"value": round(wh, 1), "measurand": "Energy.Active.Import.Register"},
                {
                    "value": 0.0 if kind == "Ended" else power_kw * 1000,
                    "measurand": "Power.Active.Import",
                    "unit_of_measure": {"unit": "W"},
                },
            ]
            await self.call(
                call.TransactionEvent(
                    event_type=kind,
                    timestamp=_iso(at),
                    trigger_reason={"Started": "Authorized", "Ended": "StopAuthorized"}.get(
                        kind, "MeterValuePeriodic"
                    ),
                    seq_no=seq,
                    transaction_info=tx,
                    meter_value=[{"timestamp": _iso(at), "sampled_value": samples}],
                    evse={"id": 1, "connector_id": 1} if kind == "Started" else None,
                    id_token=card if kind == "Started" else None,
                )
            )
            wh += power_kw * 1000 * step_min / 60
        return round((wh - power_kw * 1000 * step_min / 60) / 1000, 3)


@dataclass(frozen=True)
class ChargerRun:
    station: str
    kwh: float
    profiles: int


async def run_chargers(
    system: Any,
    stations: list[tuple[str, float]],
    token: str,
    start: datetime,
    *,
    minutes: int = 60,
    limits_kw: list[float] | None = None,
) -> list[ChargerRun]:
    """Each ``(id, kW)`` station connects to the running central system ``system``, gets
    the hourly ``limits_kw`` schedule as a charging profile, and charges once."""
    from websockets.asyncio.client import connect

    async def one(cp_id: str, kw: float) -> ChargerRun:
        async with connect(system.url(cp_id), subprotocols=[SUBPROTOCOL]) as ws:
            sim = SimCharger(cp_id, ws)
            listener = asyncio.create_task(sim.start())
            try:
                while cp_id not in system.connected():
                    await asyncio.sleep(0.01)
                if limits_kw:
                    await system.set_charging_schedule(cp_id, limits_kw, start)
                kwh = await sim.session(token, start, kw, minutes)
            finally:
                listener.cancel()
            return ChargerRun(cp_id, kwh, len(sim.profiles))

    return list(await asyncio.gather(*(one(cp, kw) for cp, kw in stations)))
