"""Tuning the cityos controller to a network: the search, what it ships, how it is used."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from cityos.services.traffic import (
    CityOSParams,
    NetworkFileError,
    Scenario,
    TrafficError,
    make_controller,
)
from cityos.services.traffic.controllers import presets
from cityos.services.traffic.controllers.presets import tuned_params
from cityos.services.traffic.sim.tuning import SPACE, tune

# A made-up delay surface with its minimum inside the searched space, away from the
# defaults: the search must find its way there.
TARGET = {"moving_weight": 1.3, "switch_margin": 2.0, "exit_weight": 0.2}


def _bowl(batch: list[tuple[object, int, dict[str, float]]]) -> list[float]:
    out = []
    for _, seed, params in batch:
        full = {**asdict(CityOSParams()), **params}
        d = 20.0 + sum((full[k] - v) ** 2 for k, v in TARGET.items()) + 0.01 * (seed - 100)
        out.append(d)
    return out


def test_the_search_improves_on_the_defaults_and_stays_in_bounds(tiny: Scenario) -> None:
    seen: list[tuple[int, int, float]] = []
    result = tune(
        tiny,
        seeds=[100, 101],
        budget=60,
        validation_seeds=[],
        evaluate=_bowl,
        progress=lambda done, total, best: seen.append((done, total, best)),
    )
    assert result.evaluations == 60 == len(result.history)
    assert result.delay_s < result.default_delay_s - 1.0
    assert result.delay_s == min(h["delay_s"] for h in result.history)
    full = {**asdict(CityOSParams()), **result.params}
    assert abs(full["moving_weight"] - 1.3) < 0.3 and abs(full["switch_margin"] - 2.0) < 0.6
    for h in result.history:
        for name, value in h["params"].items():
            low, high = SPACE[name]
            assert low <= value <= high
    assert [s[0] for s in seen] == list(range(1, 61))
    assert all(
        b1 >= b2 for (_, _, b1), (_, _, b2) in zip(seen, seen[1:], strict=False)
    )  # best only falls


def test_the_choice_is_made_on_validation_seeds_not_on_training_luck(tiny: Scenario) -> None:
    # training seeds reward a region (moving_weight above 1.4) that validation seeds punish
    def lucky(batch: list[tuple[object, int, dict[str, float]]]) -> list[float]:
        base = _bowl(batch)
        return [
            d + (-3.0 if seed < 200 else 3.0) * (params["moving_weight"] > 1.4)
            for d, (_, seed, params) in zip(base, batch, strict=True)
        ]

    result = tune(
        tiny, seeds=[100], budget=40, validation_seeds=[200, 201], keep=40, evaluate=lucky
    )
    best_on_training = min(result.history, key=lambda h: h["delay_s"])
    assert best_on_training["params"]["moving_weight"] > 1.4  # the trap was taken in training
    assert {**asdict(CityOSParams()), **result.params}["moving_weight"] <= 1.4
    assert result.validation[0]["params"]["moving_weight"] == CityOSParams().moving_weight
    assert result.evaluations == len(result.history) + len(result.validation) > 40
    assert result.validation_delay_s == min(v["delay_s"] for v in result.validation)
    assert result.validation_delay_s < result.default_validation_delay_s


def test_a_second_pass_continues_the_first(tiny: Scenario) -> None:
    first = tune(tiny, seeds=[100], budget=10, validation_seeds=[], evaluate=_bowl)
    second = tune(
        tiny, seeds=[100], budget=10, validation_seeds=[], prior=first.history, evaluate=_bowl
    )
    assert second.history[:10] == first.history and len(second.history) == 20
    assert second.default_delay_s == first.default_delay_s
    assert second.delay_s <= first.delay_s
    with pytest.raises(TrafficError, match="differ"):
        tune(tiny, seeds=[100], validation_seeds=[100], evaluate=_bowl)


def test_a_prior_pass_over_a_smaller_space_is_continued_and_validated(tiny: Scenario) -> None:
    """Settings found before a parameter joined the space run with its default value."""
    first = tune(tiny, seeds=[100], budget=15, validation_seeds=[], evaluate=_bowl)
    older = [
        {**h, "params": {k: v for k, v in h["params"].items() if k != "demand_cap"}}
        for h in first.history
    ]
    result = tune(
        tiny, seeds=[100], budget=5, validation_seeds=[200], keep=3, prior=older, evaluate=_bowl
    )
    chosen = {**asdict(CityOSParams()), **result.params}
    trained = [
        h["delay_s"]
        for h in result.history
        if {**asdict(CityOSParams()), **h["params"]}.items() >= chosen.items()
    ]
    assert result.delay_s is not None and result.delay_s in trained
    assert len(result.validation) == 4


def test_a_tuned_setting_is_written_read_back_and_used(
    tiny: Scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(presets, "TUNED_DIR", tmp_path)
    result = tune(tiny, seeds=[100], budget=20, evaluate=_bowl)
    result.write(tmp_path / f"{tiny.name}.json")
    assert tuned_params(tiny.name) == result.params
    controller = make_controller("cityos", network=tiny.name)
    expected = CityOSParams(**result.params)
    assert controller.params == expected  # type: ignore[attr-defined]
    # an explicit option wins over the tuned value; other networks keep the defaults
    assert (
        make_controller("cityos", network=tiny.name, switch_margin=0.25).params.switch_margin
        == 0.25
    )  # type: ignore[attr-defined]
    assert make_controller("cityos", network="elsewhere").params == CityOSParams()  # type: ignore[attr-defined]
    # controllers without parameters ignore the network
    assert make_controller("max-pressure", network=tiny.name).name == "max-pressure"


def test_a_corrupt_tuned_file_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(presets, "TUNED_DIR", tmp_path)
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "unknown.json").write_text(json.dumps({"params": {"no_such_knob": 1}}))
    for name in ("broken", "unknown"):
        with pytest.raises(TrafficError, match="tuned parameters"):
            tuned_params(name)


def test_bad_requests_fail_before_any_simulation(tiny: Scenario, tmp_path: Path) -> None:
    with pytest.raises(TrafficError, match="budget"):
        tune(tiny, budget=0, evaluate=_bowl)
    with pytest.raises(TrafficError, match="seed"):
        tune(tiny, seeds=[], evaluate=_bowl)
    missing = Scenario(
        name="gone", net_file=tmp_path / "gone.net.xml", route_files=(), begin=0.0, end=60.0
    )
    with pytest.raises(NetworkFileError, match="does not exist"):
        tune(missing, evaluate=_bowl)


def test_tuning_runs_real_simulated_hours_in_fresh_processes(tiny: Scenario) -> None:
    result = tune(tiny, seeds=[1, 2], budget=2, validation_seeds=[3], keep=1, jobs=2)
    assert result.evaluations == 4 and len(result.validation) == 2
    for h in result.history:
        assert len(h["per_seed"]) == 2 and all(d > 0.0 for d in h["per_seed"])
    # every hour in a fresh process: the same setting on the same seeds, the same figures
    again = tune(tiny, seeds=[1, 2], budget=1, validation_seeds=[], jobs=1)
    assert again.history[0]["per_seed"] == result.history[0]["per_seed"]


def test_the_shipped_settings_are_valid() -> None:
    for path in sorted(presets.TUNED_DIR.glob("*.json")):
        data = json.loads(path.read_text())
        assert data["network"] == path.stem
        assert set(data["params"]) <= set(SPACE)
        assert not set(data["training_seeds"]) & {0, 1, 2}  # never the benchmark's seeds
        if data.get("validation"):  # chosen on hours it was not searched on
            assert data["validation_delay_s"] <= data["default_validation_delay_s"]
        else:
            assert data["delay_s"] <= data["default_delay_s"]
        CityOSParams(**tuned_params(path.stem))
