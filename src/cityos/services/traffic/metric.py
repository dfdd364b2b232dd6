"""The RESCO metric: average delay per vehicle, in seconds.

Delay of a vehicle = its time loss (time spent below the speed it wanted) + its departure
delay (time it waited to be inserted). Every vehicle scheduled in the scenario's hour
counts: those that arrived, those still driving when the hour ends (``write-unfinished``),
and those never inserted (``write-undeparted``; their departure delay runs to the end of
the hour). RESCO approximates the last group from the route file; SUMO now writes it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
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


def average_delay(tripinfo_file: Path) -> DelayReport:
    """Read SUMO's trip information (written when the simulation closes) into the metric."""
    if not tripinfo_file.is_file():
        raise TrafficError(f"no trip information at {tripinfo_file}: was the simulation closed?")
    total = 0.0
    vehicles = arrived = in_network = never = 0
    for _, elem in ET.iterparse(tripinfo_file):
        if elem.tag != "tripinfo":
            continue
        total += float(elem.get("timeLoss", "0")) + float(elem.get("departDelay", "0"))
        vehicles += 1
        if float(elem.get("depart", "-1")) < 0:
            never += 1
        elif float(elem.get("arrival", "-1")) < 0:
            in_network += 1
        else:
            arrived += 1
        elem.clear()
    return DelayReport(total / vehicles if vehicles else 0.0, vehicles, arrived, in_network, never)
