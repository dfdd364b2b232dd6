"""The plug: what the traffic service declares to CityOS (``SERVICE``) and its settings.

Registered in pyproject.toml under the ``cityos.services`` entry points (as
``cityos.services.traffic:SERVICE``, or this module's ``SERVICE``): its routes
(:mod:`.api`), CLI (:mod:`.cli`), background task (:mod:`.task`), health and diagnostics.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cityos.services.base import Check, Service

from . import api
from .cli import app as cli_app
from .controllers import CONTROLLERS, DEFAULT_CONTROLLER
from .controllers.presets import TUNED_DIR, tuned_params
from .errors import TrafficError
from .pages import pages
from .signalfile import read_signals
from .task import run_signals, status_of


@dataclass(frozen=True)
class TrafficSettings:
    """``[services.traffic]`` in cityos.toml, or ``CITYOS_TRAFFIC_<FIELD>``."""

    signals: str = field(
        default="",
        metadata={
            "help": "Signals file (`cityos traffic signals --out`) naming the junctions the "
            "service controls under `cityos serve`; empty: it controls none"
        },
    )
    controller: str = field(
        default=DEFAULT_CONTROLLER,
        metadata={"help": "Controller deciding the phases: max-pressure or cityos"},
    )
    network: str = field(
        default="",
        metadata={"help": "Network whose tuned cityos setting to use (e.g. cologne8)"},
    )
    tenant: str = field(default="", metadata={"help": "Tenant the signals live in"})
    context: str = field(
        default="",
        metadata={"help": "@context URL of the terms the city's detectors report in"},
    )
    step_s: float = field(default=5.0, metadata={"help": "Seconds between two control decisions"})


def _openapi() -> dict[str, Any]:
    """The OpenAPI path items of the GTFS routes (api.py), merged into ``/openapi.json``."""
    problem = {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}
    }
    tenant = {
        "name": "NGSILD-Tenant",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,64}$"},
    }
    paths: dict[str, Any] = {}
    for path, summary, media in (
        ("/services/traffic/gtfs-rt/vehicle-positions", "GTFS-realtime VehiclePositions",
         "application/x-protobuf"),
        ("/services/traffic/gtfs-rt/trip-updates", "GTFS-realtime TripUpdates",
         "application/x-protobuf"),
        ("/services/traffic/gtfs", "The static GTFS feed (zip)", "application/zip"),
    ):  # fmt: skip
        content: dict[str, Any] = {media: {"schema": {"type": "string", "format": "binary"}}}
        if "gtfs-rt" in path:
            content["application/json"] = {"schema": {"type": "object"}}  # ?format=json
        paths[path] = {
            "get": {
                "summary": summary,
                "operationId": "get_" + re.sub(r"[^a-zA-Z]+", "_", path).strip("_"),
                "parameters": [
                    tenant,
                    {"name": "format", "in": "query", "required": False,
                     "schema": {"type": "string", "enum": ["json"]}},
                ],
                "responses": {
                    "200": {"description": "OK", "content": content},
                    **{
                        code: {"description": desc, "content": problem}
                        for code, desc in (
                            ("400", "Bad request (e.g. a malformed tenant)"),
                            ("401", "No valid credentials (when authentication is required)"),
                            ("403", "Forbidden"),
                            ("404", "Unknown tenant, or no static feed registered for it"),
                            ("429", "Too many requests (rate limit)"),
                        )
                    },
                },
            }
        }  # fmt: skip
    return paths


def health(ctx: Any) -> dict[str, Any]:
    """The signal task's state: how many signals it controls, its last decision's age."""
    status = status_of(ctx)
    out: dict[str, Any] = {
        "status": "error" if status.state == "error" else "ok",
        "state": status.state,
        "detail": status.detail,
        "signals": status.signals,
        "commands": status.commands,
        "last_decision": None,
        "last_decision_age_s": None,
    }
    if status.last_decision is not None:
        out["last_decision"] = time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(status.last_decision)
        )
        out["last_decision_age_s"] = round(time.time() - status.last_decision, 1)
    return out


def diagnostics(ctx: Any) -> list[Check]:
    """``cityos doctor``: SUMO for the simulations, the signals file, the controller."""
    from .sim.simulation import sumo_version

    settings: TrafficSettings = ctx.settings
    checks = []
    version = sumo_version()  # the simulations (cityos traffic run, tune); the task needs none
    installed = version != "unknown"
    checks.append(
        Check("SUMO installed", installed, f"eclipse-sumo {version}",
              "" if installed else "pip install eclipse-sumo (the version pyproject.toml pins)")
    )  # fmt: skip
    if not settings.signals:
        checks.append(
            Check("signals file", True, "none configured: the signal task stays idle",
                  "set services.traffic.signals to control junctions under cityos serve")
        )  # fmt: skip
    else:
        try:
            layouts = read_signals(Path(settings.signals))
            checks.append(
                Check("signals file", True, f"{settings.signals}: {len(layouts)} signals")
            )
        except TrafficError as exc:
            checks.append(
                Check("signals file", False, str(exc), "write one with `cityos traffic signals`")
            )
    known = settings.controller in CONTROLLERS
    checks.append(
        Check("controller", known, settings.controller,
              "" if known else f"one of: {', '.join(CONTROLLERS)}")
    )  # fmt: skip
    if settings.network:
        tuned = bool(tuned_params(settings.network))
        checks.append(
            Check("tuned parameters", tuned, f"{settings.network} in {TUNED_DIR}",
                  "" if tuned else "tune with `cityos traffic tune --scenario ... --out`")
        )  # fmt: skip
    return checks


SERVICE = Service(
    name="traffic",
    reads=("TrafficFlowObserved", "TrafficSignal", "Vehicle", "GtfsFeed"),
    writes=("TrafficSignal", "RoadSegment", "Alert", "TrafficEmissionObserved", "GtfsFeed"),
    routes=api.routes,
    kpis=("average_delay_s", "bus_time_loss_s", "congestionIndex", "co2"),
    cli=cli_app,
    openapi=_openapi(),
    tasks=(run_signals,),
    health=health,
    settings=TrafficSettings,
    diagnostics=diagnostics,
    pages=pages,
)
