"""What a battery controller sees and decides, once per hour: the one interface between the
controllers (:mod:`.controllers`) and whatever runs them — CityLearn's simulation in its own
virtualenv (:mod:`.sim.citylearn`), or the city's live meters through the hub.

A controller gets the site once (:class:`SiteInfo`), then an :class:`Observation` of the
hour that just ended, and answers one action per building: the fraction of the battery's
capacity to charge (> 0) or discharge (< 0) during the next hour, in [-1, 1] — CityLearn's
``electrical_storage`` action. A controller that needs the future (the perfect-foresight
bound) is given it explicitly (:attr:`SiteInfo.future`); the others never see it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class BuildingInfo:
    """One home and its battery."""

    name: str
    capacity_kwh: float  # usable electrical storage capacity
    power_kw: float  # nominal charge/discharge power
    efficiency: float = 0.9  # one-way (charge or discharge) efficiency
    soc_init: float = 0.0  # state of charge at the start, fraction of capacity


@dataclass(frozen=True)
class Future:
    """The whole episode's series, only for the perfect-foresight bound: per building the
    non-shiftable load and the solar generation (kWh per step), and price and carbon."""

    load_kwh: tuple[tuple[float, ...], ...]
    solar_kwh: tuple[tuple[float, ...], ...]
    price: tuple[float, ...]
    carbon: tuple[float, ...]


@dataclass(frozen=True)
class SiteInfo:
    buildings: tuple[BuildingInfo, ...]
    steps: int  # episode length (8,760 hourly steps for a year)
    step_hours: float = 1.0
    future: Future | None = None  # None unless the controller is the foresight bound


@dataclass(frozen=True)
class Observation:
    """Hour ``t`` (from 0), which has just ended: its load, PV, price, carbon and what each
    building drew (``net_kwh``), and each battery's state of charge now. The action answered
    to it is for hour t + 1, whose load is not known yet (as in CityLearn 1.3.6)."""

    t: int
    month: int  # 1–12
    hour: int  # 1–24, as CityLearn counts (hour 1: 00:00–01:00)
    day_type: int  # 1–7 (Monday 1) and 8 for holidays, as CityLearn
    load_kwh: tuple[float, ...]  # non-shiftable load per building
    solar_kwh: tuple[float, ...]  # PV generation per building
    soc: tuple[float, ...]  # battery state of charge, fraction of capacity
    net_kwh: tuple[float, ...]  # what each building drew from the grid (negative: exported)
    price: float  # $/kWh in this hour
    carbon: float  # kg CO2 per kWh in this hour
    outdoor_temp_c: float | None = None
    extra: dict[str, float] = field(default_factory=dict)  # anything else the source has


class Controller(Protocol):
    """Decides each battery's next hour."""

    name: str

    def reset(self, site: SiteInfo) -> None: ...

    def act(self, obs: Observation) -> list[float]:
        """One action per building, each in [-1, 1]."""
        ...
