"""The ``cityos`` command line: serve the hub, run the demo, look after the database."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cityos.config import Settings

app = typer.Typer(
    help="CityOS: an open City OS — the NGSI-LD data hub and the city services on top of it.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Create, migrate and inspect the hub's database.", no_args_is_help=True)
app.add_typer(db_app, name="db")
devices_app = typer.Typer(
    help="Devices: provisioning, counters and a telemetry simulator.", no_args_is_help=True
)
app.add_typer(devices_app, name="devices")
retention_app = typer.Typer(
    help="Delete history older than the retention rules allow.", no_args_is_help=True
)
app.add_typer(retention_app, name="retention")

console = Console()
err = Console(stderr=True)

DbOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        "-d",
        help="Database URL (default: CITYOS_DATABASE_URL or sqlite:///data/city.db).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _settings(database_url: str | None = None, **overrides: object) -> Settings:
    try:
        settings = Settings.load()
    except (ValueError, OSError) as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc
    if database_url:
        settings.database_url = database_url
    for key, value in overrides.items():
        if value is not None:
            setattr(settings, key, value)
    return settings


def _open_store(settings: Settings):  # type: ignore[no-untyped-def]
    from cityos.hub.store import open_store

    try:
        return open_store(settings.database_url)
    except Exception as exc:  # a wrong URL or an unreachable server: say which and how
        err.print(f"[red]cannot open the database {settings.database_url}:[/red] {exc}")
        raise typer.Exit(1) from exc


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
) -> None:
    """Serve the NGSI-LD API (default http://127.0.0.1:1026/ngsi-ld/v1)."""
    import uvicorn

    from cityos.web.app import create_app

    settings = _settings(database_url, host=host, port=port)
    where = f"http://{settings.host}:{settings.port}/ngsi-ld/v1"
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
        )
        return
    # each worker process builds its app from the environment: hand it what the flags said
    os.environ["CITYOS_DATABASE_URL"] = settings.database_url
    if settings.mqtt_url and not settings.mqtt_shared_group:
        os.environ["CITYOS_MQTT_SHARED_GROUP"] = "cityos"
    store = _open_store(settings)
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
    )


@app.command()
def demo(
    serve_after: Annotated[
        bool,
        typer.Option("--serve/--no-serve", help="Keep serving after the replay (default) or exit."),
    ] = True,
    database_url: DbOption = None,
    port: Annotated[int | None, typer.Option(help="Port to serve on.")] = None,
    minutes: Annotated[int, typer.Option(help="Minutes of sensor updates to replay.")] = 60,
    json_out: JsonOption = False,
) -> None:
    """Load the sample district of Phnom Penh, replay an hour of sensor data, then serve it."""
    from cityos.demo import run_demo

    settings = _settings(database_url or "sqlite:///data/demo.db", port=port)
    summary = run_demo(settings, minutes=minutes, console=err if json_out else console)
    if json_out:
        print(json.dumps(summary, indent=2))
    if serve_after:
        import uvicorn

        from cityos.web.app import create_app

        url = f"http://{settings.host}:{settings.port}"
        console.print(f"\nServing on [bold]{url}/ngsi-ld/v1[/bold] — Ctrl-C to stop. Try:")
        for line in summary["curl"]:
            console.print(f"  {line}", soft_wrap=True, highlight=False)
        uvicorn.run(
            create_app(settings), host=settings.host, port=settings.port, log_level="warning"
        )


@db_app.command("init")
def db_init(database_url: DbOption = None, json_out: JsonOption = False) -> None:
    """Create the database schema (same as migrate on an empty database)."""
    db_migrate(database_url, json_out)


@db_app.command("migrate")
def db_migrate(database_url: DbOption = None, json_out: JsonOption = False) -> None:
    """Carry the schema forward to the newest version; safe to run again."""
    settings = _settings(database_url)
    store = _open_store(settings)
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
    settings = _settings(database_url)
    store = _open_store(settings)
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

    settings = _settings(database_url)
    if rule:
        settings.retention = list(rule)
    if not settings.retention:
        err.print("no retention rules: give --rule TYPE[.ATTR]=DURATION or set CITYOS_RETENTION")
        raise typer.Exit(2)
    hub = Hub(settings, store=_open_store(settings))
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


UrlOption = Annotated[str, typer.Option(help="The hub's base URL.")]
ServiceOption = Annotated[str, typer.Option("--service", "-s", help="fiware-service (tenant).")]


def _iot(method: str, url: str, service: str, **kwargs: Any) -> Any:
    """One call to the hub's IoT Agent API; a refusal or an unreachable hub ends the command
    with the hub's reason."""
    import httpx

    headers = {"fiware-service": service} if service else {}
    try:
        r = httpx.request(method, url, headers=headers, timeout=30, **kwargs)
    except httpx.HTTPError as exc:
        err.print(f"[red]cannot reach the hub at {url}:[/red] {exc}")
        raise typer.Exit(1) from exc
    if r.status_code >= 300:
        detail = r.json().get("detail", r.text) if r.content else r.reason_phrase
        err.print(f"[red]{method} {url}: HTTP {r.status_code}:[/red] {detail}")
        raise typer.Exit(1)
    return r.json() if r.content else None


