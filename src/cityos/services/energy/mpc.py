"""Battery schedules as linear programs, solved by HiGHS (``highspy``).

Over a horizon of T steps and B buildings, each battery charges ``c`` (kWh drawn in a step)
and discharges ``d`` (kWh delivered to its building), within its power and its state of
charge band, with a one-way efficiency η: ``e[t] = e[t-1] + η·c[t] − d[t]/η``. A building
draws ``net = load − pv + c − d`` from the grid; the district draws their sum ``N``.
The objective is the CityLearn 2022 score's own terms, made linear with the usual
positive-part and absolute-value variables:

* cost: Σ price·max(N, 0) (district import), or per building (``cost_per_building``);
* carbon: Σ carbon·max(net_b, 0) per building;
* ramping: Σ |N[t] − N[t−1]| (the first step against the last observed ``N``);
* peak: the largest N of each month (the load factor's denominator), never below the peak
  the month already had, so staying under it is free;

each divided by its no-control value over the same horizon (so that the weights are the
score's: 1/3, 1/3, 1/6, 1/6), plus a value for the energy left in the batteries at the end
so that a short horizon does not empty them. An optional feeder limit caps N.

Why our own formulation and not CityLearn's: the same function schedules the city's real
batteries from the hub's meters (the service), and scores in CityLearn through the adapter,
so the controller that runs the city is the one that is scored.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

from .errors import InfeasibleScheduleError


@dataclass(frozen=True)
class Battery:
    capacity_kwh: float
    power_kw: float
    efficiency: float = 0.9
    soc_min: float = 0.0  # fraction of capacity
    soc_max: float = 1.0


@dataclass(frozen=True)
class Weights:
    """Each term's weight in the 2022 score (after normalising by its no-control value)."""

    cost: float = 1 / 3
    carbon: float = 1 / 3
    ramping: float = 1 / 6
    peak: float = 1 / 6
    terminal: float = 1.0  # value of stored energy at the end, relative to its mean worth


@dataclass(frozen=True)
class Norms:
    """What one unit of each term is measured against over the horizon: the no-control
    cost, carbon and ramping, and the kWh of monthly peak worth a whole unit of the load
    factor term. A controller with history passes long-run values (so that a cheap day does
    not make its dollars dearer); without them each is the horizon's own no-control value."""

    cost: float
    carbon: float
    ramping: float
    peak: float


@dataclass(frozen=True)
class Schedule:
    charge_kwh: np.ndarray  # (B, T): drawn into the battery minus delivered from it
    stored_kwh: np.ndarray  # (B, T): the change of the energy stored (after the losses)
    soc: np.ndarray  # (B, T): fraction of capacity at the end of each step
    district_kwh: np.ndarray  # (T,): the district's net draw under the schedule
    objective: float
    status: str


class _LP:
    """Rows and columns gathered with numpy, handed to HiGHS in one call."""

    def __init__(self) -> None:
        self.n = 0
        self.lo: list[np.ndarray] = []
        self.hi: list[np.ndarray] = []
        self.cost: list[np.ndarray] = []
        self.rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]] = []
        self.row_lo: list[np.ndarray] = []
        self.row_hi: list[np.ndarray] = []

    def var(self, shape: tuple[int, ...], lo: object = 0.0, hi: object = np.inf) -> np.ndarray:
        size = int(np.prod(shape))
        idx = np.arange(self.n, self.n + size).reshape(shape)
        self.n += size
        self.lo.append(np.broadcast_to(np.asarray(lo, float), shape).ravel())
        self.hi.append(np.broadcast_to(np.asarray(hi, float), shape).ravel())
        self.cost.append(np.zeros(size))
        return idx

    def objective(self, idx: np.ndarray, coef: object) -> None:
        flat = np.asarray(idx).ravel()
        coefs = np.broadcast_to(np.asarray(coef, float), np.asarray(idx).shape).ravel()
        full = np.concatenate(self.cost)
        np.add.at(full, flat, coefs)
        sizes = [len(c) for c in self.cost]
        self.cost = np.split(full, np.cumsum(sizes)[:-1])

    def rows_of(
        self, terms: list[tuple[np.ndarray, object]], lo: object, hi: object, count: int
    ) -> None:
        """``count`` rows: Σ coef·x[idx] over the terms, row r taking element r of each."""
        r_idx, c_idx, vals = [], [], []
        for idx, coef in terms:
            idx = np.broadcast_to(np.asarray(idx), (count,))
            coef = np.broadcast_to(np.asarray(coef, float), (count,))
            r_idx.append(np.arange(count))
            c_idx.append(idx)
            vals.append(coef)
        self.rows.append(
            (np.concatenate(r_idx), np.concatenate(c_idx), np.concatenate(vals), count)
        )
        self.row_lo.append(np.broadcast_to(np.asarray(lo, float), (count,)).copy())
        self.row_hi.append(np.broadcast_to(np.asarray(hi, float), (count,)).copy())

    def solve(self) -> tuple[np.ndarray, float, str]:
        import highspy

        mats = [
            sparse.coo_matrix((vals, (rows, cols)), shape=(count, self.n))
            for rows, cols, vals, count in self.rows
        ]
        a = sparse.vstack(mats).tocsc()
        lp = highspy.HighsLp()
        lp.num_col_ = self.n
        lp.num_row_ = a.shape[0]
        lp.col_cost_ = np.concatenate(self.cost)
        lp.col_lower_ = np.concatenate(self.lo)
        lp.col_upper_ = np.concatenate(self.hi)
        lp.row_lower_ = np.concatenate(self.row_lo)
        lp.row_upper_ = np.concatenate(self.row_hi)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = a.indptr
        lp.a_matrix_.index_ = a.indices
        lp.a_matrix_.value_ = a.data
        h = _highs()
        h.setOptionValue("threads", 1)
        h.passModel(lp)
        h.run()
        status = h.modelStatusToString(h.getModelStatus())
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            raise InfeasibleScheduleError(f"HiGHS found no schedule: {status}")
        sol = np.asarray(h.getSolution().col_value)
        return sol, float(h.getInfo().objective_function_value), status


