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
from cityos.services.registry import ServiceLoadError, services

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


def _mount_services() -> None:
    """Each registered service's CLI group as ``cityos <name>`` (the cityos.services entry
    points); a service that cannot be loaded is a one-line error when the CLI runs."""
    try:
        registered = services()
    except ServiceLoadError:
        return  # main() reports it
    for service in registered:
        if service.cli is not None:
            app.add_typer(service.cli, name=service.name)


_mount_services()

console = Console()
err = Console(stderr=True)


def _no_type_on_flags() -> None:
    """Typer's rich help prints a type column for every option, a flag's included, so each
    ``--json``, ``--serve/--no-serve`` and ``--help`` showed ``<bool>`` though a flag takes no
    value (Click's plain help, and Typer's own before 0.2x, leave it out). One fix for every
    command, the services' groups included: a flag has no type to show."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "flags_untyped", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        if self.is_flag or self.count:
            return None
        return shown(self, ctx)

    display_type_rich.flags_untyped = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_no_type_on_flags()


def _fail(message: str, code: int = 2) -> typer.Exit:
    """One line on stderr (no wrapping, no traceback); raise what it returns."""
    err.print(message, soft_wrap=True, highlight=False)
    return typer.Exit(code)


def _check_port(port: int) -> None:
    if not 1 <= port <= 65535:
        raise _fail(f"[red]port {port} is out of range:[/red] give --port a number from 1 to 65535")


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


def _open_store(settings: Settings, code: int = 1):  # type: ignore[no-untyped-def]
    import logging

    from cityos.hub.store import open_store

    pool_log = logging.getLogger("psycopg.pool")  # its retries would print one line each
    level = pool_log.level
    pool_log.setLevel(logging.ERROR)
    try:
        return open_store(settings.database_url)
    except Exception as exc:  # a wrong URL or an unreachable server: say which and how
        raise _fail(
            f"[red]cannot open the database {settings.database_url}:[/red] {exc}"
            " (set --database-url or CITYOS_DATABASE_URL)",
            code,
        ) from exc
    finally:
        pool_log.setLevel(level)


def _check_database(settings: Settings) -> None:
    """Before serving: a wrong, unreachable or unwritable database is one line, exit 2."""
    store = _open_store(settings, code=2)
    try:
        store.schema_version()
    except Exception as exc:
        raise _fail(
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

    settings = _settings(database_url, host=host, port=port)
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
    store = _open_store(settings, code=2)
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
        typer.Option("--serve/--no-serve", help="Keep serving after the replay (default) or exit."),
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
        int, typer.Option(help="Minutes of sensor updates to replay (at least 1).")
    ] = 60,
    json_out: JsonOption = False,
) -> None:
    """Load the sample district of Phnom Penh, replay an hour of sensor data, then serve it."""
    settings = _settings(database_url, port=port)
    if not database_url and settings.database_url == Settings().database_url:
        # nothing configured: the demo's own file, not the hub's default database
        settings.database_url = DEMO_DATABASE_URL
    if minutes < 1:
        raise _fail(f"[red]--minutes {minutes}:[/red] the demo replays at least 1 minute")
    if serve_after:  # a busy port is found now, not after a minute of loading
        _check_port(settings.port)
        _check_bindable(settings.host, settings.port)
    _check_database(settings)
    from cityos.demo import run_demo

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
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_level="warning",
            **proxy_options(settings),
        )


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
        raise _fail(
            f"[red]cannot listen on {host}:{port}:[/red] {reason}; stop what uses it or pass"
            " --port (or --no-serve)"
        ) from exc


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
    url: Annotated[
        str,
        typer.Option(
            help="The hub the messages are for: checked first for the service group and "
            "the devices (a warning, not a refusal, when it lacks them or cannot be asked)."
        ),
    ] = "http://127.0.0.1:1026",
    service: ServiceOption = "",
    json_out: JsonOption = False,
) -> None:
    """Publish UltraLight telemetry (i = intensity, s = speed) from simulated devices over MQTT
    (QoS 1). Reports what the broker acknowledged — not a delivery to the hub, which only
    `cityos devices stats` can show."""
    from urllib.parse import urlsplit

    import paho.mqtt.client as mqtt
    from rich.progress import Progress

    from cityos.devices.simulate import BrokerAcks, hub_warnings, simulate

    if devices < 1 or rate <= 0 or seconds <= 0:
        err.print("[red]--devices, --rate and --seconds must be positive[/red]")
        raise typer.Exit(2)
    warnings = hub_warnings(url, apikey, devices, service)
    for line in warnings:
        err.print(f"[yellow]warning:[/yellow] {line}", soft_wrap=True)
    parts = urlsplit(mqtt_url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    acks = BrokerAcks()
    client.on_publish = acks.on_publish
    try:
        client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    except OSError as exc:
        err.print(f"[red]cannot reach the MQTT broker at {mqtt_url}:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(1) from exc
    client.loop_start()
    try:
        with Progress(console=err, disable=json_out) as progress:
            task = progress.add_task("publishing", total=int(rate * seconds))
            result = simulate(
                lambda topic, payload: client.publish(topic, payload, qos=1),
                apikey=apikey,
                devices=devices,
                rate=rate,
                seconds=seconds,
                progress=lambda n: progress.advance(task, n),
            )
        acknowledged = acks.wait(result.messages, timeout=10.0)
    finally:
        client.disconnect()  # first: it wakes the network thread, so loop_stop joins at once
        client.loop_stop()
    summary = {
        "messages": result.messages,  # published
        "acknowledged": acknowledged,  # by the broker (QoS 1), not by the hub
        "seconds": round(result.seconds, 3),
        "rate": round(result.rate, 1),
        "warnings": warnings,
    }
    if json_out:
        print(json.dumps(summary))
    else:
        console.print(
            f"published {result.messages:,} messages in {result.seconds:.1f} s "
            f"({result.rate:,.0f}/s); the broker acknowledged {acknowledged:,} — not a "
            "delivery to the hub: `cityos devices stats` shows what it took",
            soft_wrap=True,
        )
    if acknowledged < result.messages:
        err.print(
            f"[red]the broker at {mqtt_url} acknowledged {acknowledged:,} of "
            f"{result.messages:,} messages[/red]",
            soft_wrap=True,
        )
        raise typer.Exit(1)


# -- identity: users, tokens, API keys (docs/security.md, "Identity") -----------------------
users_app = typer.Typer(
    help="CityOS's own users (for deployments without an identity provider).",
    no_args_is_help=True,
)
app.add_typer(users_app, name="users")
token_app = typer.Typer(help="Tokens CityOS issues to its own users.", no_args_is_help=True)
app.add_typer(token_app, name="token")
keys_app = typer.Typer(
    help="API keys for devices and services (stored only as hashes).", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")

TenantsOption = Annotated[
    list[str],
    typer.Option(
        "--tenant",
        "-t",
        help="A tenant (repeatable); @default for the default tenant, * for all of them.",
    ),
]
RolesOption = Annotated[list[str], typer.Option("--role", "-r", help="A role (repeatable).")]
PasswordStdinOption = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from the first stdin line.")
]


def _identity_store(database_url: str | None) -> tuple[Settings, Any]:
    settings = _settings(database_url)
    store = _open_store(settings)
    store.migrate()  # the registry the users and keys live in
    return settings, store


def _read_password(from_stdin: bool, *, confirm: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=confirm)


def _when(epoch: float | None) -> str:
    import time as _time

    return "" if epoch is None else _time.strftime("%Y-%m-%d %H:%M:%SZ", _time.gmtime(epoch))


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="The user's name (what they log in with).")],
    tenant: TenantsOption,
    role: RolesOption,
    password_stdin: PasswordStdinOption = False,
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace an existing user (ends its tokens).")
    ] = False,
    database_url: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Add a user: password hashed with argon2id, tenants and roles for its tokens."""
    from cityos.security.users import UserError, add_user

    password = _read_password(password_stdin, confirm=True)
    _, store = _identity_store(database_url)
    try:
        doc = add_user(store, name, password, tenants=tenant, roles=role, replace=replace)
    except UserError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    finally:
        store.close()
    if json_out:
        print(json.dumps(doc))
    else:
        console.print(f"user {name} {'replaced' if replace else 'added'}")


