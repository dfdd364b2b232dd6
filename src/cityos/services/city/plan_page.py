"""The basic plan on the dashboard (``plan``): the needs survey as a form, answered by the
same planner as ``cityos plan`` (docs/plan.md).

The form asks for one of the 26 ASCN pilot cities and every survey question. Choosing a
city fills in the example answers CityOS ships for it (made up by its developers, marked as
such) or, for the others, the blank template's middle answers, and ticks "made-up answers";
a plan made from answers left as they were filled in is an example whatever that box says,
so a made-up answer is never shown as a city's own position. The answer is the ranked plan:
services by phase, the expected effect on named indicators with the benchmark cited, the
devices and data each needs, rough costs with their assumptions, the privacy measures. It
reads nothing from the hub and writes nothing: the answers are checked by
``plan_answers.parse_answers`` and the plan made by ``plan.make_plan``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from cityos.services.base import FormError, Page, Panel

from .plan import PHASES, Plan, make_plan
from .plan_answers import Answers, parse_answers, template
from .plan_costs import number
from .plan_data import EXAMPLES, City, cities, example_answers, find_city, survey
from .plan_errors import AnswersError, PlanError, UnknownCity
from .plan_evidence import SIMULATED
from .plan_render import usd

FIRST_CITY = "Phnom Penh"  # the form opens on a city with shipped example answers
SOURCE = "the dashboard's plan form"


def prefilled(city: City) -> dict[str, Any]:
    """The answers the form fills in for ``city``: its shipped example answers, else the
    blank template's middle answers (both made up, never the city's position)."""
    if city.slug in EXAMPLES:
        return dict(example_answers(city.slug)["answers"])
    return dict(json.loads(template(city.name, "json"))["answers"])


def _question_field(q: Any, value: Any) -> dict[str, Any]:
    field: dict[str, Any] = {"name": q.id, "label": q.text, "group": q.section, "value": value}
    if q.type == "scale":
        field.update(kind="range", min=1, max=5, step=1)
        if q.low and q.high:
            field["help"] = f"1 = {q.low} … 5 = {q.high}"
    elif q.type == "yesno":
        field["kind"] = "checkbox"
    else:
        field["kind"] = "select"
        field["options"] = [{"value": o["value"], "label": o.get("label", o["value"])}
                            for o in q.options]  # fmt: skip
        if q.optional:
            field["help"] = "optional"
    return field


def survey_form() -> dict[str, Any]:
    """The form panel's data: the city, whether the answers are made up, every question."""
    first = find_city(FIRST_CITY)
    values = prefilled(first)
    fills = {c.name: {**prefilled(c), "example": True} for c in cities()}
    shipped = ", ".join(find_city(s.replace("-", " ")).name for s in EXAMPLES)
    fields: list[dict[str, Any]] = [
        {
            "name": "city",
            "label": "City (ASEAN Smart Cities Network pilot)",
            "kind": "select",
            "group": "The city",
            "value": first.name,
            "options": [{"value": c.name, "label": f"{c.name} ({c.country})"} for c in cities()],
            "fills": fills,
            "help": f"Choosing a city fills in example answers where CityOS ships some "
            f"({shipped}: made up by the CityOS developers), else the template's middle "
            "answers. Change them to the city's own.",
        },
        {
            "name": "example",
            "label": "Made-up answers (an example, not the city's own position)",
            "kind": "checkbox",
            "group": "The city",
            "value": True,
            "help": "Untick only when every answer is the city's own. Answers left as filled "
            "in make an example plan either way.",
        },
    ]
    fields += [_question_field(q, values.get(q.id)) for q in survey()]
    return {
        "intro": "Answer the needs survey for a city: the plan is made on the server by the "
        "planner of `cityos plan` from these answers alone (nothing is stored, the hub is "
        "neither read nor written).",
        "fields": fields,
        "submit": "Make the plan",
    }


def form(client: Any) -> list[Panel]:
    """The page as opened: the survey form."""
    return [Panel("Needs survey", "form", survey_form())]


