"""The ``cityos`` command line: the root, ``serve``, ``demo``, ``services`` and ``doctor``.

Each package brings its own command groups in its own CLI module: the hub's ``db`` and
``retention`` (cityos.hub.cli) are mounted here; the built-in parts' (``devices``;
identity's ``users``, ``token`` and ``keys``; ``audit``) and every service's come through
the plug, from their ``Service`` declarations."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cityos.clikit import (
    DbOption,
    JsonOption,
    console,
    err,
    fail,
    finite,
    load_settings,
    open_database,
)
from cityos.config import Settings
from cityos.hub.cli import db_app, load, retention_app
from cityos.services.registry import ServiceLoadError, services

app = typer.Typer(
    help="CityOS: an open City OS — the NGSI-LD data hub and the city services on top of it.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(db_app, name="db")  # the hub's own groups
app.add_typer(retention_app, name="retention")
app.command("load")(load)


def _mount_services() -> None:
    """Each registered part's CLI groups (``cityos <name>``, or the groups it names) from
    the cityos.services entry points; one that cannot be loaded is a one-line error when
    the CLI runs."""
    try:
        registered = services()
    except ServiceLoadError:
        return  # main() reports it
    for service in registered:
        for group, typer_app in service.cli_groups().items():
            app.add_typer(typer_app, name=group)


_mount_services()


def _check_port(port: int) -> None:
    if not 1 <= port <= 65535:
        raise fail(f"[red]port {port} is out of range:[/red] give --port a number from 1 to 65535")


def _check_service_settings(settings: Settings) -> None:
    """Before serving: each registered part's own settings ([services.<name>],
    CITYOS_<NAME>_*) as it declares them; a wrong one is one line, exit 2."""
    from rich.markup import escape

    from cityos.services.settings import settings_of

    for service in services():
        try:
            settings_of(service, settings)
        except ValueError as exc:
            raise fail(f"[red]configuration error:[/red] {escape(str(exc))}") from exc


def _check_database(settings: Settings) -> None:
    """Before serving: a wrong, unreachable or unwritable database is one line, exit 2."""
    store = open_database(settings, code=2)
    try:
        store.schema_version()
    except Exception as exc:
        raise fail(
            f"[red]cannot use the database {settings.database_url}:[/red] {exc}"
            " (set --database-url or CITYOS_DATABASE_URL)"
        ) from exc
    finally:
        store.close()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port (NGSI-LD clients expect 1026).")] = None,
    database_url: DbOption = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes sharing the port and the database (use PostgreSQL for more "
            "than one); they split notification delivery and, with CITYOS_MQTT_URL, the device "
            "stream (MQTT 5 shared subscription).",
        ),
    ] = 1,
    insecure_listen_anywhere: Annotated[
        bool,
        typer.Option(
            "--insecure-listen-anywhere",
            help="Lab use only: listen on a non-loopback address WITHOUT authentication "
            "(anyone who can reach the port can read and change everything).",
        ),
    ] = False,
) -> None:
    """Serve the NGSI-LD API (default http://127.0.0.1:1026/ngsi-ld/v1)."""
    import uvicorn

    from cityos.web.app import create_app

    settings = load_settings(database_url, host=host, port=port)
    _check_port(settings.port)
    # -- hardening: no open hub on the network (docs/security.md) -------------------------
    from cityos.hub.netguard import is_loopback_host

    if not is_loopback_host(settings.host) and not settings.auth_required:
        if not insecure_listen_anywhere:
            err.print(
                f"[red]refusing to listen on {settings.host}:[/red] it is reachable from other "
                "machines and authentication is not configured, so anyone could read and change "
                "the city's data.\n"
                "Configure authentication (CITYOS_AUTH_REQUIRED=true, with tokens or API keys: "
                "see docs/security.md), or listen on 127.0.0.1 behind an authenticating proxy, "
                "or for a lab only pass --insecure-listen-anywhere."
            )
            raise typer.Exit(2)
        err.print(
            f"[yellow]warning:[/yellow] listening on {settings.host} WITHOUT authentication "
            "(--insecure-listen-anywhere)"
        )
    # -- end hardening --------------------------------------------------------------------
    where = f"http://{settings.host}:{settings.port}/ngsi-ld/v1"
    _check_service_settings(settings)
    _check_database(settings)
    if workers == 1:
        application = create_app(settings)
        console.print(
            f"CityOS hub on [bold]{where}[/bold] ({settings.database_url}) — Ctrl-C to stop"
        )
        uvicorn.run(
            application,
            host=settings.host,
            port=settings.port,
            log_level=log_level,
            access_log=False,
            **proxy_options(settings),
        )
        return
    # each worker process builds its app from the environment: hand it what the flags said
    os.environ["CITYOS_DATABASE_URL"] = settings.database_url
    os.environ["CITYOS_HOST"] = settings.host  # hardening: notify_allow_private=auto reads it
    if settings.mqtt_url and not settings.mqtt_shared_group:
        os.environ["CITYOS_MQTT_SHARED_GROUP"] = "cityos"
    store = open_database(settings, code=2)
    store.migrate()  # once, before the workers race to do it
    store.close()
    console.print(
        f"CityOS hub on [bold]{where}[/bold] ({settings.database_url}), {workers} workers"
        " — Ctrl-C to stop"
    )
    uvicorn.run(
        "cityos.web.app:create_app",
        factory=True,
        workers=workers,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        access_log=False,
        **proxy_options(settings),
    )


def proxy_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's X-Forwarded-For handling: only from ``trusted_proxies`` (uvicorn itself
    would trust 127.0.0.1, so any local client could pick its address: issue 11)."""
    if not settings.trusted_proxies:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": list(settings.trusted_proxies)}


DEMO_DATABASE_URL = "sqlite:///data/demo.db"


@app.command()
def demo(
    serve_after: Annotated[
        bool,
        typer.Option(
            "--serve/--no-serve",
            help="Serve the dashboard while the day runs and after it (default), or only run.",
        ),
    ] = True,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            "-d",
            help=f"Database URL (default: CITYOS_DATABASE_URL or the config file's database_url,"
            f" else {DEMO_DATABASE_URL}). A SQLite file is emptied first.",
        ),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to serve on (default: CITYOS_PORT, else 1026).")
    ] = None,
    minutes: Annotated[
        int,
        typer.Option(
            help="Minutes of the morning peak: sensors replayed and SUMO traffic (at least 1)."
        ),
    ] = 60,
    speed: Annotated[
        str,
        typer.Option(
            help="Simulated seconds per wall second (600: the day's 24 hours in 2.4 "
            "minutes, plus what SUMO takes), or max (no pauses).",
        ),
    ] = "600",
    json_out: JsonOption = False,
) -> None:
    """A day of a district of Phnom Penh: every service through the hub, shown live on the
    dashboard, then the day's indicators against the same day without CityOS."""
    from cityos.cityday.clock import SpeedError, parse_speed

    settings = load_settings(database_url, port=port)
    if not database_url and settings.database_url == Settings().database_url:
        # nothing configured: the demo's own file, not the hub's default database
        settings.database_url = DEMO_DATABASE_URL
    if minutes < 1:
        raise fail(f"[red]--minutes {minutes}:[/red] the demo replays at least 1 minute")
    try:
        pace = parse_speed(speed)
    except SpeedError as exc:
        raise fail(f"[red]{escape(str(exc))}[/red]") from None
    if serve_after:  # a busy port is found now, not after a minute of loading
        _check_port(settings.port)
        _check_bindable(settings.host, settings.port)
    _check_service_settings(settings)
    _check_database(settings)
    from cityos.demo import run_demo

    out = err if json_out else console
    server = None
    try:
        if serve_after:
            server, hub, broker, app_ = _serve_demo(settings, out)
            summary = run_demo(settings, minutes=minutes, speed=pace, hub=hub, broker=broker,
                               app=app_, console=out)  # fmt: skip
        else:
            summary = run_demo(settings, minutes=minutes, speed=pace, console=out)
    except KeyboardInterrupt:
        if server is not None:
            server.stop()
        raise fail("[yellow]stopped[/yellow] (Ctrl-C) before the end of the day", 130) from None
    except BaseException:
        if server is not None:
            server.stop()
        raise
    if json_out:
        print(json.dumps(finite(summary), indent=2))
    if server is not None:
        console.print(
            f"\nThe dashboard stays on [bold]{server.url}/[/bold] and the hub on "
            f"{server.url}/ngsi-ld/v1 — Ctrl-C to stop. Try:"
        )
        for line in summary["curl"]:
            console.print(f"  {line}", soft_wrap=True, highlight=False)
        server.wait()


