"""The day in numbers: each indicator without CityOS and with it, side by side.

Only what was measured or computed in both runs gets a change; what a city without the
service cannot know is "–" rather than a guess; an assumption is said beside its row
(``note``) and under the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.table import Table

DASH = "–"
NOTES = {
    "fixed": "without CityOS: the same SUMO scenario, demand, buses and seed on the network's "
    "fixed-time signal plans, no bus priority",
    "plan": "the energy service's day-ahead plan for the 60 metered buildings (13.5 kWh home "
    "batteries); without CityOS: the same forecast with the batteries idle",
    "cash": "* assumed: without a fare system every fare is paid in cash to the conductor; with "
    "CityOS the riders' means of payment are this simulation's (45 % wallet card, 25 % KHQR, "
    "30 % cash)",
    "unknown": "–: nothing measures it without CityOS (no cameras, counters or hub)",
}


@dataclass(frozen=True)
class Row:
    key: str
    indicator: str
    unit: str
    without: float | None
    with_: float | None
    digits: int = 0
    detail: str = ""  # said after the with-CityOS value
    note: str = ""  # a key of NOTES

    def change(self) -> str:
        """The change, where both runs have a value: percentage points for shares, else
        relative."""
        if self.without is None or self.with_ is None:
            return DASH
        if self.unit == "%":
            return f"{self.with_ - self.without:+.1f} pp"
        if self.without == 0:
            return DASH
        return f"{(self.with_ - self.without) / abs(self.without) * 100:+.1f} %"

    def shown(self, value: float | None, detail: str = "") -> str:
        if value is None:
            return DASH
        text = f"{value:,.{self.digits}f}"
        return f"{text} ({detail})" if detail else text

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "indicator": self.indicator,
            "unit": self.unit,
            "without_cityos": self.without,
            "with_cityos": self.with_,
            "detail": self.detail,
            "change": self.change(),
            "shown": {"without": self.shown(self.without) + self.mark,
                      "with": self.shown(self.with_, self.detail)},
            "note": NOTES.get(self.note, ""),
        }  # fmt: skip

    @property
    def mark(self) -> str:
        """An asterisk on a baseline that is an assumption, not a measurement."""
        return "*" if self.note == "cash" else ""


def _share(part: float, whole: float) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def day_rows(phases: dict[str, dict[str, Any]], baseline: dict[str, Any]) -> list[Row]:
    """The rows of the phases that ran (a skipped service has none)."""
    rows: list[Row] = []
    traffic, fixed = phases.get("traffic"), baseline.get("traffic")
    if traffic and fixed:
        rows += [
            Row("average_delay", "average vehicle delay, morning peak (RESCO)", "s",
                fixed["average_delay_s"], traffic["average_delay_s"], 1, note="fixed"),
            Row("bus_time_loss", "bus time loss, morning peak", "s per trip",
                fixed["bus_time_loss_s"], traffic["bus_time_loss_s"], 1, note="fixed"),
        ]  # fmt: skip
    energy = phases.get("energy")
    if energy:
        day = energy["day"]
        rows += [
            Row("peak_load", f"district evening peak load ({day}, planned)", "kW",
                energy["peak_kw_no_control"], energy["peak_kw"], 0, note="plan"),
            Row("energy_cost", f"district electricity cost ({day}, planned)", "$",
                energy["cost_no_control"], energy["cost"], 0, note="plan"),
            Row("carbon", f"district grid CO₂ ({day}, planned)", "kg",
                energy["carbon_kg_no_control"], energy["carbon_kg"], 0, note="plan"),
        ]  # fmt: skip
    fares = phases.get("fares")
    if fares and fares.get("passengerCount"):
        share = _share(fares["cashlessCount"], fares["passengerCount"])
        rows.append(Row("cashless_share", "cashless fare share", "%", 0.0, share, 1,
                        detail=f"{fares['passengerCount']:,} boardings", note="cash"))  # fmt: skip
    cameras = phases.get("cameras")
    if cameras:
        rows.append(Row("camera_alerts", "camera alerts raised (masked snapshots)", "alerts",
                        None, cameras["alerts"], detail=", ".join(cameras["incidents"]),
                        note="unknown"))  # fmt: skip
    flows = phases.get("flows")
    if flows:
        counted = flows["people_counted_in"] + (cameras or {}).get("crossed_in", 0)
        rows.append(Row("people_counted", "people counted entering the zones", "people",
                        None, counted, note="unknown"))  # fmt: skip
        ratio = flows.get("alert_ratio", 0.9)
        rows.append(Row("crowding_alerts", f"crowding alerts (a zone at {ratio * 100:g} % of "
                        "its capacity)", "alerts", None, flows["crowding_alerts"],
                        note="unknown"))  # fmt: skip
        peak = flows.get("peak") or {}
        if peak:
            rows.append(Row("crowd_peak", "crowd peak", "% of capacity", None,
                            round(100.0 * peak["occupancy"], 1), 1,
                            detail=f"{peak['zone']}, {peak.get('local', '')}".rstrip(", "),
                            note="unknown"))  # fmt: skip
    indicators = phases.get("indicators")
    if indicators:
        rows.append(Row("indicators", "city indicators computed from the hub (ISO 37120/37122, "
                        "U4SSC)", f"of {indicators['of']}", None, indicators["computed"],
                        note="unknown"))  # fmt: skip
    return rows


def rich_table(rows: list[Row]) -> Table:
    table = Table(title="The day in numbers")
    for name, justify in (("indicator", "left"), ("unit", "left"), ("without CityOS", "right"),
                          ("with CityOS", "right"), ("change", "right")):  # fmt: skip
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        table.add_row(r.indicator, r.unit, r.shown(r.without) + r.mark,
                      r.shown(r.with_, r.detail), r.change())  # fmt: skip
    return table


def notes(rows: list[Row]) -> list[str]:
    """The notes the rows refer to, once each, in order."""
    keys = list(dict.fromkeys(r.note for r in rows if r.note))
    return [NOTES[k] for k in keys]


def markdown(rows: list[dict[str, Any]]) -> str:
    """The table (rows as :meth:`Row.as_dict` gives them, so a results file prints too),
    then its notes."""
    lines = [
        "| indicator | unit | without CityOS | with CityOS | change |",
        "|---|---|--:|--:|--:|",
    ]
    for r in rows:
        cells = (r["indicator"], r["unit"], r["shown"]["without"], r["shown"]["with"], r["change"])
        lines.append("| " + " | ".join(_md(c) for c in cells) + " |")
    said = list(dict.fromkeys(r["note"] for r in rows if r["note"]))
    if said:
        lines += ["", *("- " + _md(n) for n in said)]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    """An asterisk shown as one, not as emphasis."""
    return text.replace("*", "\\*")
