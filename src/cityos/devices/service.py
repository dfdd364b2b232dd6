"""The IoT agent as a part of CityOS, declared through the plug like every service: its
``/iot`` routes and their OpenAPI, ``cityos devices``, its background work (counters
flushed to ``Device`` entities, command expiry, MQTT ingestion), its health and checks."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from cityos.devices import api, openapi
from cityos.devices.cli import app as cli
from cityos.plug import Check, Service, ServiceContext


async def run(ctx: ServiceContext) -> None:
    """Start the agent's own work (and MQTT ingestion when ``mqtt_url`` is set); on stop,
    stop ingesting, then flush the counters a last time."""
    state, settings = ctx.app, ctx.core
    agent = state.agent
    agent.start()
    ingest = None
    try:
        if settings.mqtt_url:
            from cityos.devices.mqtt import MqttIngest

            ingest = MqttIngest(
                agent, settings.mqtt_url, shared_group=settings.mqtt_shared_group or None
            )
            ingest.start()
        state.mqtt_ingest = ingest
        await asyncio.Event().wait()
    finally:
        if ingest is not None:
            ingest.stop()
        await asyncio.to_thread(agent.stop)  # a last flush of the device counters


def health(ctx: ServiceContext) -> dict[str, Any]:
    ingest = getattr(ctx.app, "mqtt_ingest", None) if ctx.app is not None else None
    if not ctx.core.mqtt_url:
        mqtt: dict[str, Any] = {"status": "off"}
    elif ingest is None:
        mqtt = {"status": "starting"}
    else:
        mqtt = {
            "status": "subscribed" if ingest.subscribed else "connecting",
            "messages": ingest.messages,
        }
    status = "ok" if mqtt["status"] in ("off", "subscribed") else "degraded"
    return {"status": status, "mqtt": mqtt}


def _reachable(host: str, port: int, timeout: float = 2.0) -> str | None:
    """None when a TCP connection opens, else why not."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


def diagnostics(ctx: ServiceContext) -> Iterator[Check]:
    url = ctx.core.mqtt_url
    if not url:
        yield Check("MQTT broker", True, "mqtt_url not set: devices send over HTTP only")
        return
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        yield Check(
            "MQTT broker", False, f"mqtt_url {url!r} is not mqtt://host:port",
            "set CITYOS_MQTT_URL=mqtt://127.0.0.1:1883",
        )  # fmt: skip
        return
    port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    with contextlib.suppress(Exception):
        why = _reachable(parts.hostname, port)
        if why is None:
            yield Check("MQTT broker", True, f"{parts.hostname}:{port} answers")
            return
        yield Check(
            "MQTT broker", False, f"{parts.hostname}:{port}: {why}",
            "start Mosquitto (apt install mosquitto; systemctl start mosquitto) or fix mqtt_url",
        )  # fmt: skip


SERVICE = Service(
    name="devices",
    reads=(),
    # Device (FIWARE's model: each device's counters and state) and the measures'
    # entities, whose types each service group names when it is provisioned
    writes=("Device",),
    routes=api.routes,
    openapi=openapi.paths,
    cli=cli,
    tasks=(run,),
    health=health,
    diagnostics=diagnostics,
    stage=20,
    builtin=True,
)
