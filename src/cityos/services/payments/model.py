"""The entities the payments service writes into the hub (plain data, no I/O).

The ledger stays out of the entity store (it is financial data, in tables of its own); what
the city's dashboards and indicators need of it goes into the hub as one summary per stop
and local day: ``FareCollectionObserved``.

FIWARE's Smart Data Models have ``FareCollectionSystem`` (dataModel.Transportation), but
it is one *transaction* (a card id, a tap's stops and fare): publishing that per tap would
put riders' journeys into the hub. This summary borrows its vocabulary where the meaning is
the same (``passengerCount``), follows ``ItemFlowObserved`` for the period
(``dateObservedFrom``/``dateObservedTo``) and refers to the stop as the ``GtfsStop``
(dataModel.UrbanMobility) of the sample district: ``refStop``.

* ``passengerCount``: boardings (tap-ins) at the stop that day, every medium;
* ``cashlessCount`` / ``cashCount``: of which paid cashless (a signed ticket, a wallet, a
  scheme's QR) / in cash; ``cashlessShare`` = cashless / all (0 to 1);
* ``revenue`` / ``cashlessRevenue``: what those boardings were charged, in **minor units**
  of ``currency`` (ISO 4217: 150000 KHR is 1,500 riel), after transfers, caps and
  concessions; a distance fare counts at the stop where the rider boarded;
* ``byMedium``: boardings per medium (``ticket``, ``account``, ``emvco``, ``cash``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

SUMMARY_TYPE = "FareCollectionObserved"
STOP_TYPE = "GtfsStop"
CASHLESS = ("ticket", "account", "emvco")


@dataclass
class StopDay:
    """What was collected at one stop on one local day."""

    stop: str
    day: str
    currency: str
    boardings: dict[str, int] = field(default_factory=dict)  # medium -> tap-ins
    revenue: dict[str, int] = field(default_factory=dict)  # medium -> minor units
    lon: float | None = None
    lat: float | None = None

    @property
    def passengers(self) -> int:
        return sum(self.boardings.values())

    @property
    def cashless(self) -> int:
        return sum(n for m, n in self.boardings.items() if m in CASHLESS)

    @property
    def cashless_share(self) -> float:
        return round(self.cashless / self.passengers, 4) if self.passengers else 0.0

    def entity_id(self) -> str:
        return f"urn:ngsi-ld:{SUMMARY_TYPE}:{self.stop}:{self.day}"

    def to_entity(self, timezone: str) -> dict[str, Any]:
        """The NGSI-LD entity (normalized, core @context terms)."""
        tz = ZoneInfo(timezone)
        start = datetime.combine(date.fromisoformat(self.day), time(0), tz)
        end = start + timedelta(days=1)

        def prop(value: Any) -> dict[str, Any]:
            return {"type": "Property", "value": value}

        def when(t: datetime) -> dict[str, Any]:
            return prop({"@type": "DateTime", "@value": t.isoformat()})

        entity: dict[str, Any] = {
            "id": self.entity_id(),
            "type": SUMMARY_TYPE,
            "refStop": {"type": "Relationship", "object": f"urn:ngsi-ld:{STOP_TYPE}:{self.stop}"},
            "dateObservedFrom": when(start),
            "dateObservedTo": when(end),
            "passengerCount": prop(self.passengers),
            "cashlessCount": prop(self.cashless),
            "cashCount": prop(self.passengers - self.cashless),
            "cashlessShare": prop(self.cashless_share),
            "revenue": prop(sum(self.revenue.values())),
            "cashlessRevenue": prop(sum(v for m, v in self.revenue.items() if m in CASHLESS)),
            "currency": prop(self.currency),
            "byMedium": prop(dict(sorted(self.boardings.items()))),
        }
        if self.lon is not None and self.lat is not None:
            point = {"type": "Point", "coordinates": [self.lon, self.lat]}
            entity["location"] = {"type": "GeoProperty", "value": point}
        return entity
