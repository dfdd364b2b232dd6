"""Traffic service: signal control on Eclipse SUMO, observations in, decisions out.

See docs/services/traffic.md. The simulation core: scenarios (RESCO and a generated
crossing), the SUMO adapter, safety rules at the signal, the controllers and the RESCO
delay metric.
"""

import re
from typing import Any

from cityos.services.base import Service

from . import api
from .cli import app as cli_app
from .controllers import CONTROLLERS, CityOSParams, Controller, make_controller
from .errors import (
    NetworkFileError,
    SimulationError,
    TrafficError,
    UnknownControllerError,
    UnknownScenarioError,
)
from .metric import DelayReport, average_delay
from .model import (
    Alert,
    Decision,
    GreenPhase,
    LaneGroup,
    LaneGroupObservation,
    Observation,
    SignalLayout,
)
from .runner import RunResult, run_scenario
from .safety import SafetyRules, SignalGuard
from .scenarios import RESCO_SCENARIOS, Scenario, get_scenario, tiny_scenario
from .sim import Simulation, sumo_version


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


# the plug: registered in pyproject.toml under the cityos.services entry points
SERVICE = Service(
    name="traffic",
    reads=("TrafficFlowObserved", "TrafficSignal", "Vehicle"),
    writes=("TrafficSignal", "RoadSegment", "Alert", "TrafficEmissionObserved"),
    routes=api.routes,
    kpis=("average_delay_s", "bus_time_loss_s", "congestionIndex", "co2"),
    cli=cli_app,
    openapi=_openapi(),
)

__all__ = [
    "SERVICE",
    "CONTROLLERS",
    "RESCO_SCENARIOS",
    "Alert",
    "CityOSParams",
    "Controller",
    "Decision",
    "DelayReport",
    "GreenPhase",
    "LaneGroup",
    "LaneGroupObservation",
    "NetworkFileError",
    "Observation",
    "RunResult",
    "SafetyRules",
    "Scenario",
    "SignalGuard",
    "SignalLayout",
    "Simulation",
    "SimulationError",
    "TrafficError",
    "UnknownControllerError",
    "UnknownScenarioError",
    "average_delay",
    "get_scenario",
    "make_controller",
    "run_scenario",
    "sumo_version",
    "tiny_scenario",
]
