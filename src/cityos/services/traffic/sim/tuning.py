"""Tune the CityOS controller to one road network on simulated hours, and keep the result.

A city tunes its controller on its own network before it switches it on: every junction
layout, demand pattern and link length favours a different balance (how much an arriving
platoon counts against a standing queue, how much a phase change costs, how soon a
filling exit throttles the green into it). :func:`tune` searches
:class:`CityOSParams` by simulation: a random search over :data:`SPACE`, then a local
search around the best setting found, each setting scored as its mean RESCO delay over
*training* seeds (never the seeds a benchmark reports). Every simulated hour runs in a
fresh process (libsumo keeps state between runs in one process), ``jobs`` at a time.

No learning framework and no GPU: a tuning of one RESCO scenario takes minutes on the
2-core machine (the wall time is kept with the result). Tuned settings ship as JSON in
``controllers/tuned/<network>.json``; :func:`~..controllers.presets.tuned_params` reads them back and
:func:`~cityos.services.traffic.controllers.make_controller` applies them when told the
network.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import random
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..controllers.cityos import CityOSParams
from ..errors import TrafficError
from .scenarios import Scenario

# Searched ranges; the other parameters (short links, pairs) keep their defaults.
SPACE: dict[str, tuple[float, float]] = {
    "moving_weight": (0.3, 1.6),
    "exit_weight": (0.0, 1.0),
    "room_veh": (0.0, 6.0),
    "exit_moving_weight": (0.0, 1.0),
    "switch_margin": (0.0, 3.0),
    "hold_per_moving": (0.0, 4.0),
    "switch_factor": (0.7, 1.0),
    "age_weight": (0.0, 0.5),
    "short_bonus": (0.0, 4.0),  # only where short links join two signals (ingolstadt21)
    "demand_cap": (3.0, 30.0),
}

Progress = Callable[[int, int, float], None]  # (evaluations done, budget, best delay so far)


@dataclass
class TuneResult:
    """The tuned setting and how it was found."""

    network: str
    params: dict[str, float]
    training_seeds: list[int]
    delay_s: float | None  # mean delay of ``params`` over the training seeds
    default_delay_s: float  # the same for CityOSParams' defaults
    evaluations: int  # settings run, on the training or the validation seeds
    wall_s: float
    sumo_version: str
    validation_seeds: list[int] = field(default_factory=list)
    validation_delay_s: float | None = None  # mean delay of ``params`` on the validation seeds
    default_validation_delay_s: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)  # the training runs
    validation: list[dict[str, Any]] = field(default_factory=list)  # defaults first

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path


Job = tuple[Scenario, int, dict[str, float]]  # scenario, seed, setting


def _run_hour(job: Job) -> float:
    """One simulated hour in this (fresh) process: the mean delay it produced."""
    from ..controllers import make_controller
    from .runner import run_scenario

    scenario, seed, params = job
    controller = make_controller("cityos", **params)
    return run_scenario(scenario, controller, seed=seed).average_delay_s


def _clip(name: str, value: float) -> float:
    low, high = SPACE[name]
    return round(min(high, max(low, value)), 3)


def tune(
    scenario: Scenario,
    *,
    seeds: Sequence[int] = (100, 101, 102, 103),
    budget: int = 80,
    validation_seeds: Sequence[int] = tuple(range(200, 208)),
    keep: int = 5,
    jobs: int = 2,
    rng_seed: int = 0,
    random_share: float = 1 / 3,
    prior: list[dict[str, Any]] | None = None,
    progress: Progress | None = None,
    evaluate: Callable[[list[Job]], list[float]] | None = None,
) -> TuneResult:
    """Search CityOSParams for ``scenario`` on the training ``seeds``, then choose on others.

    ``random_share`` of ``budget`` settings are drawn at random, the rest are a local
    search around the best so far (``prior`` is the history of an earlier pass to
    continue; its settings count with today's defaults for parameters added since). On few seeds the best training score is
    partly luck, so the ``keep`` best settings and the defaults are then run on
    ``validation_seeds`` and the one best there is chosen: a tuned setting never ships
    unless it beats the defaults on hours it was not searched on. ``evaluate`` runs a
    batch of (scenario, seed, params) hours and returns their delays; by default each runs
    in a fresh process, ``jobs`` at a time.
    """
    from .simulation import sumo_version

    scenario.check_files()  # a missing or corrupt network fails before any process starts
    if budget < (0 if prior else 1):
        raise TrafficError("the tuning budget must be at least one evaluation")
    seeds, validation_seeds = list(seeds), list(validation_seeds)
    if not seeds:
        raise TrafficError("tuning needs at least one training seed")
    if set(seeds) & set(validation_seeds):
        raise TrafficError("training and validation seeds must differ")
    rng = random.Random(rng_seed + len(prior or ()))
    started = time.perf_counter()
    defaults = {k: float(v) for k, v in asdict(CityOSParams()).items() if k in SPACE}
    # every setting in full: a prior pass may predate parameters added to the space
    history = [{**h, "params": {**defaults, **h["params"]}} for h in prior or ()]
    validation: list[dict[str, Any]] = []
    total = budget + (keep + 1 if validation_seeds else 0)
    done = 0
    pool: ProcessPoolExecutor | None = None
    if evaluate is None:
        # a fresh process per hour, forked from a server that has imported CityOS once
        # (and libsumo, which holds no simulation until an hour starts it)
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__, "cityos.services.traffic.sim.runner", "libsumo"])
        pool = ProcessPoolExecutor(jobs, mp_context=context, max_tasks_per_child=1)

        def evaluate(batch: list[Job]) -> list[float]:
            assert pool is not None
            return list(pool.map(_run_hour, batch))

    def run(params: dict[str, float], on: list[int], into: list[dict[str, Any]]) -> float:
        nonlocal done
        delays = evaluate([(scenario, s, params) for s in on])
        mean = statistics.fmean(delays)
        into.append({"params": params, "delay_s": mean, "per_seed": delays})
        done += 1
        if progress is not None:
            progress(done, total, min(h["delay_s"] for h in into))
        return mean

    try:
        if history:
            default_delay = history[0]["delay_s"]
            best_entry = min(history, key=lambda h: h["delay_s"])
            best, best_delay = dict(best_entry["params"]), best_entry["delay_s"]
        else:
            best = dict(defaults)
            default_delay = best_delay = run(best, seeds, history)
        n_random = max(0, round(budget * random_share))
        while done < min(n_random, budget):
            candidate = {k: _clip(k, rng.uniform(*SPACE[k])) for k in SPACE}
            d = run(candidate, seeds, history)
            if d < best_delay:
                best, best_delay = candidate, d
        sigma, failures = 0.25, 0
        while done < budget:
            names = rng.sample(sorted(SPACE), k=rng.choice((1, 2, 3)))
            candidate = dict(best)
            for k in names:
                low, high = SPACE[k]
                candidate[k] = _clip(k, best[k] + rng.gauss(0.0, sigma * (high - low)))
            if candidate == best:
                continue
            d = run(candidate, seeds, history)
            if d < best_delay:
                best, best_delay, failures = candidate, d, 0
            else:
                failures += 1
                if failures % 6 == 0:
                    sigma = max(0.03, sigma * 0.8)
        chosen, chosen_delay = best, best_delay
        if validation_seeds:
            ranked = sorted(history, key=lambda h: h["delay_s"])
            candidates = [defaults]
            for h in ranked:
                if len(candidates) > keep:
                    break
                if h["params"] not in candidates:
                    candidates.append(h["params"])
            for params in candidates:
                run(params, validation_seeds, validation)
            pick = min(validation, key=lambda v: v["delay_s"])
            chosen = pick["params"]
            chosen_delay = next((h["delay_s"] for h in history if h["params"] == chosen), None)
    finally:
        if pool is not None:
            pool.shutdown()
    return TuneResult(
        network=scenario.name,
        params={k: v for k, v in chosen.items() if not math.isclose(v, defaults.get(k, math.nan))},
        training_seeds=seeds,
        delay_s=chosen_delay,
        default_delay_s=default_delay,
        evaluations=len(history) + len(validation),
        wall_s=time.perf_counter() - started,
        sumo_version=sumo_version(),
        validation_seeds=validation_seeds,
        validation_delay_s=min((v["delay_s"] for v in validation), default=None),
        default_validation_delay_s=validation[0]["delay_s"] if validation else None,
        history=history,
        validation=validation,
    )
