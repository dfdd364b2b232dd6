"""The indicators' plain data: the city's facts, the period, what an indicator is and what
computing it gives (a value, or "no data" saying what is missing). No hub, no I/O."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .indicators_data import CityData

HOURS_PER_YEAR = 8760.0
DAYS_PER_YEAR = 365.0


class IndicatorError(Exception):
    """A report cannot be made as asked; the message says what to do."""


class MissingCityFact(IndicatorError):
    """An indicator needs a fact about the city (its population, its area) nobody gave."""

    def __init__(self, fact: str, how: str) -> None:
        super().__init__(f"the city's {fact} is not set: {how}")
        self.fact = fact


_HOW = {
    "population": "pass --population or set CITYOS_CITY_POPULATION (or a City entity's "
    "population in the hub)",
    "area_km2": "pass --area-km2 or set CITYOS_CITY_AREA_KM2 (or a City entity's area in km²)",
    "registered_electric_vehicles": "pass --registered-evs or set CITYOS_CITY_REGISTERED_EVS",
}


@dataclass(frozen=True)
class CityFacts:
    """What the hub cannot know about the city but per-capita and per-km² indicators need."""

    name: str = ""
    population: int | None = None
    area_km2: float | None = None
    registered_electric_vehicles: int | None = None

    def __post_init__(self) -> None:
        for fact in ("population", "area_km2", "registered_electric_vehicles"):
            value = getattr(self, fact)
            if value is not None and (isinstance(value, bool) or not value > 0):
                raise IndicatorError(f"the city's {fact} must be a positive number, got {value!r}")

    def require(self, fact: str) -> float:
        """The fact's value, or :class:`MissingCityFact` saying how to give it."""
        value = getattr(self, fact)
        if value is None:
            raise MissingCityFact(fact, _HOW.get(fact, f"set {fact}"))
        return float(value)


def parse_time(text: str) -> datetime:
    """An ISO 8601 date or instant as an aware UTC datetime (a bare date: its 00:00 UTC)."""
    at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC)


@dataclass(frozen=True)
class Period:
    """The half-open interval ``[start, end)`` the indicators describe (ISO: usually a year)."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise IndicatorError("give the period's start and end with a time zone")
        if not self.end > self.start:
            raise IndicatorError(f"the period must end after it starts ({self.label})")

    @classmethod
    def year_to(cls, end: datetime | None = None) -> Period:
        """The 365 days up to ``end`` (default: now)."""
        end = (end or datetime.now(UTC)).astimezone(UTC)
        return cls(end - timedelta(days=DAYS_PER_YEAR), end)

    @classmethod
    def parse(cls, start: str | None, end: str | None) -> Period:
        """From ISO dates or instants; a missing end is now, a missing start 365 days before."""
        try:
            stop = parse_time(end) if end else datetime.now(UTC)
            begin = parse_time(start) if start else stop - timedelta(days=DAYS_PER_YEAR)
        except ValueError as exc:
            raise IndicatorError(f"not an ISO 8601 date or time: {exc}") from None
        return cls(begin, stop)

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400.0

    @property
    def label(self) -> str:
        return f"{iso(self.start)}/{iso(self.end)}"

    def contains(self, at: datetime | None) -> bool:
        return at is not None and self.start <= at < self.end


def iso(at: datetime) -> str:
    """The hub's text form of an instant (UTC, ``Z``)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Measured:
    """An indicator's value, with the numbers it came from (``detail``)."""

    value: float
    detail: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"

    @property
    def why(self) -> str:
        return ""


@dataclass(frozen=True)
class NoData:
    """The city does not have what the indicator needs yet: ``why`` says what, ``missing``
    names the entity types (or city facts) to provide."""

    why: str
    missing: tuple[str, ...] = ()
    status: str = "no-data"

    @property
    def value(self) -> None:
        return None

    @property
    def detail(self) -> dict[str, Any]:
        return {}


Outcome = Measured | NoData


@dataclass(frozen=True)
class Read:
    """An entity type an indicator reads, and which of its attributes."""

    entity_type: str
    attrs: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.entity_type}({', '.join(self.attrs)})" if self.attrs else self.entity_type


Compute = Callable[["CityData", CityFacts, Period], Outcome]


@dataclass(frozen=True)
class Indicator:
    """One indicator: where it comes from, how it is computed and from what."""

    key: str  # stable: the KPI entity's id and the report's ``id``
    name: str
    standards: tuple[str, ...]  # "ISO 37120:2018 8.1", "U4SSC EN/Environment/Air quality"
    unit: str
    formula: str
    reads: tuple[Read, ...]
    compute: Compute
    theme: str
    reference_note: str = ""
    facts: tuple[str, ...] = ()  # the CityFacts it needs

    @property
    def standard(self) -> str:
        return "; ".join(self.standards)

    def evaluate(self, source: Any, period: Period, facts: CityFacts | None = None) -> Outcome:
        """Compute from a :class:`~.indicators_data.CityData` or a HubClient; a missing
        city fact is a :class:`NoData` naming it."""
        from .indicators_data import CityData

        data = source if isinstance(source, CityData) else CityData(source)
        facts = facts or CityFacts()
        try:
            for fact in self.facts:
                facts.require(fact)
            return self.compute(data, facts, period)
        except MissingCityFact as exc:
            return NoData(str(exc), (exc.fact,))


def share(part: float, whole: float, **detail: Any) -> Measured:
    """``part`` as a percentage of ``whole`` (which must be > 0), with both in the detail."""
    return Measured(100.0 * part / whole, {"numerator": part, "denominator": whole, **detail})


def nothing(*missing: str, why: str = "") -> NoData:
    """No data: none of the entity types ``missing`` (``why`` says more when it is not that
    simple)."""
    names = " or ".join(missing)
    return NoData(why or f"no {names} in the hub", tuple(missing))