def _form_field(field: str) -> str:
    """The form field an answers error names (``answers.flooding`` → ``flooding``)."""
    return field.removeprefix("answers.") if field != "answers" else ""


def plan_of(values: dict[str, Any]) -> Plan:
    """The plan of the submitted values; a value the planner refuses raises FormError
    with the planner's own message (which names the field)."""
    given = dict(values)
    name = given.pop("city", None)
    example = given.pop("example", False)
    if not isinstance(name, str) or not name.strip():
        raise FormError("city", "city: choose one of the 26 ASCN pilot cities")
    try:
        city = find_city(name)
        doc = {"city": city.name, "example": example, "answers": given}
        answers = parse_answers(doc, source=SOURCE)
        return make_plan(city, _honest(answers, city))
    except AnswersError as exc:
        raise FormError(_form_field(exc.field), str(exc)) from exc
    except UnknownCity as exc:
        raise FormError("city", f"city: {exc}") from exc
    except PlanError as exc:
        raise FormError("", str(exc)) from exc


def _honest(answers: Answers, city: City) -> Answers:
    """Answers left as the form filled them in are made up, whatever the box says."""
    made_up = parse_answers({"answers": prefilled(city)}).values
    if answers.example or answers.values != made_up:
        return answers
    note = "the answers the form fills in, unchanged: made up, not the city's position"
    return replace(answers, example=True, note=note)


def answer(client: Any, values: dict[str, Any]) -> list[Panel]:
    """The ranked plan of the submitted survey, as panels."""
    return plan_panels(plan_of(values))


def _ranked(plan: Plan) -> list[Any]:
    return sorted(plan.services, key=lambda s: s.rank)


def _notices(plan: Plan) -> list[Panel]:
    title = (
        f"EXAMPLE: made-up answers, not {plan.city.name}'s position"
        if plan.example
        else f"{plan.city.name}: the basic plan"
    )
    out = [Panel(title, "text", list(plan.notices), wide=True)]
    if plan.warnings:
        out.append(Panel("Warnings", "text", list(plan.warnings), wide=True))
    return out


def _glance(plan: Plan) -> Panel:
    c = plan.city
    chosen = [s for s in plan.services if s.recommended]
    years = plan.assumptions.horizon_years
    return Panel(
        "The plan at a glance",
        "metrics",
        [
            {
                "label": "City",
                "value": c.name,
                "hint": f"{c.country}; about {c.population:,} people ({c.population_year})",
            },
            {
                "label": "Services recommended",
                "value": len(chosen),
                "hint": f"of {len(plan.services)}; the hub first",
            },
            {
                "label": "Starting in phase 1",
                "value": sum(s.phase == 1 for s in plan.services),
                "hint": PHASES[1],
            },
            {
                "label": f"Rough cost over {years} years",
                "value": usd(plan.total_usd()),
                "hint": "the recommended services",
            },
            {"label": "Stated budget", "value": usd(plan.budget_usd)},
        ],  # fmt: skip
        wide=True,
    )


def _services(plan: Plan) -> Panel:
    rows = [
        [
            s.phase,
            PHASES[s.phase],
            s.rank,
            s.info.title,
            round(s.score, 2),
            "yes" if s.recommended else "optional (low need)",
            "; ".join(s.drivers) or "–",
            "; ".join(s.reasons) or "–",
        ]
        for s in sorted(plan.services, key=lambda s: (s.phase, s.rank))
    ]
    columns = ["phase", "when", "rank", "service", "need", "recommended", "driven by",
               "why this phase"]  # fmt: skip
    return Panel("Services by phase", "table", {"columns": columns, "rows": rows}, wide=True)


