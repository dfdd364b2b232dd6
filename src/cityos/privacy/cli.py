"""``cityos privacy …``: the privacy report, residents' access and erasure requests, and the
retention job run by hand. Every error is one line and exit status 2."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

app = typer.Typer(
    help="Privacy: the report of personal data held, access/erasure requests, retention.",
    no_args_is_help=True,
)
request_app = typer.Typer(help="A resident's request, answered by pseudonym.", no_args_is_help=True)
app.add_typer(request_app, name="request")
console = Console()
err = Console(stderr=True)

DatabaseUrl = Annotated[
    str,
    typer.Option(envvar="CITYOS_DATABASE_URL", help="The hub's database (default: settings)"),
]
Tenant = Annotated[str | None, typer.Option(help="Tenant (default: [services.privacy] tenant)")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON")]


def fail(message: str) -> typer.Exit:
    err.print(Text(message, style="red"), soft_wrap=True)
    return typer.Exit(2)


@contextmanager
def opened(database_url: str, tenant: str | None) -> Iterator[tuple[Any, Any]]:
    """(client, privacy settings) on the configured hub; one-line errors."""
    from cityos.config import Settings
    from cityos.hub.client import HubClient
    from cityos.hub.core import Hub

    from .settings import load_settings

    try:
        core = Settings.load()
        settings = load_settings(core)
    except (ValueError, OSError) as exc:
        raise fail(f"settings: {exc}") from None
    url = database_url or core.database_url
    pool_log = logging.getLogger("psycopg.pool")
    level = pool_log.level
    pool_log.setLevel(logging.CRITICAL)
    try:
        hub = Hub(Settings(database_url=url))
    except Exception as exc:  # a wrong URL or an unreachable server: one line
        raise fail(f"cannot open the hub at {url}: {exc}") from None
    finally:
        pool_log.setLevel(level)
    try:
        yield HubClient(hub, tenant=settings.tenant if tenant is None else tenant), settings
    finally:
        hub.close()


def _raw_id(value: str) -> str:
    """``-`` reads the identifier from stdin, so it stays out of shell history and ps."""
    raw = sys.stdin.readline().strip() if value == "-" else value.strip()
    if not raw:
        raise fail("--id is empty: give the identifier, or - to read it from stdin")
    return raw


@app.command()
def report(database_url: DatabaseUrl = "", tenant: Tenant = None, as_json: AsJson = False) -> None:
    """What personal data is held, why, on what legal basis, for how long, and what was
    released from it at what ε."""
    from .report import privacy_report

    with opened(database_url, tenant) as (client, settings):
        out = privacy_report(client, settings)
    if as_json:
        print(json.dumps(out, ensure_ascii=False))
        return
    table = Table(title="Datasets held (cityos privacy report --json for everything)")
    for col in ("dataset", "basis", "retention", "held", "past retention", "ε spent (days)"):
        table.add_column(col)
    for d in out["datasets"]:
        spent = sum(r["epsilonSpent"] for r in d["released"])
        table.add_row(
            d["dataset"],
            d["legalBasis"],
            d["retention"],
            str(d["recordsHeld"]),
            str(d["recordsPastRetention"]),
            f"{spent:.3g} ({len(d['released'])})",
        )
    console.print(table)
    for d in out["datasets"]:
        console.print(f"{d['dataset']}: {d['purpose']}", markup=False)
    if not out["datasets"]:
        err.print("no dataset declared yet: a service declares its datasets when it takes data in")


def _request(kind: str, raw: str, id_kind: str, database_url: str, tenant: str | None) -> Any:
    from cityos.hub.errors import NgsiLdError

    from .errors import PrivacyError
    from .pseudonym import Pseudonymiser
    from .requests import access, erase

    with opened(database_url, tenant) as (client, settings):
        try:
            pseudonymiser = Pseudonymiser.from_settings(settings)
            run = access if kind == "access" else erase
            return run(client, pseudonymiser, raw, id_kind)
        except (PrivacyError, NgsiLdError, ValueError) as exc:
            raise fail(str(exc)) from None


IdOption = Annotated[
    str, typer.Option("--id", help="The raw identifier (card number, MAC); - reads stdin")
]
KindOption = Annotated[str, typer.Option("--kind", help="What it is: card, mac or plate")]


@request_app.command("access")
def request_access(
    raw_id: IdOption,
    id_kind: KindOption = "card",
    database_url: DatabaseUrl = "",
    tenant: Tenant = None,
    as_json: AsJson = False,
) -> None:
    """Every record held about an identifier, in each period still within retention."""
    result = _request("access", _raw_id(raw_id), id_kind, database_url, tenant)
    out = result.as_dict()
    if as_json:
        print(json.dumps(out, ensure_ascii=False))
        return
    console.print(f"{out['records']} record(s) in {out['periodsSearched']} period(s)")
    for name, rows in out["datasets"].items():
        console.print(f"[bold]{name}[/bold]: {len(rows)}")
        for row in rows:
            console.print(json.dumps(row, ensure_ascii=False), soft_wrap=True, markup=False)


@request_app.command("erase")
def request_erase(
    raw_id: IdOption,
    id_kind: KindOption = "card",
    database_url: DatabaseUrl = "",
    tenant: Tenant = None,
    as_json: AsJson = False,
) -> None:
    """Delete every record held about an identifier, history included."""
    result = _request("erasure", _raw_id(raw_id), id_kind, database_url, tenant)
    out = result.as_dict()
    if as_json:
        print(json.dumps(out, ensure_ascii=False))
        return
    console.print(f"erased {out['records']} record(s) in {out['periodsSearched']} period(s)")
    for name, n in out["erased"].items():
        console.print(f"  {name}: {n}")


@app.command()
def retention(
    database_url: DatabaseUrl = "", tenant: Tenant = None, as_json: AsJson = False
) -> None:
    """Delete now what every declared dataset holds past its retention."""
    from .retention import run_retention

    with opened(database_url, tenant) as (client, _settings):
        results = run_retention(client)
    out = [{"dataset": r.dataset, "cutoff": r.cutoff, "deleted": r.deleted} for r in results]
    if as_json:
        print(json.dumps(out))
        return
    for r in out:
        console.print(f"{r['dataset']}: {r['deleted']} deleted (dated before {r['cutoff']})")
