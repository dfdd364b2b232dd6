"""``cityos devices``: provision devices through a hub's IoT Agent API, read their
counters, and publish simulated telemetry over MQTT."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cityos.clikit import JsonOption, console, err

app = typer.Typer(
    help="Devices: provisioning, counters and a telemetry simulator.", no_args_is_help=True
)

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


@app.command("provision")
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


@app.command("list")
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


@app.command("delete")
def devices_delete(
    device_id: Annotated[str, typer.Argument(help="The device to remove.")],
    url: UrlOption = "http://127.0.0.1:1026",
    service: ServiceOption = "",
) -> None:
    """Remove a device (its entity and history stay)."""
    _iot("DELETE", f"{url}/iot/devices/{device_id}", service)
    console.print(f"deleted device {device_id}")


@app.command("stats")
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


@app.command("simulate")
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
