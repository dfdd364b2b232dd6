"""Forecasts on series with a known answer, against the seasonal-naive baseline."""

from __future__ import annotations

import numpy as np

from cityos.services.energy.forecast import Calendar, Forecaster, evaluate, seasonal_naive

STEPS = 24 * 70


def _calendar(steps: int = STEPS) -> Calendar:
    t = np.arange(steps)
    return Calendar(month=(t // 730) % 12 + 1, hour=t % 24 + 1, day_type=(t // 24) % 7 + 1)


def _daily(noise: float, seed: int = 0, buildings: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(STEPS)
    shape = 2.0 + np.sin(2 * np.pi * (t % 24) / 24) + (t % 24 >= 18) * 1.5
    return np.stack(
        [shape * (1 + 0.2 * b) for b in range(buildings)]
    ) + noise * rng.standard_normal((buildings, STEPS))


def test_seasonal_naive_is_yesterday_same_hour() -> None:
    values = np.arange(100, dtype=float)[None, :]
    assert seasonal_naive(values, 50, 3).tolist() == [[27.0, 28.0, 29.0]]
    assert seasonal_naive(values, 50, 24)[0, -1] == 50.0  # 24 h ahead: today's value


def test_a_periodic_series_is_forecast_almost_exactly() -> None:
    values, cal = _daily(0.0), _calendar()
    skill = evaluate(values, cal, train_until=24 * 56, test_steps=24 * 7)
    assert len(skill.mae) == 24 and max(skill.naive_mae) < 1e-9
    assert max(skill.wape) < 0.03


def test_noise_is_averaged_out_where_naive_copies_it() -> None:
    """Daily pattern + white noise σ: naive errs by about σ·√2·0.8; the model, trained on
    eight weeks, learns the pattern and errs by about σ·0.8."""
    values, cal = _daily(0.5), _calendar()
    skill = evaluate(values, cal, train_until=24 * 56, test_steps=24 * 10)
    s = skill.summary()
    assert s["mae"] < 0.85 * s["naive_mae"]
    assert 0.3 < s["mae"] < 0.6


def test_untrained_model_falls_back_to_naive_and_never_predicts_negative() -> None:
    values, cal = _daily(0.0), _calendar()
    f = Forecaster(24)
    assert np.array_equal(f.predict(values, cal, 200), seasonal_naive(values, 200, 24))
    f.fit(np.zeros((1, STEPS)) - 1.0, cal, 24 * 30)
    assert f.predict(np.zeros((1, STEPS)) - 1.0, cal, 24 * 30).min() >= 0.0
