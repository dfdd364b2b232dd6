"""``cityos indicators ...``: the city's ISO 37120 / ISO 37122 / U4SSC report from the hub."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cityos.clikit import DbOption, console, fail, load_settings

app = typer.Typer(
    help="City indicators (ISO 37120, ISO 37122, ITU U4SSC) computed from the hub's data.",
    no_args_is_help=True,
)

TenantOption = Annotated[str, typer.Option(help="Tenant whose data to read and write")]


@contextlib.contextmanager
def _client(database_url: str | None, tenant: str) -> Iterator[Any]:
    """A HubClient on the database the settings name; a missing SQLite file or an
    unreachable server is one line and exit 2 (a report never creates a database)."""
    from cityos.hub.client import HubClient
    from cityos.hub.core import Hub

    settings = load_settings(database_url)
    url = settings.database_url
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            raise fail(f"no hub database at {path} (set --database-url or CITYOS_DATABASE_URL)")
    try:
        hub = Hub(settings)
    except Exception as exc:  # a wrong URL or an unreachable server: one line
        raise fail(f"cannot open the hub at {url}: {exc}") from None
    try:
        yield HubClient(hub, tenant=tenant)
    finally:
        hub.close()


@app.command()
def report(
    fmt: Annotated[str, typer.Option("--format", "-f", help="json, csv or html")] = "json",
    out: Annotated[
        Path | None, typer.Option(help="Write the report here (default: stdout)")
    ] = None,
    database_url: DbOption = None,
    tenant: TenantOption = "",
    population: Annotated[
        int | None, typer.Option(envvar="CITYOS_CITY_POPULATION", help="The city's population")
    ] = None,
    area_km2: Annotated[
        float | None, typer.Option(envvar="CITYOS_CITY_AREA_KM2", help="The city's area, km²")
    ] = None,
    city_name: Annotated[
        str, typer.Option("--city-name", envvar="CITYOS_CITY_NAME", help="The city's name")
    ] = "",
    registered_evs: Annotated[
        int | None,
        typer.Option(envvar="CITYOS_CITY_REGISTERED_EVS", help="Electric vehicles registered"),
    ] = None,
    start: Annotated[
        str | None, typer.Option("--from", help="Period start, ISO date (default: --to − 365 d)")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="Period end, ISO date (default: now)")
    ] = None,
    context: Annotated[
        list[str] | None,
        typer.Option(help="Also read entities written in this @context (URL); repeatable"),
    ] = None,
    store: Annotated[
        bool, typer.Option(help="Store each value as a KeyPerformanceIndicator entity (history)")
    ] = True,
) -> None:
    """Compute every indicator for the period, store it in the hub, print the report.

    Population and area come from the options, CITYOS_CITY_* or the hub's City entity;
    an indicator whose data the city does not have yet says what is missing."""
    from .indicators import IndicatorError, compute_report, facts_from_hub, store_report
    from .indicators_data import CityData
    from .indicators_model import CityFacts, Period
    from .indicators_render import FORMATS, render

    if fmt not in FORMATS:
        raise fail(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    try:
        period = Period.parse(start, end)
        given = CityFacts(city_name, population, area_km2, registered_evs)
    except IndicatorError as exc:
        raise fail(str(exc)) from None
    with _client(database_url, tenant) as client:
        contexts = None if not context else [client.context, *_sdm(), *context]
        try:
            data = CityData(client, contexts)
            facts = facts_from_hub(data, given)
            rows = compute_report(client, period, facts, contexts=contexts)
        except IndicatorError as exc:
            raise fail(str(exc)) from None
        except Exception as exc:  # a context that cannot be resolved, a store error
            raise fail(f"cannot read the hub: {exc}") from None
        if store:
            store_report(client, rows, at=datetime.now(UTC), organization=facts.name)
    text = render(rows, fmt, facts)
    if out is None:
        print(text)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise fail(f"cannot write {out}: {exc.strerror or exc}") from None
    ok = sum(1 for r in rows if r.outcome.status == "ok")
    console.print(f"{ok} of {len(rows)} indicators computed; report written to {out}")


def _sdm() -> list[Any]:
    from .indicators_data import SDM_CONTEXT

    return [SDM_CONTEXT]


@app.command("list")
def list_indicators(
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """The indicators: id, standard, name, unit, and what each reads."""
    from .indicators import INDICATORS

    if as_json:
        print(json.dumps([_describe(i) for i in INDICATORS], indent=2, ensure_ascii=False))
        return
    table = Table(title=f"{len(INDICATORS)} city indicators")
    for column in ("id", "standard", "name", "unit"):
        table.add_column(column)
    for i in INDICATORS:
        table.add_row(i.key, i.standard, i.name, i.unit)
    console.print(table)


def _describe(i: Any) -> dict[str, Any]:
    return {
        "id": i.key,
        "standard": i.standard,
        "name": i.name,
        "unit": i.unit,
        "theme": i.theme,
        "formula": i.formula,
        "reads": [str(r) for r in i.reads],
        "facts": list(i.facts),
        "reference_note": i.reference_note,
    }


@app.command()
def history(
    indicator_id: Annotated[str, typer.Argument(metavar="ID", help="The indicator's id")],
    database_url: DbOption = None,
    tenant: TenantOption = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """An indicator's stored values, oldest first (one per report)."""
    from cityos.hub.errors import ResourceNotFound

    from .indicators import IndicatorError, indicator, kpi_history

    try:
        ind = indicator(indicator_id)
    except IndicatorError as exc:
        raise fail(str(exc)) from None
    with _client(database_url, tenant) as client:
        try:
            points = kpi_history(client, ind.key)
        except ResourceNotFound:
            raise fail(
                f"no report has stored {ind.key} yet: run `cityos indicators report`"
            ) from None
    if as_json:
        print(json.dumps([{"observedAt": t, "value": v} for t, v in points], indent=2))
        return
    table = Table(title=f"{ind.name} ({ind.unit})")
    table.add_column("observed at")
    table.add_column("value", justify="right")
    for t, v in points:
        table.add_row(t, f"{v:g}" if isinstance(v, (int, float)) else str(v))
    console.print(table)
