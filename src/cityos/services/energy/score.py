"""The CityLearn Challenge 2022 score, computed from raw series without CityLearn.

Why our own: the service scores the city's real batteries from the hub's meters the same way
it is scored in the simulator, and the benchmark checks this against CityLearn's number.

It reproduces CityLearn 1.3.6 (the version the challenge ran on) exactly:
``CityLearnEnv.evaluate`` (citylearn/citylearn.py) over ``CostFunction.price``,
``carbon_emissions``, ``ramping`` and ``load_factor`` (citylearn/cost_function.py), with the
series ``Building.update_variables`` and ``net_electricity_consumption_without_storage*``
(citylearn/building.py) feed it. Each term is the controlled value over the value without
storage (no control), so 1.0 is "no better than doing nothing" and lower is better:

* cost: Σ_t max(Σ_b net_b·price, 0) — the price is clipped at the *district* level
  (``Building.net_electricity_consumption_price`` is not clipped; ``CostFunction.price`` clips
  the district's sum);
* carbon: Σ_t Σ_b max(net_b·carbon, 0) — clipped *per building*
  (``Building.update_variables`` appends ``max(0, net·carbon)``);
* ramping: Σ_t |N_t − N_{t−1}| over the district's net N;
* load factor: 1 − mean(N)/max(N) in consecutive windows of 730 steps from the first (the last
  one may be shorter; ``(index/730).astype(int)`` groups), averaged over the windows;
* grid = mean(ramping, load factor); score = mean(cost, carbon, grid).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

LOAD_FACTOR_WINDOW = 730  # CostFunction.load_factor's default: 8,760 / 12, "a month"

Series = Sequence[float] | np.ndarray
PerBuilding = Sequence[Sequence[float]] | np.ndarray


@dataclass(frozen=True)
class Score:
    """The 2022 score and its parts, each relative to no control (lower is better)."""

    score: float
    cost: float
    carbon: float
    grid: float
    ramping: float
    load_factor: float  # of 1 − load factor, as CityLearn's "load_factor" cost

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def price_cost(net: PerBuilding, price: Series) -> float:
    """Σ_t max(Σ_b net_b[t]·price[t], 0): what the district pays, exports earning nothing."""
    return float(
        np.clip((np.asarray(net, float) * np.asarray(price, float)).sum(axis=0), 0, None).sum()
    )


def carbon_emissions(net: PerBuilding, carbon: Series) -> float:
    """Σ_t Σ_b max(net_b[t]·carbon[t], 0): each building's imports only."""
    return float(np.clip(np.asarray(net, float) * np.asarray(carbon, float), 0, None).sum())


def ramping(district: Series) -> float:
    """Σ_t |N[t] − N[t−1]|."""
    return float(np.abs(np.diff(np.asarray(district, float))).sum())


def one_minus_load_factor(district: Series, window: int = LOAD_FACTOR_WINDOW) -> float:
    """Mean over consecutive `window`-step blocks of 1 − mean/max."""
    n = np.asarray(district, float)
    blocks = [n[i : i + window] for i in range(0, len(n), window)]
    return float(np.mean([1.0 - b.mean() / b.max() for b in blocks]))


def score_2022(
    net: PerBuilding,
    net_no_storage: PerBuilding,
    price: Series,
    carbon: Series,
    window: int = LOAD_FACTOR_WINDOW,
) -> Score:
    """The score of per-building net draws `net` (kWh per step, negative: export) against
    the same buildings without storage, for one price and one carbon series."""
    net, base = np.asarray(net, float), np.asarray(net_no_storage, float)
    steps = {net.shape[-1], len(price), len(carbon)}
    if net.ndim != 2 or net.shape != base.shape or len(steps) != 1:
        raise ValueError(
            f"net {net.shape} and net_no_storage {base.shape} must be (buildings, steps) "
            f"matching price ({len(price)}) and carbon ({len(carbon)})"
        )
    district, district_base = net.sum(axis=0), base.sum(axis=0)
    cost = price_cost(net, price) / price_cost(base, price)
    co2 = carbon_emissions(net, carbon) / carbon_emissions(base, carbon)
    ramp = ramping(district) / ramping(district_base)
    load = one_minus_load_factor(district, window) / one_minus_load_factor(district_base, window)
    grid = (ramp + load) / 2.0
    return Score(
        score=(cost + co2 + grid) / 3.0,
        cost=cost,
        carbon=co2,
        grid=grid,
        ramping=ramp,
        load_factor=load,
    )
