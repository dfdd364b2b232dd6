"""The battery controllers the service runs and CityLearn scores (:mod:`.control`).

* ``mpc`` — model-predictive control: every hour, LightGBM forecasts of each building's
  load and PV for the next 24 h (:mod:`.forecast`, retrained each week on the history seen
  so far, seasonal-naive until the first week is in), price and carbon as the same hour
  yesterday, then the linear program of :mod:`.mpc` over those 24 h; only the first hour is
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
from .mpc import Battery, Weights, plan

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

    def __init__(self, horizon: int = DAY, weights: Weights | None = None) -> None:
        self.horizon = horizon
        self.weights = weights or Weights()
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
        self.load_model = Forecaster(self.horizon)
        self.pv_model = Forecaster(self.horizon, seed=1)
        self.month_peak: dict[int, float] = {}
        self.last_district: float | None = None
        self.fallbacks = 0

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
            )
        except InfeasibleScheduleError:
            self.fallbacks += 1
            return [0.0] * len(self.batteries)  # the safe plan: batteries hold
        return [_action(schedule.charge_kwh[b, 0], bat) for b, bat in enumerate(self.batteries)]


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
    "foresight": ForesightController,
}
