"""Rough costs of each service for one city: device counts scaled by population and urban
area, priced with the unit costs of ``data/cost_assumptions.json``. Every number a cost
rests on is in that one table, so a city can replace any of them and see what moves."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from .plan_answers import Answers
from .plan_data import City, read_json
from .plan_errors import PlanError


@dataclass(frozen=True)
class Assumption:
    """One labelled planning figure: a unit cost or a scaling density."""

    id: str
    group: str
    value: float
    unit: str
    basis: str
    overridden: bool = False


class Assumptions:
    """The cost assumptions by id, with the city's overrides applied."""

    def __init__(self, items: list[Assumption], horizon_years: int, note: str) -> None:
        self.items = {a.id: a for a in items}
        self.horizon_years = horizon_years
        self.note = note

    def __getitem__(self, key: str) -> float:
        return self.items[key].value

    def table(self) -> list[dict[str, Any]]:
        """The assumptions as rows, for the reports."""
        return [asdict(a) for a in self.items.values()]


def load_assumptions(overrides: dict[str, Any] | str | Path | None = None) -> Assumptions:
    """The shipped assumptions, with ``overrides`` ({id: value} or a JSON file of it) on
    top; an unknown id or a value that is not a non-negative number is refused by name."""
    doc = read_json("cost_assumptions.json")
    items = [Assumption(**row) for row in doc["items"]]
    result = Assumptions(items, int(doc["horizon_years"]), str(doc["note"]))
    for key, value in _overrides(overrides).items():
        _override(result, key, value)
    return result


