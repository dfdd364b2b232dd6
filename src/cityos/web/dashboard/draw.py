"""Panels as HTML: every value a service hands over is escaped here, once.

A service's page returns :class:`cityos.plug.Panel` data; this module is the only place that
turns it into markup, so no service can put a script on an operator's screen (an entity's
name or an alert's description comes from devices and clients).
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from cityos.plug import Panel

from .svg import chart_svg, map_svg

MAX_ROWS = 200
SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "informational": 4}


def text(value: Any) -> str:
    """A cell or a metric: numbers rounded for people, None as a dash, the rest escaped."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        if value != 0 and abs(value) < 0.01:
            return f"{value:.2g}"
        return f"{value:,.2f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return escape(str(value))


def _metrics(data: Any) -> str:
    items = []
    for m in data or []:
        unit = f' <span class="unit">{escape(str(m["unit"]))}</span>' if m.get("unit") else ""
        hint = f'<p class="hint">{escape(str(m["hint"]))}</p>' if m.get("hint") else ""
        items.append(
            f'<div class="metric"><p class="label">{escape(str(m.get("label", "")))}</p>'
            f'<p class="value">{text(m.get("value"))}{unit}</p>{hint}</div>'
        )
    return f'<div class="metrics">{"".join(items)}</div>'


def _table(data: Any) -> str:
    columns = [escape(str(c)) for c in (data or {}).get("columns", [])]
    rows = (data or {}).get("rows", [])
    if not rows:
        return '<p class="empty">No rows yet.</p>'
    head = "".join(f"<th>{c}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{text(v)}</td>" for v in row) + "</tr>" for row in rows[:MAX_ROWS]
    )
    more = (
        f'<p class="hint">{len(rows) - MAX_ROWS} more not shown</p>' if len(rows) > MAX_ROWS else ""
    )
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>{more}"
    )


def _alerts(data: Any) -> str:
    rows = list(data or [])
    if not rows:
        return '<p class="empty">No alerts.</p>'
    out = []
    for a in rows[:MAX_ROWS]:
        severity = str(a.get("severity") or "informational").lower()
        level = escape(severity if severity in SEVERITY_ORDER else "informational", quote=True)
        details = "".join(
            f"<dt>{escape(str(k))}</dt><dd>{text(v)}</dd>"
            for k, v in a.items()
            if k not in ("description",) and v not in (None, "")
        )
        out.append(
            f'<details class="alert sev-{level}" data-id="{escape(str(a.get("id", "")), quote=True)}">'
            f'<summary><span class="badge">{escape(severity)}</span> '
            f"<strong>{text(a.get('category'))}</strong> {text(a.get('description'))} "
            f"<time>{text(a.get('time'))}</time></summary><dl>{details}</dl></details>"
        )
    return f'<div class="alerts">{"".join(out)}</div>'


def panel_html(panel: Panel) -> str:
    """One panel as a ``<section>``."""
    if panel.kind == "metrics":
        inner = _metrics(panel.data)
    elif panel.kind == "table":
        inner = _table(panel.data)
    elif panel.kind == "chart":
        inner = chart_svg(panel.data or {}, panel.title)
    elif panel.kind == "map":
        inner = map_svg((panel.data or {}).get("features", []), panel.title)
    elif panel.kind == "alerts":
        inner = _alerts(panel.data)
    else:
        inner = f'<p class="text">{escape(str(panel.data))}</p>'
    wide = " wide" if panel.wide or panel.kind == "map" else ""
    return (
        f'<section class="panel {panel.kind}{wide}"><h2>{escape(panel.title)}</h2>{inner}</section>'
    )


def page_html(panels: list[Panel], hidden: list[str]) -> str:
    """A page's panels, after a note of what the viewer's role keeps from it."""
    note = ""
    if hidden:
        note = (
            '<p class="role-limit">Your role may not read: '
            f"{escape(', '.join(hidden))}. What they hold is left out of this page.</p>"
        )
    return note + "".join(panel_html(p) for p in panels)
