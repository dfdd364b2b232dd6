"""The tuned settings of the cityos controller that ship with CityOS, one per network.

``tuned/<network>.json`` holds what :func:`~..sim.tuning.tune` found for a network (tuning
runs SUMO; reading its result does not, so this lives with the controllers and
:func:`~.make_controller` applies it without importing the simulation side).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import TrafficError
from .cityos import CityOSParams

TUNED_DIR = Path(__file__).with_name("tuned")


def tuned_params(network: str) -> dict[str, float]:
    """The shipped tuned setting for ``network`` (empty when it was never tuned)."""
    path = TUNED_DIR / f"{network}.json"
    return read_params(path) if path.is_file() else {}


def read_params(path: Path) -> dict[str, float]:
    """A setting as :meth:`~..sim.tuning.TuneResult.write` writes it (or a plain JSON object
    of them)."""
    try:
        data = json.loads(path.read_text())
        params = data.get("params", data) if isinstance(data, dict) else None
        if not isinstance(params, dict):
            raise ValueError("expected a JSON object of parameters")
        options = {str(k): float(v) for k, v in params.items()}
        CityOSParams(**options)  # unknown names fail here, not mid-run
    except (OSError, ValueError, TypeError) as exc:
        raise TrafficError(f"tuned parameters in {path} are unreadable: {exc}") from exc
    return options
