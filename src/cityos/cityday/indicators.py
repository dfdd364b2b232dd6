"""At midnight, the city's view of its day (the city service): every ISO 37120 / ISO 37122 /
U4SSC indicator computed from what the hub now holds, stored as ``KeyPerformanceIndicator``
entities (the dashboard's indicators page) — and how many the day's data made computable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, timedelta
from typing import Any

from cityos.services.city.indicators import compute_report, store_report
from cityos.services.city.indicators_model import Period

from .clock import DAY_S
from .context import Day, Event


@dataclass
class IndicatorPhase:
    day: Day
    name: str = "indicators"
    service: str = "city"
    title: str = "City indicators"
    rows: list[dict[str, Any]] = field(default_factory=list)

    def events(self) -> list[Event]:
        return [Event(DAY_S, self.run)]

    def run(self) -> str:
        start = self.day.clock.midnight.astimezone(UTC)
        period = Period(start, start + timedelta(days=1))
        client = self.day.client(None)
        rows = compute_report(client, period)
        store_report(client, rows, at=period.end)
        self.rows = [r.as_dict() for r in rows]
        ok = self.computed()
        return (f"City indicators: {len(ok)} of {len(rows)} computed from the day's data in "
                f"the hub ({', '.join(r['id'] for r in ok[:4])}{', …' if len(ok) > 4 else ''})")  # fmt: skip

    def computed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] == "ok"]

    def result(self) -> dict[str, Any]:
        keep = ("id", "name", "value", "unit", "status")
        return {
            "computed": len(self.computed()),
            "of": len(self.rows),
            "rows": [{k: r[k] for k in keep} for r in self.rows],
        }
