"""Errors the traffic service raises: each names what was wrong and what would work."""

from __future__ import annotations


class TrafficError(Exception):
    """Base class: anything the traffic service refuses, with a message a user can act on."""


class UnknownScenarioError(TrafficError, KeyError):
    """A scenario name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want plain text
        return str(self.args[0])


class UnknownControllerError(TrafficError, KeyError):
    """A controller name that is not registered."""

    def __str__(self) -> str:
        return str(self.args[0])


class NetworkFileError(TrafficError):
    """A network or route file that is missing or that SUMO cannot read."""


class SimulationError(TrafficError):
    """SUMO could not start or stopped unexpectedly."""