@devices_app.command("provision")
def devices_provision(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            help='JSON with "services" and/or "devices", as the FIWARE IoT Agent API takes them.',
        ),
    ],
    url: UrlOption = "http://127.0.0.1:1026",
    service: ServiceOption = "",
) -> None:
    """Provision service groups and devices from a file (existing FIWARE provisioning files
    work unchanged)."""
    try:
        body = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        err.print(f"[red]{file}:[/red] {exc}")
        raise typer.Exit(2) from exc
    if not isinstance(body, dict) or not ({"services", "devices"} & body.keys()):
        err.print(f'[red]{file}:[/red] expected an object with "services" and/or "devices"')
        raise typer.Exit(2)
    if body.get("services"):
        _iot("POST", f"{url}/iot/services", service, json={"services": body["services"]})
    if body.get("devices"):
        _iot("POST", f"{url}/iot/devices", service, json={"devices": body["devices"]})
    console.print(
        f"provisioned {len(body.get('services') or [])} service group(s) and "
        f"{len(body.get('devices') or [])} device(s)"
    )


@devices_app.command("list")
def devices_list(
    url: UrlOption = "http://127.0.0.1:1026",
    service: ServiceOption = "",
    json_out: JsonOption = False,
) -> None:
    """The provisioned service groups and devices."""
    groups = _iot("GET", f"{url}/iot/services", service).get("services", [])
    devices = _iot("GET", f"{url}/iot/devices", service).get("devices", [])
    if json_out:
        print(json.dumps({"services": groups, "devices": devices}))
        return
    table = Table(title=f"Service groups ({service or 'default tenant'})")
    for col in ("apikey", "entity type", "resource", "attributes"):
        table.add_column(col)
    for g in groups:
        names = ", ".join(a["name"] for a in g.get("attributes", []))
        table.add_row(g["apikey"], g.get("entity_type", ""), g.get("resource", ""), names)
    console.print(table)
    table = Table(title="Devices")
    for col in ("device", "entity", "protocol", "commands"):
        table.add_column(col)
    for d in devices:
        commands = ", ".join(c["name"] for c in d.get("commands", []))
        table.add_row(d["device_id"], d.get("entity_name", ""), d.get("protocol", ""), commands)
    console.print(table)


@devices_app.command("delete")
def devices_delete(
    device_id: Annotated[str, typer.Argument(help="The device to remove.")],
    url: UrlOption = "http://127.0.0.1:1026",
    service: ServiceOption = "",
) -> None:
    """Remove a device (its entity and history stay)."""
    _iot("DELETE", f"{url}/iot/devices/{device_id}", service)
    console.print(f"deleted device {device_id}")


@devices_app.command("stats")
def devices_stats(
    url: Annotated[str, typer.Option(help="The hub's base URL.")] = "http://127.0.0.1:1026",
    service: Annotated[str, typer.Option("--service", "-s", help="fiware-service (tenant).")] = "",
    json_out: JsonOption = False,
) -> None:
    """What each device sent: accepted and rejected messages, and why (kept across restarts
    as the devices' Device entities, urn:ngsi-ld:Device:<device_id>)."""
    import httpx

    headers = {"fiware-service": service} if service else {}
    try:
        listing = httpx.get(f"{url}/iot/devices", headers=headers, timeout=10).json()
        rows = [
            httpx.get(f"{url}/iot/devices/{d['device_id']}", headers=headers, timeout=10).json()
            for d in listing.get("devices", [])
        ]
    except httpx.HTTPError as exc:
        err.print(f"[red]cannot reach the hub at {url}:[/red] {exc}")
        raise typer.Exit(1) from exc
    if json_out:
        print(json.dumps([{"device_id": r["device_id"], **r["stats"]} for r in rows]))
        return
    table = Table(title=f"Devices ({service or 'default tenant'})")
    for col in ("device", "accepted", "rejected", "reasons", "last value", "last error"):
        table.add_column(col)
    for r in rows:
        s = r["stats"]
        table.add_row(
            r["device_id"],
            str(s["accepted"]),
            str(s["rejected"]),
            json.dumps(s["reasons"]),
            s.get("dateLastValueReported") or "",
            s["lastError"] or "",
        )
    console.print(table)


@devices_app.command("simulate")
def devices_simulate(
    apikey: Annotated[str, typer.Option(help="The service group's API key.")],
    devices: Annotated[int, typer.Option(help="How many devices (sim-0 … sim-N-1).")] = 100,
    rate: Annotated[float, typer.Option(help="Messages per second, all devices together.")] = 100.0,
    seconds: Annotated[float, typer.Option(help="How long to publish.")] = 10.0,
    mqtt_url: Annotated[str, typer.Option(help="The broker.")] = "mqtt://127.0.0.1:1883",
    json_out: JsonOption = False,
) -> None:
    """Publish UltraLight telemetry (i = intensity, s = speed) from simulated devices over MQTT."""
    from urllib.parse import urlsplit

    import paho.mqtt.client as mqtt
    from rich.progress import Progress

    from cityos.devices.simulate import simulate

    parts = urlsplit(mqtt_url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    try:
        client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    except OSError as exc:
        err.print(f"[red]cannot reach the MQTT broker at {mqtt_url}:[/red] {exc}")
        raise typer.Exit(1) from exc
    client.loop_start()
    try:
        with Progress(console=err, disable=json_out) as progress:
            task = progress.add_task("publishing", total=int(rate * seconds))
            result = simulate(
                lambda topic, payload: client.publish(topic, payload, qos=0),
                apikey=apikey,
                devices=devices,
                rate=rate,
                seconds=seconds,
                progress=lambda n: progress.advance(task, n),
            )
    finally:
        client.loop_stop()
        client.disconnect()
    summary = {
        "messages": result.messages,
        "seconds": round(result.seconds, 3),
        "rate": round(result.rate, 1),
    }
    if json_out:
        print(json.dumps(summary))
    else:
        console.print(
            f"published {result.messages:,} messages in {result.seconds:.1f} s ({result.rate:,.0f}/s)"
        )


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
