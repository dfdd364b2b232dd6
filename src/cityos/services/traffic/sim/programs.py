"""SUMO's own actuated control, built from the network's fixed-time program.

SUMO's actuated logic runs inside the simulation (it extends a green while its induction
loops see vehicles arriving within a gap), so it cannot be a per-step controller. Instead
the adapter loads, as an additional file, a copy of every junction's program with
``type="actuated"`` and switches the junction to it. Green phases keep the network's
``minDur``/``maxDur`` where it has them (SUMO's netconvert defaults of 5 s and 50 s
otherwise); yellow and all-red phases keep their fixed durations.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from xml.sax.saxutils import quoteattr

from ..model import is_green_state

ACTUATED_PROGRAM = "cityos-actuated"
DEFAULT_MIN_GREEN_S = 5.0
DEFAULT_MAX_GREEN_S = 50.0


def write_actuated_programs(net_file: Path, path: Path) -> dict[str, str]:
    """Write actuated copies of every program in ``net_file``; returns tls id -> program id."""
    root = ET.parse(net_file).getroot()
    lines = ["<additional>\n"]
    programs: dict[str, str] = {}
    for logic in root.iter("tlLogic"):
        tls = logic.get("id", "")
        if tls in programs:
            continue
        programs[tls] = ACTUATED_PROGRAM
        lines.append(
            f'  <tlLogic id={quoteattr(tls)} type="actuated" programID="{ACTUATED_PROGRAM}" offset="0">\n'
        )
        for phase in logic.iter("phase"):
            state = phase.get("state", "")
            duration = float(phase.get("duration", "0"))
            attrs = f'duration="{duration:g}" state={quoteattr(state)}'
            if is_green_state(state):
                lo = float(phase.get("minDur", DEFAULT_MIN_GREEN_S))
                hi = float(phase.get("maxDur", DEFAULT_MAX_GREEN_S))
                attrs += f' minDur="{min(lo, duration):g}" maxDur="{max(hi, duration):g}"'
            lines.append(f"    <phase {attrs}/>\n")
        lines.append("  </tlLogic>\n")
    lines.append("</additional>\n")
    path.write_text("".join(lines))
    return programs
