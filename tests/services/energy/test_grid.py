"""Grid model: a real SimBench LV feeder in pandapower, its limits, and trimming a schedule.

The feeder is ``1-LV-rural2--0-sw`` (long rural cables, 250 kVA transformer). Homes are put
on the farthest load buses, where voltage drop and rise are largest."""

from __future__ import annotations

import numpy as np
import pytest

from cityos.services.energy.errors import EnergyError
from cityos.services.energy.grid import DEFAULT_CODE, Feeder, ScheduleCheck

LIGHT_KW = 2.0
HEAVY_KW = 60.0
EXPORT_KW = -15.0


def far_feeder(n: int = 5, **kwargs: object) -> Feeder:
    """A fresh feeder (the SimBench read is cached) with ``n`` homes at the far end."""
    feeder = Feeder.simbench(DEFAULT_CODE, **kwargs)
    feeder.map_homes(n)
    return feeder


def each(feeder: Feeder, kw: float) -> dict[str, float]:
    return {home: kw for home in feeder.homes}


@pytest.fixture(scope="module")
def feeder() -> Feeder:
    return far_feeder()


# --- loading ---------------------------------------------------------------------------------


def test_feeder_loads_with_profiles_and_pv_removed(feeder: Feeder) -> None:
    info = feeder.describe()
    assert info["buses"] > 50 and info["lines"] > 50 and info["loads"] > 50
    assert info["load_buses"] >= 50
    assert feeder.transformer_kva == pytest.approx(250.0)
    assert feeder.net.profiles == {}
    assert not feeder.net.sgen["in_service"].any()
    assert feeder.import_limit_kw(pf=0.95) == pytest.approx(250.0 * 0.95)


def test_import_limit_counts_background_load_but_not_the_homes() -> None:
    loaded = Feeder.simbench(background=1.0)
    limit = loaded.import_limit_kw()
    assert limit < Feeder.simbench().import_limit_kw()
    loaded.map_homes(3)
    loaded.run(each(loaded, 20.0))
    assert loaded.import_limit_kw() > limit  # the homes' own buses left the background


def test_tap_position_is_honoured() -> None:
    """SimBench leaves tap_changer_type empty and pandapower then ignores tap_pos."""
    neutral = Feeder.simbench().run({})
    tapped = Feeder.simbench(tap_pos=2).run({})
    ignored = Feeder.simbench(tap_pos=2, honour_taps=False).run({})
    raised = Feeder.simbench(tap_pos=-2).run({})
    assert Feeder.simbench().net.trafo["tap_changer_type"].iat[0] == "Ratio"
    # HV-side tap +2 x 2.5 %: more HV turns, so the LV side sits ~5 % lower.
    assert tapped.vm_max_pu == pytest.approx(neutral.vm_max_pu / 1.05, abs=2e-3)
    assert raised.vm_max_pu > neutral.vm_max_pu + 0.04
    assert ignored.vm_max_pu == pytest.approx(neutral.vm_max_pu, abs=1e-6)


def test_tap_outside_range_is_refused() -> None:
    with pytest.raises(EnergyError, match="outside"):
        Feeder.simbench().set_tap(5)


# --- mapping homes ---------------------------------------------------------------------------


def test_homes_map_to_distinct_buses_deterministically(feeder: Feeder) -> None:
    again = far_feeder()
    assert feeder.home_buses == again.home_buses
    assert len(set(feeder.home_buses.values())) == 5
    assert list(feeder.home_buses.values()) == list(feeder.load_buses[:5])

    spread = Feeder.simbench()
    mapping = spread.attach(["a", "b", "c"], placement="spread")
    assert list(mapping) == ["a", "b", "c"]
    assert mapping["a"] == spread.load_buses[0] and mapping["c"] == spread.load_buses[-1]


def test_attach_refuses_too_many_or_duplicate_homes() -> None:
    feeder = Feeder.simbench()
    with pytest.raises(EnergyError, match="load buses"):
        feeder.map_homes(len(feeder.load_buses) + 1)
    with pytest.raises(EnergyError, match="distinct"):
        feeder.attach(["x", "x"])


# --- one step --------------------------------------------------------------------------------


def test_light_load_is_within_limits(feeder: Feeder) -> None:
    result = feeder.run(each(feeder, LIGHT_KW))
    assert result.converged and result.ok
    assert 0.95 < result.vm_min_pu <= result.vm_max_pu < 1.05
    assert result.feeder_p_kw == pytest.approx(5 * LIGHT_KW, rel=0.2)


