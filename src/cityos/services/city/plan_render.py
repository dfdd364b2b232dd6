"""The plan as JSON (for tools), self-contained HTML (charts as inline SVG, no external
files or scripts) and PDF (matplotlib pages). Every output starts with the plan's notices,
so an example plan can never be mistaken for a city's own."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from .plan import PHASES, Plan, ServicePlan
from .plan_costs import number
from .plan_data import cities_note, survey

FORMATS = ("json", "html", "pdf")


def to_json(plan: Plan) -> str:
    """The plan as indented JSON (UTF-8 text, one trailing newline)."""
    return json.dumps(plan.as_dict(), indent=2, ensure_ascii=False) + "\n"


def usd(value: float) -> str:
    """``USD 1.2 M`` / ``USD 450 k``: costs at the precision they deserve."""
    if value == 0:
        return "—"
    if value >= 1e6:
        return f"USD {value / 1e6:,.1f} M"
    return f"USD {value / 1e3:,.0f} k"


CSS = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
body{line-height:1.45} h1{margin-bottom:.2rem} h2{border-bottom:1px solid #ccc;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f3f3} .num{text-align:right} .muted{color:#666} svg{max-width:100%;height:auto}
.example{background:#fde0dd;border:2px solid #c51b8a;padding:.6rem;font-weight:bold}
.notice{background:#f7f7f7;border-left:4px solid #888;padding:.4rem .6rem;margin:.3rem 0}
.warn{background:#fff7bc;border-left:4px solid #d95f0e;padding:.4rem .6rem;margin:.3rem 0}
.phase1{color:#1b7837} .phase3{color:#777}
"""


def _table(head: list[str], rows: list[list[Any]], numeric: tuple[int, ...] = ()) -> str:
    cells = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(_td(v, i in numeric) for i, v in enumerate(row)) + "</tr>" for row in rows
    )
    return f"<table><tr>{cells}</tr>{body}</table>"


def _td(value: Any, numeric: bool) -> str:
    return (
        f"<td class=num>{escape(str(value))}</td>" if numeric else f"<td>{escape(str(value))}</td>"
    )


def _list(items: list[str] | tuple[str, ...]) -> str:
    return "<ul>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>"


def _notices(plan: Plan) -> str:
    out = []
    for i, line in enumerate(plan.notices):
        cls = "example" if plan.example and i == 0 else "notice"
        out.append(f"<p class={cls}>{escape(line)}</p>")
    return "".join(out)


def _city(plan: Plan) -> str:
    c = plan.city
    rows = [
        ["country", c.country], ["scope", c.scope],
        ["population (approx.)", f"{c.population:,} ({c.population_year}; {c.population_source})"],
        ["area (approx.)", f"{c.area_km2:,.0f} km² ({c.area_source})"],
        ["centre", f"{c.lat:.2f}, {c.lon:.2f}"], ["uncertainty of these figures", c.uncertainty],
    ]  # fmt: skip
    return _table(["", ""], rows)


def _summary(plan: Plan) -> str:
    rows = []
    for phase, months in PHASES.items():
        chosen = [s for s in sorted(plan.services, key=lambda s: s.rank) if s.phase == phase]
        names = ", ".join(s.key + ("" if s.recommended else " (optional)") for s in chosen) or "—"
        cost = sum(s.cost.total(s.years_running) for s in chosen)
        rows.append([f"phase {phase}", months, names, usd(cost)])
    return _table(["phase", "when", "services (in rank order)", "cost over horizon"], rows, (3,))


def _effects(s: ServicePlan) -> str:
    rows = [[e.indicator, e.text, e.caveat or ("" if e.measured else "—")] for e in s.effects]
    return _table(["indicator", "expected effect (source)", "caveat"], rows)


def _costs(s: ServicePlan) -> str:
    rows = [
        [line.item, f"{line.quantity:,.1f}".rstrip("0").rstrip("."), f"{line.unit_cost:,.0f}",
         f"{line.capex:,.0f}", f"{line.opex_per_year:,.0f}", line.basis]
        for line in s.cost.lines
    ]  # fmt: skip
    head = ["item", "quantity", "unit USD", "capital USD", "USD / year", "from assumptions"]
    total = (
        f"<p>Capital {usd(s.cost.capex)}, running {usd(s.cost.opex_per_year)} a year, "
        f"{s.years_running} year(s) in the horizon: <b>{usd(s.cost.total(s.years_running))}</b>; "
        f"{s.cost.staff:g} staff.</p>"
    )
    return _table(head, rows, (1, 2, 3, 4)) + total


