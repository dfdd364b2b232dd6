"""Origin-destination flows between zones, from the pseudonymised journeys of one day.

The matrix stays inside CityOS (it is built from person-level records and small cells
single people out); outsiders get it only through :func:`cityos.services.flows.releases.
od_release`, with noise. ``max_per_card`` keeps each pseudonym's first journeys of the day
and drops the rest, which bounds what one person can change in the matrix — the
sensitivity the release's noise is scaled to.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, tzinfo
from typing import Any

from .days import day_bounds
from .entities import COMMUTER, hub_time, journey_from
from .model import Journey


@dataclass
class ODMatrix:
    day: str
    zones: list[str]
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    journeys: int = 0  # counted
    dropped: int = 0  # over a card's daily bound
    outside: int = 0  # from or to a zone not in ``zones``

    def cell(self, origin: str, destination: str) -> int:
        return self.counts.get((origin, destination), 0)

    def domain(self) -> list[tuple[str, str]]:
        """Every (origin, destination) pair of the zones, fixed before any data is read."""
        return [(o, d) for o in self.zones for d in self.zones]

    def as_rows(self) -> list[list[int]]:
        return [[self.cell(o, d) for d in self.zones] for o in self.zones]


def journeys_of_day(client: Any, day: date, tz: tzinfo) -> list[Journey]:
    """The journeys that started on a local day."""
    start, end = day_bounds(day, tz)
    q = f'source=="fares";date>={hub_time(start)};date<{hub_time(end)}'
    found = client.query(type=COMMUTER, q=q, limit=10_000_000, fmt="keyValues")
    return [journey_from(e) for e in found]


def build_od(
    journeys: Iterable[Journey],
    zones: Sequence[str],
    *,
    day: str = "",
    max_per_card: int | None = None,
) -> ODMatrix:
    """Count journeys per (origin, destination): at most ``max_per_card`` per pseudonym,
    its earliest (None: every journey, for internal use only)."""
    od = ODMatrix(day, list(zones))
    keep = set(zones)
    ordered = sorted(journeys, key=lambda j: (j.start, j.seq)) if max_per_card else journeys
    per_card: Counter[str] = Counter()
    counts = od.counts
    for j in ordered:
        if max_per_card is not None:
            if per_card[j.pseudonym] >= max_per_card:
                od.dropped += 1
                continue
            per_card[j.pseudonym] += 1
        if j.origin not in keep or j.destination not in keep:
            od.outside += 1
            continue
        counts[(j.origin, j.destination)] += 1
        od.journeys += 1
    return od
