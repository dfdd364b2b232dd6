"""Survey answers files: a wrong value is refused with the field it is in."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from cityos.services.city.plan_answers import load_answers, parse_answers, template
from cityos.services.city.plan_data import survey
from cityos.services.city.plan_errors import AnswersError

from .test_plan_helpers import LOW, doc


def refused(document: Any) -> str:
    with pytest.raises(AnswersError) as err:
        parse_answers(document)
    return str(err.value)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("traffic_congestion", 9, "answers.traffic_congestion: expected 1–5, got 9"),
        ("traffic_congestion", 0, "answers.traffic_congestion: expected 1–5, got 0"),
        ("flooding", 2.5, "answers.flooding: expected 1–5, got 2.5"),
        ("flooding", True, "answers.flooding: expected 1–5, got True"),
        ("flooding", "4", "answers.flooding: expected 1–5, got '4'"),
        (
            "bus_network",
            "maybe",
            "answers.bus_network: expected yes or no (true/false), got 'maybe'",
        ),
        (
            "budget",
            "lots",
            "answers.budget: expected one of under_1m, 1m_5m, 5m_20m, over_20m, got 'lots'",
        ),
        ("top_priority", 3, "answers.top_priority: expected one of traffic, "),
    ],
)
def test_a_wrong_value_names_its_field(field: str, value: Any, message: str) -> None:
    assert refused(doc({**LOW, field: value})).startswith(message)


def test_a_missing_question_is_named_with_what_it_asks() -> None:
    answers = dict(LOW)
    del answers["energy_cost"]
    assert refused(doc(answers)).startswith(
        "answers.energy_cost: missing (expected 1–5): How heavy"
    )


def test_an_unknown_question_suggests_the_close_one() -> None:
    message = refused(doc({**LOW, "traffic_congestoin": 3}))
    assert (
        message == "answers.traffic_congestoin: unknown question; did you mean traffic_congestion?"
    )


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([1, 2], "file: expected a table/object at the top, got list"),
        ({"answers": 3}, "answers: expected a table of answers, got int"),
        ({"city": "Hanoi"}, "answers: expected a table of answers, got nothing"),
        ({**doc(LOW), "colour": "red"}, "colour: unknown field"),
        ({**doc(LOW), "example": "yes"}, "example: expected true or false, got 'yes'"),
        ({**doc(LOW), "city": 7}, "city: expected text, got int"),
    ],
)
def test_a_malformed_document_names_the_field(document: Any, message: str) -> None:
    assert refused(document).startswith(message)


def test_yes_and_no_may_be_words_and_whole_floats_are_scales() -> None:
    answers = parse_answers(doc({**LOW, "bus_network": "Yes", "tourism": "no", "flooding": 4.0}))
    assert answers.get("bus_network") is True and answers.get("tourism") is False
    assert answers.get("flooding") == 4 and answers.unanswered == ("top_priority",)


def test_toml_and_json_files(tmp_path: Path) -> None:
    toml_file = tmp_path / "answers.toml"
    toml_file.write_text(template("Phnom Penh"))
    from_toml = load_answers(toml_file)
    assert from_toml.city == "Phnom Penh" and not from_toml.example
    assert set(from_toml.values) == {q.id for q in survey()}
    json_file = tmp_path / "answers.json"
    json_file.write_text(template("Phnom Penh", "json"))
    assert load_answers(json_file).values == from_toml.values


def test_the_toml_template_documents_every_question() -> None:
    text = template()
    assert tomllib.loads(text)["answers"].keys() == {q.id for q in survey()}
    assert "# [Mobility] How severe is road congestion" in text


def test_a_broken_file_is_named(tmp_path: Path) -> None:
    bad_toml = tmp_path / "a.toml"
    bad_toml.write_text("[answers]\nflooding = = 3\n")
    with pytest.raises(AnswersError, match=r"^file: .*a\.toml is not valid TOML"):
        load_answers(bad_toml)
    bad_json = tmp_path / "a.json"
    bad_json.write_text("{")
    with pytest.raises(AnswersError, match=r"^file: .*a\.json is not valid JSON"):
        load_answers(bad_json)
    with pytest.raises(AnswersError, match=r"^file: cannot read"):
        load_answers(tmp_path / "missing.toml")


def test_a_bad_value_in_a_toml_file_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "city.toml"
    path.write_text(template("Hanoi").replace("traffic_congestion = 3", "traffic_congestion = 9"))
    with pytest.raises(AnswersError) as err:
        load_answers(path)
    assert str(err.value) == "answers.traffic_congestion: expected 1–5, got 9"
    assert err.value.field == "answers.traffic_congestion"


def test_the_survey_covers_the_brief() -> None:
    ids = {q.id for q in survey()}
    wanted = {
        "traffic_congestion", "public_transport", "flooding", "energy_cost", "power_reliability",
        "air_quality", "public_safety", "cash_share", "unbanked", "privacy_readiness",
        "data_protection_law", "connectivity", "budget", "staff_skills",
    }  # fmt: skip
    assert wanted <= ids
    assert {q.type for q in survey()} == {"scale", "yesno", "choice"}
    assert json.dumps([q.id for q in survey()])  # ids are plain strings
