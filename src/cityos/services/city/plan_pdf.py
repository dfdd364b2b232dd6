"""The plan as a PDF: text pages and the charts, drawn by matplotlib's PDF backend (no
other PDF library is a CityOS dependency). A4 portrait; the notices head every page."""

from __future__ import annotations

import io
import textwrap

from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from .plan import PHASES, Plan, ServicePlan
from .plan_charts import charts
from .plan_costs import number
from .plan_render import usd

A4 = (8.27, 11.69)
TOP, BOTTOM, LEFT = 0.95, 0.05, 0.07
STYLES: dict[str, dict[str, object]] = {
    "title": {"size": 16, "weight": "bold", "width": 60, "gap": 0.03},
    "h1": {"size": 12, "weight": "bold", "width": 80, "gap": 0.024},
    "h2": {"size": 10, "weight": "bold", "width": 95, "gap": 0.019},
    "body": {"size": 8.5, "weight": "normal", "width": 112, "gap": 0.0145},
    "example": {"size": 9, "weight": "bold", "width": 88, "gap": 0.016, "color": "#c51b8a"},
    "warn": {"size": 8.5, "weight": "normal", "width": 112, "gap": 0.0145, "color": "#a63603"},
}
Line = tuple[str, str]


def _wrap(text: str, style: str, indent: str = "") -> list[Line]:
    width = int(STYLES[style]["width"])  # type: ignore[call-overload]
    return [(part, style) for part in textwrap.wrap(text, width, subsequent_indent=indent) or [""]]


def _header(plan: Plan) -> list[Line]:
    if plan.example:
        return _wrap(plan.notices[0], "example") + [("", "body")]
    return []


def _pages(plan: Plan, lines: list[Line]) -> list[Figure]:
    """``lines`` laid out on as many A4 pages as they need, each under the example line."""
    pages: list[Figure] = []
    fig, y = None, TOP
    for text, style in lines:
        gap = float(STYLES[style]["gap"])  # type: ignore[arg-type]
        if fig is None or y - gap < BOTTOM:
            fig, y = Figure(figsize=A4), TOP
            pages.append(fig)
            for head_text, head_style in _header(plan):
                y = _put(fig, y, head_text, head_style)
        y = _put(fig, y, text, style)
    return pages


def _put(fig: Figure, y: float, text: str, style: str) -> float:
    s = STYLES[style]
    fig.text(
        LEFT,
        y,
        text,
        fontsize=s["size"],
        fontweight=s["weight"],
        color=s.get("color", "#222222"),
        va="top",
    )
    return y - float(s["gap"])  # type: ignore[arg-type]


def _bullets(items: tuple[str, ...] | list[str]) -> list[Line]:
    return [line for item in items for line in _wrap(f"• {item}", "body", "  ")]


def _front(plan: Plan) -> list[Line]:
    c = plan.city
    lines = _wrap(f"CityOS basic plan: {c.name}", "title") + _wrap(
        f"{c.country} — ASEAN Smart Cities Network pilot city", "h2"
    )
    for note in plan.notices[1 if plan.example else 0 :]:
        lines += _wrap(note, "body") + [("", "body")]
    lines += _wrap("The plan at a glance", "h1")
    for phase, months in PHASES.items():
        chosen = [s for s in sorted(plan.services, key=lambda s: s.rank) if s.phase == phase]
        names = ", ".join(s.key + ("" if s.recommended else " (optional)") for s in chosen) or "—"
        cost = usd(sum(s.cost.total(s.years_running) for s in chosen))
        lines += _wrap(f"Phase {phase} ({months}): {names} — {cost}", "body")
    lines += _wrap(f"Stated budget: about {usd(plan.budget_usd)}.", "body")
    lines += [("", "body")] + _wrap("Services in rank order", "h1")
    for s in sorted(plan.services, key=lambda s: s.rank):
        cost = usd(s.cost.total(s.years_running))
        tag = "" if s.recommended else ", optional"
        lines += _wrap(
            f"{s.rank}. {s.info.title}: phase {s.phase}{tag}, need {s.score:.2f}, {cost}", "body"
        )
    for warning in plan.warnings:
        lines += [("", "body")] + _wrap(f"! {warning}", "warn")
    return lines


def _service(s: ServicePlan) -> list[Line]:
    tag = "" if s.recommended else ", optional (low need)"
    lines = [("", "body")] + _wrap(
        f"{s.rank}. {s.info.title} — phase {s.phase} ({PHASES[s.phase]}){tag}", "h1"
    )
    lines += _wrap(f"{s.info.does}. Need score {s.score:.2f}.", "body")
    if s.drivers:
        lines += _wrap("Driven by: " + "; ".join(s.drivers), "body")
    if s.reasons:
        lines += _wrap("Phase: " + "; ".join(s.reasons), "body")
    lines += _wrap("Expected effect", "h2") + _bullets([e.text for e in s.effects])
    lines += _wrap("Devices", "h2") + _bullets(s.info.devices)
    lines += _wrap("Data", "h2") + _bullets(s.info.data)
    lines += _wrap("Privacy measures required", "h2") + _bullets(s.info.privacy)
    lines += _wrap("Rough cost", "h2")
    lines += _bullets([
        f"{ln.item}: {ln.quantity:g} × USD {ln.unit_cost:,.0f}; capital USD {ln.capex:,.0f}, "
        f"USD {ln.opex_per_year:,.0f} a year"
        for ln in s.cost.lines
    ])  # fmt: skip
    total = s.cost.total(s.years_running)
    return lines + _wrap(
        f"Total over {s.years_running} year(s): {usd(total)}; {s.cost.staff:g} staff.", "body"
    )


def _appendix(plan: Plan) -> list[Line]:
    lines = [("", "body")] + _wrap("Cost assumptions", "h1") + _wrap(plan.assumptions.note, "body")
    for a in plan.assumptions.table():
        mark = " (overridden)" if a["overridden"] else ""
        lines += _wrap(
            f"{a['id']} = {number(a['value'])} {a['unit']}{mark} — {a['basis']}", "body", "    "
        )
    lines += [("", "body")] + _wrap("Survey answers", "h1")
    lines += _wrap(", ".join(f"{k} = {v}" for k, v in plan.answers.values.items()), "body")
    lines += _wrap(f"Answers file: {plan.answers.source or '(given)'}", "body")
    return lines


def to_pdf(plan: Plan) -> bytes:
    """The whole plan as PDF bytes: the front page, the charts, each service, the appendix."""
    text = _front(plan)
    body = [line for s in sorted(plan.services, key=lambda s: s.rank) for line in _service(s)]
    buffer = io.BytesIO()
    with PdfPages(
        buffer, metadata={"Title": f"CityOS basic plan: {plan.city.name}", "CreationDate": None}
    ) as pdf:
        for page in _pages(plan, text):
            pdf.savefig(page)
        for chart in charts(plan):
            if plan.example:
                chart.text(
                    0.01,
                    0.995,
                    "EXAMPLE answers — not the city's position",
                    fontsize=7,
                    color="#c51b8a",
                    va="top",
                )
            pdf.savefig(chart)
        for page in _pages(plan, body + _appendix(plan)):
            pdf.savefig(page)
    return buffer.getvalue()
