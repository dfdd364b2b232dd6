"""The plan's outputs (JSON, self-contained HTML, PDF) and `cityos plan ...`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cityos.services.city.plan import make_plan
from cityos.services.city.plan_cli import app
from cityos.services.city.plan_data import example_answers
from cityos.services.city.plan_render import to_html, to_json, write

from .test_plan_helpers import LOW, doc

ROOT = Path(__file__).resolve().parents[3]
RESULTS = ROOT / "benchmarks" / "results"


@pytest.fixture(scope="module")
def plan():  # type: ignore[no-untyped-def]
    return make_plan("Phnom Penh", example_answers("phnom-penh"), results_dir=RESULTS)


def test_json_carries_the_example_mark_and_sources(plan) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(to_json(plan))
    assert data["example"] is True and data["notices"][0].startswith("EXAMPLE")
    traffic = next(s for s in data["services"] if s["service"] == "traffic")
    assert any("traffic-resco.json" in e["text"] for e in traffic["expected_effects"])
    assert traffic["devices"] and traffic["privacy_measures"] and traffic["cost"]["lines"]
    flows = next(s for s in data["services"] if s["service"] == "flows")
    assert any("ε = 1.0" in m for m in flows["privacy_measures"])


def test_html_is_self_contained(plan) -> None:  # type: ignore[no-untyped-def]
    html = to_html(plan)
    assert html.startswith("<!DOCTYPE html>") and html.count("<svg") >= 2
    assert "<script" not in html and not re.search(r"(src|href)=\"?https?:", html)
    assert html.count("EXAMPLE: these survey answers were made up") == 2  # top and bottom
    assert "benchmarks/results/traffic-resco.json" in html and "Cost assumptions" in html


def test_pdf_is_a_pdf(plan, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write(plan, "pdf", tmp_path / "plan.pdf")
    data = path.read_bytes()
    assert data.startswith(b"%PDF") and data.rstrip().endswith(b"%%EOF") and len(data) > 20_000


def cli() -> typer.Typer:
    root = typer.Typer()
    root.add_typer(app, name="plan")
    return root


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli(), ["plan", *args])


def test_cli_lists_the_26_cities() -> None:
    result = run("cities", "--json")
    assert result.exit_code == 0 and len(json.loads(result.stdout)) == 26


@pytest.mark.parametrize("fmt", ["json", "html", "pdf"])
def test_cli_writes_each_format(fmt: str, tmp_path: Path) -> None:
    answers = tmp_path / "pp.json"
    answers.write_text(json.dumps(doc({**LOW, "traffic_congestion": 5}, city="Phnom Penh")))
    out = tmp_path / f"plan.{fmt}"
    result = run(
        "--city", "Phnom Penh", "--answers", str(answers), "--format", fmt, "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    head = out.read_bytes()[:15]
    assert head.startswith({"json": b"{", "html": b"<!DOCTYPE html>", "pdf": b"%PDF"}[fmt])
    assert "hub, traffic" in result.stdout


def test_cli_prints_json_without_out(tmp_path: Path) -> None:
    result = run("--city", "Bangkok", "--example")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["order"][0] == "hub"


def test_cli_template_round_trips(tmp_path: Path) -> None:
    result = run("template", "--city", "saigon")
    assert result.exit_code == 0 and 'city = "Ho Chi Minh City"' in result.stdout
    path = tmp_path / "hcmc.toml"
    path.write_text(result.stdout)
    made = run("--answers", str(path), "--out", str(tmp_path / "p.json"))
    assert made.exit_code == 0, made.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--city", "Phnom Pen", "--example"],
            "unknown city 'Phnom Pen': did you mean Phnom Penh?",
        ),
        (["--city", "Hanoi", "--example"], "no example answers ship for 'Hanoi'"),
        (["--city", "Bangkok", "--example", "--format", "pdf"], "--format pdf needs --out FILE"),
        (
            ["--city", "Bangkok", "--example", "--format", "docx"],
            "--format: expected one of json, html, pdf",
        ),
        (["--city", "Bangkok"], "--answers FILE is required"),
    ],
)
def test_cli_errors_are_one_line(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.output


def test_cli_malformed_answers_name_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc({**LOW, "traffic_congestion": 9})))
    result = run("--city", "Manila", "--answers", str(path))
    assert result.exit_code == 2
    assert "answers.traffic_congestion: expected 1–5, got 9" in result.stderr
