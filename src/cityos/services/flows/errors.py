"""The flows service's errors, each saying what to do."""

from __future__ import annotations


class FlowsError(Exception):
    """The base: a one-line message a user can act on."""


class UnknownZone(FlowsError):
    """A zone a query names that the hub does not know."""


class NoZones(FlowsError):
    """Nothing to do: no FlowZone is registered yet."""


class BadInput(FlowsError):
    """A feed record or a file that cannot be read (the raw identifier is never repeated)."""
