"""The 2022 score from series small enough to work out by hand (no CityLearn needed)."""

from __future__ import annotations

from fractions import Fraction as F

import pytest

from cityos.services.energy.score import (
    carbon_emissions,
    one_minus_load_factor,
    price_cost,
    ramping,
    score_2022,
)

# two buildings, four hours; district net = [3, -1, 2, 1], without storage [2, 1, 3, 2]
NET = [[1, -2, 3, 0], [2, 1, -1, 1]]
BASE = [[1, 0, 2, 1], [1, 1, 1, 1]]
PRICE = [1, 2, 1, 1]
CARBON = [0.5, 0.5, 1, 1]


def test_price_is_clipped_for_the_district_not_per_building() -> None:
    # district · price = [3, -2, 2, 1]: the export in hour 2 earns nothing, but it does
    # offset building 2's import that hour (per building it would be 4 + 5 = 9)
    assert price_cost(NET, PRICE) == 6
    assert price_cost(BASE, PRICE) == 9


def test_carbon_is_clipped_per_building() -> None:
    # building 1: [0.5, -1, 3, 0] -> 3.5; building 2: [1, 0.5, -1, 1] -> 2.5
    # (the district, [1.5, -0.5, 2, 1], would give 4.5)
    assert carbon_emissions(NET, CARBON) == 6
    assert carbon_emissions(BASE, CARBON) == 6.5


def test_ramping_sums_absolute_steps_of_the_district() -> None:
    assert ramping([3, -1, 2, 1]) == 4 + 3 + 1
    assert ramping([2, 1, 3, 2]) == 1 + 2 + 1


def test_load_factor_is_averaged_over_fixed_windows_from_the_start() -> None:
    district = [3, -1, 2, 1]
    assert one_minus_load_factor(district) == pytest.approx(1 - (5 / 4) / 3)  # one window
    # [3, -1]: 1 - 1/3; [2, 1]: 1 - 1.5/2
    assert one_minus_load_factor(district, window=2) == pytest.approx((2 / 3 + 1 / 4) / 2)
    # [3, -1, 2]: 1 - (4/3)/3; the short last window [1]: 1 - 1/1
    assert one_minus_load_factor(district, window=3) == pytest.approx((5 / 9 + 0) / 2)


def test_score_is_the_mean_of_cost_carbon_and_grid_relative_to_no_storage() -> None:
    got = score_2022(NET, BASE, PRICE, CARBON)
    cost, carbon = F(6, 9), F(6) / F(13, 2)
    ramp = F(8, 4)
    load = (1 - F(5, 4) / 3) / (1 - F(2, 1) / 3)  # 7/12 over 1/3
    grid = (ramp + load) / 2
    assert got.cost == pytest.approx(float(cost))
    assert got.carbon == pytest.approx(float(carbon))
    assert got.ramping == pytest.approx(float(ramp))
    assert got.load_factor == pytest.approx(float(load))
    assert got.grid == pytest.approx(float(grid))
    assert got.score == pytest.approx(float((cost + carbon + grid) / 3))
    assert set(got.as_dict()) == {"score", "cost", "carbon", "grid", "ramping", "load_factor"}


def test_no_control_scores_one_everywhere() -> None:
    got = score_2022(BASE, BASE, PRICE, CARBON)
    assert all(v == pytest.approx(1.0) for v in got.as_dict().values())


def test_series_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="buildings, steps"):
        score_2022(NET, BASE, PRICE[:3], CARBON)
    with pytest.raises(ValueError, match="buildings, steps"):
        score_2022(NET, BASE[:1], PRICE, CARBON)
