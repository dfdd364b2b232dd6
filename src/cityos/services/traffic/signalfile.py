"""The signals file: the junctions the service controls, as their controllers know them.

A JSON document ``{"network": ..., "signals": {tls id: SignalLayout}}`` — each junction's
lane groups and green phases (:class:`~.model.SignalLayout`). ``cityos traffic signals``
writes one from a SUMO network; the service's background task reads it (setting
``signals``) to know which ``TrafficSignal`` and ``TrafficFlowObserved`` entities are its
own. Reading it needs no SUMO.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .errors import TrafficError
from .model import GreenPhase, LaneGroup, SignalLayout

FORMAT = "cityos-traffic-signals/1"


class SignalsFileError(TrafficError):
    """A signals file that is missing, not JSON, or not a description of signals."""


def write_signals(layouts: dict[str, SignalLayout], path: Path, network: str = "") -> Path:
    """Write the layouts that have green phases (the others cannot be controlled)."""
    doc = {
        "format": FORMAT,
        "network": network,
        "signals": {tls: asdict(layout) for tls, layout in layouts.items() if layout.phases},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path


def read_signals(path: Path) -> dict[str, SignalLayout]:
    """The layouts in ``path``; :class:`SignalsFileError` naming what is wrong."""
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as exc:
        raise SignalsFileError(f"signals file {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise SignalsFileError(f"signals file {path} is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SignalsFileError(
            f"signals file {path} is not a {FORMAT} document "
            "(write one with `cityos traffic signals`)"
        )
    try:
        return {tls: _layout(raw) for tls, raw in doc["signals"].items()}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SignalsFileError(f"signals file {path}: a signal is malformed ({exc!r})") from exc


def _layout(raw: dict[str, Any]) -> SignalLayout:
    groups = {
        gid: LaneGroup(
            id=g["id"],
            kind=g["kind"],
            edge=g["edge"],
            lanes=tuple(g["lanes"]),
            detector_length_m=float(g.get("detector_length_m", 0.0)),
        )
        for gid, g in raw["groups"].items()
    }
    phases = tuple(
        GreenPhase(
            index=int(p["index"]),
            program_index=int(p["program_index"]),
            state=str(p["state"]),
            serves=tuple(p["serves"]),
            movements=tuple((str(a), str(b)) for a, b in p["movements"]),
            pedestrian=bool(p.get("pedestrian", False)),
        )
        for p in raw["phases"]
    )
    return SignalLayout(
        tls_id=str(raw["tls_id"]),
        program_id=str(raw["program_id"]),
        groups=groups,
        phases=phases,
        link_count=int(raw["link_count"]),
    )
