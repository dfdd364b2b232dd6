"""Errors the energy service raises: each names what was wrong and what would work."""

from __future__ import annotations


class EnergyError(Exception):
    """Base class: anything the energy service refuses, with a message a user can act on."""


class BadReadingError(EnergyError):
    """A meter reading that cannot be true (negative where it cannot be, absurdly large,
    not a number); it is refused and nothing is written."""


class InfeasibleScheduleError(EnergyError):
    """The optimiser found no schedule within the limits; the service falls back to a safe
    plan and says why."""


class SimulatorError(EnergyError):
    """CityLearn (in its own virtualenv) could not start or stopped unexpectedly."""


class ProtocolError(EnergyError):
    """A charger (OCPP) or a building's VEN (OpenADR) sent something we cannot accept."""
