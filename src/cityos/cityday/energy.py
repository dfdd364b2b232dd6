"""The evening (the energy service): at 17:00 the service plans tomorrow for every metered
building — a forecast from the meters in the hub, a battery schedule from its MPC planner,
stored as ``EnergySchedule`` entities — and at the 18:00 peak the district's chargers speak
OCPP 2.0.1 to its central system, charging under the plan's limits. The planner also
reports the same day with the batteries idle: the no-CityOS figure (:mod:`.baseline`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from cityos.hub.client import HubClient
from cityos.services.energy.mpc import Battery
from cityos.services.energy.ocpp import CentralSystem
from cityos.services.energy.planner import Tariff, ev_limits, plan_day, schedule_entities
from cityos.services.energy.sim.chargers import run_chargers
from cityos.twin.district import CONTEXT_URL, DISTRICT_TIME

from .context import Day, Event, hhmm

DEMO_CHARGERS = [("market-ac-1", 11.0), ("market-ac-2", 11.0), ("wat-phnom-dc", 22.0)]
DEMO_CARD = "04CITYOS0001"
BATTERY = Battery(13.5, 5.0)  # kWh, kW: a home battery in every metered building


def run_energy(day: Day) -> dict[str, Any]:
    """Tomorrow's plan for the district and tonight's charging; what they did."""
    hub = day.hub
    client = HubClient(hub).for_context(CONTEXT_URL)
    tomorrow = (DISTRICT_TIME + timedelta(days=1)).date()
    plan = plan_day(client, tomorrow, battery=BATTERY)
    client.upsert(schedule_entities(plan))
    tariff = Tariff()
    start = DISTRICT_TIME.replace(hour=11)  # 18:00 in Phnom Penh, the evening peak

    async def chargers() -> list[Any]:
        async with CentralSystem(HubClient(hub), port=0, id_tokens={DEMO_CARD}) as system:
            return await run_chargers(
                system, DEMO_CHARGERS, DEMO_CARD, start, limits_kw=ev_limits(tariff, 22.0)
            )

    runs = asyncio.run(chargers())
    return {
        "day": tomorrow.isoformat(),
        "buildings": len(plan.buildings),
        "status": "fallback" if plan.fallback else "optimal",
        "forecaster": plan.forecaster,
        "battery_kwh": BATTERY.capacity_kwh,
        **plan.summary,
        "chargers": [vars(r) for r in runs],
    }


@dataclass
class EnergyPhase:
    day: Day
    name: str = "energy"
    service: str = "energy"
    title: str = "Energy"
    summary: dict[str, Any] = field(default_factory=dict)

    def events(self) -> list[Event]:
        return [Event(hhmm("17:00"), self.run)]

    def run(self) -> str:
        self.summary = s = run_energy(self.day)
        kwh = sum(c["kwh"] for c in s["chargers"])
        return (
            f"Energy: {s['buildings']} buildings planned for {s['day']} ({s['forecaster']}, "
            f"{s['status']}): evening peak {s['peak_kw_no_control']:.0f} → {s['peak_kw']:.0f} "
            f"kW with batteries; {len(s['chargers'])} chargers over OCPP 2.0.1 delivered "
            f"{kwh:.1f} kWh under the plan's limits."
        )

    def result(self) -> dict[str, Any]:
        return self.summary
