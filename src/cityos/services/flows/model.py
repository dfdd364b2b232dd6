"""The flows service's records in and out, as plain dataclasses (no hub, no I/O).

Raw identifiers live only in :class:`Tap` and :class:`Sighting`, which exist in memory
between the feed and the pseudonymiser: their ``repr`` leaves the identifier out, so a log
line or a traceback cannot carry it. Everything stored is keyed by a pseudonym.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

DIRECTIONS = ("inbound", "outbound")
TAP_KINDS = ("in", "out")


@dataclass(frozen=True)
class Zone:
    """An area whose crowd is measured: its fare stops, counters and Wi-Fi access points."""

    id: str  # short name, e.g. central-market
    name: str
    capacity: int  # people it holds safely
    stops: tuple[str, ...] = ()
    sensors: tuple[str, ...] = ()  # people counters and Wi-Fi access points
    location: tuple[float, float] | None = None  # lon, lat


@dataclass(frozen=True)
class CounterReading:
    """People a counter (or a camera's counting line) saw cross in one interval."""

    sensor: str
    start: datetime
    end: datetime
    count: int
    direction: str  # inbound (into the zone) or outbound


@dataclass(frozen=True)
class Tap:
    """One fare-card tap from the fares feed. ``card`` is the raw card id: never stored."""

    card: str = field(repr=False)
    stop: str
    at: datetime
    kind: str  # in or out


@dataclass(frozen=True)
class Sighting:
    """A phone's Wi-Fi probe seen by an access point. ``mac`` is raw: never stored."""

    mac: str = field(repr=False)
    sensor: str
    at: datetime


@dataclass(frozen=True)
class Journey:
    """A tap-in and its tap-out, as stored: a pseudonym and two zones."""

    pseudonym: str
    origin: str
    destination: str
    start: datetime
    end: datetime
    seq: int = 0  # tells apart two journeys of a card that start in the same rounded minute


@dataclass(frozen=True)
class Presence:
    """A device's stay in a zone on one day, as stored: first and last seen."""

    pseudonym: str
    zone: str
    first: datetime
    last: datetime

    @property
    def minutes(self) -> float:
        return (self.last - self.first).total_seconds() / 60


@dataclass(frozen=True)
class HourLevel:
    """A zone's crowd in one local hour."""

    zone: str
    start: datetime
    end: datetime
    entries: int
    exits: int
    present: int  # estimated people in the zone at the end of the hour
    capacity: int
    wifi_devices: int

    @property
    def occupancy(self) -> float:
        return self.present / self.capacity if self.capacity else 0.0


def level_name(occupancy: float) -> str:
    """Words for an occupancy ratio (what the dashboard and alerts show)."""
    if occupancy >= 1.0:
        return "overCapacity"
    if occupancy >= 0.8:
        return "high"
    if occupancy >= 0.5:
        return "moderate"
    return "low"
