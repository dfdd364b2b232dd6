"""The RESCO metric: average delay per vehicle, in seconds.

Delay of a vehicle = its time loss (time spent below the speed it wanted) + its departure
delay (time it waited to be inserted). Every vehicle scheduled in the scenario's hour
counts: those that arrived, those still driving when the hour ends (``write-unfinished``),
and those never inserted (``write-undeparted``; their departure delay runs to the end of
the hour). RESCO approximates the last group from the route file; SUMO now writes it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import TrafficError


@dataclass(frozen=True, slots=True)
class DelayReport:
    """The metric and what it was computed over."""

    average_delay_s: float
    vehicles: int
    arrived: int
    in_network: int
    never_inserted: int


def _tripinfos(tripinfo_file: Path) -> Iterator[ET.Element]:
    """Each vehicle's trip information, streamed (SUMO writes it when the simulation closes)."""
    if not tripinfo_file.is_file():
        raise TrafficError(f"no trip information at {tripinfo_file}: was the simulation closed?")
    for _, elem in ET.iterparse(tripinfo_file):
        if elem.tag == "tripinfo":
            yield elem
            elem.clear()


def average_delay(tripinfo_file: Path) -> DelayReport:
    """Read SUMO's trip information (written when the simulation closes) into the metric."""
    total = 0.0
    vehicles = arrived = in_network = never = 0
    for elem in _tripinfos(tripinfo_file):
        total += float(elem.get("timeLoss", "0")) + float(elem.get("departDelay", "0"))
        vehicles += 1
        if float(elem.get("depart", "-1")) < 0:
            never += 1
        elif float(elem.get("arrival", "-1")) < 0:
            in_network += 1
        else:
            arrived += 1
    return DelayReport(total / vehicles if vehicles else 0.0, vehicles, arrived, in_network, never)


@dataclass(frozen=True, slots=True)
class DelaySplit:
    """Where the delay goes, per vehicle on average (seconds; ``stops`` a count).

    ``waiting_s`` is time standing (below 0.1 m/s), ``moving_loss_s`` time lost while
    moving (braking, accelerating, following, turning). ``unstopped_loss_s`` is the time
    loss of the vehicles that never stopped: roughly what a vehicle loses to the streets
    themselves, which no signal plan removes; what lies above it is the signals' share.
    """

    average_delay_s: float
    departure_delay_s: float
    waiting_s: float
    moving_loss_s: float
    stops: float
    unstopped_share: float  # of vehicles that never stopped
    unstopped_loss_s: float

    @property
    def signal_share_s(self) -> float:
        """Delay above what an unstopped vehicle loses: what control can still act on."""
        return self.average_delay_s - self.unstopped_loss_s


def delay_split(tripinfo_file: Path) -> DelaySplit:
    """Split the RESCO delay of a closed simulation into its parts (see :class:`DelaySplit`)."""
    n = unstopped = 0
    loss = depart = waiting = stops = unstopped_loss = 0.0
    for elem in _tripinfos(tripinfo_file):
        n += 1
        time_loss = float(elem.get("timeLoss", "0"))
        wait = float(elem.get("waitingTime", "0"))
        count = int(elem.get("waitingCount", "0"))
        loss += time_loss
        depart += float(elem.get("departDelay", "0"))
        waiting += wait
        stops += count
        if count == 0 and float(elem.get("depart", "-1")) >= 0:
            unstopped += 1
            unstopped_loss += time_loss
    if n == 0:
        return DelaySplit(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    return DelaySplit(
        average_delay_s=(loss + depart) / n,
        departure_delay_s=depart / n,
        waiting_s=waiting / n,
        moving_loss_s=(loss - waiting) / n,
        stops=stops / n,
        unstopped_share=unstopped / n,
        unstopped_loss_s=unstopped_loss / unstopped if unstopped else 0.0,
    )
