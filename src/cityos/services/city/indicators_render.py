"""The report as JSON, CSV or one self-contained HTML page (no external script or style)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from html import escape
from typing import Any

from .indicators import Row
from .indicators_model import CityFacts

CSV_COLUMNS = (
    "id", "standard", "name", "value", "unit", "status", "why", "theme", "formula", "reads",
    "reference_note", "period_from", "period_to",
)  # fmt: skip
FORMATS = ("json", "csv", "html")


def to_json(rows: Sequence[Row]) -> str:
    """A JSON list, one object per indicator (``value`` null when there is no data)."""
    return json.dumps([r.as_dict() for r in rows], indent=2, ensure_ascii=False, allow_nan=False)


def to_csv(rows: Sequence[Row]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        line = r.as_dict()
        line["reads"] = "; ".join(line["reads"])
        line["value"] = "" if line["value"] is None else line["value"]
        writer.writerow(line)
    return out.getvalue()


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2rem;color:#1b1f24}
h1{font-size:1.4rem;margin:0 0 .3rem}p.meta{color:#57606a;margin:0 0 1rem}
table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #d0d7de;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa;position:sticky;top:0}td.value{text-align:right;white-space:nowrap}
tr.no-data td.value{color:#8c959f}td.why{color:#57606a;font-size:.9em}
small{color:#57606a}
"""


def to_html(rows: Sequence[Row], facts: CityFacts | None = None) -> str:
    """One page with a table of the indicators; nothing is fetched when it is opened."""
    facts = facts or CityFacts()
    city = facts.name or "the city"
    period = rows[0].period.label if rows else ""
    ok = sum(1 for r in rows if r.outcome.status == "ok")
    body = "\n".join(_html_row(r.as_dict()) for r in rows)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>City indicators: {escape(city)}</title>
<style>{_STYLE}</style></head>
<body>
<h1>City indicators: {escape(city)}</h1>
<p class="meta">Period {escape(period)} · {ok} of {len(rows)} indicators computed from the hub
 · ISO 37120:2018, ISO 37122:2019, ITU U4SSC · CityOS</p>
<table id="indicators">
<thead><tr><th>id</th><th>standard</th><th>indicator</th><th>value</th><th>unit</th>
<th>status</th><th>why / formula</th></tr></thead>
<tbody>
{body}
</tbody></table>
</body></html>
"""


def _html_row(r: dict[str, Any]) -> str:
    value = _number(r["value"])
    note = escape(r["why"]) if r["why"] else f"<small>{escape(r['formula'])}</small>"
    if r["reference_note"]:
        note += f"<br><small>{escape(r['reference_note'])}</small>"
    return (
        f'<tr class="{escape(r["status"])}"><td><code>{escape(r["id"])}</code></td>'
        f"<td>{escape(r['standard'])}</td><td>{escape(r['name'])}</td>"
        f'<td class="value">{escape(value)}</td><td>{escape(r["unit"])}</td>'
        f'<td>{escape(r["status"])}</td><td class="why">{note}</td></tr>'
    )


def _number(value: float | None) -> str:
    """A value for people: thousands separated, about four significant digits."""
    if value is None:
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.2f}"
    return f"{value:.4g}"


def render(rows: Sequence[Row], fmt: str, facts: CityFacts | None = None) -> str:
    if fmt == "json":
        return to_json(rows)
    if fmt == "csv":
        return to_csv(rows)
    if fmt == "html":
        return to_html(rows, facts)
    raise ValueError(f"format {fmt!r}: use {', '.join(FORMATS)}")
