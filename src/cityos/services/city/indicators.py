"""City indicators (ISO 37120:2018, ISO 37122:2019, ITU U4SSC) computed from the hub, and
their history as FIWARE ``KeyPerformanceIndicator`` entities.

``INDICATORS`` lists them; :func:`compute_report` evaluates them all for a period through
a :class:`~cityos.hub.client.HubClient`; :func:`store_report` writes each as one
``KeyPerformanceIndicator`` entity (dataModel.KeyPerformanceIndicator), its ``kpiValue``
observed at the report's time, so ``GET /temporal/entities/{id}`` (or
:func:`kpi_history`) gives the indicator's history. See docs/indicators.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from .indicators_data import CityData, area_m2, number_of, value_of
from .indicators_energy import ENERGY
from .indicators_environment import ENVIRONMENT
from .indicators_mobility import MOBILITY
from .indicators_model import (
    CityFacts,
    Indicator,
    IndicatorError,
    Measured,
    MissingCityFact,
    NoData,
    Outcome,
    Period,
    Read,
    iso,
)
from .indicators_services import SERVICES

__all__ = [
    "INDICATORS",
    "KPIS",
    "KPI_TYPE",
    "READS",
    "WRITES",
    "CityData",
    "CityFacts",
    "Indicator",
    "IndicatorError",
    "Measured",
    "MissingCityFact",
    "NoData",
    "Period",
    "Read",
    "Row",
    "compute_report",
    "facts_from_hub",
    "indicator",
    "kpi_entity",
    "kpi_history",
    "kpi_id",
    "store_report",
]

INDICATORS: tuple[Indicator, ...] = ENERGY + ENVIRONMENT + MOBILITY + SERVICES
KPI_TYPE = "KeyPerformanceIndicator"
CITY_TYPE = "City"
# What the plug declares: the indicators it reports, the entity types it reads and writes.
KPIS: tuple[str, ...] = tuple(i.key for i in INDICATORS)
READS: tuple[str, ...] = tuple(
    dict.fromkeys([CITY_TYPE, *(r.entity_type for i in INDICATORS for r in i.reads)])
)
WRITES: tuple[str, ...] = (KPI_TYPE,)
# UN/CEFACT common codes of the units that have one (the kpiValue's unitCode)
UNIT_CODES = {"%": "P1", "µg/m³": "GQ", "kW": "KWT", "s": "SEC"}


def indicator(key: str) -> Indicator:
    """The indicator with this key; :class:`IndicatorError` listing them when unknown."""
    for ind in INDICATORS:
        if ind.key == key:
            return ind
    raise IndicatorError(f"no indicator {key!r}; known: {', '.join(i.key for i in INDICATORS)}")


@dataclass(frozen=True)
class Row:
    """One indicator's line in a report."""

    indicator: Indicator
    outcome: Outcome
    period: Period

    def as_dict(self) -> dict[str, Any]:
        """What the JSON and CSV reports carry."""
        ind, out = self.indicator, self.outcome
        value = out.value
        return {
            "id": ind.key,
            "standard": ind.standard,
            "name": ind.name,
            "value": None if value is None else round(value, 4),
            "unit": ind.unit,
            "status": out.status,
            "why": out.why,
            "missing": list(out.missing) if isinstance(out, NoData) else [],
            "theme": ind.theme,
            "formula": ind.formula,
            "reads": [str(r) for r in ind.reads],
            "reference_note": ind.reference_note,
            "period_from": iso(self.period.start),
            "period_to": iso(self.period.end),
            "detail": _rounded(out.detail),
        }


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def compute_report(
    client: Any,
    period: Period,
    facts: CityFacts | None = None,
    *,
    indicators: Iterable[Indicator] = INDICATORS,
    contexts: Iterable[Any] | None = None,
) -> list[Row]:
    """Every indicator for the period, reading the hub once per entity type. ``facts``
    missing: those of the hub's City entity (:func:`facts_from_hub`)."""
    data = CityData(client, contexts)
    facts = facts if facts is not None else facts_from_hub(data)
    return [Row(ind, ind.evaluate(data, period, facts), period) for ind in indicators]