def test_heavy_load_at_far_end_breaks_voltage_and_loading(feeder: Feeder) -> None:
    result = feeder.run(each(feeder, HEAVY_KW))
    assert result.converged
    assert {"undervoltage", "line_overload", "trafo_overload"} <= result.kinds()
    assert result.vm_min_pu < 0.95
    assert result.line_loading_max_pct > 100 and result.trafo_loading_pct > 100
    under = next(v for v in result.violations if v.kind == "undervoltage")
    assert under.value == pytest.approx(result.vm_min_pu) and under.count > 0


def test_pv_export_raises_voltage_above_band(feeder: Feeder) -> None:
    result = feeder.run(each(feeder, EXPORT_KW))
    assert result.kinds() == {"overvoltage"}
    assert result.vm_max_pu > 1.05
    assert result.feeder_p_kw < 0


def test_non_convergence_is_a_violation_not_an_exception() -> None:
    feeder = far_feeder(10)
    result = feeder.run(each(feeder, HEAVY_KW))
    assert not result.converged and not result.ok
    assert result.kinds() == {"not_converged"}
    assert "did not converge" in result.violations[0].reason
    assert np.isnan(result.vm_min_pu)
    assert feeder.run(each(feeder, LIGHT_KW)).ok  # the next step recovers


def test_bad_inputs_are_refused(feeder: Feeder) -> None:
    with pytest.raises(EnergyError, match="unknown home"):
        feeder.run({"nobody": 1.0})
    with pytest.raises(EnergyError, match="finite"):
        feeder.run({"home-0": float("nan")})
    with pytest.raises(EnergyError, match="power factor"):
        feeder.run({}, pf=0.0)
    with pytest.raises(EnergyError, match="rows"):
        feeder.check_schedule(np.zeros((3, 4)))


# --- schedules -------------------------------------------------------------------------------


def test_check_schedule_finds_the_violating_steps(feeder: Feeder) -> None:
    per_step = [LIGHT_KW, HEAVY_KW, EXPORT_KW, LIGHT_KW]
    series = np.tile(per_step, (5, 1))
    check = feeder.check_schedule(series)
    assert isinstance(check, ScheduleCheck) and len(check.steps) == 4
    assert check.violating_steps == (1, 2)
    assert check.worst_vm_min_pu < 0.95 and check.worst_vm_max_pu > 1.05
    assert check.worst_trafo_loading_pct > 100
    summary = check.summary()
    assert summary["violating_steps"] == [1, 2] and summary["not_converged_steps"] == []

    by_home = feeder.check_schedule({home: per_step for home in feeder.homes})
    assert by_home.violating_steps == (1, 2)


def test_limit_schedule_sheds_ev_charging_until_the_feeder_is_within_limits(
    feeder: Feeder,
) -> None:
    base = np.full((5, 3), 3.0)
    ev = np.zeros((5, 3))
    ev[:, 1] = 22.0  # five 22 kW chargers at the far end in the evening peak
    limited = feeder.limit_schedule(base + ev, ev)

    assert len(limited.before.violating_steps) > 0
    assert limited.before.violating_steps == (1,)
    assert len(limited.after.violating_steps) == 0 and not limited.unresolved
    assert 0 < limited.scale[1] < 1 and limited.scale[0] == limited.scale[2] == 1
    assert limited.shed_kw[1] > 0 and limited.shed_kw[[0, 2]].sum() == 0
    np.testing.assert_allclose(limited.net_kw[:, [0, 2]], base[:, [0, 2]])
    assert (limited.net_kw >= base - 1e-9).all()
    # The trimmed plan really is within limits, and not trimmed far more than needed.
    assert feeder.check_schedule(limited.net_kw).ok
    assert limited.after.steps[1].vm_min_pu < 0.96


def test_limit_schedule_reports_what_shedding_cannot_fix(feeder: Feeder) -> None:
    net = np.tile([EXPORT_KW, HEAVY_KW], (5, 1))
    ctrl = np.tile([1.0, 5.0], (5, 1))
    limited = feeder.limit_schedule(net, ctrl)
    assert set(limited.unresolved) == {0, 1}
    assert "export-side" in limited.unresolved[0] and limited.scale[0] == 1
    assert "all controllable load shed" in limited.unresolved[1] and limited.scale[1] == 0
    with pytest.raises(EnergyError, match=">= 0"):
        feeder.limit_schedule(net, -ctrl)
