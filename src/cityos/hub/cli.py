"""The hub's commands: ``cityos db`` (create, migrate, inspect the database) and
``cityos retention`` (delete history the retention rules no longer keep)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from cityos.clikit import DbOption, JsonOption, console, err, load_settings, open_database

db_app = typer.Typer(help="Create, migrate and inspect the hub's database.", no_args_is_help=True)
retention_app = typer.Typer(
    help="Delete history older than the retention rules allow.", no_args_is_help=True
)


@db_app.command("init")
def db_init(database_url: DbOption = None, json_out: JsonOption = False) -> None:
    """Create the database schema (same as migrate on an empty database)."""
    db_migrate(database_url, json_out)


@db_app.command("migrate")
def db_migrate(database_url: DbOption = None, json_out: JsonOption = False) -> None:
    """Carry the schema forward to the newest version; safe to run again."""
    settings = load_settings(database_url)
    store = open_database(settings)
    try:
        before = store.schema_version()
        steps = store.migrate()
        after = store.schema_version()
    finally:
        store.close()
    if json_out:
        print(json.dumps({"from": before, "to": after, "applied": steps}))
    elif steps:
        console.print(
            f"migrated {settings.database_url} from v{before} to v{after}: {', '.join(steps)}"
        )
    else:
        console.print(f"{settings.database_url} is up to date (v{after})")


@db_app.command("stats")
def db_stats(database_url: DbOption = None, json_out: JsonOption = False) -> None:
    """Counts of tenants, entities and history rows, and the size on disk."""
    settings = load_settings(database_url)
    store = open_database(settings)
    try:
        if store.schema_version() == 0:
            err.print(f"{settings.database_url} has no CityOS schema yet: run 'cityos db init'")
            raise typer.Exit(1)
        stats = store.stats()
    finally:
        store.close()
    if json_out:
        print(json.dumps(stats))
        return
    table = Table(title=f"CityOS database ({stats['engine']})")
    table.add_column("what")
    table.add_column("value", justify="right")
    for key, value in stats.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    console.print(table)


@retention_app.command("run")
def retention_run(
    rule: Annotated[
        list[str] | None,
        typer.Option(
            "--rule",
            "-r",
            help="A rule like TrafficFlowObserved.intensity=90d (repeatable); default: the CITYOS_RETENTION setting.",
        ),
    ] = None,
    database_url: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Apply the retention rules once and report what each deleted."""
    from cityos.hub.core import Hub
    from cityos.hub.errors import NgsiLdError
    from cityos.hub.retention import retention_rules, run_retention

    settings = load_settings(database_url)
    if rule:
        settings.retention = list(rule)
    if not settings.retention:
        err.print("no retention rules: give --rule TYPE[.ATTR]=DURATION or set CITYOS_RETENTION")
        raise typer.Exit(2)
    hub = Hub(settings, store=open_database(settings))
    try:
        try:
            rules = retention_rules(hub)
        except (ValueError, NgsiLdError) as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from exc
        results = run_retention(hub.store, rules)
    finally:
        hub.close()
    if json_out:
        print(json.dumps([r.__dict__ for r in results]))
        return
    table = Table(title="History retention")
    for col in ("rule", "deleted before", "rows deleted"):
        table.add_column(col)
    for r in results:
        table.add_row(r.rule, r.cutoff, f"{r.deleted:,}")
    console.print(table)
