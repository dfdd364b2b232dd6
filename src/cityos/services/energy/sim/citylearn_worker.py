"""CityLearn 1.3.6 on a pipe: the 2022 challenge's simulator, driven one hour at a time.

Run by ``.venv-citylearn/bin/python -I`` (``make citylearn``), never by the project's own
interpreter: CityLearn 1.3.6 needs numpy < 2 and gym 0.24, which clash with CityOS. So this
script imports only CityLearn, numpy and the standard library — not ``cityos``; the adapter
(``citylearn.py`` beside it) turns what it says into :mod:`cityos.services.energy.control`.

Protocol: one JSON object per line. Out, first: ``{"type": "site", ...}`` (the buildings'
batteries, the episode's length, and with ``--future`` every step's load, PV, price and
carbon). Then for each time step ``t`` but the last: out ``{"type": "obs", "t": t, ...}``
(CityLearn's own observation names; per-building ones as lists), in ``{"actions": [a, ...]}``
(one per building, CityLearn's ``electrical_storage`` action). At the end: out
``{"type": "result", "evaluate": {...}, "series": {...}}``: ``env.evaluate()`` and the raw
series it is computed from. A failure is ``{"type": "error", "message": ...}``, exit 1.

    .venv-citylearn/bin/python -I citylearn_worker.py [--steps N] [--future]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import traceback
from importlib.metadata import version
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
# `citylearn.py` (the adapter) sits beside this file: never let it shadow the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

DATASET = "citylearn_challenge_2022_phase_1"


def protocol_stream() -> IO[str]:
    """A private copy of stdout for the protocol; fd 1 then points at stderr, so whatever
    CityLearn or gym prints cannot corrupt a message."""
    out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def build_env(steps: int | None) -> Any:
    """The phase_1 environment from the schema in CityLearn's wheel, cut to `steps` hours."""
    import citylearn
    from citylearn.citylearn import CityLearnEnv

    root = Path(citylearn.__file__).resolve().parent / "data" / DATASET
    schema = json.loads((root / "schema.json").read_text())
    schema["root_directory"] = str(root)
    start, end = schema["simulation_start_time_step"], schema["simulation_end_time_step"]
    if steps is not None:
        if not 2 <= steps <= end - start + 1:
            raise ValueError(f"--steps must be within 2..{end - start + 1}, not {steps}")
        schema["simulation_end_time_step"] = start + steps - 1
    env = CityLearnEnv(schema)
    env.reset()  # as the 2022 starter kit's local_evaluation.py does
    if env.central_agent:
        raise ValueError("the schema has central_agent: true; the worker speaks per building")
    return env


def floats(values: Any) -> list[float]:
    return [float(v) for v in values]


def site(env: Any, with_future: bool) -> dict[str, Any]:
    """What a controller may know before the first hour: the batteries (and the future)."""
    buildings = []
    for b in env.buildings:
        bat = b.electrical_storage
        attrs = env.schema["buildings"][b.name]["electrical_storage"]["attributes"]
        scaling = bat.efficiency_scaling
        buildings.append(
            {
                "name": b.name,
                "capacity_kwh": float(bat.capacity),
                "power_kw": float(bat.nominal_power),
                # one-way: CityLearn raises the schema's efficiency to `efficiency_scaling`
                "efficiency": float(attrs.get("efficiency", 0.9)) ** scaling,
                "soc_init": float(bat.initial_soc) / float(bat.capacity),
                "pv_kw": float(b.pv.nominal_power),
                # what 1.3.6 really applies: efficiency = curve(|E|/P) ** scaling per step,
                # and the power limit falls above 80 % state of charge
                "schema_efficiency": float(attrs.get("efficiency", 0.9)),
                "efficiency_scaling": float(scaling),
                "power_efficiency_curve": bat.power_efficiency_curve.T.tolist(),
                "capacity_power_curve": bat.capacity_power_curve.T.tolist(),
                "capacity_loss_coefficient": float(bat.capacity_loss_coefficient),
                "loss_coefficient": float(bat.loss_coefficient),
            }
        )
    message: dict[str, Any] = {
        "type": "site",
        "citylearn": version("CityLearn"),
        "dataset": DATASET,
        "steps": int(env.time_steps),
        "step_hours": float(env.seconds_per_time_step) / 3600.0,
        "buildings": buildings,
    }
    if with_future:
        t = env.time_steps
        message["future"] = {
            "load_kwh": [floats(b.energy_simulation.non_shiftable_load[:t]) for b in env.buildings],
            "solar_kwh": [
                floats(b.pv.get_generation(b.energy_simulation.solar_generation[:t]))
                for b in env.buildings
            ],
            "price": floats(env.buildings[0].pricing.electricity_pricing[:t]),
            "carbon": floats(env.buildings[0].carbon_intensity.carbon_intensity[:t]),
        }
    return message


