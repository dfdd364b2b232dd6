"""Hour-ahead to day-ahead forecasts of each building's load and PV, from history alone.

One LightGBM model per quantity (load, PV), pooled over the buildings: a row is "at issue
time t, the value h hours later", with features that are all known at t — the hour of day,
day type and month of the target hour, the horizon h, the building, the latest value, the
value one day and one week before the target hour (when that is not after t; otherwise the
latest day's value at that hour), and the mean of the last 24 h. A single model over all
horizons keeps training cheap (rows are sampled: a few horizons per issue time) and
prediction one call per hour for every building and horizon.

The baseline every forecast is judged against is the seasonal-naive one: the value at the
same hour one day before (``seasonal_naive``). :func:`evaluate` reports MAE and WAPE per
horizon for both, on a split that never trains on what it tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DAY = 24
WEEK = 168


@dataclass(frozen=True)
class Calendar:
    """Per step of the whole series: month (1–12), hour (1–24), day type (1–8)."""

    month: np.ndarray
    hour: np.ndarray
    day_type: np.ndarray


def _lagged(series: np.ndarray, t: np.ndarray, target: np.ndarray, lag: int) -> np.ndarray:
    """The value ``lag`` steps before the target hour, or — when that lies after the issue
    time t — the value at the same hour of the latest day at or before t."""
    src = target - lag
    late = src > t
    src = np.where(late, src - DAY * np.ceil((src - t) / DAY).astype(int), src)
    src = np.clip(src, 0, None)
    return series[..., src] if series.ndim == 1 else series[:, src]


def _features(
    values: np.ndarray, cal: Calendar, b: np.ndarray, t: np.ndarray, h: np.ndarray
) -> np.ndarray:
    """Rows of features for building b, issue time t, horizon h (arrays of equal length)."""
    target = t + h
    own = values[b]  # (rows, steps)
    rows = np.arange(len(b))
    latest = own[rows, t]
    day_lag = _lagged(values, t, target, DAY)[b, rows]
    week_lag = _lagged(values, t, target, WEEK)[b, rows]
    start = np.clip(t - DAY + 1, 0, None)
    csum = np.concatenate([np.zeros((values.shape[0], 1)), np.cumsum(values, axis=1)], axis=1)
    mean24 = (csum[b, t + 1] - csum[b, start]) / (t + 1 - start)
    tgt = np.clip(target, 0, len(cal.hour) - 1)
    return np.column_stack(
        [
            cal.hour[tgt],
            cal.day_type[tgt],
            cal.month[tgt],
            h,
            b,
            latest,
            day_lag,
            week_lag,
            mean24,
        ]
    ).astype(np.float64)


class Forecaster:
    """A LightGBM model of one quantity over every building and horizon 1..``horizon``."""

    def __init__(
        self, horizon: int = DAY, *, seed: int = 0, trees: int = 120, blend: bool = False
    ) -> None:
        self.horizon = horizon
        self.blend = blend
        self.seed = seed
        self.trees = trees
        self.model = None

    def fit(
        self,
        values: np.ndarray,
        cal: Calendar,
        until: int,
        *,
        days: int = 56,
        horizons_per_row: int = 4,
    ) -> Forecaster:
        """Train on what is known at step ``until`` (inclusive): issue times in the last
        ``days`` days whose targets are also at or before ``until``."""
        import lightgbm as lgb

        rng = np.random.default_rng(self.seed + until)
        first = max(WEEK, until - days * DAY)
        issue = np.arange(first, until)
        if len(issue) == 0:
            self.model = None
            return self
        n_b = values.shape[0]
        b = np.repeat(np.arange(n_b), len(issue) * horizons_per_row)
        t = np.tile(np.repeat(issue, horizons_per_row), n_b)
        h = rng.integers(1, self.horizon + 1, size=len(t))
        keep = t + h <= until
        b, t, h = b[keep], t[keep], h[keep]
        if len(t) < 50:
            self.model = None
            return self
        x = _features(values, cal, b, t, h)
        y = values[b, t + h]
        params = {
            "objective": "regression",
            "learning_rate": 0.08,
            "num_leaves": 31,
            "min_data_in_leaf": 20,
            "seed": self.seed,
            "num_threads": 1,
            "verbose": -1,
        }
        data = lgb.Dataset(x, y, categorical_feature=[4])
        self.model = lgb.train(params, data, num_boost_round=self.trees)
        return self

    def predict(self, values: np.ndarray, cal: Calendar, t: int) -> np.ndarray:
        """(buildings, horizon) forecasts issued at step t (seasonal naive until trained)."""
        n_b = values.shape[0]
        if self.model is None:
            return seasonal_naive(values, t, self.horizon)
        b = np.repeat(np.arange(n_b), self.horizon)
        h = np.tile(np.arange(1, self.horizon + 1), n_b)
        tt = np.full(len(b), t)
        pred = self.model.predict(_features(values, cal, b, tt, h)).reshape(n_b, self.horizon)
        if self.blend:  # the mean of the model and yesterday: better than either alone here
            pred = (pred + seasonal_naive(values, t, self.horizon)) / 2
        return np.clip(pred, 0.0, None)


def seasonal_naive(values: np.ndarray, t: int, horizon: int = DAY) -> np.ndarray:
    """(buildings, horizon): the value at the same hour of the latest day at or before t."""
    target = t + np.arange(1, horizon + 1)
    src = target - DAY * np.ceil((target - t) / DAY).astype(int)
    return values[:, np.clip(src, 0, None)]


@dataclass(frozen=True)
class Skill:
    """Errors per horizon (index 0: one hour ahead) of a forecast and of the baseline."""

    mae: list[float]
    wape: list[float]
    naive_mae: list[float]
    naive_wape: list[float]

    def summary(self) -> dict[str, float]:
        return {
            "mae": float(np.mean(self.mae)),
            "wape": float(np.mean(self.wape)),
            "naive_mae": float(np.mean(self.naive_mae)),
            "naive_wape": float(np.mean(self.naive_wape)),
        }


def evaluate(
    values: np.ndarray,
    cal: Calendar,
    *,
    train_until: int,
    test_steps: int,
    horizon: int = DAY,
    every: int = 6,
) -> Skill:
    """Train on steps ≤ ``train_until``, then issue forecasts every ``every`` steps over the
    next ``test_steps``; MAE and WAPE (Σ|error| / Σ|actual|) per horizon, model and naive."""
    model = Forecaster(horizon).fit(values, cal, train_until)
    last = min(values.shape[1] - 1 - horizon, train_until + test_steps)
    errs, naive_errs, actual = [], [], []
    for t in range(train_until, last, every):
        truth = values[:, t + 1 : t + 1 + horizon]
        errs.append(np.abs(model.predict(values, cal, t) - truth))
        naive_errs.append(np.abs(seasonal_naive(values, t, horizon) - truth))
        actual.append(np.abs(truth))
    if not errs:
        raise ValueError("no test window: the series is too short for this split")
    e, n, a = (np.concatenate(x, axis=0) for x in (errs, naive_errs, actual))
    denom = np.maximum(a.sum(axis=0), 1e-9)
    return Skill(
        mae=e.mean(axis=0).tolist(),
        wape=(e.sum(axis=0) / denom).tolist(),
        naive_mae=n.mean(axis=0).tolist(),
        naive_wape=(n.sum(axis=0) / denom).tolist(),
    )
