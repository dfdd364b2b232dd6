"""The basic plan's dashboard page: the survey as a form (examples pre-filled and marked as
examples), answered by the planner's own ranking, phases, effects, costs and privacy."""

from __future__ import annotations

from typing import Any

import pytest

from cityos.plug import FIELD_KINDS, FormError, Panel
from cityos.services.city.plan import PHASES, make_plan
from cityos.services.city.plan_data import EXAMPLES, cities, example_answers, find_city, survey
from cityos.services.city.plan_evidence import find_results_dir
from cityos.services.city.plan_page import answer, form, plan_of, prefilled
from cityos.services.city.service import SERVICE

from .test_plan_helpers import generic


def _panel(panels: list[Panel], title: str) -> Panel:
    found = [p for p in panels if p.title == title]
    assert found, f"no panel {title!r} in {[p.title for p in panels]}"
    return found[0]


def _fields() -> dict[str, dict[str, Any]]:
    (panel,) = form(None)
    assert panel.kind == "form" and panel.data["submit"]
    return {f["name"]: f for f in panel.data["fields"]}


def test_the_page_is_the_city_services_with_a_form_and_an_answer() -> None:
    page = next(p for p in SERVICE.pages() if p.slug == "plan")
    assert page.title == "Basic plan" and page.order == 95 and page.answer is answer
    assert page.watch == () and page.reads == ()  # nothing from the hub


def test_the_form_asks_for_a_city_and_every_question() -> None:
    fields = _fields()
    assert list(fields)[:2] == ["city", "example"]
    assert [q.id for q in survey()] == list(fields)[2:]
    assert all(f["kind"] in FIELD_KINDS and f["label"] for f in fields.values())
    city = fields["city"]
    assert [o["value"] for o in city["options"]] == [c.name for c in cities()]  # the 26
    for q in survey():
        kind = {"scale": "range", "yesno": "checkbox", "choice": "select"}[q.type]
        assert fields[q.id]["kind"] == kind and fields[q.id]["group"] == q.section
        if q.type == "choice":
            assert [o["value"] for o in fields[q.id]["options"]] == list(q.values)


def test_examples_are_filled_in_and_marked_as_examples() -> None:
    fields = _fields()
    first = find_city(fields["city"]["value"])
    assert first.slug in EXAMPLES  # the form opens on a city with shipped examples
    shipped = example_answers(first.slug)["answers"]
    assert {q: fields[q]["value"] for q in shipped} == shipped
    assert fields["example"]["value"] is True and "not the city's own" in fields["example"]["label"]
    fills = fields["city"]["fills"]
    assert set(fills) == {c.name for c in cities()}
    for c in cities():
        assert fills[c.name]["example"] is True  # whatever is filled in is made up
        if c.slug in EXAMPLES:
            assert {k: v for k, v in fills[c.name].items() if k != "example"} == (
                example_answers(c.slug)["answers"]
            )


def _values(city: str, **changes: Any) -> dict[str, Any]:
    return {"city": city, "example": True, **prefilled(find_city(city)), **changes}


@pytest.mark.parametrize("city", ["Phnom Penh", "Bangkok"])
def test_the_answer_is_the_planners_own_ranking(city: str) -> None:
    values = _values(city)
    panels = answer(None, values)
    plan = make_plan(city, example_answers(find_city(city).slug), results_dir=find_results_dir())
    table = _panel(panels, "Services by phase").data
    ranks = {row[2]: row for row in table["rows"]}
    assert [ranks[r][3] for r in sorted(ranks)] == [
        s.info.title for s in sorted(plan.services, key=lambda s: s.rank)
    ]
    for s in plan.services:  # each in the planner's phase, with its need score
        row = ranks[s.rank]
        assert row[:2] == [s.phase, PHASES[s.phase]] and row[4] == round(s.score, 2)
    phases = [row[0] for row in table["rows"]]
    assert phases == sorted(phases)  # by phase
    # the example says so first
    assert panels[0].title.startswith("EXAMPLE") and panels[0].data[0] == plan.notices[0]