def observation(env: Any, values: list[list[float]]) -> dict[str, Any]:
    """CityLearn's observation of this time step (`values`, as ``reset``/``step`` return them,
    not computed twice): shared names once, the others per building."""
    per_building = [
        dict(zip(b.active_observations, v, strict=True))
        for b, v in zip(env.buildings, values, strict=True)
    ]
    message: dict[str, Any] = {"type": "obs", "t": int(env.time_step)}
    for name in per_building[0]:
        if name in env.shared_observations:
            message[name] = float(per_building[0][name])
        else:
            message[name] = [float(o[name]) for o in per_building]
    return message


def read_actions(line: str, n: int) -> list[list[float]]:
    actions = json.loads(line)["actions"]
    if len(actions) != n or not all(isinstance(a, int | float) for a in actions):
        raise ValueError(f"expected {n} numbers in 'actions', got {actions!r}")
    if not all(math.isfinite(a) for a in actions):
        raise ValueError(f"actions must be finite numbers, got {actions!r}")
    return [[float(a)] for a in actions]  # one electrical_storage action per building


def evaluation(env: Any) -> dict[str, Any]:
    """``env.evaluate()`` (the 2022 definition), its grid cost split into its two halves as
    ``evaluate`` computes them, and the raw series for recomputing all of it."""
    from citylearn.cost_function import CostFunction

    price, carbon, grid = (float(v) for v in env.evaluate())
    ramping = (
        CostFunction.ramping(env.net_electricity_consumption)[-1]
        / CostFunction.ramping(env.net_electricity_consumption_without_storage)[-1]
    )
    load_factor = (
        CostFunction.load_factor(env.net_electricity_consumption)[-1]
        / CostFunction.load_factor(env.net_electricity_consumption_without_storage)[-1]
    )
    t = env.time_steps
    prices = [b.pricing.electricity_pricing[:t].tolist() for b in env.buildings]
    carbons = [b.carbon_intensity.carbon_intensity[:t].tolist() for b in env.buildings]
    if any(p != prices[0] for p in prices) or any(c != carbons[0] for c in carbons):
        raise ValueError("the buildings have different price or carbon series")
    return {
        "type": "result",
        "evaluate": {
            "cost": price,
            "carbon": carbon,
            "grid": grid,
            "ramping": float(ramping),
            "load_factor": float(load_factor),
            "score": (price + carbon + grid) / 3.0,
        },
        "series": {
            "net_district": floats(env.net_electricity_consumption),
            "net": [floats(b.net_electricity_consumption) for b in env.buildings],
            "net_no_storage": [
                floats(b.net_electricity_consumption_without_storage) for b in env.buildings
            ],
            "price": floats(prices[0]),
            "carbon": floats(carbons[0]),
        },
    }


def run(out: IO[str], steps: int | None, with_future: bool) -> int:
    def send(message: dict[str, Any]) -> None:
        out.write(json.dumps(message) + "\n")

    env = build_env(steps)
    send(site(env, with_future))
    n = len(env.buildings)
    values = env.observations
    while not env.done:
        send(observation(env, values))
        line = sys.stdin.readline()
        if not line:
            return 0  # the adapter went away: nothing to report to
        values, _, _, _ = env.step(read_actions(line, n))
    send(evaluation(env))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, help="episode length in hours (default: the year)")
    ap.add_argument("--future", action="store_true", help="send every step's series first")
    args = ap.parse_args()
    out = protocol_stream()
    try:
        return run(out, args.steps, args.future)
    except Exception as exc:  # reported on the protocol so the adapter can say what broke
        traceback.print_exc()
        message = {"type": "error", "message": f"{type(exc).__name__}: {exc}"}
        with contextlib.suppress(OSError):
            out.write(json.dumps(message) + "\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
