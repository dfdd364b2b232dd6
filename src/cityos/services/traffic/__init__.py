"""Traffic service: signal control on Eclipse SUMO, observations in, decisions out.

See docs/services/traffic.md for the module map. The plug is :mod:`.service`; the SUMO
side lives in :mod:`.sim`. This package re-exports the names other code uses.
"""

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
from .service import SERVICE, TrafficSettings
from .signalguard import SafetyRules, SignalGuard
from .sim.runner import RunResult, run_scenario
from .sim.scenarios import RESCO_SCENARIOS, Scenario, get_scenario, tiny_scenario
from .sim.simulation import Simulation, sumo_version

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
    "TrafficSettings",
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