def _service(s: ServicePlan) -> str:
    tag = "" if s.recommended else " — optional (low need)"
    parts = [
        f"<h3>{s.rank}. {escape(s.info.title)} <span class=phase{s.phase}>— phase {s.phase} "
        f"({escape(PHASES[s.phase])}){escape(tag)}</span></h3>",
        f"<p>{escape(s.info.does)}.</p>",
        f"<p class=muted>need score {s.score:.2f}"
        + (f"; driven by: {escape('; '.join(s.drivers))}" if s.drivers else "")
        + "</p>",
    ]
    if s.reasons:
        parts.append("<p>Phase: " + escape("; ".join(s.reasons)) + "</p>")
    parts += [
        "<h4>Expected effect</h4>", _effects(s),
        "<h4>Devices</h4>", _list(s.info.devices),
        "<h4>Data</h4>", _list(s.info.data),
        "<h4>Privacy measures required</h4>", _list(s.info.privacy),
        "<h4>Rough cost</h4>", _costs(s),
    ]  # fmt: skip
    return "".join(parts)


def _answers(plan: Plan) -> str:
    rows = [[q.id, q.text, plan.answers.values.get(q.id, "(not answered)")] for q in survey()]
    return _table(["question", "text", "answer"], rows)


def _assumptions(plan: Plan) -> str:
    rows = [
        [
            a["id"],
            a["group"],
            number(a["value"]),
            a["unit"],
            a["basis"] + (" (overridden)" if a["overridden"] else ""),
        ]
        for a in plan.assumptions.table()
    ]
    return f"<p>{escape(plan.assumptions.note)}</p>" + _table(
        ["id", "kind", "value", "unit", "basis"], rows, (2,)
    )


def to_html(plan: Plan) -> str:
    """The plan as one self-contained HTML page."""
    from .plan_charts import charts, svg

    figures = "".join(f"<figure>{svg(fig)}</figure>" for fig in charts(plan))
    warnings = "".join(f"<p class=warn>{escape(w)}</p>" for w in plan.warnings)
    services = "".join(_service(s) for s in sorted(plan.services, key=lambda s: s.rank))
    body = [
        f"<h1>CityOS basic plan: {escape(plan.city.name)}</h1>",
        f"<p class=muted>{escape(plan.city.country)} — ASEAN Smart Cities Network pilot city</p>",
        _notices(plan), "<h2>The city</h2>", _city(plan),
        "<h2>The plan at a glance</h2>", _summary(plan), warnings, figures,
        "<h2>Services in rank order</h2>", services,
        "<h2>Readiness</h2>", _table(["", ""], [[k, v] for k, v in plan.readiness.items()]),
        "<h2>Sizing</h2>", _table(["", ""], [[k, v] for k, v in plan.sizing.__dict__.items()]),
        "<h2>Cost assumptions</h2>", _assumptions(plan),
        "<h2>The survey answers</h2>", _answers(plan),
        "<h2>Sources and uncertainty</h2>", _sources(plan), _notices(plan),
    ]  # fmt: skip
    title = f"CityOS basic plan: {plan.city.name}" + (" (EXAMPLE)" if plan.example else "")
    return (
        f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{escape(title)}</title>"
        f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n"
    )


def _sources(plan: Plan) -> str:
    files = sorted({e.source for s in plan.services for e in s.effects if e.source})
    where = plan.results_dir or "no benchmark results found: every effect reads 'not measured yet'"
    items = [
        f"City figures: {plan.city.population_source} ({plan.city.population_year}); "
        f"area: {plan.city.area_source}. Uncertainty {plan.city.uncertainty}. {cities_note()}",
        f"Effects: this project's benchmark results, read when the plan was made from {where}: "
        + ", ".join(files)
        + ".",
        "Costs: the assumptions table above; rough, not quotes.",
        f"Answers: {plan.answers.source or '(given)'}"
        + (" — example answers, not the city's position." if plan.example else "."),
    ]
    return _list(items)


def write(plan: Plan, fmt: str, out: str | Path) -> Path:
    """Write the plan in ``fmt`` (json, html, pdf) to ``out``; returns the path."""
    path = Path(out)
    if fmt == "json":
        path.write_text(to_json(plan), encoding="utf-8")
    elif fmt == "html":
        path.write_text(to_html(plan), encoding="utf-8")
    elif fmt == "pdf":
        from .plan_pdf import to_pdf

        path.write_bytes(to_pdf(plan))
    else:
        raise ValueError(f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
    return path
