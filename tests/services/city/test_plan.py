"""The basic plan: every ASCN city gets one, the ranking follows the answers, readiness
decides the phases, costs scale with the city, effects come from the benchmark files."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from cityos.services.city.plan import RANKED, make_plan
from cityos.services.city.plan_costs import load_assumptions, number
from cityos.services.city.plan_data import EXAMPLES, cities, example_answers, find_city
from cityos.services.city.plan_errors import AnswersError, PlanError, UnknownCity

from .test_plan_helpers import generic, low

ROOT = Path(__file__).resolve().parents[3]
RESULTS = ROOT / "benchmarks" / "results"
ASCN = [
    "Bandar Seri Begawan", "Battambang", "Phnom Penh", "Siem Reap", "Makassar", "Banyuwangi",
    "DKI Jakarta", "Luang Prabang", "Vientiane", "Johor Bahru", "Kota Kinabalu", "Kuala Lumpur",
    "Kuching", "Mandalay", "Nay Pyi Taw", "Yangon", "Cebu City", "Davao City", "Manila",
    "Singapore", "Bangkok", "Chonburi", "Phuket", "Da Nang", "Hanoi", "Ho Chi Minh City",
]  # fmt: skip


def test_the_26_pilot_cities_with_sources() -> None:
    assert sorted(c.name for c in cities()) == sorted(ASCN)
    for c in cities():
        assert c.population > 10_000 and c.area_km2 > 10
        assert 1990 < c.population_year <= 2025 and c.population_source and c.area_source
        assert -11 < c.lat < 29 and 92 < c.lon < 141  # inside ASEAN
        assert c.as_dict()["approximate"] is True


@pytest.mark.parametrize("name", ASCN)
def test_every_city_gets_a_plan(name: str) -> None:
    city = find_city(name)
    plan = make_plan(city, generic(city), results_dir=RESULTS)
    assert plan.order()[0] == "hub" and plan.service("hub").phase == 1
    assert sorted(plan.order()) == sorted(["hub", *RANKED])
    assert all(s.phase in (1, 2, 3) for s in plan.services)
    data = json.loads(json.dumps(plan.as_dict()))
    assert data["example"] is True and data["notices"][0].startswith("EXAMPLE")
    assert data["city"]["name"] == name and data["costs"]["recommended_total_usd"] > 0


@pytest.mark.parametrize("slug", EXAMPLES)
def test_shipped_examples_are_marked_as_examples(slug: str) -> None:
    answers = example_answers(slug)
    assert answers["example"] is True and "EXAMPLE" in answers["note"]
    plan = make_plan(answers["city"], answers, results_dir=RESULTS)
    assert plan.example and "not" in plan.notices[0] and plan.city.name in plan.notices[0]


@pytest.mark.parametrize(
    ("changes", "first"),
    [
        ({"traffic_congestion": 5, "signal_control": "fixed_time"}, "traffic"),
        ({"energy_cost": 5, "power_reliability": 1}, "energy"),
        ({"crowding": 5}, "flows"),
        ({"public_safety": 5}, "safety"),
        ({"cash_share": 5, "unbanked": 4}, "payments"),
        ({"kpi_reporting": True}, "indicators"),
    ],
)
def test_the_most_pressing_need_ranks_first(changes: dict[str, object], first: str) -> None:
    plan = make_plan("Phnom Penh", low(**changes), results_dir=None)
    assert plan.order()[:2] == ["hub", first]
    assert plan.service(first).phase == 1 and plan.service(first).recommended


def test_high_congestion_puts_traffic_ahead_of_a_milder_energy_need() -> None:
    plan = make_plan("Bangkok", low(traffic_congestion=5, energy_cost=3), results_dir=None)
    assert plan.order().index("traffic") < plan.order().index("energy")
    assert any("traffic_congestion = 5" in d for d in plan.service("traffic").drivers)


def test_the_top_priority_can_overturn_a_close_ranking() -> None:
    close = {"crowding": 5, "public_safety": 4}
    assert make_plan("Manila", low(**close), results_dir=None).order()[1] == "safety"
    boosted = make_plan("Manila", low(**close, top_priority="flows"), results_dir=None)
    assert boosted.order()[1] == "flows"
    assert any("top priority" in d for d in boosted.service("flows").drivers)


def test_without_privacy_safeguards_flows_and_safety_wait() -> None:
    needy = {"crowding": 5, "public_safety": 5}
    ready = make_plan("Yangon", low(**needy), results_dir=None)
    assert ready.service("flows").phase == 1 and ready.service("safety").phase == 1
    unready = make_plan(
        "Yangon", low(**needy, data_protection_law=False, privacy_readiness=2), results_dir=None
    )
    for key in ("flows", "safety"):
        assert unready.service(key).phase >= 2
        assert any("privacy" in r for r in unready.service(key).reasons)


def test_poor_connectivity_delays_field_devices_not_energy() -> None:
    plan = make_plan(
        "Cebu City", low(traffic_congestion=5, energy_cost=5, connectivity=2), results_dir=None
    )
    assert plan.service("traffic").phase == 2 and plan.service("energy").phase == 1


def test_a_small_budget_takes_one_service_a_phase() -> None:
    needs = {"traffic_congestion": 5, "energy_cost": 5, "crowding": 5, "cash_share": 5}
    plan = make_plan("Hanoi", low(**needs, budget="under_1m"), results_dir=None)
    assert plan.as_dict()["phases"]["1"]["services"] == ["hub", plan.order()[1]]


def test_low_need_services_are_optional_and_last() -> None:
    plan = make_plan("Phuket", low(cash_share=5), results_dir=None)
    for key in ("traffic", "energy", "flows", "safety", "indicators"):
        assert not plan.service(key).recommended and plan.service(key).phase == 3
    assert plan.service("payments").recommended


def test_a_national_qr_scheme_without_a_codec_delays_payments() -> None:
    plan = make_plan("Vientiane", low(cash_share=5), results_dir=None)
    assert plan.service("payments").phase == 2
    assert any("LAO QR" in r for r in plan.service("payments").reasons)


def test_costs_scale_with_population() -> None:
    answers = low(traffic_congestion=5, energy_cost=5, crowding=5, public_safety=5, cash_share=5,
                  bus_network=True, flooding=5, air_quality=5)  # fmt: skip
    small = find_city("Luang Prabang")
    large = replace(small, population=small.population * 10, area_km2=small.area_km2 * 10)
    a, b = (make_plan(c, answers, results_dir=None) for c in (small, large))
    assert b.total_usd() > 3 * a.total_usd()
    for key in ("hub", "traffic", "energy", "flows", "safety", "payments"):
        assert b.service(key).cost.capex > a.service(key).cost.capex, key
    assert b.sizing.junctions > a.sizing.junctions and b.sizing.cameras > a.sizing.cameras


def test_flood_and_air_sensors_follow_the_answers() -> None:
    dry = make_plan("Kuching", low(), results_dir=None)
    wet = make_plan("Kuching", low(flooding=5, air_quality=4), results_dir=None)
    assert dry.sizing.water_sensors == 0 and wet.sizing.water_sensors > 0
    assert wet.service("hub").cost.capex > dry.service("hub").cost.capex


def test_assumptions_are_labelled_and_can_be_replaced() -> None:
    base = make_plan("Da Nang", low(traffic_congestion=5), results_dir=None)
    dear = make_plan(
        "Da Nang", low(traffic_congestion=5), results_dir=None, assumptions={"junction_kit": 24000}
    )
    assert dear.service("traffic").cost.capex > base.service("traffic").cost.capex
    row = next(r for r in dear.as_dict()["assumptions"]["items"] if r["id"] == "junction_kit")
    assert row["overridden"] and row["unit"] and row["basis"]
    with pytest.raises(PlanError, match=r"assumptions\.junction_kits: unknown"):
        load_assumptions({"junction_kits": 1})
    with pytest.raises(PlanError, match=r"assumptions\.server: expected a non-negative number"):
        load_assumptions({"server": -5})


def test_effects_are_read_from_the_benchmark_files(tmp_path: Path) -> None:
    runs = {"fixed": 40.0, "cityos": 30.0}
    resco = {
        "seeds": [0],
        "results": {"cologne8": {k: {"average_delay_s": {"mean": v}} for k, v in runs.items()}},
    }
    (tmp_path / "traffic-resco.json").write_text(json.dumps(resco))
    traffic = make_plan("Bangkok", low(traffic_congestion=5), results_dir=tmp_path).service(
        "traffic"
    )
    first = traffic.effects[0]
    assert first.measured and first.change_pct == -25.0
    assert "−25 %" in first.text and "benchmarks/results/traffic-resco.json" in first.text
    assert "not measured yet" in traffic.effects[-1].text  # traffic-priority.json is missing


def test_the_recorded_benchmarks_are_cited() -> None:
    plan = make_plan("Bangkok", low(traffic_congestion=5), results_dir=RESULTS)
    resco = json.loads((RESULTS / "traffic-resco.json").read_text())["results"]["cologne8"]
    expected = (
        resco["cityos"]["average_delay_s"]["mean"] / resco["fixed"]["average_delay_s"]["mean"] - 1
    ) * 100
    assert plan.service("traffic").effects[0].change_pct == round(expected, 1)
    assert plan.service("energy").effects[0].source == "benchmarks/results/energy-citylearn.json"


def test_without_results_every_effect_is_not_measured_yet(tmp_path: Path) -> None:
    plan = make_plan("Bangkok", low(), results_dir=tmp_path)
    effects = [e for s in plan.services for e in s.effects]
    assert effects and all(not e.measured and "not measured yet" in e.text for e in effects)


def test_an_unreadable_results_file_is_said_not_claimed(tmp_path: Path) -> None:
    shutil.copy(RESULTS / "energy-grid.json", tmp_path / "energy-citylearn.json")  # wrong shape
    effect = make_plan("Bangkok", low(), results_dir=tmp_path).service("energy").effects[0]
    assert not effect.measured and "shape" in effect.text


def test_unknown_city_lists_close_matches() -> None:
    with pytest.raises(UnknownCity) as err:
        find_city("Phnom Pen")
    assert "Phnom Penh" in err.value.matches and "did you mean Phnom Penh" in str(err.value)
    with pytest.raises(UnknownCity, match="did you mean.*Kuala Lumpur"):
        find_city("Kuala Lumpor")
    with pytest.raises(UnknownCity, match="unknown city 'Atlantis'"):
        find_city("Atlantis")
    assert find_city("Saigon").name == "Ho Chi Minh City"
    assert (
        find_city("Đà Nẵng").name == "Da Nang" and find_city("kuala lumpur").name == "Kuala Lumpur"
    )


def test_answers_for_another_city_are_refused() -> None:
    answers = example_answers("bangkok")
    with pytest.raises(AnswersError, match=r"^city: the answers are for Bangkok, not Hanoi") as err:
        make_plan("Hanoi", answers, results_dir=None)
    assert err.value.field == "city"


def test_the_doc_describes_the_shipped_data() -> None:
    from cityos.services.city.plan_data import survey

    text = (ROOT / "docs" / "plan.md").read_text()
    for q in survey():
        assert f"| `{q.id}` |" in text, q.id
    for row in load_assumptions().table():
        assert f"| `{row['id']}` | {number(row['value'])} |" in text, row["id"]
    for c in cities():
        assert f"| {c.name} | {c.country} |" in text and f"{c.population:,}" in text, c.name