def _overrides(overrides: dict[str, Any] | str | Path | None) -> dict[str, Any]:
    if overrides is None or isinstance(overrides, dict):
        return dict(overrides or {})
    try:
        loaded = json.loads(Path(overrides).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise PlanError(f"assumptions: cannot read {overrides}: {exc}") from exc
    if not isinstance(loaded, dict):
        raise PlanError("assumptions: expected a JSON object {id: value}")
    return loaded


def _override(result: Assumptions, key: str, value: Any) -> None:
    if key not in result.items:
        raise PlanError(f"assumptions.{key}: unknown assumption (see docs/plan.md)")
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise PlanError(f"assumptions.{key}: expected a non-negative number, got {value!r}")
    result.items[key] = replace(result.items[key], value=float(value), overridden=True)


@dataclass(frozen=True)
class CostLine:
    """One line of a service's cost: what, how many, at what unit cost."""

    item: str
    quantity: float
    unit_cost: float
    capex: float
    opex_per_year: float
    basis: str


@dataclass(frozen=True)
class CostEstimate:
    """A service's capital cost, yearly running cost and staff, line by line."""

    service: str
    lines: tuple[CostLine, ...]

    @property
    def capex(self) -> float:
        return sum(line.capex for line in self.lines)

    @property
    def opex_per_year(self) -> float:
        return sum(line.opex_per_year for line in self.lines)

    @property
    def staff(self) -> float:
        return sum(line.quantity for line in self.lines if line.item.startswith("staff"))

    def total(self, years_running: int) -> float:
        """Capital cost plus ``years_running`` years of running cost."""
        return self.capex + self.opex_per_year * years_running

    def as_dict(self, years_running: int) -> dict[str, Any]:
        """The estimate as written in the plan's JSON (USD, rounded to 1,000)."""
        return {
            "capex_usd": _round(self.capex),
            "opex_usd_per_year": _round(self.opex_per_year),
            "years_running_in_horizon": years_running,
            "total_usd_in_horizon": _round(self.total(years_running)),
            "staff_fte": self.staff,
            "lines": [asdict(line) for line in self.lines],
        }


def number(value: float) -> str:
    """An assumption's value as the reports print it: ``2,000,000``, ``0.3``."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:g}"


def _round(usd: float) -> int:
    return int(round(usd, -3))


@dataclass(frozen=True)
class Sizing:
    """How many of each thing a city needs, from its population, area and answers."""

    urban_km2: float
    junctions: int
    buses: int
    stops: int
    buildings: int
    zones: int
    cameras: int
    aq_stations: int
    water_sensors: int
    hub_servers: int


def size(city: City, answers: Answers, a: Assumptions) -> Sizing:
    """Device counts scaled by population (and by urban area for water sensors)."""
    pop = city.population
    urban = min(city.area_km2, pop / a["urban_density_per_km2"])
    buses = math.ceil(pop / a["residents_per_bus"]) if answers.get("bus_network") else 0
    aq = max(2, math.ceil(pop / a["residents_per_aq_station"]))
    return Sizing(
        urban_km2=round(urban, 1),
        junctions=math.ceil(pop / a["residents_per_junction"] * a["junction_coverage"]),
        buses=buses,
        stops=math.ceil(buses * a["stops_per_bus"]),
        buildings=math.ceil(pop / a["residents_per_public_building"] * a["meter_coverage"]),
        zones=max(1, math.ceil(pop / a["residents_per_flow_zone"])),
        cameras=math.ceil(pop / a["residents_per_camera"]),
        aq_stations=aq if answers.get("air_quality", 1) >= 3 else 0,
        water_sensors=(
            math.ceil(urban / a["urban_km2_per_water_sensor"])
            if answers.get("flooding", 1) >= 3
            else 0
        ),
        hub_servers=2 + int(pop // a["residents_per_hub_server"]),
    )


def _device(
    item: str, qty: float, unit_id: str, a: Assumptions, connected: bool = True
) -> CostLine:
    """A field device: bought and installed once; maintained and connected every year."""
    unit = a[unit_id]
    capex = qty * unit * (1 + a["installation_share"])
    opex = qty * unit * a["maintenance_share_per_year"]
    opex += qty * a["connectivity_per_device_year"] if connected else 0.0
    basis = f"{unit_id} × (1 + installation_share); maintenance" + (
        " + connectivity" if connected else ""
    )
    return CostLine(item, qty, unit, capex, opex, basis)


def _servers(qty: float, a: Assumptions) -> CostLine:
    capex, opex = qty * a["server"], qty * a["server_hosting_per_year"]
    return CostLine("servers", qty, a["server"], capex, opex, "server; server_hosting_per_year")


def _staff(role: str, fte: float, a: Assumptions) -> CostLine:
    capex = math.ceil(fte) * a["training_per_staff"]
    return CostLine(
        f"staff: {role}", fte, a["staff_per_year"], capex, fte * a["staff_per_year"],
        "staff_per_year; training_per_staff once",
    )  # fmt: skip


def _hub_lines(city: City, answers: Answers, s: Sizing, a: Assumptions) -> list[CostLine]:
    engineers = 2 + city.population // a["residents_per_hub_server"]
    if answers.get("staff_skills", 3) <= 2:
        engineers += 1  # a city without a platform team hires or contracts one more
    lines = [_servers(s.hub_servers, a), _staff("platform engineers", engineers, a)]
    if s.aq_stations:
        lines.append(_device("air-quality stations", s.aq_stations, "aq_station", a))
    if s.water_sensors:
        lines.append(_device("water-level sensors", s.water_sensors, "water_level_sensor", a))
    return lines


def _service_lines(service: str, s: Sizing, a: Assumptions) -> list[CostLine]:
    """The lines of every service but the hub, from the sizing."""
    if service == "traffic":
        staff = max(1, math.ceil(s.junctions / a["junctions_per_traffic_staff"]))
        lines = [_device("upgraded junctions", s.junctions, "junction_kit", a), _servers(1, a)]
        if s.buses:
            lines.append(_device("bus trackers", s.buses, "bus_unit", a))
        return lines + [_staff("traffic engineers", staff, a)]
    if service == "energy":
        meters = _device("metered city buildings", s.buildings, "smart_meter", a)
        return [meters, _servers(1, a), _staff("energy analyst", 1, a)]
    if service == "flows":
        counters = _device("people counters", s.zones * a["counters_per_zone"], "people_counter", a)
        wifi = _device("Wi-Fi sensors", s.zones * a["wifi_sensors_per_zone"], "wifi_sensor", a)
        staff = [_staff("data analyst", 1, a), _staff("privacy officer (part time)", 0.5, a)]
        return [counters, wifi, _servers(1, a), *staff]
    if service == "safety":
        staff = max(1, math.ceil(s.cameras / a["cameras_per_safety_staff"]))
        return [
            _device("cameras with edge compute", s.cameras, "camera_edge", a),
            _staff("technicians", staff, a),
        ]
    if service == "payments":
        lines = [_servers(1, a), _staff("payments and reconciliation", 1, a)]
        if s.buses:
            lines.insert(0, _device("QR fare validators", s.buses, "fare_validator", a))
            lines.insert(1, _device("QR signs at stops", s.stops, "stop_qr", a, connected=False))
        return lines
    if service == "indicators":
        return [_staff("indicator analyst", 1, a)]
    raise PlanError(f"no cost model for service {service!r}")


def estimate(service: str, city: City, answers: Answers, a: Assumptions) -> CostEstimate:
    """The cost of deploying ``service`` in ``city`` as the answers describe it."""
    s = size(city, answers, a)
    lines = _hub_lines(city, answers, s, a) if service == "hub" else _service_lines(service, s, a)
    return CostEstimate(service, tuple(lines))