def facts_from_hub(source: Any, given: CityFacts | None = None) -> CityFacts:
    """``given`` with what it leaves unset taken from the hub's ``City`` entity (a CityOS
    convention: ``name``, ``population``, ``area`` in km² or else its Polygon location)."""
    data = source if isinstance(source, CityData) else CityData(source)
    given = given or CityFacts()
    cities = data.entities(CITY_TYPE)
    if not cities:
        return given
    city = cities[0]
    area = number_of(city, "area")
    if area is None and area_m2(city) > 0:
        area = area_m2(city) / 1e6
    population = number_of(city, "population")
    return replace(
        given,
        name=given.name or str(value_of(city, "name", "") or ""),
        population=given.population or (int(population) if population else None),
        area_km2=given.area_km2 or area or None,
    )


# -- the history: one KeyPerformanceIndicator entity per indicator ------------------------------
def kpi_id(key: str) -> str:
    return f"urn:ngsi-ld:{KPI_TYPE}:city:{quote(key, safe='')}"


def kpi_entity(row: Row, at: datetime, organization: str = "") -> dict[str, Any]:
    """The indicator as a dataModel.KeyPerformanceIndicator entity; every attribute that
    changes with a report is observed ``at``, so the temporal API keeps one instance per
    report. A no-data report updates the status, not ``kpiValue``."""
    ind, out = row.indicator, row.outcome
    when = iso(at)

    def prop(value: Any, **more: Any) -> dict[str, Any]:
        return {"type": "Property", "value": value, **more}

    entity: dict[str, Any] = {
        "id": kpi_id(ind.key),
        "type": KPI_TYPE,
        "name": prop(ind.name),
        "description": prop(f"{ind.standard}: {ind.name} ({ind.unit})"),
        "category": prop(["quantitative"]),
        "calculationFormula": prop(ind.formula),
        "calculationMethod": prop("automatic"),
        "calculatedBy": prop("CityOS"),
        "aggregatedData": prop(
            [{"entityType": r.entity_type, "attrs": list(r.attrs or ("*",))} for r in ind.reads]
        ),
        "standard": prop(ind.standard),
        "unit": prop(ind.unit),
        "calculationPeriod": prop(
            {"from": iso(row.period.start), "to": iso(row.period.end)}, observedAt=when
        ),
        "dataStatus": prop(out.status, observedAt=when),
        "dataStatusReason": prop(out.why or "computed", observedAt=when),
    }
    if organization:
        entity["organization"] = prop(organization)
    if ind.reference_note:
        entity["referenceNote"] = prop(ind.reference_note)
    if isinstance(out, Measured):
        value: dict[str, Any] = prop(round(out.value, 6), observedAt=when)
        if ind.unit in UNIT_CODES:
            value["unitCode"] = UNIT_CODES[ind.unit]
        entity["kpiValue"] = value
    return entity


def store_report(
    client: Any, rows: Iterable[Row], *, at: datetime | None = None, organization: str = ""
) -> list[str]:
    """Write every row as its KeyPerformanceIndicator entity (keeping the others' attributes,
    so the last value stays when a later report has no data); the ids written."""
    at = at or datetime.now(UTC)
    entities = [kpi_entity(r, at, organization) for r in rows]
    if entities:
        client.upsert(entities, replace=False)
    return [e["id"] for e in entities]


def kpi_history(
    client: Any, key: str, *, after: str | None = None, before: str | None = None
) -> list[tuple[str, Any]]:
    """The indicator's stored values, oldest first: ``(observedAt, kpiValue)``."""
    return client.history(kpi_id(key), "kpiValue", after=after, before=before)
