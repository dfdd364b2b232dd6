"""The basic plan: a city's survey answers → which CityOS services to deploy, in which
phase, with what effect (from this project's benchmarks), devices, data, cost and privacy
measures. See docs/plan.md for the scoring model.

The hub always comes first (every service talks to it). The others are ranked by how much
the answers say the city needs them; readiness (privacy safeguards, connectivity, staff,
budget) then decides how early each can start, so a needed service the city is not ready
for is planned later with the reason, never dropped silently."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import plan_evidence
from .plan_answers import Answers, load_answers, parse_answers
from .plan_catalogue import CATALOGUE, NATIONAL_QR, ServiceInfo
from .plan_costs import Assumptions, CostEstimate, Sizing, estimate, load_assumptions, size
from .plan_data import City, Question, find_city, survey
from .plan_errors import AnswersError, UnknownCity

LOW_NEED = 0.3
"""Below this need score a service is optional: planned last, marked not recommended."""

PHASES = {1: "months 0–12", 2: "months 12–24", 3: "months 24–36"}
RANKED = tuple(k for k in CATALOGUE if k != "hub")


@dataclass(frozen=True)
class ServicePlan:
    """One service in the plan: where it ranks, when it starts, why, and what it takes."""

    info: ServiceInfo
    rank: int
    phase: int
    score: float
    recommended: bool
    drivers: tuple[str, ...]
    reasons: tuple[str, ...]
    effects: tuple[plan_evidence.Effect, ...]
    cost: CostEstimate
    years_running: int

    @property
    def key(self) -> str:
        return self.info.key

    def as_dict(self) -> dict[str, Any]:
        """The service as written in the plan's JSON."""
        return {
            "service": self.key,
            "title": self.info.title,
            "does": self.info.does,
            "rank": self.rank,
            "phase": self.phase,
            "phase_months": PHASES[self.phase],
            "need_score": round(self.score, 3),
            "recommended": self.recommended,
            "drivers": list(self.drivers),
            "reasons": list(self.reasons),
            "expected_effects": [e.as_dict() for e in self.effects],
            "devices": list(self.info.devices),
            "data": list(self.info.data),
            "privacy_measures": list(self.info.privacy),
            "cost": self.cost.as_dict(self.years_running),
        }


@dataclass(frozen=True)
class Plan:
    """A city's basic plan, ready to render as JSON, HTML or PDF."""

    city: City
    answers: Answers
    services: tuple[ServicePlan, ...]
    readiness: dict[str, Any]
    sizing: Sizing
    assumptions: Assumptions
    budget_usd: int
    warnings: tuple[str, ...]
    notices: tuple[str, ...]
    results_dir: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def example(self) -> bool:
        return self.answers.example

    def service(self, key: str) -> ServicePlan:
        """The plan of one service (``traffic``)."""
        return next(s for s in self.services if s.key == key)

    def order(self) -> list[str]:
        """The services in rank order, the hub first."""
        return [s.key for s in sorted(self.services, key=lambda s: s.rank)]

    def phase_totals(self) -> dict[int, float]:
        """USD over the horizon of the services starting in each phase."""
        totals = {p: 0.0 for p in PHASES}
        for s in self.services:
            totals[s.phase] += s.cost.total(s.years_running)
        return totals

    def total_usd(self, recommended_only: bool = True) -> float:
        """The plan's cost over the horizon (the recommended services by default)."""
        chosen = [s for s in self.services if s.recommended or not recommended_only]
        return sum(s.cost.total(s.years_running) for s in chosen)

    def as_dict(self) -> dict[str, Any]:
        """The whole plan as JSON-ready data."""
        return {
            "kind": "cityos-basic-plan",
            "example": self.example,
            "notices": list(self.notices),
            "city": self.city.as_dict(),
            "answers": {
                "source": self.answers.source,
                "example": self.answers.example,
                "note": self.answers.note,
                "respondent": self.answers.respondent,
                "values": self.answers.values,
                "unanswered": list(self.answers.unanswered),
            },
            "readiness": self.readiness,
            "order": self.order(),
            "phases": {
                str(p): {"months": m, "services": self._in_phase(p)} for p, m in PHASES.items()
            },
            "services": [s.as_dict() for s in sorted(self.services, key=lambda s: s.rank)],
            "sizing": self.sizing.__dict__,
            "costs": self._costs(),
            "warnings": list(self.warnings),
            "assumptions": {
                "note": self.assumptions.note,
                "horizon_years": self.assumptions.horizon_years,
                "items": self.assumptions.table(),
            },
            "benchmark_results": self.results_dir,
        }

    def _in_phase(self, phase: int) -> list[str]:
        return [s.key for s in sorted(self.services, key=lambda s: s.rank) if s.phase == phase]

    def _costs(self) -> dict[str, Any]:
        return {
            "currency": "USD",
            "horizon_years": self.assumptions.horizon_years,
            "by_phase_usd": {str(p): int(round(v, -3)) for p, v in self.phase_totals().items()},
            "recommended_total_usd": int(round(self.total_usd(), -3)),
            "all_services_total_usd": int(round(self.total_usd(recommended_only=False), -3)),
            "budget_usd": self.budget_usd,
        }


