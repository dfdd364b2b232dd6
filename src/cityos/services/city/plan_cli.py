"""``cityos plan ...``: a city's survey answers → its basic plan (JSON, HTML or PDF), and
the cities, survey and example answers the plan is made from."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from cityos.clikit import console, fail

from .plan_data import EXAMPLES, cities, example_answers, find_city, survey
from .plan_errors import PlanError

app = typer.Typer(
    help="The basic plan: a city's needs-survey answers → which CityOS services to deploy, "
    "when, with what effect, devices, data, cost and privacy measures (docs/plan.md).",
    add_completion=False,
)

CityOpt = Annotated[
    str | None,
    typer.Option(
        "--city", "-c", help="One of the 26 ASCN pilot cities (see `cityos plan cities`)."
    ),
]
AnswersOpt = Annotated[
    Path | None, typer.Option("--answers", "-a", help="The city's survey answers (TOML or JSON).")
]
ExampleOpt = Annotated[
    bool,
    typer.Option(
        "--example", help="Use the shipped example answers of the city (made up, not its position)."
    ),
]
FormatOpt = Annotated[
    str | None,
    typer.Option(
        "--format", "-f", help="json, html or pdf (default: from --out's suffix, else json)."
    ),
]
OutOpt = Annotated[
    Path | None, typer.Option("--out", "-o", help="Write here (default: stdout; pdf needs a file).")
]
AssumptionsOpt = Annotated[
    Path | None, typer.Option("--assumptions", help="JSON {id: value} replacing cost assumptions.")
]
ResultsOpt = Annotated[
    Path | None,
    typer.Option(
        "--results", help="Benchmark results folder (default: benchmarks/results of this checkout)."
    ),
]


@app.callback(invoke_without_command=True)
def plan(
    ctx: typer.Context,
    city: CityOpt = None,
    answers: AnswersOpt = None,
    example: ExampleOpt = False,
    fmt: FormatOpt = None,
    out: OutOpt = None,
    assumptions: AssumptionsOpt = None,
    results: ResultsOpt = None,
) -> None:
    """Make a city's basic plan:
    cityos plan --city "Phnom Penh" --answers FILE --format html --out plan.html"""
    if ctx.invoked_subcommand is not None:
        return
    if city is None and answers is None and not example:
        console.print(ctx.get_help())
        raise typer.Exit(0)
    try:
        _make(city, answers, example, fmt, out, assumptions, results)
    except PlanError as exc:
        raise fail(f"[red]error:[/red] {escape(str(exc))}") from exc


def _make(
    city: str | None, answers: Path | None, example: bool, fmt: str | None,
    out: Path | None, assumptions: Path | None, results: Path | None,
) -> None:  # fmt: skip
    """Check the options, make the plan, write it where asked."""
    from .plan import make_plan
    from .plan_answers import load_answers, parse_answers
    from .plan_render import FORMATS, to_html, to_json, write

    chosen = _format(fmt, out, FORMATS)
    given = _example(city) if example else load_answers(answers) if answers else None
    if given is None:
        raise PlanError(
            "--answers FILE is required (or --example; `cityos plan template` writes a blank file)"
        )
    given = (
        parse_answers(given, source=f"example answers of {city}")
        if isinstance(given, dict)
        else given
    )
    name = city or given.city
    if not name:
        raise PlanError("--city is required when the answers file names no city")
    result = make_plan(name, given, results_dir=results or "auto", assumptions=assumptions)
    if out is None:
        sys.stdout.write(to_json(result) if chosen == "json" else to_html(result))
        return
    write(result, chosen, out)
    console.print(
        f"wrote {escape(str(out))} ({chosen}): {', '.join(result.order())}", highlight=False
    )
    for line in result.notices[:1] if result.example else ():
        console.print(f"[magenta]{escape(line)}[/magenta]")


def _format(fmt: str | None, out: Path | None, formats: tuple[str, ...]) -> str:
    """The output format: --format, else --out's suffix, else json; pdf needs --out."""
    chosen = (fmt or (out.suffix.lstrip(".").lower() if out and out.suffix else "json")).lower()
    if chosen == "htm":
        chosen = "html"
    if chosen not in formats:
        raise PlanError(f"--format: expected one of {', '.join(formats)}, got {chosen!r}")
    if chosen == "pdf" and out is None:
        raise PlanError("--format pdf needs --out FILE (a PDF is not written to the terminal)")
    return chosen


def _example(city: str | None) -> dict[str, object]:
    """The shipped example answers of ``city``; the error lists the cities that have some."""
    if not city:
        raise PlanError("--example needs --city")
    slug = find_city(city).slug
    if slug not in EXAMPLES:
        shipped = ", ".join(find_city(s.replace("-", " ")).name for s in EXAMPLES)
        raise PlanError(
            f"no example answers ship for {city!r} (examples: {shipped}); give --answers FILE"
        )
    return example_answers(slug)


@app.command("cities")
def list_cities(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The 26 ASEAN Smart Cities Network pilot cities (approximate figures, with sources)."""
    rows = [c.as_dict() for c in cities()]
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
        return
    table = Table("city", "country", "population", "year", "area km²", "lat", "lon", "uncertainty")
    for c in cities():
        table.add_row(
            c.name,
            c.country,
            f"{c.population:,}",
            str(c.population_year),
            f"{c.area_km2:,.0f}",
            f"{c.lat:.2f}",
            f"{c.lon:.2f}",
            c.uncertainty,
        )
    console.print(table)
    console.print(
        "All figures approximate; sources in `cityos plan cities --json` and docs/plan.md."
    )


@app.command("survey")
def show_survey(
    as_json: Annotated[bool, typer.Option("--json", help="Print the survey as JSON.")] = False,
) -> None:
    """The needs survey: each question's id, type and what it informs."""
    from .plan_answers import expected
    from .plan_data import survey_doc

    if as_json:
        sys.stdout.write(json.dumps(survey_doc(), indent=2, ensure_ascii=False) + "\n")
        return
    table = Table("id", "section", "answer", "question", "informs")
    for q in survey():
        informs = ", ".join(f"{k} {w:g}" for k, w in q.need.items()) or (
            q.readiness or f"boost {q.boost:g}"
        )
        table.add_row(q.id, q.section, expected(q).removeprefix("expected "), q.text, informs)
    console.print(table)


@app.command("template")
def template_cmd(
    city: Annotated[str, typer.Option("--city", "-c", help="City name to put in the file.")] = "",
    fmt: Annotated[str, typer.Option("--format", "-f", help="toml or json.")] = "toml",
) -> None:
    """A blank answers file to fill in (every question, with its allowed answers)."""
    from .plan_answers import template

    if fmt not in ("toml", "json"):
        raise fail(f"[red]error:[/red] --format: expected toml or json, got {escape(fmt)!r}")
    if city:
        try:
            city = find_city(city).name
        except PlanError as exc:
            raise fail(f"[red]error:[/red] {escape(str(exc))}") from exc
    sys.stdout.write(template(city, fmt))


@app.command("examples")
def list_examples() -> None:
    """The example answers shipped with CityOS (made up; never a city's own position)."""
    for slug in EXAMPLES:
        doc = example_answers(slug)
        console.print(
            f"{doc['city']}: cityos plan --city {json.dumps(doc['city'])} --example"
            f"  [dim](example: {doc['example']})[/dim]",
            highlight=False,
        )
