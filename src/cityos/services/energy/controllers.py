"""The battery controllers the service runs and CityLearn scores (:mod:`.control`).

* ``mpc`` — model-predictive control: every hour, forecasts of each building's load and PV
  for the next 24 h (:mod:`.forecast`: the mean of a LightGBM model, retrained each week on
  the history seen so far, and the same hour yesterday), the price as the site forecasts it
  (else as yesterday), carbon as yesterday, then the linear program of :mod:`.mpc` over
  those 24 h, its terms weighed by their long-run no-control values; only the first hour is
  applied, and the next hour plans again from the measured state of charge.
* ``foresight`` — the bound no forecast reaches: the same program over the actual series,
  solved month by month (each month's peak is its own; the state of charge and the last
  draw carry over), then played back.
* ``none`` and ``rule`` — no control, and the challenge's basic rule (:mod:`.sim.baselines`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .control import Controller, Observation, SiteInfo
from .errors import EnergyError, InfeasibleScheduleError
from .forecast import DAY, Calendar, Forecaster, seasonal_naive
from .mpc import Battery, Norms, Weights, plan

RETRAIN_EVERY = 7 * DAY


def _batteries(site: SiteInfo) -> list[Battery]:
    return [Battery(b.capacity_kwh, b.power_kw, b.efficiency) for b in site.buildings]


def _action(kwh: float, battery: Battery) -> float:
    """Planned kWh (+ drawn into the battery, − delivered by it) as CityLearn's action, the
    fraction of capacity: CityLearn 1.3.6 (``StorageDevice.charge``) takes the energy drawn
    when charging (stored: ×η) and the energy delivered when discharging (taken out: ÷η),
    which is how :mod:`.mpc` counts them too."""
    cap = max(battery.capacity_kwh, 1e-9)
    return float(np.clip(kwh / cap, -1.0, 1.0))


class MPCController:
    """Rolling-horizon LP on LightGBM forecasts; falls back to holding on a failed solve."""

    name = "mpc"
    needs_future = False

    def __init__(
        self,
        horizon: int = DAY,
        weights: Weights | None = None,
        *,
        long_run_norms: bool = True,
        blend: bool = True,
    ) -> None:
        self.horizon = horizon
        self.weights = weights or Weights()
        self.long_run_norms = long_run_norms
        self.blend = blend
        self.fallbacks = 0

    def reset(self, site: SiteInfo) -> None:
        self.site = site
        self.batteries = _batteries(site)
        n_b, steps = len(site.buildings), site.steps
        self.load = np.zeros((n_b, steps + self.horizon + 1))
        self.pv = np.zeros_like(self.load)
        self.price = np.zeros(steps + self.horizon + 1)
        self.carbon = np.zeros_like(self.price)
        self.cal = Calendar(*(np.zeros(steps + self.horizon + 1, int) for _ in range(3)))
        self.load_model = Forecaster(self.horizon, blend=self.blend)
        self.pv_model = Forecaster(self.horizon, seed=1, blend=self.blend)
        # the site's own price forecasts (the published tariff), kept at the hour they are
        # for; its weather forecasts did not make the load or PV forecasts better here
        self.price_ahead = np.full(steps + self.horizon + DAY + 1, np.nan)
        self.month_peak: dict[int, float] = {}
        self.last_district: float | None = None
        self.fallbacks = 0
        # running no-control statistics: the long-run normalisers of the score's terms
        self.stats = {"cost": 0.0, "carbon": 0.0, "ramp": 0.0, "n": 0}
        self.prev_base: float | None = None
        self.month_base: dict[int, list[float]] = {}

    def _record(self, obs: Observation) -> None:
        t = obs.t
        self.load[:, t] = obs.load_kwh
        self.pv[:, t] = obs.solar_kwh
        self.price[t], self.carbon[t] = obs.price, obs.carbon
        cal = self.cal
        cal.month[t], cal.hour[t], cal.day_type[t] = obs.month, obs.hour, obs.day_type
        # the calendar ahead: hours advance; day type and month as of the day before
        for h in range(1, self.horizon + 1):
            cal.hour[t + h] = (obs.hour + h - 1) % 24 + 1
            cal.day_type[t + h] = cal.day_type[t + h - DAY] if t + h >= DAY else obs.day_type
            cal.month[t + h] = obs.month
        if "electricity_pricing_predicted_24h" in obs.extra:
            self.price_ahead[t + DAY] = obs.extra["electricity_pricing_predicted_24h"]
        base = np.asarray(obs.load_kwh) - np.asarray(obs.solar_kwh)  # without batteries
        n0 = float(base.sum())
        st = self.stats
        st["cost"] += max(n0, 0.0) * obs.price
        st["carbon"] += float(np.clip(base, 0, None).sum()) * obs.carbon
        st["ramp"] += 0.0 if self.prev_base is None else abs(n0 - self.prev_base)
        st["n"] += 1
        self.prev_base = n0
        self.month_base.setdefault(obs.month, [0.0, 0.0, 0])
        mb = self.month_base[obs.month]
        mb[0], mb[1], mb[2] = mb[0] + n0, max(mb[1], n0), mb[2] + 1
        district = float(np.sum(obs.net_kwh))  # what the district drew in hour t
        self.month_peak[obs.month] = max(self.month_peak.get(obs.month, 0.0), district)
        self.last_district = district

    def act(self, obs: Observation) -> list[float]:
        self._record(obs)
        t = obs.t
        if t > 0 and t % RETRAIN_EVERY == 0:
            self.load_model.fit(self.load, self.cal, t)
            self.pv_model.fit(self.pv, self.cal, t)
        # hours t+1 … t+H: forecast (the action is for t+1, whose load is not known yet)
        load = self.load_model.predict(self.load, self.cal, t)
        pv = self.pv_model.predict(self.pv, self.cal, t)
        price = seasonal_naive(self.price[None, :], t, self.horizon)[0]
        ahead = self.price_ahead[t + 1 : t + 1 + self.horizon]
        price = np.where(np.isnan(ahead), price, ahead)
        carbon = seasonal_naive(self.carbon[None, :], t, self.horizon)[0]
        try:
            schedule = plan(
                load,
                pv,
                price,
                carbon,
                self.batteries,
                np.asarray(obs.soc),
                last_district_kwh=self.last_district,
                month=self.cal.month[t + 1 : t + 1 + self.horizon],
                month_peak_so_far=self.month_peak.get(obs.month, 0.0),
                weights=self.weights,
                norms=self._norms(obs.month) if self.long_run_norms else None,
            )
        except InfeasibleScheduleError:
            self.fallbacks += 1
            return [0.0] * len(self.batteries)  # the safe plan: batteries hold
        return [_action(schedule.charge_kwh[b, 0], bat) for b, bat in enumerate(self.batteries)]

    def _norms(self, month: int) -> Norms | None:
        """Long-run no-control values per horizon (after a day of history): a dollar, a kg
        and a kWh of ramping weigh the same every day, as in the year's score; a kWh of the
        month's peak weighs what it moves 1 − load factor (mean/peak² of the month, over the
        month's 730 h), relative to the no-control 1 − load factor."""
        st = self.stats
        if st["n"] < DAY:
            return None
        h = self.horizon
        per_hour = {k: st[k] / st["n"] for k in ("cost", "carbon", "ramp")}
        total, peak0, n = self.month_base[month]
        mean0 = total / max(n, 1)
        one_minus_lf0 = max(1.0 - mean0 / max(peak0, 1e-9), 0.05)
        peak = max(self.month_peak.get(month, peak0), 1e-6)
        # weight per kWh of peak = 730 / h · mean / (peak² · (1 − LF0)); plan divides by it
        peak_norm = h * peak**2 * one_minus_lf0 / (730.0 * max(mean0, 1e-6))
        return Norms(
            cost=per_hour["cost"] * h,
            carbon=per_hour["carbon"] * h,
            ramping=max(per_hour["ramp"], 1e-6) * h,
            peak=peak_norm,
        )


