"""Answers the plan tests build (no tests here): generic ones for any city, variations."""

from __future__ import annotations

from typing import Any

from cityos.services.city.plan_data import City

LOW: dict[str, Any] = {
    "traffic_congestion": 1, "signal_control": "adaptive", "public_transport": 5,
    "bus_network": False, "flooding": 1, "air_quality": 1, "energy_cost": 1,
    "power_reliability": 5, "solar_ev_rollout": False, "crowding": 1, "public_safety": 1,
    "tourism": False, "cash_share": 1, "unbanked": 1, "kpi_reporting": False, "data_silos": 1,
    "data_protection_law": True, "privacy_readiness": 5, "connectivity": 5, "staff_skills": 5,
    "budget": "over_20m",
}  # fmt: skip
"""No need anywhere and fully ready: every service's score is 0 unless a test raises it."""


def doc(answers: dict[str, Any], city: str = "", example: bool = True) -> dict[str, Any]:
    """An answers document as a file would hold it."""
    return {"city": city, "example": example, "note": "test answers", "answers": answers}


def low(**changes: Any) -> dict[str, Any]:
    """The no-need answers with ``changes`` on top."""
    return doc({**LOW, **changes})


def generic(city: City) -> dict[str, Any]:
    """Made-up middle-of-the-road answers for any city, varied a little by its size."""
    big = city.population >= 1_000_000
    answers = {
        "traffic_congestion": 4 if big else 2, "signal_control": "fixed_time",
        "public_transport": 2, "bus_network": big, "flooding": 3, "air_quality": 3 if big else 2,
        "energy_cost": 3, "power_reliability": 3, "solar_ev_rollout": True, "crowding": 3,
        "public_safety": 3, "tourism": True, "cash_share": 3, "unbanked": 2,
        "kpi_reporting": True, "data_silos": 3, "data_protection_law": True,
        "privacy_readiness": 3, "connectivity": 3, "staff_skills": 3,
        "budget": "5m_20m" if big else "1m_5m",
    }  # fmt: skip
    return doc(answers, city=city.name)
