"""Traffic service: signal control on Eclipse SUMO, observations in, decisions out.

See docs/services/traffic.md. The simulation core: scenarios (RESCO and a generated
crossing), the SUMO adapter, safety rules at the signal, the controllers and the RESCO
delay metric.
"""

from cityos.services.base import Service

from . import api
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

SERVICE = Service(
    name="traffic",
    reads=("TrafficFlowObserved", "TrafficSignal", "Vehicle"),
    writes=("TrafficSignal", "RoadSegment", "Alert", "TrafficEmissionObserved"),
    routes=api.routes,
    kpis=("average_delay_s", "bus_time_loss_s", "congestionIndex", "co2"),
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
