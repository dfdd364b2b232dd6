"""The battery LP (HiGHS): its constraints hold, and it does what the score rewards."""

from __future__ import annotations

import numpy as np
import pytest

from cityos.services.energy.control import BuildingInfo, Observation, SiteInfo
from cityos.services.energy.controllers import MPCController, _action
from cityos.services.energy.errors import InfeasibleScheduleError
from cityos.services.energy.mpc import Battery, Weights, plan

T = 24
HOURS = np.arange(T)


def _day(n_b: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    load = np.array([[1.0 + (1.5 if 17 <= h <= 21 else 0.0) for h in HOURS]] * n_b)
    pv = np.array([[max(0.0, 3 * np.sin(np.pi * (h - 6) / 12)) for h in HOURS]] * n_b)
    price = np.where((HOURS >= 16) & (HOURS <= 21), 0.4, 0.2)
    carbon = np.full(T, 0.5)
    return load, pv, price, carbon


def test_constraints_hold() -> None:
    load, pv, price, carbon = _day()
    bats = [Battery(6.4, 2.0, 0.9, soc_min=0.1, soc_max=0.9), Battery(4.0, 1.5, 0.95)]
    s = plan(load, pv, price, carbon, bats, np.array([0.5, 0.0]))
    assert s.status == "Optimal"
    for b, bat in enumerate(bats):
        assert np.all(np.abs(s.charge_kwh[b]) <= bat.power_kw + 1e-6)  # power limit
        assert np.all(s.soc[b] >= bat.soc_min - 1e-6) and np.all(s.soc[b] <= bat.soc_max + 1e-6)
        # the stored energy follows the charge with the efficiency, hour by hour
        e = np.concatenate([[np.clip([0.5, 0.0][b], bat.soc_min, bat.soc_max)], s.soc[b]])
        e *= bat.capacity_kwh
        assert np.allclose(np.diff(e), s.stored_kwh[b], atol=1e-6)
        # whatever is drawn and delivered in an hour, the losses only ever cost energy
        assert np.all(s.stored_kwh[b] <= bat.efficiency * np.clip(s.charge_kwh[b], 0, None) + 1e-6)
    # the district's draw is the buildings' net with the batteries
    assert np.allclose(s.district_kwh, (load - pv + s.charge_kwh).sum(axis=0), atol=1e-6)


def test_stores_cheap_energy_for_dear_hours() -> None:
    """Flat load, price low then high, a lossless battery: it fills in the cheap half and
    empties in the dear half, and the district's cost falls by what it shifted."""
    load = np.ones((1, 8))
    pv = np.zeros((1, 8))
    price = np.array([0.1] * 4 + [0.5] * 4)
    w = Weights(carbon=0.0, ramping=0.0, peak=0.0, terminal=0.0)
    s = plan(load, pv, price, np.zeros(8), [Battery(2.0, 1.0, 1.0)], np.array([0.0]), weights=w)
    assert s.charge_kwh[0, :4].sum() == pytest.approx(2.0, abs=1e-6)
    assert s.charge_kwh[0, 4:].sum() == pytest.approx(-2.0, abs=1e-6)
    cost = float(np.sum(np.clip(s.district_kwh, 0, None) * price))
    assert cost == pytest.approx(8 * 0.3 - 2 * 0.4, abs=1e-6)
    # with losses (η = 0.9 each way) the 2 kWh drawn store 1.8 and deliver 1.62
    s = plan(load, pv, price, np.zeros(8), [Battery(2.0, 1.0, 0.9)], np.array([0.0]), weights=w)
    assert s.soc[0].max() == pytest.approx(1.0, abs=1e-6)
    assert s.charge_kwh[0, :4].sum() == pytest.approx(2.0 / 0.9, abs=1e-6)
    assert s.charge_kwh[0, 4:].sum() == pytest.approx(-2.0 * 0.9, abs=1e-6)


def test_feeder_limit_caps_the_draw_and_infeasible_is_an_error() -> None:
    load, pv, price, carbon = _day(1)
    s = plan(load, pv, price, carbon, [Battery(6.4, 3.0)], np.array([1.0]), feeder_limit_kwh=1.6)
    assert s.district_kwh.max() <= 1.6 + 1e-6
    with pytest.raises(InfeasibleScheduleError, match="no schedule"):  # empty battery, 2.5 kWh
        plan(load, pv, price, carbon, [Battery(1.0, 0.5)], np.array([0.0]), feeder_limit_kwh=1.0)


def test_action_is_capacity_fraction_with_discharge_losses() -> None:
    bat = Battery(5.0, 5.0, 0.8)
    assert _action(2.5, bat) == pytest.approx(0.5)
    assert _action(-2.0, bat) == pytest.approx(-0.4)  # 2 kWh delivered (2.5 kWh leave)
    assert _action(-50.0, bat) == -1.0


def _obs(t: int, load: float, soc: float) -> Observation:
    return Observation(
        t=t, month=1, hour=t % 24 + 1, day_type=1, load_kwh=(load,), solar_kwh=(0.0,),
        soc=(soc,), net_kwh=(load,), price=0.2 if t % 24 < 12 else 0.5, carbon=0.4,
    )  # fmt: skip


def test_mpc_controller_plans_and_falls_back_to_holding(monkeypatch) -> None:
    ctl = MPCController()
    ctl.reset(SiteInfo(buildings=(BuildingInfo("h1", 4.0, 2.0, 0.95),), steps=60))
    evening = [1.0 + (2.0 if 17 <= t % 24 <= 21 else 0.0) for t in range(48)]
    actions = [ctl.act(_obs(t, evening[t], 0.5))[0] for t in range(48)]
    assert all(-1.0 <= a <= 1.0 for a in actions)
    # from the second day it knows the evening peak: it discharges into it (actions are
    # for the next hour), and charges outside it
    assert min(actions[24 + 16 : 24 + 21]) < -0.05
    assert max(actions[24 : 24 + 16]) > 0.0

    def refuse(*args, **kwargs):
        raise InfeasibleScheduleError("no schedule within the feeder's limit")

    monkeypatch.setattr("cityos.services.energy.controllers.plan", refuse)
    assert ctl.act(_obs(47, 1.0, 0.5)) == [0.0] and ctl.fallbacks == 1