class _Known:
    """A "forecaster" that reads the real series: for the diagnostic controller only."""

    def __init__(self, series: np.ndarray, horizon: int) -> None:
        pad = np.repeat(series[:, -1:], horizon + 1, axis=1)
        self.series = np.hstack([series, pad])
        self.horizon = horizon

    def fit(self, *args: Any, **kwargs: Any) -> _Known:
        return self

    def predict(self, values: np.ndarray, cal: Calendar, t: int) -> np.ndarray:
        return self.series[:, t + 1 : t + 1 + self.horizon]


class PerfectForecastMPC(MPCController):
    """A diagnostic, never a controller to run a city: the same MPC with the real load and
    PV of the next 24 h in place of the forecasts. Between it and ``mpc`` lies exactly what
    the forecast errors cost; between it and ``foresight``, what the 24 h horizon costs."""

    name = "mpc-perfect-forecast"
    needs_future = True

    def reset(self, site: SiteInfo) -> None:
        super().reset(site)
        if site.future is None:
            raise EnergyError("the perfect-forecast diagnostic needs SiteInfo.future")
        self.load_model = _Known(np.asarray(site.future.load_kwh, float), self.horizon)
        self.pv_model = _Known(np.asarray(site.future.solar_kwh, float), self.horizon)


class ForesightController:
    """The perfect-foresight bound: the LP over the real series, month by month."""

    name = "foresight"
    needs_future = True

    def __init__(self, weights: Weights | None = None, month_steps: int = 730) -> None:
        self.weights = weights or Weights()
        self.month_steps = month_steps

    def reset(self, site: SiteInfo) -> None:
        if site.future is None:
            raise EnergyError("the foresight bound needs the whole series (SiteInfo.future)")
        f = site.future
        self.batteries = _batteries(site)
        load, pv = np.asarray(f.load_kwh, float), np.asarray(f.solar_kwh, float)
        price, carbon = np.asarray(f.price, float), np.asarray(f.carbon, float)
        steps = load.shape[1]
        soc = np.array([b.soc_init for b in site.buildings], float)
        last: float | None = None
        self.plan_kwh = np.zeros((len(self.batteries), steps))
        for start in range(0, steps, self.month_steps):
            end = min(steps, start + self.month_steps)
            s = plan(
                load[:, start:end],
                pv[:, start:end],
                price[start:end],
                carbon[start:end],
                self.batteries,
                soc,
                last_district_kwh=last,
                weights=self.weights,
            )
            self.plan_kwh[:, start:end] = s.charge_kwh
            soc, last = s.soc[:, -1], float(s.district_kwh[-1])

    def act(self, obs: Observation) -> list[float]:
        t = obs.t + 1  # the action is for the next hour
        if t >= self.plan_kwh.shape[1]:
            return [0.0] * len(self.batteries)
        return [_action(self.plan_kwh[b, t], bat) for b, bat in enumerate(self.batteries)]


def _baselines() -> dict[str, Callable[[], Any]]:
    try:
        from .sim.baselines import NoControl, RuleBased
    except ImportError:  # pragma: no cover - the baselines ship with the adapter
        return {}
    return {"none": NoControl, "rule": RuleBased}


CONTROLLERS: dict[str, Callable[[], Controller]] = {
    **_baselines(),
    "mpc": MPCController,
    "mpc-perfect-forecast": PerfectForecastMPC,
    "foresight": ForesightController,
}
