"""Panels as HTML: every value a service hands over is escaped here, once.

A service's page returns :class:`cityos.plug.Panel` data; this module is the only place that
turns it into markup, so no service can put a script on an operator's screen (an entity's
name or an alert's description comes from devices and clients).
"""

from __future__ import annotations

import json
import math
import re
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


def _attr(value: Any) -> str:
    return escape(str(value), quote=True)


def _field_id(name: Any) -> str:
    """An element id for a field: its name with anything but letters, digits, ``-`` and
    ``_`` dropped (the name itself is escaped wherever it is written)."""
    return "field-" + re.sub(r"[^A-Za-z0-9_-]", "_", str(name))


def _number_attrs(field: dict[str, Any]) -> str:
    out = ""
    for key in ("min", "max", "step"):
        value = field.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out += f' {key}="{_attr(value)}"'
    return out


def _options(field: dict[str, Any]) -> str:
    chosen = field.get("value")
    out = []
    for option in field.get("options") or ():
        value, label = (
            (option.get("value"), option.get("label", option.get("value")))
            if isinstance(option, dict)
            else (option, option)
        )
        selected = " selected" if chosen is not None and str(value) == str(chosen) else ""
        out.append(f'<option value="{_attr(value)}"{selected}>{escape(str(label))}</option>')
    return "".join(out)


def _field(field: dict[str, Any]) -> str:
    """One labelled input; its help under it, tied to it by ``aria-describedby``."""
    kind = str(field.get("kind"))
    fid = _field_id(field.get("name"))
    name = _attr(field.get("name", ""))
    value = field.get("value")
    help_text = field.get("help")
    described = f' aria-describedby="{fid}-help"' if help_text else ""
    common = f'id="{fid}" name="{name}" data-kind="{_attr(kind)}"{described}'
    label = f'<label for="{fid}">{escape(str(field.get("label", field.get("name", ""))))}</label>'
    hint = f'<p class="hint" id="{fid}-help">{escape(str(help_text))}</p>' if help_text else ""
    if kind == "checkbox":
        checked = " checked" if value is True else ""
        return (
            f'<div class="field field-checkbox"><input type="checkbox" {common} value="true"{checked}>'
            f"{label}{hint}</div>"
        )
    if kind == "select":
        fills = field.get("fills")
        data = f' data-fills="{_attr(json.dumps(fills))}"' if fills else ""
        control = f"<select {common}{data}>{_options(field)}</select>"
    elif kind == "range":
        shown = "" if value is None else _attr(value)
        control = (
            f'<span class="range-control"><input type="range" {common}{_number_attrs(field)} '
            f'value="{shown}"><output for="{fid}">{shown}</output></span>'
        )
    elif kind == "number":
        shown = "" if value is None else _attr(value)
        control = f'<input type="number" {common}{_number_attrs(field)} value="{shown}">'
    else:
        shown = "" if value is None else _attr(value)
        control = f'<input type="text" {common} value="{shown}">'
    return f'<div class="field field-{_attr(kind)}">{label}{control}{hint}</div>'


def _form(data: Any) -> str:
    """The fields, consecutive ones of a ``group`` in one fieldset, and the submit button;
    the answer is placed right under the form (``.form-result``) by the page's script."""
    data = data or {}
    groups: list[tuple[Any, list[str]]] = []
    for field in data.get("fields") or ():
        group = field.get("group")
        if not groups or groups[-1][0] != group:
            groups.append((group, []))
        groups[-1][1].append(_field(field))
    body = "".join(
        f"<fieldset><legend>{escape(str(group))}</legend>{''.join(fields)}</fieldset>"
        if group
        else f'<div class="fields">{"".join(fields)}</div>'
        for group, fields in groups
    )
    intro = f'<p class="intro">{escape(str(data["intro"]))}</p>' if data.get("intro") else ""
    submit = escape(str(data.get("submit") or "Submit"))
    return (
        f'{intro}<form class="page-form" novalidate><div class="form-groups">{body}</div>'
        f'<div class="form-actions"><button type="submit">{submit}</button>'
        '<span class="form-status" role="status"></span></div></form>'
    )


def _paragraphs(data: Any) -> str:
    items = data if isinstance(data, list | tuple) else [data]
    return "".join(f'<p class="text">{escape(str(item))}</p>' for item in items)


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
    elif panel.kind == "form":
        inner = _form(panel.data)
    else:
        inner = _paragraphs(panel.data)
    wide = " wide" if panel.wide or panel.kind in ("map", "form") else ""
    html = (
        f'<section class="panel {panel.kind}{wide}"><h2>{escape(panel.title)}</h2>{inner}</section>'
    )
    if panel.kind == "form":  # where the answer goes: right under the form, the page's width
        html += '<div class="form-result" aria-live="polite"></div>'
    return html


def page_html(panels: list[Panel], hidden: list[str]) -> str:
    """A page's panels, after a note of what the viewer's role keeps from it."""
    note = ""
    if hidden:
        note = (
            '<p class="role-limit">Your role may not read: '
            f"{escape(', '.join(hidden))}. What they hold is left out of this page.</p>"
        )
    return note + "".join(panel_html(p) for p in panels)