def need_level(q: Question, value: Any) -> float:
    """How pressing one answer is, from 0 (no need) to 1 (urgent)."""
    if q.type == "scale":
        level = (int(value) - 1) / 4
        return 1.0 - level if q.invert else level
    if q.type == "yesno":
        return 1.0 if value else 0.0
    return float(q.option(value).get("level", 0.0))


def need_scores(answers: Answers) -> tuple[dict[str, float], dict[str, list[tuple[float, str]]]]:
    """Each service's need score (weighted mean of its questions' need levels, plus the
    top-priority boost) and the answers that drove it, largest first."""
    sums = {k: 0.0 for k in CATALOGUE}
    weights = {k: 0.0 for k in CATALOGUE}
    drivers: dict[str, list[tuple[float, str]]] = {k: [] for k in CATALOGUE}
    for q in survey():
        if q.id not in answers.values or not q.need:
            continue
        level = need_level(q, answers.values[q.id])
        for service, weight in q.need.items():
            sums[service] += weight * level
            weights[service] += weight
            if level > 0:
                drivers[service].append((weight * level, _describe(q, answers.values[q.id])))
    scores = {k: (sums[k] / weights[k] if weights[k] else 0.0) for k in CATALOGUE}
    _boost(answers, scores, drivers)
    return scores, {k: sorted(v, reverse=True) for k, v in drivers.items()}


def _boost(
    answers: Answers, scores: dict[str, float], drivers: dict[str, list[tuple[float, str]]]
) -> None:
    """The city's own top priority adds the survey's boost to that service's score."""
    q = next(q for q in survey() if q.boost)
    chosen = answers.get(q.id)
    if chosen in scores:
        scores[chosen] += q.boost
        drivers[chosen].append((q.boost, f"{q.id} = {chosen} (the city's top priority)"))


def _describe(q: Question, value: Any) -> str:
    """``traffic_congestion = 5 (gridlock every day)``: an answer as a plan quotes it."""
    if q.type == "scale":
        word = q.high if value == 5 else q.low if value == 1 else ""
        return f"{q.id} = {value}" + (f" ({word})" if word else "")
    if q.type == "yesno":
        return f"{q.id} = {'yes' if value else 'no'}"
    return f"{q.id} = {value} ({q.option(value).get('label', '')})"


def readiness(answers: Answers, city: City) -> dict[str, Any]:
    """What the readiness answers allow: privacy, connectivity, staff, budget, QR scheme."""
    budget = next(q for q in survey() if q.id == "budget").option(answers.get("budget"))
    scheme, codec = NATIONAL_QR.get(city.iso2, ("unknown", None))
    return {
        "privacy_ready": bool(answers.get("data_protection_law"))
        and answers.get("privacy_readiness") >= 3,
        "privacy_not_started": answers.get("privacy_readiness") == 1
        and not answers.get("data_protection_law"),
        "connectivity_ready": answers.get("connectivity") >= 3,
        "skills_low": answers.get("staff_skills") <= 2,
        "per_phase": int(budget["per_phase"]),
        "budget": answers.get("budget"),
        "budget_usd": int(budget["usd"]),
        "national_qr": scheme,
        "national_qr_supported": codec is not None,
    }


def earliest_phase(key: str, ready: dict[str, Any]) -> tuple[int, list[str]]:
    """The first phase ``key`` may start in given the city's readiness, and why not sooner."""
    phase, why = 1, []
    if key in ("flows", "safety") and not ready["privacy_ready"]:
        phase = 3 if ready["privacy_not_started"] else 2
        why.append(
            "privacy safeguards first: a data-protection basis, a data protection officer and "
            "an impact assessment before sensors that observe people go up"
        )
    if CATALOGUE[key].field_devices and not ready["connectivity_ready"]:
        phase = max(phase, 2)
        why.append("connectivity first: fibre or 4G at the sites before field devices")
    if key == "payments" and not ready["national_qr_supported"]:
        phase = max(phase, 2)
        why.append(f"CityOS has no codec for {ready['national_qr']} yet: one must be written first")
    return phase, why


def assign_phases(
    ranked: list[str], scores: dict[str, float], ready: dict[str, Any]
) -> dict[str, tuple[int, list[str]]]:
    """Phase of each ranked service: the earliest its readiness allows that still has room
    (``per_phase`` services each, one in phase 1 when staff skills are low; a service without
    field devices takes no room unless skills are low); low-need ones last."""
    room = {p: ready["per_phase"] for p in PHASES}
    if ready["skills_low"]:
        room[1] = 1
    out: dict[str, tuple[int, list[str]]] = {}
    for key in ranked:
        start, why = earliest_phase(key, ready)
        if scores[key] < LOW_NEED:
            out[key] = (3, [*why, f"low need (score {scores[key]:.2f} < {LOW_NEED}): optional"])
            continue
        slot = CATALOGUE[key].takes_slot or ready["skills_low"]
        free = [p for p in PHASES if p >= start and (room[p] > 0 or not slot)]
        phase = free[0] if free else 3
        if free and slot:
            room[phase] -= 1
        if not free:
            why.append("no room left in the three phases at this budget: phase 3 or later")
        elif phase > start:
            why.append(f"earlier phases are full at this budget ({ready['per_phase']} a phase)")
        out[key] = (phase, why)
    return out


