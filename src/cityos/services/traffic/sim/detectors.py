"""Lane-area detectors on every signal's approach and exit lanes, written as a SUMO additional file.

Approach detectors end at the stop line and reach back up to ``range`` metres (RESCO reads
200 m); exit detectors start where vehicles leave the junction. A lane that is the exit of
one junction and the approach of the next gets one detector for each role. SUMO counts
vehicles over a multi-lane detector as one, so a span may cross plain junctions.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

from ..model import SignalLayout
from .layout import NetworkInfo

MIN_DETECTOR_M = 0.5


def detector_id(lane: str, kind: str) -> str:
    return f"cityos/{'in' if kind == 'approach' else 'out'}/{lane}"


@dataclass(frozen=True, slots=True)
class Span:
    """A detector over consecutive lanes, from ``start`` on the first to ``end`` on the last."""

    lanes: tuple[str, ...]
    start: float
    end: float
    length: float


def detector_spans(
    layouts: Iterable[SignalLayout], net: NetworkInfo, range_m: float
) -> dict[str, Span]:
    """detector id -> span for every approach and exit lane of ``layouts``.

    A lane shorter than ``range_m`` is extended across junctions without a signal (straight
    on where there is a choice): queues on a 1 m stub lane in front of a stop line really
    stand on the lane before it, and a detector that missed them would starve that approach.
    """
    spans: dict[str, Span] = {}
    for layout in layouts:
        for group in layout.groups.values():
            if group.kind == "crossing":
                continue
            for lane in group.lanes:
                upstream = group.kind == "approach"
                span = _span(lane, net, range_m, upstream)
                if span.length >= MIN_DETECTOR_M:
                    spans[detector_id(lane, group.kind)] = span
    return spans


def _span(lane: str, net: NetworkInfo, range_m: float, upstream: bool) -> Span:
    graph = net.upstream if upstream else net.downstream
    chain = [lane]
    covered = net.lane_length.get(lane, 0.0)
    while covered < range_m:
        options = graph.get(chain[-1], [])
        nxt = next((n for n, d in options if d == "s"), None) if len(options) > 1 else None
        if nxt is None and len(options) == 1:
            nxt = options[0][0]
        if nxt is None or nxt in chain:
            break
        chain.append(nxt)
        covered += net.lane_length.get(nxt, 0.0)
    excess = max(0.0, covered - range_m)
    if upstream:
        chain.reverse()  # detectors run in driving direction: first lane is the farthest
        return Span(tuple(chain), excess, net.lane_length.get(chain[-1], 0.0), covered - excess)
    last = net.lane_length.get(chain[-1], 0.0)
    return Span(tuple(chain), 0.0, last - excess, covered - excess)


def write_detectors(path: Path, spans: dict[str, Span]) -> Path:
    """Write the additional file SUMO loads with ``-a``; output goes nowhere (we read live)."""
    lines = ["<additional>\n"]
    for det, span in sorted(spans.items()):
        where = (
            f"lane={quoteattr(span.lanes[0])}"
            if len(span.lanes) == 1
            else f"lanes={quoteattr(' '.join(span.lanes))}"
        )
        lines.append(
            f"  <laneAreaDetector id={quoteattr(det)} {where} "
            f'pos="{span.start:.2f}" endPos="{span.end:.2f}" period="86400" '
            f"file={quoteattr(os.devnull)}/>\n"
        )
    lines.append("</additional>\n")
    path.write_text("".join(lines))
    return path
