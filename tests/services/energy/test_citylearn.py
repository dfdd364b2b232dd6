"""Short episodes through the real CityLearn 1.3.6 worker (its own virtualenv).

``make citylearn`` builds ``.venv-citylearn``; without it these tests skip with that
reason, except under ``CI=true``, where they fail (as tests/interop does)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from cityos.services.energy.control import Observation, SiteInfo
from cityos.services.energy.errors import SimulatorError
from cityos.services.energy.sim.baselines import NoControl, RuleBased
from cityos.services.energy.sim.citylearn import EpisodeResult, citylearn_python, run_episode

slow = pytest.mark.slow  # each episode starts CityLearn: ~2 s on two shared cores

STEPS = 48
COMPONENTS = ("score", "cost", "carbon", "grid", "ramping", "load_factor")


def worker_python() -> Path:
    """CityLearn's interpreter; skip (fail under CI=true) when its virtualenv is missing."""
    try:
        return citylearn_python()
    except SimulatorError as exc:
        message = f"{exc} (make test does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def episodes() -> dict[str, EpisodeResult]:
    python = worker_python()
    return {c.name: run_episode(c, steps=STEPS, python=python) for c in (NoControl(), RuleBased())}


@slow
@pytest.mark.parametrize("name", ["none", "rule-based"])
def test_our_score_equals_citylearns(episodes: dict[str, EpisodeResult], name: str) -> None:
    result = episodes[name]
    assert result.steps == STEPS
    for k in COMPONENTS:
        assert getattr(result.ours, k) == pytest.approx(getattr(result.citylearn, k), abs=1e-9), k
    assert result.disagreement() < 1e-9


@slow
def test_no_control_is_the_reference(episodes: dict[str, EpisodeResult]) -> None:
    result = episodes["none"]
    assert all(getattr(result, k) == pytest.approx(1.0) for k in COMPONENTS)
    assert result.series.net == result.series.net_no_storage
    assert all(s == 0.0 for soc in result.series.soc for s in soc)


@slow
def test_rule_based_actions_follow_the_clock_within_bounds(
    episodes: dict[str, EpisodeResult],
) -> None:
    result = episodes["rule-based"]
    actions = result.series.actions
    assert len(actions) == 5 and all(len(a) == STEPS - 1 for a in actions)
    assert all(-1.0 <= a <= 1.0 for per_building in actions for a in per_building)
    # the data start at hour 24: nine hours of charging (24, 1..8), then 13 of discharging
    assert actions[0][:9] == (0.091,) * 9
    assert actions[0][9:22] == (-0.08,) * 13
    assert result.score != pytest.approx(1.0)


@slow
def test_state_of_charge_moves_as_commanded(episodes: dict[str, EpisodeResult]) -> None:
    """Charging a·capacity from the grid stores it less the losses; discharging takes more
    out of the battery than it delivers, until it is empty (1.3.6's one-way efficiency is
    sqrt of 0.83–0.9 by power)."""
    result = episodes["rule-based"]
    low, high = math.sqrt(0.83), math.sqrt(0.9)
    for b, (soc, actions) in enumerate(zip(result.series.soc, result.series.actions, strict=True)):
        assert soc[0] == result.site.buildings[b].soc_init == 0.0
        for t in range(len(soc) - 1):
            a, moved = actions[t], soc[t + 1] - soc[t]
            if a > 0:
                assert a * low - 1e-6 <= moved <= a * high + 1e-6, (b, t, a, moved)
            elif soc[t] + a / low > 0:  # not emptied this hour
                assert a / low - 1e-6 <= moved <= a / high + 1e-6, (b, t, a, moved)
            else:
                assert soc[t + 1] == pytest.approx(0.0, abs=1e-9), (b, t)
            # and the building's draw shows it the hour after the action
            drawn = result.series.net[b][t + 1] - result.series.net_no_storage[b][t + 1]
            assert math.copysign(1, drawn) == math.copysign(1, moved) or abs(moved) < 1e-12


class Foresight:
    """Records what it is shown; asks for the future."""

    name = "foresight"
    needs_future = True

    def reset(self, site: SiteInfo) -> None:
        self.site = site
        self.seen: list[Observation] = []

    def act(self, obs: Observation) -> list[float]:
        self.seen.append(obs)
        return [0.0] * len(self.site.buildings)


@slow
def test_the_future_is_given_only_to_a_controller_that_needs_it() -> None:
    python = worker_python()
    ahead, plain = Foresight(), Foresight()
    plain.needs_future = False  # type: ignore[misc]
    run_episode(ahead, steps=6, python=python)
    run_episode(plain, steps=6, python=python)
    assert plain.site.future is None
    future = ahead.site.future
    assert future is not None
    assert len(future.price) == len(future.carbon) == 6 and len(future.load_kwh) == 5
    # step t of the future is what the observation of step t then reports
    for obs in ahead.seen:
        assert obs.load_kwh == tuple(f[obs.t] for f in future.load_kwh)
        assert obs.solar_kwh == tuple(f[obs.t] for f in future.solar_kwh)
        assert (obs.price, obs.carbon) == (future.price[obs.t], future.carbon[obs.t])
    first = ahead.seen[0]
    assert (first.t, first.month, first.hour, first.day_type) == (0, 7, 24, 7)
    assert "electricity_pricing_predicted_24h" in first.extra


@slow
def test_an_action_out_of_range_is_the_controllers_error() -> None:
    class Wild(NoControl):
        name = "wild"

        def act(self, obs: Observation) -> list[float]:
            return [1.5] * self.n

    with pytest.raises(ValueError, match=r"'wild' gave action 1.5 at step 0"):
        run_episode(Wild(), steps=4, python=worker_python())


def test_a_missing_virtualenv_says_make_citylearn(tmp_path: Path) -> None:
    with pytest.raises(SimulatorError, match="run `make citylearn`"):
        citylearn_python(root=tmp_path)


def test_a_worker_that_dies_says_make_citylearn() -> None:
    with pytest.raises(SimulatorError, match=r"stopped \(exit 1\) while starting.*make citylearn"):
        run_episode(NoControl(), steps=4, python=Path("/bin/false"))


def test_a_worker_that_dies_mid_episode_says_where_and_why(tmp_path: Path) -> None:
    """A stand-in for the worker's interpreter: one building, one hour, then a crash."""
    site = {"type": "site", "steps": 4, "step_hours": 1.0, "buildings": [
        {"name": "B", "capacity_kwh": 6.4, "power_kw": 5.0, "efficiency": 0.95, "soc_init": 0.0}
    ]}  # fmt: skip
    obs = {"type": "obs", "t": 0, "month": 1, "hour": 1, "day_type": 1,
           "non_shiftable_load": [1.0], "solar_generation": [0.0],
           "electrical_storage_soc": [0.0], "net_electricity_consumption": [1.0],
           "electricity_pricing": [0.2], "carbon_intensity": 0.1,
           "outdoor_dry_bulb_temperature": 20.0}  # fmt: skip
    fake = tmp_path / "python"
    fake.write_text(
        "#!/bin/sh\n"
        f"echo '{json.dumps(site)}'\necho '{json.dumps(obs)}'\n"
        "read line\necho 'MemoryError: out of memory' >&2\nexit 3\n"
    )
    fake.chmod(0o755)
    with pytest.raises(SimulatorError, match=r"stopped \(exit 3\) at step 0: MemoryError") as e:
        run_episode(NoControl(), steps=4, python=fake)
    assert "make citylearn" in str(e.value)
