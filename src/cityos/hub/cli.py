"""The hub's commands: ``cityos db`` (create, migrate, inspect the database),
``cityos retention`` (delete history the retention rules no longer keep) and ``cityos load``
(a city's initial import, docs/load.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cityos.clikit import DbOption, JsonOption, console, err, fail, load_settings, open_database
from cityos.hub.tenancy import check_tenant_name

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


def load(
    file: Annotated[Path, typer.Argument(help="NGSI-LD JSON, JSON Lines, GeoJSON or CSV")],
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="json | jsonl | geojson | csv (default: by suffix)"),
    ] = None,
    mapping: Annotated[
        Path | None, typer.Option(help="CSV: the mapping of columns to attributes (TOML or JSON)")
    ] = None,
    entity_type: Annotated[
        str | None, typer.Option("--type", help="GeoJSON: the type of features that name none")
    ] = None,
    context: Annotated[
        str | None,
        typer.Option(help="The @context URL the file's terms are in (default: the core context)"),
    ] = None,
    tenant: Annotated[
        str, typer.Option(help="The tenant to load into (default: the default)")
    ] = "",
    update: Annotated[
        bool,
        typer.Option(
            "--update", help="Keep attributes of existing entities the file does not name"
        ),
    ] = False,
    errors_out: Annotated[
        Path | None, typer.Option("--errors", help="Write every refused entity here (JSON Lines)")
    ] = None,
    database_url: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Load a city's entities (an initial import) through the same validation and batch
    upsert as the API; each refused entity is reported with its place in the file."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    from cityos.hub.core import Hub
    from cityos.hub.load import LoadFormatError, load_items, read_items
    from cityos.hub.load.formats import read_mapping

    if not file.is_file():
        raise fail(f"[red]{file}:[/red] no such file")
    if tenant:
        try:
            check_tenant_name(tenant)
        except Exception as exc:  # BadRequestData: the name's rules
            raise fail(f"[red]--tenant {tenant!r}:[/red] {exc}") from None
    settings = load_settings(database_url)
    store = open_database(settings)
    hub = Hub(settings, store=store)
    try:
        try:
            hub.contexts.resolve(context)
        except Exception as exc:
            raise fail(f"[red]--context {context}:[/red] cannot be resolved: {exc}") from None
        progress = Progress(
            TextColumn("[bold]loading {task.fields[entities]:,} entities"),
            BarColumn(),
            DownloadColumn(),
            TimeElapsedColumn(),
            console=err,
            disable=json_out,
        )
        try:
            mapped = read_mapping(mapping) if mapping is not None else None
            items = read_items(file, fmt, mapping=mapped, entity_type=entity_type)
            with progress:
                task = progress.add_task("load", total=file.stat().st_size, entities=0)
                report = load_items(
                    hub,
                    items,
                    tenant=tenant,
                    context=context,
                    replace=not update,
                    progress=lambda n, b: progress.update(task, completed=b, entities=n),
                )
        except LoadFormatError as exc:
            raise fail(f"[red]cannot load {file.name}:[/red] {exc}") from None
    finally:
        hub.close()
    if errors_out is not None:
        try:
            errors_out.write_text("".join(json.dumps(e) + "\n" for e in report.errors))
        except OSError as exc:  # the load is done; only the list of refusals is lost
            err.print(f"[red]cannot write --errors {errors_out}:[/red] {exc.strerror or exc}")
    if json_out:
        print(json.dumps(report.as_dict()))
    else:
        console.print(
            f"{report.read:,} read: {report.created:,} created, {report.replaced:,} replaced, "
            f"{report.failed:,} refused in {report.seconds:.1f} s "
            f"({report.per_second:,.0f} entities/s)"
        )
        for e in report.errors[:10]:
            err.print(f"  {e['where']} {e['id']}: {e['error']}", soft_wrap=True, highlight=False)
        if report.failed > 10:
            err.print(f"  … {report.failed - 10:,} more (--errors FILE writes them all)")
    if report.failed:
        raise typer.Exit(1)
