"""``cityos energy …``: score a controller on CityLearn, plan a day for the district."""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from cityos.clikit import finite

app = typer.Typer(
    help="Energy: battery scheduling (LightGBM forecasts, HiGHS), CityLearn, chargers.",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    err.print(Text(message, style="red"), soft_wrap=True)  # one line, as written
    return typer.Exit(2)


def _bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )


@app.command()
def citylearn(
    controller: Annotated[
        str, typer.Option(help="none, rule, mpc, mpc-perfect-forecast or foresight (the bound)")
    ] = "mpc",
    steps: Annotated[
        int, typer.Option(min=24, max=8760, help="Hours from the start of the year")
    ] = 8760,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Run one controller on the CityLearn 2022 challenge (phase_1, 5 homes) and score it."""
    from .controllers import CONTROLLERS
    from .errors import EnergyError
    from .sim.citylearn import run_episode

    if controller not in CONTROLLERS:
        raise _fail(f"unknown controller {controller!r}; known: {', '.join(sorted(CONTROLLERS))}")
    with _bar() as bar:
        task = bar.add_task(f"CityLearn, {controller}", total=steps)
        try:
            result = run_episode(
                CONTROLLERS[controller](),
                steps,
                lambda done, total: bar.update(task, completed=done, total=total),
            )
        except EnergyError as exc:
            raise _fail(str(exc)) from None
    out = {
        "controller": controller,
        "steps": result.steps,
        "score": result.score,
        "cost": result.cost,
        "carbon": result.carbon,
        "grid": result.grid,
        "ramping": result.ramping,
        "load_factor": result.load_factor,
        "ours": result.ours.as_dict(),
        "seconds": round(result.seconds, 1),
    }
    if as_json:
        print(json.dumps(finite(out), allow_nan=False))
        return
    table = Table(title=f"CityLearn 2022 phase_1, {result.steps} h (lower is better; 1.0 = none)")
    for col in ("controller", "score", "cost", "carbon", "grid"):
        table.add_column(col)
    table.add_row(controller, *(f"{out[k]:.4f}" for k in ("score", "cost", "carbon", "grid")))
    console.print(table)


@app.command()
def plan(
    day: Annotated[str, typer.Option(help="The day to plan, YYYY-MM-DD (UTC hours)")],
    database_url: Annotated[
        str, typer.Option(envvar="CITYOS_DATABASE_URL", help="The hub's database")
    ] = "sqlite:///cityos.db",
    battery_kwh: Annotated[float, typer.Option(min=0.1, help="Battery per home, kWh")] = 6.4,
    battery_kw: Annotated[float, typer.Option(min=0.1, help="Its power, kW")] = 5.0,
    feeder_limit_kw: Annotated[
        float, typer.Option(min=0.0, help="The district's import limit, kW (0: none)")
    ] = 0.0,
    tenant: Annotated[str, typer.Option(help="Tenant of the meters")] = "",
    plot: Annotated[Path | None, typer.Option(help="Write a PNG of the day here")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Plan a day: forecast each meter, schedule the batteries, store it in the hub."""
    from cityos.config import Settings
    from cityos.hub.client import HubClient
    from cityos.hub.core import Hub

    from .errors import EnergyError
    from .mpc import Battery
    from .planner import plan_day, schedule_entities

    try:
        when = date.fromisoformat(day)
    except ValueError:
        raise _fail(f"--day {day!r} is not a date (YYYY-MM-DD)") from None
    pool_log = logging.getLogger("psycopg.pool")  # its retries would print a line each
    level = pool_log.level
    pool_log.setLevel(logging.CRITICAL)
    try:
        hub = Hub(Settings(database_url=database_url))
    except Exception as exc:  # a wrong URL or an unreachable server: one line
        raise _fail(f"cannot open the hub at {database_url}: {exc}") from None
    finally:
        pool_log.setLevel(level)
    try:
        client = HubClient(hub, tenant=tenant)
        with _bar() as bar:
            task = bar.add_task("meters", total=None)
            try:
                result = plan_day(
                    client,
                    when,
                    battery=Battery(battery_kwh, battery_kw),
                    feeder_limit_kwh=feeder_limit_kw or None,
                    progress=lambda _m: bar.advance(task),
                )
            except EnergyError as exc:
                raise _fail(str(exc)) from None
        client.upsert(schedule_entities(result), replace=True)
    finally:
        hub.close()
    if plot is not None:
        from .plot import plot_day

        plot_day(result, plot)
    out = {
        "day": when.isoformat(),
        "buildings": len(result.buildings),
        "status": "fallback" if result.fallback else "optimal",
        "reason": result.reason,
        "forecaster": result.forecaster,
        "filled_hours": result.filled_hours,
        "refused_readings": result.refused_readings,
        **result.summary,
    }
    if as_json:
        print(json.dumps(finite(out), allow_nan=False))
        return
    table = Table(title=f"Energy plan for {when} ({len(result.buildings)} buildings)")
    table.add_column("")
    table.add_column("no control")
    table.add_column("with the plan")
    for key in ("peak_kw", "cost", "carbon_kg"):
        table.add_row(key, f"{out[key + '_no_control']:.2f}", f"{out[key]:.2f}")
    console.print(table)
    if result.fallback:
        err.print(Text(f"safe plan: {result.reason}", style="yellow"))