@users_app.command("list")
def users_list(database_url: DbOption = None, json_out: JsonOption = False) -> None:
    """The users (never their password hashes)."""
    from cityos.security.principal import tenant_label
    from cityos.security.users import list_users

    _, store = _identity_store(database_url)
    try:
        docs = list_users(store)
    finally:
        store.close()
    if json_out:
        print(json.dumps(docs))
        return
    table = Table(title="Users")
    for col in ("name", "tenants", "roles", "created"):
        table.add_column(col)
    for d in docs:
        tenants = ", ".join(tenant_label(t) for t in d["tenants"])
        table.add_row(d["name"], tenants, ", ".join(d["roles"]), _when(d["created"]))
    console.print(table)


@users_app.command("remove")
def users_remove(
    name: Annotated[str, typer.Argument(help="The user to remove.")],
    database_url: DbOption = None,
) -> None:
    """Remove a user; the tokens it holds are refused within auth_recheck_s."""
    from cityos.security.users import remove_user

    _, store = _identity_store(database_url)
    try:
        removed = remove_user(store, name)
    finally:
        store.close()
    if not removed:
        err.print(f"[red]no user {name!r}[/red]")
        raise typer.Exit(1)
    console.print(f"user {name} removed")


@token_app.command("create")
def token_create(
    user: Annotated[str, typer.Option("--user", "-u", help="The user the token is for.")],
    password_stdin: PasswordStdinOption = False,
    ttl: Annotated[
        str | None,
        typer.Option(help="Lifetime: 15m, 1h, 7d (default: the token_ttl_s setting)."),
    ] = None,
    database_url: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Print a token (JWT, EdDSA-signed by CityOS's issuer key) for a user, after checking
    their password; send it as 'Authorization: Bearer <token>'."""
    from cityos.security.keys import parse_duration
    from cityos.security.tokens import issue_token, own_key
    from cityos.security.users import check_password

    try:
        ttl_s = parse_duration(ttl) if ttl else None
    except ValueError as exc:
        err.print(f"[red]--ttl: {exc}[/red]")
        raise typer.Exit(2) from exc
    password = _read_password(password_stdin, confirm=False)
    settings, store = _identity_store(database_url)
    try:
        doc = check_password(store, user, password)
    finally:
        store.close()
    if doc is None:
        err.print("[red]wrong user name or password[/red]")
        raise typer.Exit(1)
    try:
        token, claims = issue_token(
            own_key(settings.token_key_path), doc, ttl_s or settings.token_ttl_s
        )
    except (ValueError, OSError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    if json_out:
        body = {"access_token": token, "token_type": "Bearer"}
        body.update(expires_in=claims["exp"] - claims["iat"], expires_at=claims["exp"])
        print(json.dumps(body))
    else:
        print(token)


@keys_app.command("create")
def keys_create(
    tenant: TenantsOption,
    role: Annotated[
        list[str] | None,
        typer.Option("--role", "-r", help="A role (repeatable); device keys: 'device' if none."),
    ] = None,
    expires: Annotated[
        str | None, typer.Option(help="Lifetime: 90d, 12h, P1Y… (default: never expires).")
    ] = None,
    name: Annotated[str, typer.Option(help="What the key is for (shown in lists).")] = "",
    device: Annotated[
        str | None,
        typer.Option(
            "--device",
            help="A device key for the service group with this apikey (in its one --tenant).",
        ),
    ] = None,
    device_id: Annotated[
        str | None, typer.Option(help="With --device: bind the key to this one device.")
    ] = None,
    database_url: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Create an API key and print it — once: only its hash is kept. Send it as
    'X-API-Key: <key>' (or 'Authorization: ApiKey <key>')."""
    from cityos.security.keys import ApiKeyError, create_key, parse_duration

    try:
        expires_s = parse_duration(expires) if expires else None
    except ValueError as exc:
        err.print(f"[red]--expires: {exc}[/red]")
        raise typer.Exit(2) from exc
    _, store = _identity_store(database_url)
    try:
        key, doc = create_key(
            store,
            tenants=tenant,
            roles=role or (["device"] if device else []),
            name=name,
            expires_in_s=expires_s,
            service_group=device,
            device_id=device_id,
        )
    except ApiKeyError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    finally:
        store.close()
    if json_out:
        print(json.dumps({"key": key, **doc}))
        return
    print(key)
    err.print(f"API key {doc['id']} — copy it now, it is not shown again")


@keys_app.command("list")
def keys_list(
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", help="Only keys that reach this tenant.")
    ] = None,
    database_url: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """The API keys (ids, scopes, expiry, status; never the keys)."""
    from cityos.security.keys import key_status, list_keys
    from cityos.security.principal import tenant_label, tenant_name

    try:
        wanted = tenant_name(tenant) if tenant is not None else None
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    _, store = _identity_store(database_url)
    try:
        docs = [{**d, "status": key_status(d)} for d in list_keys(store, wanted)]
    finally:
        store.close()
    if json_out:
        print(json.dumps(docs))
        return
    table = Table(title="API keys")
    table.add_column("id", no_wrap=True)
    for col in ("name", "kind", "tenants", "roles", "device", "expires"):
        table.add_column(col)
    table.add_column("status", no_wrap=True)
    for d in docs:
        group = d.get("service_group") or ""
        if group and d.get("device_id"):
            group += f"/{d['device_id']}"
        table.add_row(
            d["id"],
            d["name"],
            d["kind"],
            ", ".join(tenant_label(t) for t in d["tenants"]),
            ", ".join(d["roles"]),
            group,
            _when(d["expires"]) or "never",
            d["status"],
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (or the whole key).")],
    reason: Annotated[str, typer.Option(help="Why (told to whoever still uses it).")] = "",
    database_url: DbOption = None,
) -> None:
    """Revoke an API key: refused from then on (within auth_recheck_s in running hubs)."""
    from cityos.security.keys import parse_key, revoke_key

    parsed = parse_key(key_id)
    if parsed is not None:  # the whole key was given: its id
        key_id = parsed[0]
    _, store = _identity_store(database_url)
    try:
        doc = revoke_key(store, key_id, reason)
    finally:
        store.close()
    if doc is None:
        err.print(f"[red]no API key {key_id!r}[/red]")
        raise typer.Exit(1)
    console.print(f"API key {key_id} revoked")


# -- end identity ----------------------------------------------------------------------------


# -- audit: the Merkle audit log (docs/security.md, "Audit") ---------------------------------
audit_app = typer.Typer(
    help="The audit log: verify it, export a checkpoint, sign a tree head.", no_args_is_help=True
)
app.add_typer(audit_app, name="audit")

AuditKeyOption = Annotated[
    str | None,
    typer.Option("--key", help="The signing key, PEM (default: CITYOS_AUDIT_KEY_PATH)."),
]


def _audit_log(database_url: str | None, key: str | None):  # type: ignore[no-untyped-def]
    from cityos.security.audit import AuditLog

    settings = _settings(database_url)
    store = _open_store(settings)
    if store.schema_version() == 0:
        store.close()
        err.print(f"{settings.database_url} has no CityOS schema yet: run 'cityos db init'")
        raise typer.Exit(1)
    path = key or settings.audit_key_path
    return AuditLog(store, key_path=path, anchor_path=settings.audit_anchor_path), store


@audit_app.command("verify")
def audit_verify(
    database_url: DbOption = None,
    key: AuditKeyOption = None,
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key", exists=True, dir_okay=False, help="Check signatures with this PEM."
        ),
    ] = None,
    anchor: Annotated[
        Path | None,
        typer.Option(
            "--anchor",
            exists=True,
            dir_okay=False,
            help="A signed head kept outside the database (default: CITYOS_AUDIT_ANCHOR_PATH,"
            " else audit-anchor-<database>.json beside the key): the log must still reach it.",
        ),
    ] = None,
    expect_size: Annotated[
        int | None,
        typer.Option("--expect-size", min=0, help="The log held at least N records ..."),
    ] = None,
    expect_root: Annotated[
        str | None,
        typer.Option("--expect-root", help="... and the tree of the first N had this root (hex)."),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Recompute the audit log from its records and check every signed tree head and the
    anchor. Exit 1, naming the records, if any was edited, deleted, inserted, reordered or
    malformed, or the log no longer reaches its anchor; 2 if it cannot be checked."""
    from cityos.security.audit import AuditError, AuditKey, verify_log

    if (expect_size is None) != (expect_root is None):
        err.print("[red]--expect-size and --expect-root go together[/red]")
        raise typer.Exit(2)
    log, store = _audit_log(database_url, key)
    try:
        anchors = _anchors(anchor or log.anchor_path, anchor is not None, expect_size, expect_root)
        try:
            checker = AuditKey.from_pem(public_key.read_bytes()) if public_key else log.public_key()
        except (AuditError, ValueError) as exc:
            if any(a.head for a in anchors) or _has_heads(store):
                err.print(f"[red]cannot check the signed tree heads:[/red] {exc} (--public-key)")
                raise typer.Exit(2) from exc
            checker = None  # nothing signed yet: nothing to check signatures of
        report = verify_log(store, checker, anchors)
    finally:
        store.close()
    _print_verify(report, anchor or log.anchor_path, json_out)
    raise typer.Exit(0 if report.ok else 1)


def _anchors(path: Path | None, given: bool, size: int | None, root: str | None) -> list:
    """What the log must still reach: the anchor file (when there is one) and the expected
    size and root."""
    from cityos.security.audit import Anchor

    anchors = [Anchor.from_file(path)] if path is not None and (given or path.exists()) else []
    if size is not None and root is not None:
        try:
            anchors.append(Anchor.expected(size, root))
        except ValueError as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from exc
    return anchors


def _has_heads(store) -> bool:  # type: ignore[no-untyped-def]
    """Whether any signed head is stored (a row that cannot be read counts as one)."""
    try:
        return bool(store.audit.raw("audit_heads", 0, 1))
    except Exception:
        return True


def _print_verify(report, anchor_path: Path | None, json_out: bool) -> None:  # type: ignore[no-untyped-def]
    from cityos.security.audit import NO_ANCHOR

    if json_out:
        print(json.dumps(report.to_json()))
        return
    if not report.anchors:
        where = f" (none at {anchor_path})" if anchor_path is not None else ""
        err.print(f"[yellow]warning:[/yellow] {NO_ANCHOR}{where}", highlight=False)
    if report.ok:
        reached = "".join(f"; {a.source} reached (size {a.tree_size:,})" for a in report.anchors)
        console.print(
            f"audit log intact: {report.rows:,} records, {report.heads_checked:,} signed tree"
            " heads verified" + (f" (log id {report.key_id})" if report.key_id else "") + reached,
            highlight=False,
        )
        return
    count = len(report.findings) + report.more
    err.print(f"[red bold]audit log TAMPERED[/red bold]: {count} finding(s)")
    for f in report.findings:
        err.print(f"  [red]{f.kind:<9}[/red] {f.message}", highlight=False, soft_wrap=True)
    if report.more:
        err.print(f"  … and {report.more:,} more")


@audit_app.command("export")
def audit_export(
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the checkpoint here (else stdout).")
    ] = None,
    since: Annotated[
        Path | None,
        typer.Option(
            "--since",
            exists=True,
            dir_okay=False,
            help="An earlier checkpoint: add the consistency proof from it.",
        ),
    ] = None,
    database_url: DbOption = None,
    key: AuditKeyOption = None,
) -> None:
    """Write a checkpoint (the latest signed tree head and the log's public key) for a
    third party to keep and check later ones against (verify_checkpoint in
    cityos.security.audit)."""
    from cityos.security.audit import AuditError, InvalidCheckpoint

    log, store = _audit_log(database_url, key)
    try:
        earlier = json.loads(since.read_text()) if since else None
        checkpoint = log.checkpoint(since=earlier)
    except (AuditError, InvalidCheckpoint, ValueError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    finally:
        store.close()
    text = json.dumps(checkpoint, indent=2)
    if out is None:
        print(text)
    else:
        out.write_text(text + "\n")
        console.print(f"checkpoint at size {checkpoint['tree_size']:,} written to {out}")


@audit_app.command("head")
def audit_head(
    sign: Annotated[
        bool, typer.Option("--sign", help="Sign a tree head of the log as it is now.")
    ] = False,
    database_url: DbOption = None,
    key: AuditKeyOption = None,
    json_out: JsonOption = False,
) -> None:
    """The latest signed tree head (with --sign: a new one)."""
    from datetime import UTC, datetime

    from cityos.security.audit import AuditError, anchor_json

    log, store = _audit_log(database_url, key)
    try:
        head = log.sign_head() if sign else log.latest_head()
        size = log.size()
    except (AuditError, OSError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    finally:
        store.close()
    if head is None:
        err.print("no signed tree head yet: 'cityos audit head --sign' signs one")
        raise typer.Exit(1)
    _warn_if_not_anchored(log.anchor_path, head)
    body = {**anchor_json(head), "records_now": size}  # publish it: verify --anchor reads it
    if json_out:
        print(json.dumps(body))
        return
    signed = datetime.fromtimestamp(head.timestamp / 1000, UTC).isoformat(timespec="milliseconds")
    table = Table(title="Audit log: latest signed tree head")
    table.add_column("what")
    table.add_column("value")
    for name, value in body.items():
        text = f"{value:,}" if name in ("tree_size", "records_now") else str(value)
        table.add_row(name, text + (f" ({signed})" if name == "timestamp" else ""))
    console.print(table)


def _warn_if_not_anchored(path: Path | None, head) -> None:  # type: ignore[no-untyped-def]
    """The anchor file should hold the latest head; say so when it holds another."""
    from cityos.security.audit import AuditError, InvalidCheckpoint, read_anchor

    try:
        kept = read_anchor(path) if path is not None else None
    except FileNotFoundError:
        kept = None
        err.print(f"[yellow]warning:[/yellow] no anchor file at {path} ('--sign' writes it)")
    except (InvalidCheckpoint, AuditError, OSError) as exc:
        err.print(f"[yellow]warning:[/yellow] {exc}")
        return
    if kept is not None and (kept.tree_size, kept.root_hash) != (head.tree_size, head.root_hash):
        err.print(
            f"[yellow]warning:[/yellow] the anchor {path} is at size {kept.tree_size:,}, the"
            f" latest signed head in the database at {head.tree_size:,}: run 'cityos audit verify'"
        )


# -- end audit --------------------------------------------------------------------------------


@app.command("services")
def list_services(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    as_markdown: Annotated[
        bool,
        typer.Option("--markdown", help="Print the Markdown table of docs/services/README.md."),
    ] = False,
) -> None:
    """The services this installation runs (the cityos.services entry points)."""
    from cityos.services.registry import describe, markdown

    registered = services()
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
            "\n".join(sorted(s.openapi)),
            f"cityos {s.name}" if s.cli is not None else "",
        )
    console.print(table)


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