def _highs() -> Any:
    """A silent HiGHS: the first instance of a process prints a banner on the C level's
    standard output, which would break ``--json`` output; that one write goes to /dev/null."""
    import highspy

    global _BANNER_SHOWN
    if _BANNER_SHOWN:
        h = highspy.Highs()
    else:
        sys.stdout.flush()
        saved = os.dup(1)
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            try:
                h = highspy.Highs()
            finally:
                os.dup2(saved, 1)
                os.close(saved)
        _BANNER_SHOWN = True
    h.setOptionValue("output_flag", False)
    return h


_BANNER_SHOWN = False


def _positive_sum(x: np.ndarray, weights: np.ndarray) -> float:
    return float(np.sum(np.clip(x, 0, None) * weights))


def plan(
    load_kwh: np.ndarray,
    pv_kwh: np.ndarray,
    price: np.ndarray,
    carbon: np.ndarray,
    batteries: list[Battery],
    soc0: np.ndarray,
    *,
    last_district_kwh: float | None = None,
    month: np.ndarray | None = None,
    month_peak_so_far: float = 0.0,
    weights: Weights | None = None,
    norms: Norms | None = None,
    feeder_limit_kwh: float | None = None,
    cost_per_building: bool = False,
    step_hours: float = 1.0,
) -> Schedule:
    """The schedule minimising the weighted score terms over the horizon of ``load_kwh``
    (B, T) (and ``pv_kwh``), from ``soc0`` (fractions). Raises InfeasibleScheduleError."""
    w = weights or Weights()
    load = np.atleast_2d(np.asarray(load_kwh, float))
    pv = np.atleast_2d(np.asarray(pv_kwh, float))
    n_b, n_t = load.shape
    price = np.asarray(price, float)
    carbon = np.asarray(carbon, float)
    base = load - pv  # (B, T) no-control net
    base_n = base.sum(axis=0)
    month = np.zeros(n_t, int) if month is None else np.asarray(month, int)

    # no-control values of the terms over this horizon: the normalisers
    c0 = _positive_sum(base, price[None, :]) if cost_per_building else _positive_sum(base_n, price)
    e0 = _positive_sum(base, carbon[None, :])
    prev = base_n[0] if last_district_kwh is None else last_district_kwh
    r0 = float(np.abs(np.diff(np.concatenate([[prev], base_n]))).sum())
    p0 = max(float(base_n.max()), month_peak_so_far, 1e-6)
    # a flat or exporting horizon has next to no ramping (or cost) to normalise by: floor
    # each at a twentieth of what the horizon's energy would give, so no weight explodes
    energy = max(float(np.abs(base_n).sum()), 1e-3)
    c0 = max(c0, 0.05 * energy * max(float(price.mean()), 1e-6))
    e0 = max(e0, 0.05 * energy * max(float(carbon.mean()), 1e-6))
    r0 = max(r0, 0.05 * energy)
    if norms is not None:
        c0, e0, r0, p0 = (
            max(v, 1e-9) for v in (norms.cost, norms.carbon, norms.ramping, norms.peak)
        )

    cap = np.array([b.capacity_kwh for b in batteries])
    pmax = np.array([b.power_kw for b in batteries]) * step_hours
    eta = np.array([b.efficiency for b in batteries])
    lo_e = np.array([b.soc_min for b in batteries]) * cap
    hi_e = np.array([b.soc_max for b in batteries]) * cap
    e_start = np.clip(np.asarray(soc0, float) * cap, lo_e, hi_e)

    lp = _LP()
    c = lp.var((n_b, n_t), 0.0, np.repeat(pmax[:, None], n_t, axis=1))
    d = lp.var((n_b, n_t), 0.0, np.repeat(pmax[:, None], n_t, axis=1))
    e = lp.var((n_b, n_t), np.repeat(lo_e[:, None], n_t, 1), np.repeat(hi_e[:, None], n_t, 1))
    q = lp.var((n_b, n_t))  # building import ≥ net, ≥ 0
    district_hi = np.inf if feeder_limit_kwh is None else feeder_limit_kwh
    n_var = lp.var((n_t,), -np.inf, district_hi)  # district net
    r = lp.var((n_t,))  # |ΔN|
    months = np.unique(month)
    peak = lp.var((len(months),), month_peak_so_far, np.inf)

    # storage balance: e[t] − e[t−1] − η·c[t] + d[t]/η = 0 (e[−1]: the state now)
    lp.rows_of([(e[:, 0], 1.0), (c[:, 0], -eta), (d[:, 0], 1.0 / eta)], e_start, e_start, n_b)
    if n_t > 1:
        k = n_b * (n_t - 1)
        eta_k = np.repeat(eta, n_t - 1)
        lp.rows_of(
            [
                (e[:, 1:].ravel(), 1.0),
                (e[:, :-1].ravel(), -1.0),
                (c[:, 1:].ravel(), -eta_k),
                (d[:, 1:].ravel(), 1.0 / eta_k),
            ],
            0.0,
            0.0,
            k,
        )
    # q_bt ≥ base + c − d
    lp.rows_of(
        [(q.ravel(), 1.0), (c.ravel(), -1.0), (d.ravel(), 1.0)], base.ravel(), np.inf, n_b * n_t
    )
    # N_t = Σ_b (base + c − d)
    terms = [(n_var, 1.0)] + [(c[b], -1.0) for b in range(n_b)] + [(d[b], 1.0) for b in range(n_b)]
    lp.rows_of(terms, base_n, base_n, n_t)
    # r_t ≥ ±(N_t − N_{t−1})
    lp.rows_of([(r[0], 1.0), (n_var[0], -1.0)], -prev, np.inf, 1)
    lp.rows_of([(r[0], 1.0), (n_var[0], 1.0)], prev, np.inf, 1)
    if n_t > 1:
        lp.rows_of([(r[1:], 1.0), (n_var[1:], -1.0), (n_var[:-1], 1.0)], 0.0, np.inf, n_t - 1)
        lp.rows_of([(r[1:], 1.0), (n_var[1:], 1.0), (n_var[:-1], -1.0)], 0.0, np.inf, n_t - 1)
    # peak_m ≥ N_t in month m
    for k, m in enumerate(months):
        ts = np.flatnonzero(month == m)
        lp.rows_of([(peak[k], 1.0), (n_var[ts], -1.0)], 0.0, np.inf, len(ts))

    if cost_per_building:
        lp.objective(q, w.cost / c0 * price[None, :])
    else:
        p = lp.var((n_t,))  # district import ≥ N, ≥ 0
        lp.rows_of([(p, 1.0), (n_var, -1.0)], 0.0, np.inf, n_t)
        lp.objective(p, w.cost / c0 * price)
    lp.objective(q, w.carbon / e0 * carbon[None, :])
    lp.objective(r, w.ramping / r0)
    lp.objective(peak, w.peak / p0)
    # energy left at the end is worth what it saves on average (cost and carbon)
    worth = w.cost / c0 * price.mean() + w.carbon / e0 * carbon.mean()
    lp.objective(e[:, -1], -w.terminal * worth * eta)

    # a tie-breaker: never charge and discharge in the same hour for nothing
    lp.objective(c, 1e-7)
    lp.objective(d, 1e-7)

    sol, obj, status = lp.solve()
    stored = np.diff(np.concatenate([e_start[:, None], sol[e]], axis=1), axis=1)
    soc = sol[e] / np.maximum(cap[:, None], 1e-9)
    return Schedule(sol[c] - sol[d], stored, soc, sol[n_var], obj, status)