def _serve_demo(settings: Settings, out: Any) -> tuple[Any, Any, str | None, Any]:
    """The demo's hub served before the day starts, so the day shows live: the server,
    the hub, the MQTT broker the sensors use (or None) and the application."""
    from cityos.cityday.server import BackgroundServer, ServerError
    from cityos.demo import open_demo_hub
    from cityos.web.app import create_app

    hub, broker = open_demo_hub(settings)
    app_ = create_app(settings, hub)
    server = BackgroundServer(app_, settings.host, settings.port, **proxy_options(settings))
    try:
        server.start()
    except ServerError as exc:
        hub.close()
        raise fail(
            f"[red]{escape(str(exc))}[/red]; stop what uses the port or pass --port"
        ) from None
    out.print(
        f"The day runs live on the dashboard: [bold]{server.url}/[/bold] "
        f"(the hub: {server.url}/ngsi-ld/v1)",
        soft_wrap=True,
    )
    return server, hub, broker, app_


def _check_bindable(host: str, port: int) -> None:
    """Exit 2 with one line when the address cannot be listened on (in use, not ours)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, _, _, _, address = infos[0]
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
            sock.bind(address)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise fail(
            f"[red]cannot listen on {host}:{port}:[/red] {reason}; stop what uses it or pass"
            " --port (or --no-serve)"
        ) from exc


@app.command("services")
def list_services(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    as_markdown: Annotated[
        bool,
        typer.Option("--markdown", help="Print the Markdown table of docs/services/README.md."),
    ] = False,
    settings_markdown: Annotated[
        bool,
        typer.Option("--settings", help="Print each part's settings as in docs/configuration.md."),
    ] = False,
) -> None:
    """The services this installation runs (the cityos.services entry points)."""
    from cityos.services import settings as part_settings
    from cityos.services.registry import describe, markdown

    registered = services()
    if settings_markdown:
        print(part_settings.markdown(registered), end="")
        return
    if as_json:
        print(json.dumps([describe(s) for s in registered]))
        return
    if as_markdown:
        print(markdown(registered), end="")
        return
    table = Table("service", "reads", "writes", "KPIs", "paths", "CLI")
    for s in registered:
        table.add_row(
            s.name,
            "\n".join(s.reads),
            "\n".join(s.writes),
            "\n".join(s.kpis),
            "\n".join(sorted(s.openapi_paths())),
            "\n".join(f"cityos {group}" for group in s.cli_groups()),
        )
    console.print(table)


@app.command()
def doctor(database_url: DbOption = None, json_out: JsonOption = False) -> None:
    """Check that this installation is ready to serve: settings, database, PostGIS, Redis,
    the port, then each registered part's own checks (MQTT broker, keys, SUMO, ...).
    Changes nothing; exit 1 when a check fails."""
    from rich.markup import escape

    from cityos.doctor import run

    findings = run(load_settings(database_url), services())
    if json_out:
        print(json.dumps([f.to_json() for f in findings]))
    else:
        table = Table("part", "check", "", "detail")
        for f in findings:
            mark = "[green]ok[/green]" if f.check.ok else "[red]FAIL[/red]"
            detail = escape(f.check.detail) + (
                f"\n[yellow]→ {escape(f.check.hint)}[/yellow]" if f.check.hint else ""
            )
            table.add_row(f.part, escape(f.check.name), mark, detail)
        console.print(table)
        failed = sum(not f.check.ok for f in findings)
        console.print(
            f"{failed} check(s) failed" if failed else f"all {len(findings)} checks passed"
        )
    raise typer.Exit(1 if any(not f.check.ok for f in findings) else 0)


def main() -> None:
    try:
        services()
    except ServiceLoadError as exc:
        from rich.markup import escape

        err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True, highlight=False)
        sys.exit(1)  # the installation, not the command line, is at fault
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
