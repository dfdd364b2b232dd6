"""The plan's three charts (need by service, cost by phase, measured effects), drawn with
matplotlib's object API (no pyplot state), so that HTML gets them as inline SVG and the PDF
as pages without the two sharing anything."""

from __future__ import annotations

import io
import re

from matplotlib import rc_context
from matplotlib.figure import Figure

from .plan import LOW_NEED, PHASES, Plan

PHASE_COLOURS = {1: "#1b7837", 2: "#5aae61", 3: "#a6dba0"}
OPTIONAL_COLOUR = "#bbbbbb"


def need_chart(plan: Plan) -> Figure:
    """Need score of each service, coloured by the phase it starts in."""
    ranked = sorted(plan.services, key=lambda s: s.rank, reverse=True)
    fig = Figure(figsize=(7.0, 3.2))
    ax = fig.add_subplot()
    colours = [PHASE_COLOURS[s.phase] if s.recommended else OPTIONAL_COLOUR for s in ranked]
    ax.barh([s.key for s in ranked], [s.score for s in ranked], color=colours)
    ax.axvline(LOW_NEED, color="#888888", linestyle="--", linewidth=1)
    for i, s in enumerate(ranked):
        ax.text(s.score + 0.01, i, f"phase {s.phase}", va="center", fontsize=8)
    ax.set_xlabel("need score from the survey answers (0–1, + 0.2 for the top priority)")
    ax.set_xlim(0, max(1.3, max(s.score for s in ranked) + 0.25))
    ax.set_title(
        f"{plan.city.name}: services by need (dashed: optional below {LOW_NEED})", fontsize=10
    )
    fig.tight_layout()
    return fig


def cost_chart(plan: Plan) -> Figure:
    """Cost over the horizon of the services starting in each phase, stacked by service."""
    fig = Figure(figsize=(7.0, 3.2))
    ax = fig.add_subplot()
    bottoms = dict.fromkeys(PHASES, 0.0)
    palette = ["#2166ac", "#4393c3", "#92c5de", "#f4a582", "#d6604d", "#b2182b", "#762a83"]
    for colour, s in zip(palette, sorted(plan.services, key=lambda s: s.rank), strict=False):
        usd_m = s.cost.total(s.years_running) / 1e6
        ax.bar(f"phase {s.phase}", usd_m, bottom=bottoms[s.phase], color=colour, label=s.key)
        bottoms[s.phase] += usd_m
    ax.axhline(plan.budget_usd / 1e6, color="#444444", linestyle=":", linewidth=1)
    ax.text(-0.4, plan.budget_usd / 1e6, "stated budget", va="bottom", ha="left", fontsize=8)
    ax.set_ylabel("USD million over the horizon")
    ax.set_title(
        f"Rough cost by starting phase ({plan.assumptions.horizon_years}-year horizon)", fontsize=10
    )
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig


def effects_chart(plan: Plan) -> Figure | None:
    """The measured changes (%) the services' benchmarks report; None when none is measured."""
    rows = [
        (f"{s.key}: {e.indicator}", e.change_pct)
        for s in sorted(plan.services, key=lambda s: s.rank)
        for e in s.effects
        if e.measured and e.change_pct is not None
    ]
    if not rows:
        return None
    fig = Figure(figsize=(7.0, 0.5 + 0.4 * len(rows)))
    ax = fig.add_subplot()
    labels, values = zip(*reversed(rows), strict=True)
    ax.barh(labels, values, color=["#1b7837" if v < 0 else "#b2182b" for v in values])
    ax.axvline(0, color="#444444", linewidth=0.8)
    for i, v in enumerate(values):
        ax.text(0, i, f" {v:+.0f} % ", va="center", ha="left" if v < 0 else "right", fontsize=7)
    ax.set_xlim(min(-100.0, min(values) - 5), max(25.0, max(values) + 10))
    ax.set_xlabel("change in % (negative is better), in simulation")
    ax.tick_params(axis="y", labelsize=8)
    ax.set_title("Measured effects (benchmarks/results/*.json)", fontsize=10)
    fig.tight_layout()
    return fig


def charts(plan: Plan) -> list[Figure]:
    """Every chart of the plan, in report order."""
    figures = [need_chart(plan), cost_chart(plan)]
    effect = effects_chart(plan)
    return figures + ([effect] if effect is not None else [])


def svg(fig: Figure) -> str:
    """The figure as an inline ``<svg>`` element (no XML prolog, reproducible ids)."""
    buffer = io.StringIO()
    with rc_context({"svg.hashsalt": "cityos-plan", "svg.fonttype": "path"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return re.sub(r"^.*?(<svg\b)", r"\1", text, count=1, flags=re.S)