def _effects(plan: Plan) -> Panel:
    rows = [
        [s.info.key, e.indicator, e.text, e.source or "–",
         "in simulation, not in this city" if e.caveat == SIMULATED else (e.caveat or "–")]
        for s in _ranked(plan)
        for e in s.effects
    ]  # fmt: skip
    columns = ["service", "indicator", "expected effect", "benchmark cited", "caveat"]
    return Panel(
        "Expected effect on named indicators", "table", {"columns": columns, "rows": rows},
        wide=True,
    )  # fmt: skip


def _needs(plan: Plan) -> Panel:
    rows = [[s.info.key, "; ".join(s.info.devices), "; ".join(s.info.data)] for s in _ranked(plan)]
    return Panel(
        "Devices and data each needs", "table",
        {"columns": ["service", "devices", "data"], "rows": rows}, wide=True,
    )  # fmt: skip


def _costs(plan: Plan) -> list[Panel]:
    years = plan.assumptions.horizon_years
    rows: list[list[Any]] = [
        [s.info.key, s.phase, usd(s.cost.capex), usd(s.cost.opex_per_year), s.years_running,
         usd(s.cost.total(s.years_running)), s.cost.staff]
        for s in _ranked(plan)
    ]  # fmt: skip
    rows.append(["recommended, in all", "", "", "", "", usd(plan.total_usd()), ""])
    columns = ["service", "phase", "capital", "running a year", "years in horizon", "total",
               "staff"]  # fmt: skip
    totals = plan.phase_totals()
    chart = {
        "x": [f"phase {p} ({m})" for p, m in PHASES.items()],
        "series": [{"name": f"USD million over {years} years, services starting in the phase",
                    "values": [round(totals[p] / 1e6, 2) for p in PHASES]}],
        "unit": "USD million",
        "kind": "bar",
    }  # fmt: skip
    assumptions = [
        [a["id"], number(a["value"]), a["unit"], a["basis"]] for a in plan.assumptions.table()
    ]
    return [
        Panel("Rough costs (USD)", "table", {"columns": columns, "rows": rows}, wide=True),
        Panel("Cost by phase", "chart", chart, wide=True),
        Panel(
            "The cost assumptions",
            "text",
            [
                plan.assumptions.note,
                f"The horizon is {years} years: a service that starts in phase 1 runs for "
                f"{years} of them, one of phase 2 for {years - 1}, one of phase 3 for "
                f"{years - 2}. Capital is spent once; running costs each year.",
            ],
            wide=True,
        ),  # fmt: skip
        Panel(
            "Assumptions the costs rest on",
            "table",
            {"columns": ["assumption", "value", "unit", "basis"], "rows": assumptions},
            wide=True,
        ),  # fmt: skip
    ]


def _privacy(plan: Plan) -> Panel:
    rows = [[s.info.key, measure] for s in _ranked(plan) for measure in s.info.privacy]
    return Panel(
        "Privacy measures required", "table", {"columns": ["service", "measure"], "rows": rows},
        wide=True,
    )  # fmt: skip


def _as_file(plan: Plan) -> Panel:
    city = json.dumps(plan.city.name, ensure_ascii=False)
    lines = [
        f"cityos plan --city {city} --answers ANSWERS.toml --format html --out plan.html "
        "(or --format pdf --out plan.pdf) writes this same plan as a file, with its charts, "
        "the survey answers and the sources; cityos plan template --city "
        f"{city} writes the answers file to fill in (docs/plan.md explains the scoring)."
    ]
    if plan.city.slug in EXAMPLES:
        lines.append(
            f"With --example instead of --answers it uses the example answers shipped for "
            f"{plan.city.name} (made up by the CityOS developers)."
        )
    return Panel("The same plan as HTML and PDF", "text", lines, wide=True)


def plan_panels(plan: Plan) -> list[Panel]:
    """The plan as the dashboard shows it, the notices first."""
    return [
        *_notices(plan),
        _glance(plan),
        _services(plan),
        _effects(plan),
        _needs(plan),
        *_costs(plan),
        _privacy(plan),
        _as_file(plan),
    ]


def pages() -> list[Page]:
    return [Page(slug="plan", title="Basic plan", panels=form, answer=answer, order=95)]