def test_two_cities_rank_differently_from_their_answers() -> None:
    first = plan_of(_values("Phnom Penh"))
    second = plan_of(_values("Bangkok"))
    assert first.order() != second.order()
    assert first.order()[1] == "traffic"  # Phnom Penh's example puts traffic first
    changed = plan_of(_values("Phnom Penh", top_priority="energy", energy_cost=5))
    assert changed.order()[1] == "energy" and changed.order() == make_plan(
        "Phnom Penh",
        {**example_answers("phnom-penh"), "answers": {
            **example_answers("phnom-penh")["answers"], "top_priority": "energy", "energy_cost": 5
        }},
        results_dir=find_results_dir(),
    ).order()  # fmt: skip


def test_the_answer_holds_effects_devices_costs_and_privacy() -> None:
    city = find_city("Bangkok")
    panels = answer(None, _values(city.name))
    plan = plan_of(_values(city.name))
    effects = _panel(panels, "Expected effect on named indicators").data
    measured = [(s.key, e) for s in plan.services for e in s.effects if e.measured]
    assert measured
    for key, e in measured:  # each measured effect, its benchmark file cited
        assert [key, e.indicator, e.text] in [row[:3] for row in effects["rows"]]
        assert e.source.startswith("benchmarks/results/")
    needs = _panel(panels, "Devices and data each needs").data["rows"]
    assert {row[0] for row in needs} == {s.key for s in plan.services}
    chart = _panel(panels, "Cost by phase").data
    assert chart["kind"] == "bar" and len(chart["x"]) == len(PHASES)
    totals = plan.phase_totals()
    assert chart["series"][0]["values"] == [round(totals[p] / 1e6, 2) for p in PHASES]
    assumptions = _panel(panels, "Assumptions the costs rest on").data["rows"]
    assert {row[0] for row in assumptions} == {a["id"] for a in plan.assumptions.table()}
    privacy = _panel(panels, "Privacy measures required").data["rows"]
    assert [row[1] for row in privacy if row[0] == "flows"] == list(
        plan.service("flows").info.privacy
    )
    note = " ".join(_panel(panels, "The same plan as HTML and PDF").data)
    assert "cityos plan --city" in note and "--format pdf" in note


def test_answers_left_as_filled_in_are_never_the_citys_position() -> None:
    for city in ("Bangkok", "Hanoi"):  # shipped examples; the template's middle answers
        assert plan_of(_values(city, example=False)).example
        assert plan_of(_values(city)).example
    own = plan_of(_values("Hanoi", example=False, flooding=5, budget="over_20m"))
    assert not own.example and not own.notices[0].startswith("EXAMPLE")


def test_every_city_is_answered() -> None:
    for c in cities():
        plan = plan_of(
            {"city": c.name, "example": True, **generic(c)["answers"]}
        )  # the planner's own checks
        assert plan.city == c and plan.order()[0] == "hub"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"flooding": 9}, "flooding", "answers.flooding: expected 1–5, got 9"),
        ({"budget": "lots"}, "budget", "answers.budget: expected one of"),
        ({"bus_network": "maybe"}, "bus_network", "answers.bus_network: expected yes or no"),
        ({"flodding": 3}, "flodding", "answers.flodding: unknown question; did you mean"),
        ({"city": "Phnom Pen"}, "city", "city: unknown city 'Phnom Pen': did you mean Phnom Penh"),
        ({"city": ""}, "city", "city: choose one of the 26"),
        ({"example": "yes"}, "example", "example: expected true or false"),
    ],
)
def test_a_wrong_answer_is_refused_by_its_field(
    changes: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(FormError) as refused:
        answer(None, {**_values("Phnom Penh"), **changes})
    assert refused.value.field == field and str(refused.value).startswith(message)


def test_a_missing_answer_is_named() -> None:
    values = _values("Phnom Penh")
    del values["crowding"]
    with pytest.raises(FormError, match=r"^answers\.crowding: missing") as refused:
        answer(None, values)
    assert refused.value.field == "crowding"
