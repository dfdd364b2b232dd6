"""Charts and the district map drawn on the server as SVG.

Nothing is fetched by the browser but our own page: no map tiles, no chart library. The
map projects lon/lat onto the plane with the cosine of the mean latitude (a district is a few
kilometres across: the distortion is far below a pixel), and everything is coloured with
presentation attributes, which the page's Content-Security-Policy allows where ``style``
attributes would not be.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

# a colour per map layer (by name); unknown layers take the next of EXTRA in turn
LAYER_COLOURS = {
    "road": "#9aa5b1",
    "building": "#d9dee4",
    "traffic": "#2f80ed",
    "signal": "#f2994a",
    "bus stop": "#27ae60",
    "bus": "#219653",
    "meter": "#9b51e0",
    "charger": "#56ccf2",
    "camera": "#333333",
    "crowd": "#eb5757",
    "alert": "#c0392b",
    "air": "#6fcf97",
}
EXTRA = ("#8e44ad", "#16a085", "#d35400", "#2c3e50", "#7f8c8d")
SERIES_COLOURS = ("#2f80ed", "#eb5757", "#27ae60", "#f2994a", "#9b51e0", "#333333")
MAP_WIDTH = 1000.0
MAX_MAP_FEATURES = 5000


def level_colour(level: float) -> str:
    """Green (0) through amber to red (1): crowding, congestion."""
    t = min(max(float(level), 0.0), 1.0)
    if t < 0.5:  # green -> amber
        r, g = int(39 + (242 - 39) * t * 2), int(174 + (201 - 174) * t * 2)
    else:  # amber -> red
        r, g = int(242 + (235 - 242) * (t - 0.5) * 2), int(201 + (87 - 201) * (t - 0.5) * 2)
    return f"#{r:02x}{g:02x}{60:02x}"


def _fmt(x: float) -> str:
    return f"{x:.1f}"


def _number(x: float) -> str:
    if x != 0 and (abs(x) >= 10_000 or abs(x) < 0.01):
        return f"{x:.3g}"
    return f"{x:,.2f}".rstrip("0").rstrip(".")


# -- map ---------------------------------------------------------------------------------


def _points_of(geometry: dict[str, Any]) -> Iterable[tuple[float, float]]:
    kind, coords = geometry.get("type"), geometry.get("coordinates")
    if kind == "Point":
        yield coords[0], coords[1]
    elif kind in ("LineString", "MultiPoint"):
        for c in coords:
            yield c[0], c[1]
    elif kind in ("Polygon", "MultiLineString"):
        for ring in coords:
            for c in ring:
                yield c[0], c[1]
    elif kind == "MultiPolygon":
        for poly in coords:
            for ring in poly:
                for c in ring:
                    yield c[0], c[1]


def _valid(geometry: Any) -> bool:
    try:
        return isinstance(geometry, dict) and all(
            math.isfinite(x) and math.isfinite(y) for x, y in _points_of(geometry)
        )
    except (TypeError, IndexError, KeyError):
        return False


class _Projection:
    def __init__(self, features: Sequence[dict[str, Any]]) -> None:
        xs, ys = [], []
        for f in features:
            for x, y in _points_of(f["geometry"]):
                xs.append(x)
                ys.append(y)
        self.x0, self.x1 = min(xs), max(xs)
        self.y0, self.y1 = min(ys), max(ys)
        self.kx = math.cos(math.radians((self.y0 + self.y1) / 2))
        span_x = max((self.x1 - self.x0) * self.kx, 1e-6)
        span_y = max(self.y1 - self.y0, 1e-6)
        self.margin = 20.0
        self.scale = (MAP_WIDTH - 2 * self.margin) / max(span_x, span_y)
        self.height = min(span_y * self.scale + 2 * self.margin, MAP_WIDTH)

    def __call__(self, x: float, y: float) -> tuple[float, float]:
        return (
            self.margin + (x - self.x0) * self.kx * self.scale,
            self.height - self.margin - (y - self.y0) * self.scale,
        )


def _path(proj: _Projection, ring: Sequence[Sequence[float]], close: bool) -> str:
    pts = [proj(c[0], c[1]) for c in ring]
    d = "M" + " L".join(f"{_fmt(x)},{_fmt(y)}" for x, y in pts)
    return d + (" Z" if close else "")


def _shape(proj: _Projection, f: dict[str, Any], colour: str) -> str:
    g = f["geometry"]
    kind, coords = g["type"], g["coordinates"]
    title = f"<title>{escape(str(f.get('label') or f.get('layer', '')))}</title>"
    layer = escape(str(f.get("layer", "")), quote=True)
    if kind == "Point":
        x, y = proj(coords[0], coords[1])
        r = 7 if "level" in f else 5
        return (
            f'<circle class="feature" data-layer="{layer}" cx="{_fmt(x)}" cy="{_fmt(y)}" '
            f'r="{r}" fill="{colour}" stroke="#ffffff" stroke-width="1">{title}</circle>'
        )
    if kind == "MultiPoint":
        return "".join(
            _shape(proj, {**f, "geometry": {"type": "Point", "coordinates": c}}, colour)
            for c in coords
        )
    if kind in ("LineString", "MultiLineString"):
        lines = [coords] if kind == "LineString" else coords
        d = " ".join(_path(proj, line, False) for line in lines)
        width = 4 if "level" in f else 2
        return (
            f'<path class="feature" data-layer="{layer}" d="{d}" fill="none" '
            f'stroke="{colour}" stroke-width="{width}" stroke-linecap="round">{title}</path>'
        )
    polys = [coords] if kind == "Polygon" else coords
    d = " ".join(_path(proj, ring, True) for poly in polys for ring in poly)
    opacity = "0.55" if "level" in f else "0.8"
    return (
        f'<path class="feature" data-layer="{layer}" d="{d}" fill="{colour}" '
        f'fill-opacity="{opacity}" stroke="#8a939d" stroke-width="0.5">{title}</path>'
    )


def map_svg(features: Sequence[dict[str, Any]], title: str = "map") -> str:
    """The features (``geometry``, ``layer``, ``label``, ``level``) as one SVG, areas under
    lines under points, with a legend of the layers drawn."""
    shown = [f for f in features if _valid(f.get("geometry"))][:MAX_MAP_FEATURES]
    if not shown:
        return '<p class="empty">Nothing with a location to draw yet.</p>'
    proj = _Projection(shown)
    colours: dict[str, str] = {}
    for f in shown:
        layer = str(f.get("layer", ""))
        if layer not in colours:
            colours[layer] = LAYER_COLOURS.get(layer, EXTRA[len(colours) % len(EXTRA)])

    def rank(f: dict[str, Any]) -> int:
        kind = f["geometry"]["type"]
        return 0 if "Polygon" in kind else 1 if "Line" in kind else 2

    body = []
    for f in sorted(shown, key=rank):
        colour = level_colour(f["level"]) if "level" in f else colours[str(f.get("layer", ""))]
        body.append(_shape(proj, f, colour))
    legend = "".join(
        f'<li><svg width="12" height="12" aria-hidden="true"><rect width="12" height="12" '
        f'fill="{c}"/></svg> {escape(name)}</li>'
        for name, c in colours.items()
    )
    if any("level" in f for f in shown):
        legend += (
            '<li><svg width="36" height="12" aria-hidden="true">'
            f'<rect width="12" height="12" fill="{level_colour(0)}"/>'
            f'<rect x="12" width="12" height="12" fill="{level_colour(0.5)}"/>'
            f'<rect x="24" width="12" height="12" fill="{level_colour(1)}"/></svg> low → high</li>'
        )
    h = _fmt(proj.height)
    return (
        f'<svg class="map" viewBox="0 0 {MAP_WIDTH:.0f} {h}" role="img" '
        f'aria-label="{escape(title, quote=True)}" preserveAspectRatio="xMidYMid meet">'
        f'<rect width="{MAP_WIDTH:.0f}" height="{h}" fill="#f7f9fb"/>{"".join(body)}</svg>'
        f'<ul class="legend">{legend}</ul>'
    )


# -- charts ------------------------------------------------------------------------------


def chart_svg(data: dict[str, Any], title: str = "chart") -> str:
    """A line (or bar) chart of ``series`` over the labels ``x``, axes with the extremes."""
    labels = [str(x) for x in data.get("x", [])]
    series = [
        (str(s.get("name", "")), [_float(v) for v in s.get("values", [])])
        for s in data.get("series", [])
    ]
    values = [v for _, vs in series for v in vs if v is not None]
    if not labels or not values:
        return '<p class="empty">No values to plot yet.</p>'
    w, h, left, bottom, top = 640.0, 260.0, 56.0, 28.0, 12.0
    lo, hi = min(0.0, min(values)), max(values)
    if hi == lo:
        hi = lo + 1.0
    n = len(labels)
    bars = data.get("kind") == "bar"
    if bars:  # a band per label, the bars in its middle: none is cut at either end
        step = (w - left - 8) / n
        first = left + step / 2
    else:
        step = (w - left - 8) / max(n - 1, 1)
        first = left if n > 1 else left + (w - left) / 2

    def y_of(v: float) -> float:
        return top + (hi - v) / (hi - lo) * (h - top - bottom)

    parts = [
        f'<line x1="{left}" y1="{_fmt(y_of(lo))}" x2="{w - 4}" y2="{_fmt(y_of(lo))}" '
        'stroke="#8a939d" stroke-width="1"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{_fmt(y_of(lo))}" stroke="#8a939d" '
        'stroke-width="1"/>',
    ]
    unit = escape(str(data.get("unit", "")))
    for v in (lo, (lo + hi) / 2, hi):
        y = _fmt(y_of(v))
        parts.append(
            f'<text x="{left - 6}" y="{y}" text-anchor="end" dominant-baseline="middle" '
            f'font-size="11" fill="#4f5b66">{_number(v)}</text>'
        )
        parts.append(
            f'<line x1="{left}" y1="{y}" x2="{w - 4}" y2="{y}" stroke="#e3e7eb" stroke-width="1"/>'
        )
    fits = bars and max(len(label) for label in labels) * 6.5 <= step  # 11 px text
    ticks = range(n) if fits else sorted({0, n // 2, n - 1})
    for i in ticks:
        x = first + i * step
        parts.append(
            f'<text x="{_fmt(x)}" y="{h - 8}" text-anchor="middle" font-size="11" '
            f'fill="#4f5b66">{escape(labels[i])}</text>'
        )
    width = max(min(step / max(len(series), 1) * 0.7, 64), 2) if bars else 0
    for k, (name, vs) in enumerate(series):
        colour = SERIES_COLOURS[k % len(SERIES_COLOURS)]
        label = escape(name, quote=True)
        if bars:
            for i, v in enumerate(vs[:n]):
                if v is None:
                    continue
                x = first + i * step - width * len(series) / 2 + k * width
                y0, y1 = y_of(max(v, lo)), y_of(lo)
                parts.append(
                    f'<rect class="bar" x="{_fmt(x)}" y="{_fmt(min(y0, y1))}" '
                    f'width="{_fmt(width)}" height="{_fmt(abs(y1 - y0))}" fill="{colour}">'
                    f"<title>{label} {escape(labels[i])}: {_number(v)} {unit}</title></rect>"
                )
            continue
        pts = [(first + i * step, y_of(v)) for i, v in enumerate(vs[:n]) if v is not None]
        if len(pts) == 1:
            x, y = pts[0]
            parts.append(f'<circle cx="{_fmt(x)}" cy="{_fmt(y)}" r="3" fill="{colour}"/>')
        elif pts:
            d = "M" + " L".join(f"{_fmt(x)},{_fmt(y)}" for x, y in pts)
            parts.append(
                f'<path class="series" data-series="{label}" d="{d}" fill="none" '
                f'stroke="{colour}" stroke-width="2"/>'
            )
    legend = "".join(
        f'<li><svg width="12" height="12" aria-hidden="true"><rect width="12" height="12" '
        f'fill="{SERIES_COLOURS[k % len(SERIES_COLOURS)]}"/></svg> {escape(name)}</li>'
        for k, (name, _) in enumerate(series)
    )
    caption = f'<p class="unit">{unit}</p>' if unit else ""
    return (
        f'{caption}<svg class="chart" viewBox="0 0 {w:.0f} {h:.0f}" role="img" '
        f'aria-label="{escape(title, quote=True)}">{"".join(parts)}</svg>'
        f'<ul class="legend">{legend}</ul>'
    )


def _float(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None