def _years_running(phase: int, a: Assumptions) -> int:
    return max(1, a.horizon_years - (phase - 1))


def _resolve_city(city: str | City, answers: Answers) -> City:
    """The city asked for, checked against the city the answers file names."""
    chosen = city if isinstance(city, City) else find_city(city)
    if answers.city:
        try:
            named = find_city(answers.city)
        except UnknownCity as exc:
            raise AnswersError("city", str(exc)) from exc
        if named != chosen:
            raise AnswersError("city", f"the answers are for {named.name}, not {chosen.name}")
    return chosen


def _answers(answers: Answers | dict[str, Any] | str | Path) -> Answers:
    if isinstance(answers, Answers):
        return answers
    if isinstance(answers, dict):
        return parse_answers(answers, source="(given)")
    return load_answers(answers)


def make_plan(
    city: str | City,
    answers: Answers | dict[str, Any] | str | Path,
    *,
    results_dir: str | Path | None = "auto",
    assumptions: Assumptions | dict[str, Any] | str | Path | None = None,
) -> Plan:
    """The basic plan of ``city`` from its survey ``answers``. ``results_dir``: where the
    benchmark results are read ("auto": this checkout's benchmarks/results; None: none, so
    every effect reads "not measured yet")."""
    checked = _answers(answers)
    chosen = _resolve_city(city, checked)
    a = assumptions if isinstance(assumptions, Assumptions) else load_assumptions(assumptions)
    results = (
        plan_evidence.find_results_dir()
        if results_dir == "auto"
        else (Path(results_dir) if results_dir else None)
    )
    scores, drivers = need_scores(checked)
    ready = readiness(checked, chosen)
    ranked = sorted(RANKED, key=lambda k: (-round(scores[k], 9), RANKED.index(k)))
    phases = assign_phases(ranked, scores, ready)
    phases["hub"] = (1, ["every service reads and writes through the hub: it comes first"])
    services = tuple(
        _service_plan(k, i, phases[k], scores[k], drivers[k], chosen, checked, a, results)
        for i, k in enumerate(["hub", *ranked], start=1)
    )
    plan = Plan(
        city=chosen, answers=checked, services=services, readiness=ready,
        sizing=size(chosen, checked, a), assumptions=a, budget_usd=ready["budget_usd"],
        warnings=(), notices=notices(chosen, checked),
        results_dir=str(results) if results else None,
    )  # fmt: skip
    return _with_warnings(plan)


def _service_plan(
    key: str, rank: int, phase_why: tuple[int, list[str]], score: float,
    drivers: list[tuple[float, str]], city: City, answers: Answers, a: Assumptions,
    results: Path | None,
) -> ServicePlan:  # fmt: skip
    phase, why = phase_why
    return ServicePlan(
        info=CATALOGUE[key],
        rank=rank,
        phase=phase,
        score=score,
        recommended=key == "hub" or score >= LOW_NEED,
        drivers=tuple(text for _, text in drivers[:3]),
        reasons=tuple(why),
        effects=tuple(plan_evidence.effects(key, results, city)),
        cost=estimate(key, city, answers, a),
        years_running=_years_running(phase, a),
    )


def notices(city: City, answers: Answers) -> tuple[str, ...]:
    """The lines every output carries: the example warning, and what the figures are."""
    out = []
    if answers.example:
        out.append(
            f"EXAMPLE: these survey answers were made up to show the tool; they are not "
            f"{city.name}'s own position and this is not a plan of {city.name}."
        )
    out.append(
        f"City figures are approximate: population {city.population:,} in "
        f"{city.population_year} ({city.population_source}; {city.scope}), area "
        f"{city.area_km2:,.0f} km²; uncertainty {city.uncertainty}."
    )
    out.append(
        "Costs are rough planning figures (USD) under the assumptions table; effects were "
        "measured by this project's benchmarks in simulation, not in this city."
    )
    return tuple(out)


def _with_warnings(plan: Plan) -> Plan:
    """Warnings the plan's own figures raise: over budget, phase 1 alone over budget."""
    warnings = []
    total, budget = plan.total_usd(), plan.budget_usd
    if total > budget:
        warnings.append(
            f"The recommended services cost about USD {total:,.0f} over "
            f"{plan.assumptions.horizon_years} years, more than the stated budget (about "
            f"USD {budget:,.0f}): narrow the coverage (junction_coverage, meter_coverage, "
            "residents_per_camera) or move later phases to a later budget."
        )
    phase1 = plan.phase_totals()[1]
    if phase1 > budget:
        warnings.append(
            f"Phase 1 alone costs about USD {phase1:,.0f}: start with a pilot district "
            "before citywide coverage."
        )
    if plan.readiness["skills_low"]:
        warnings.append(
            "Staff skills are low: one service in phase 1, an extra platform engineer "
            "costed, and training for every new post."
        )
    return Plan(**{**plan.__dict__, "warnings": tuple(warnings)})
