"""The plug: the city's view (``SERVICE``) — its indicators and its basic plan.

``cityos indicators …`` computes the ISO 37120 / ISO 37122 / U4SSC indicators from the hub
and keeps their history (docs/indicators.md); ``cityos plan …`` turns a city's needs survey
into a phased plan of CityOS services (docs/plan.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cityos.services.base import Service

from .indicators import KPIS, READS, WRITES
from .indicators_cli import app as indicators_app
from .pages import pages
from .plan_cli import app as plan_app


@dataclass(frozen=True)
class CitySettings:
    """``[services.city]`` in cityos.toml, or ``CITYOS_CITY_<FIELD>``: the facts some
    indicators divide by."""

    name: str = field(default="", metadata={"help": "The city's name, shown in reports"})
    population: int = field(default=0, metadata={"help": "Residents (0: not known)"})
    area_km2: float = field(default=0.0, metadata={"help": "Area in km² (0: not known)"})
    registered_evs: int = field(
        default=0, metadata={"help": "Registered electric vehicles (0: not known)"}
    )


SERVICE = Service(
    name="city",
    reads=READS,
    writes=WRITES,
    kpis=KPIS,
    cli={"indicators": indicators_app, "plan": plan_app},
    health=lambda ctx: {"status": "ok"},
    settings=CitySettings,
    pages=pages,
)
