"""The plug: what the energy service declares to CityOS (``SERVICE``) and its settings.

Registered in pyproject.toml under the ``cityos.services`` entry points. Under
``cityos serve`` its task runs the OCPP 2.0.1 central system (:mod:`.ocpp`) when a port is
set, so the city's chargers report into the hub and take charging profiles; its CLI
(:mod:`.cli`) scores the controllers on CityLearn and plans a day.
"""

from __future__ import annotations

import asyncio
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cityos.services.base import Check, Service

from .cli import app as cli_app
from .pages import pages

_STATE: dict[str, Any] = {}


@dataclass(frozen=True)
class EnergySettings:
    """``[services.energy]`` in cityos.toml, or ``CITYOS_ENERGY_<FIELD>``."""

    ocpp_port: int = field(
        default=0,
        metadata={"help": "Port of the OCPP 2.0.1 central system (ws://host:port/ocpp/{id}); "
                  "0: not started"},
    )  # fmt: skip
    ocpp_host: str = field(default="127.0.0.1", metadata={"help": "Address it listens on"})
    id_tokens: str = field(
        default="",
        metadata={"help": "Comma-separated idTokens the chargers may authorise"},
    )
    horizon_h: int = field(default=24, metadata={"help": "Hours each schedule looks ahead"})
    feeder_limit_kw: float = field(
        default=0.0,
        metadata={"help": "The feeder's import limit for the district (kW); 0: none"},
    )
    tenant: str = field(default="", metadata={"help": "Tenant the energy entities live in"})


async def run_ocpp(ctx: Any) -> None:
    """The central system for the city's chargers, for as long as CityOS serves."""
    settings: EnergySettings = ctx.settings
    if not settings.ocpp_port:
        _STATE["ocpp"] = "off"
        return
    from .ocpp import CentralSystem

    tokens = [t.strip() for t in settings.id_tokens.split(",") if t.strip()]
    client = ctx.client.for_tenant(settings.tenant) if settings.tenant else ctx.client
    system = CentralSystem(
        client, host=settings.ocpp_host, port=settings.ocpp_port, id_tokens=tokens
    )
    _STATE["ocpp"] = "running"
    _STATE["system"] = system
    try:
        await system.serve_forever()
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # reported in /health, not raised into the server
        _STATE["ocpp"] = f"error: {exc}"


def health(ctx: Any) -> dict[str, Any]:
    state = _STATE.get("ocpp", "starting")
    system = _STATE.get("system")
    return {
        "status": "error" if state.startswith("error") else "ok",
        "ocpp": state,
        "chargers_connected": len(system.connected()) if system else 0,
    }


def diagnostics(ctx: Any) -> list[Check]:
    from .sim.citylearn import citylearn_python

    venv = citylearn_python()
    return [
        Check(
            "CityLearn 1.3.6 virtualenv",
            Path(venv).exists(),
            str(venv),
            "run `make citylearn` (only the CityLearn benchmark needs it)",
        ),
        Check(
            "HiGHS solver",
            importlib.util.find_spec("highspy") is not None,
            "highspy",
            "pip install highspy",
        ),
    ]


SERVICE = Service(
    name="energy",
    reads=("ACMeasurement", "Building", "EVChargingStation"),
    writes=("EVChargingStation", "Alert", "EnergySchedule", "DemandResponseEvent"),
    kpis=("citylearn_score", "peak_kw", "cost", "carbon_kg"),
    cli=cli_app,
    tasks=(run_ocpp,),
    health=health,
    settings=EnergySettings,
    diagnostics=diagnostics,
    pages=pages,
)
