"""``cityos demo``: a day of the sample district of Phnom Penh, every service through the hub.

The district goes in through the real interfaces, exactly as outside clients would use
them: as batch upserts over the NGSI-LD API at midnight; at 08:00 the morning's hour of
sensor readings, published by the sensors themselves as MQTT devices
(``/<apikey>/<device>/attrs``, provisioned over the IoT Agent API) when a broker is
reachable, else sent as batch updates over HTTP, while a subscription prints the congested
flows its notifications carry. The rest of the day — people flows, fares, the morning peak
in SUMO, cameras, energy, the city's indicators, then the same day without CityOS — is
:mod:`cityos.cityday`'s.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from cityos.cityday.clock import DEFAULT_SPEED
from cityos.config import Settings

with warnings.catch_warnings():  # Starlette nudges towards httpx2; httpx is what ships today
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient
from cityos.hub.client import HubClient
from cityos.hub.core import Hub
from cityos.hub.model import now_iso
from cityos.hub.store.base import StoredContext
from cityos.twin.district import (
    CONTEXT_URL,
    DISTRICT_CONTEXT,
    DISTRICT_TIME,
    count_by_type,
    generate_district,
)
from cityos.twin.replay import sensor_updates

BASE = "/ngsi-ld/v1"
LINK = f'<{CONTEXT_URL}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
HEADERS = {"Content-Type": "application/json", "Link": LINK}
CENTRAL_MARKET = (104.9210, 11.5697)

# (title, query parameters) — what an operator would ask of the district.
EXAMPLE_QUERIES: list[tuple[str, dict[str, str]]] = [
    (
        "Traffic slower than 24 km/h within 800 m of the Central Market",
        {
            "type": "TrafficFlowObserved",
            "q": "averageVehicleSpeed<24",
            "georel": "near;maxDistance==800",
            "geometry": "Point",
            "coordinates": json.dumps(list(CENTRAL_MARKET)),
            "attrs": "intensity,averageVehicleSpeed,congested",
        },
    ),
    (
        "Air-quality stations with PM2.5 above 35 µg/m³",
        {"type": "AirQualityObserved", "q": "pm25>35", "attrs": "pm25,no2"},
    ),
    (
        "Bus stops within 400 m of the Central Market",
        {
            "type": "GtfsStop",
            "georel": "near;maxDistance==400",
            "geometry": "Point",
            "coordinates": json.dumps(list(CENTRAL_MARKET)),
            "attrs": "name",
        },
    ),
    (
        "Buildings (count only)",
        {"type": "Building", "count": "true", "limit": "0"},
    ),
]


def open_demo_hub(settings: Settings) -> tuple[Hub, str | None]:
    """A fresh demo database (its own SQLite file is emptied), the district's @context
    hosted, and the MQTT broker the sensors will talk to when one answers (else None)."""
    if _reset_sqlite(settings.database_url):
        # the audit log went with the database: so does the anchor of how far it reached
        # (else the signer would rightly refuse the new, shorter log)
        import os

        from cityos.security.audit import anchor_path_for

        database = "sqlite:" + os.path.realpath(settings.database_url[len("sqlite:///") :])
        anchor = anchor_path_for(settings.audit_key_path, settings.audit_anchor_path, database)
        if anchor is not None:
            anchor.unlink(missing_ok=True)
    broker = _reachable_broker(settings.mqtt_url or DEFAULT_BROKER)
    if broker:
        settings.mqtt_url = broker
        settings.device_rate_per_s = 0  # the replay squeezes an hour into seconds
    hub = Hub(settings)
    hub.store.put_context(
        StoredContext("district", CONTEXT_URL, DISTRICT_CONTEXT, "hosted", now_iso())
    )
    return hub, broker


def run_demo(
    settings: Settings,
    *,
    minutes: int = 60,
    speed: float = DEFAULT_SPEED,
    hub: Hub | None = None,
    broker: str | None = None,
    app: Any = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """A day of the district, every service through the hub; returns a summary.

    ``app``: the application already serving ``hub`` (opened by :func:`open_demo_hub`),
    which the district is then loaded through over HTTP and the day shares; without it the
    district goes through an in-process client of an application of its own, closed once
    the morning's replay is in, and the day's services use the hub directly."""
    from cityos.cityday.context import DISTRICT_MIDNIGHT, Event
    from cityos.cityday.day import open_day, run_day

    console = console or Console()
    if hub is None:
        hub, broker = open_demo_hub(settings)
    day_hub = hub if app is not None else Hub(settings)
    entities = generate_district(seed=0)
    summary: dict[str, Any] = {
        "database_url": settings.database_url,
        "entities": count_by_type(entities),
    }
    morning = _Morning(settings, hub, app, broker, console, entities, minutes, summary)
    day = open_day(settings, day_hub, speed=speed, console=console,
                   app_state=app.state if app is not None else None)  # fmt: skip
    morning_s = (DISTRICT_TIME - DISTRICT_MIDNIGHT).total_seconds()  # 08:00 local
    extra = [
        ("district", Event(0.0, morning.load), 0),
        ("district", Event(morning_s, lambda: morning.replay(day)), 7),
    ]  # fmt: skip
    try:
        summary["day"] = run_day(day, minutes, extra=extra)
    finally:
        morning.close()
        if app is None:
            day_hub.close()
            if not morning.opened:  # else the application's end closed it
                hub.close()
    phases = summary["day"]["phases"]
    for name in ("traffic", "energy"):  # where they were before the day, for scripts
        if name in phases:
            summary[name] = phases[name]
    summary["curl"] = curl_lines(settings)
    return summary


class _Morning:
    """The district through the NGSI-LD API: loaded at midnight, then the morning's hour
    of sensors replayed at its own time (over MQTT when a broker answers, else HTTP), the
    operator's example queries and the replay read back through the temporal API."""

    def __init__(
        self,
        settings: Settings,
        hub: Hub,
        app: Any,
        broker: str | None,
        console: Console,
        entities: list[dict[str, Any]],
        minutes: int,
        summary: dict[str, Any],
    ) -> None:
        self.settings, self.hub, self.app, self.broker = settings, hub, app, broker
        self.console, self.entities, self.minutes, self.summary = (
            console,
            entities,
            minutes,
            summary,
        )
        self.stack = contextlib.ExitStack()
        self.opened = False
        self.client: Any = None
        self.state: Any = None
        self.watch: _CongestionWatch | None = None
        self.watch_id = ""

    def _progress(self) -> Progress:
        return Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
        )

    def _open(self) -> None:
        """Served: plain HTTP to the server; else an in-process client of an application of
        its own (its lifespan runs: delivery, the MQTT ingest)."""
        self.opened = True
        if self.app is not None:
            import httpx

            base = f"http://{self.settings.host}:{self.settings.port}"
            self.client = self.stack.enter_context(httpx.Client(base_url=base, timeout=60))
            self.state = self.app.state
            return
        from cityos.web.app import create_app

        base = f"http://{self.settings.host}:{self.settings.port}"
        self.client = self.stack.enter_context(
            TestClient(create_app(self.settings, self.hub), base_url=base)
        )
        self.state = self.client.app.state

    def load(self) -> str:
        self._open()
        t0 = time.perf_counter()
        with self._progress() as progress:
            task = progress.add_task("Loading the district", total=len(self.entities))
            for chunk in _chunks(self.entities, 100):
                r = self.client.post(
                    f"{BASE}/entityOperations/upsert", content=json.dumps(chunk), headers=HEADERS
                )
                _check(r, "loading the district")
                progress.advance(task, len(chunk))
        load_s = time.perf_counter() - t0
        self.watch = _CongestionWatch(self.console)
        self.watch_id = _watch_congestion(self.hub, self.watch)
        table = Table(title="The district, loaded through the NGSI-LD API")
        table.add_column("entity type")
        table.add_column("count", justify="right")
        for kind, n in self.summary["entities"].items():
            table.add_row(kind, str(n))
        self.console.print(table)
        self.summary.update(loaded=len(self.entities), load_seconds=round(load_s, 3))
        return f"The district: {len(self.entities)} entities loaded in {load_s:.2f} s"

    def replay(self, day: Any) -> str:
        minutes, broker, console = self.minutes, self.broker, self.console
        updates = list(sensor_updates(self.entities, DISTRICT_TIME, minutes=minutes))
        steps = _by_step(updates)
        start_s = day.clock.now_s
        how = "over MQTT" if broker else "over HTTP"

        def pace(i: int) -> None:  # minute i of the replay at its simulated time
            day.clock.advance(start_s + 60.0 * i)

        with day.quiet(), self._progress() as progress:
            t0 = time.perf_counter()
            task = progress.add_task(
                f"Replaying {minutes} min of sensor data {how}", total=len(updates)
            )
            devices = 0
            if broker:
                devices = _replay_mqtt(self.client, self.state, broker, steps, progress, task,
                                       pace)  # fmt: skip
            else:
                for i, batch in enumerate(steps):
                    pace(i)
                    body = [{"id": eid, **frag} for eid, frag in batch]
                    r = self.client.post(
                        f"{BASE}/entityOperations/update",
                        content=json.dumps(body),
                        headers=HEADERS,
                    )
                    _check(r, "replaying sensor data")
                    progress.advance(task, len(batch))
            replay_s = time.perf_counter() - t0
            assert self.watch is not None
            self.watch.wait_quiet()
        congestion = self.watch
        self.summary.update(
            replay_transport="mqtt" if broker else "http",
            devices=devices,
            # notifications received, and the congested flows they reported (one or more each)
            congestion_notifications=congestion.notifications,
            congested_flows_reported=congestion.flows,
            updates=len(updates),
            replay_seconds=round(replay_s, 3),
            updates_per_second=round(len(updates) / replay_s, 1) if replay_s else None,
        )
        console.print(
            f"Replayed {len(updates)} sensor updates ({minutes} min) {how} in {replay_s:.2f} s "
            f"({self.summary['updates_per_second']}/s); {congestion.notifications} congestion "
            f"notifications received, reporting {congestion.flows} congested flows."
        )
        self.summary["queries"] = _example_queries(self.client, console)
        history = self.hub.store.history("", _first_flow(self.entities), None, limit=100_000)
        self.summary["history_rows_first_sensor"] = len(history)
        self.summary["history"] = _history_example(self.client, console, minutes)
        self.close()  # the morning's part is done: without a server, its application stops
        return (f"Sensors: {minutes} min of the morning replayed {how}; "
                f"{congestion.notifications} congestion notifications")  # fmt: skip

    def close(self) -> None:
        if self.watch_id:
            with contextlib.suppress(Exception):
                HubClient(self.hub, context=CONTEXT_URL).unsubscribe(self.watch_id)
            self.watch_id = ""
        self.stack.close()


def _example_queries(client: Any, console: Console) -> list[dict[str, Any]]:
    """What an operator would ask of the district, asked and shown."""
    answers = []
    for title, params in EXAMPLE_QUERIES:
        r = client.get(
            f"{BASE}/entities", params={**params, "options": "keyValues"}, headers={"Link": LINK}
        )
        _check(r, title)
        answer: dict[str, Any] = {"title": title, "params": params}
        if params.get("count"):
            answer["count"] = int(r.headers["NGSILD-Results-Count"])
            console.print(f"\n[bold]{title}[/bold]: {answer['count']}")
        else:
            rows = r.json()
            answer["results"] = rows
            console.print(f"\n[bold]{title}[/bold]: {len(rows)}")
            for row in rows[:5]:
                shown = {k: v for k, v in row.items() if k not in ("id", "type")}
                console.print(
                    f"  {row['id']}  {json.dumps(shown, ensure_ascii=False)}", highlight=False
                )
        answers.append(answer)
    return answers


AQ_WAT_PHNOM = "urn:ngsi-ld:AirQualityObserved:wat-phnom"
DEFAULT_BROKER = "mqtt://127.0.0.1:1883"
FLOWS_SHOWN = 5
IN_FLIGHT_MAX = 400  # published, not yet applied


def _reachable_broker(url: str) -> str | None:
    """The broker's URL when something answers on its port within a second, else None."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        return None
    try:
        with socket.create_connection((parts.hostname, parts.port or 1883), timeout=1):
            return url
    except OSError:
        return None


class _CongestionWatch:
    """Congestion notifications as they arrive: each counted, and the congested flows they
    carry (a notification may carry several) counted and the first few printed."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.notifications = 0
        self.flows = 0
        self.last = time.monotonic()

    def __call__(self, notification: dict[str, Any]) -> None:
        self.notifications += 1
        self.last = time.monotonic()
        for seg in notification["data"]:
            self.flows += 1
            if self.flows <= FLOWS_SHOWN:
                name = seg["id"].rsplit(":", 1)[-1]
                self.console.print(
                    f"  [yellow]congestion[/yellow] {name}: {seg.get('averageVehicleSpeed')} km/h,"
                    f" {seg.get('intensity')} vehicles/h at {seg.get('dateObserved')}",
                    highlight=False,
                )
            elif self.flows == FLOWS_SHOWN + 1:
                self.console.print("  … (more congested flows counted, not shown)")

    def wait_quiet(self, quiet_s: float = 1.0, limit_s: float = 30.0) -> None:
        """Let the last notifications of the replay arrive (delivery runs in the background)."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() - self.last < quiet_s and time.monotonic() < deadline:
            time.sleep(0.1)


def _watch_congestion(hub: Hub, watch: _CongestionWatch) -> str:
    """An in-process subscription: a road segment becoming congested is news; its id."""
    return HubClient(hub, context=CONTEXT_URL).subscribe(
        watch,
        entity_type="TrafficFlowObserved",
        watched_attributes=["congested"],
        q="congested==true",
        attributes=["averageVehicleSpeed", "intensity", "dateObserved"],
        fmt="keyValues",
    )


def _replay_mqtt(
    client: Any,
    state: Any,
    broker: str,
    steps: list[list[tuple[str, dict[str, Any]]]],
    progress: Progress,
    task: TaskID,
    pace: Callable[[int], None],
) -> int:
    """Provision every sensor as a device, then publish its readings as it would, each
    minute at its time (``pace``); how many devices there are. ``state``: the serving
    application's, whose agent and MQTT ingest take the readings in."""
    import paho.mqtt.client as mqtt

    devices = _provision_devices(client, steps)
    agent = state.agent
    ingest = state.mqtt_ingest
    deadline = time.monotonic() + 10
    while not ingest.subscribed:  # the hub listens before the sensors talk
        if time.monotonic() > deadline:
            raise RuntimeError(f"the hub did not subscribe at {broker} within 10 s")
        time.sleep(0.05)
    parts = urlsplit(broker)
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    pub.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    pub.loop_start()
    start = agent.accepted_total
    sent = 0
    try:
        for i, batch in enumerate(steps):
            pace(i)
            for eid, frag in batch:
                apikey, device_id = devices[eid]
                payload = {a: v["value"] for a, v in frag.items() if isinstance(v, dict)}
                observed = next(v.get("observedAt") for v in frag.values() if isinstance(v, dict))
                payload["TimeInstant"] = observed
                pub.publish(f"/{apikey}/{device_id}/attrs", json.dumps(payload), qos=1)
                sent += 1
            # the broker queues a bounded number of messages for a busy subscriber (Mosquitto:
            # max_queued_messages, 1000 by default) and drops the rest: keep within it
            while sent - (agent.accepted_total - start) > IN_FLIGHT_MAX:
                progress.update(task, completed=agent.accepted_total - start)
                time.sleep(0.01)
            progress.update(task, completed=agent.accepted_total - start)
        deadline = time.monotonic() + 60
        while agent.accepted_total - start < sent:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"only {agent.accepted_total - start} of {sent} MQTT readings arrived in 60 s"
                )
            progress.update(task, completed=agent.accepted_total - start)
            time.sleep(0.05)
        progress.update(task, completed=sent)
    finally:
        pub.disconnect()  # first: it wakes the network thread, so loop_stop joins at once
        pub.loop_stop()
    return len(devices)


def _declared_type(value: Any) -> dict[str, str]:
    """How a measure is declared, so the agent converts it back to what was sent."""
    if isinstance(value, bool):
        return {"type": "Boolean"}
    return {"type": "Number"} if isinstance(value, int | float) else {}


def _provision_devices(
    client: Any, steps: list[list[tuple[str, dict[str, Any]]]]
) -> dict[str, tuple[str, str]]:
    """One service group per sensor type (read with the district's @context, units mapped)
    and one device per sensor, through the FIWARE IoT Agent provisioning API."""
    first: dict[str, dict[str, Any]] = {}
    kinds: dict[str, dict[str, Any]] = {}  # per sensor type, every attribute it ever sends
    for batch in steps:
        for eid, frag in batch:
            first.setdefault(eid, frag)
            seen = kinds.setdefault(eid.split(":")[2], {})
            for name, value in frag.items():
                seen.setdefault(name, value)
    groups = []
    for kind, frag in kinds.items():
        units = [  # every measure declared: a device writes only what it is provisioned for
            {
                "object_id": a,
                "name": a,
                **_declared_type(v.get("value")),
                **({"unitCode": v["unitCode"]} if v.get("unitCode") else {}),
            }
            for a, v in frag.items()
            if isinstance(v, dict)
        ]
        groups.append(
            {
                "apikey": f"daunpenh-{kind.lower()}",
                "entity_type": kind,
                "resource": "/iot/json",
                "jsonLdContext": CONTEXT_URL,
                "attributes": units,
            }
        )
    _check(client.post("/iot/services", json={"services": groups}), "provisioning groups")
    devices: dict[str, tuple[str, str]] = {}
    body = []
    for eid in first:
        kind, name = eid.split(":")[2], eid.split(":", 3)[3]
        devices[eid] = (f"daunpenh-{kind.lower()}", f"{kind}-{name}")
        body.append(
            {
                "device_id": devices[eid][1],
                "entity_name": eid,
                "entity_type": kind,
                "apikey": devices[eid][0],
                "protocol": "PDI-IoTA-JSON",
                "transport": "MQTT",
            }
        )
    _check(client.post("/iot/devices", json={"devices": body}), "provisioning devices")
    return devices


def _history_example(client: Any, console: Console, minutes: int) -> dict[str, Any]:
    """The replayed hour read back through the temporal API: 15-minute PM2.5 averages."""
    start = DISTRICT_TIME.strftime("%Y-%m-%dT%H:%M:%SZ")
    params = {
        "attrs": "pm25",
        "options": "aggregatedValues",
        "aggrMethods": "avg,max",
        "aggrPeriodDuration": "PT15M",
        "timerel": "after",
        "timeAt": start,
    }
    r = client.get(
        f"{BASE}/temporal/entities/{AQ_WAT_PHNOM}", params=params, headers={"Link": LINK}
    )
    _check(r, "reading history")
    pm25 = r.json().get("pm25", {})
    console.print(
        f"\n[bold]PM2.5 at Wat Phnom over the replay, 15-minute buckets[/bold] ({minutes} min)"
    )
    for (avg, t0, _), (peak, _, _) in zip(pm25.get("avg", []), pm25.get("max", []), strict=False):
        console.print(f"  from {t0}: average {avg:.1f}, peak {peak:.1f} µg/m³", highlight=False)
    return {"params": params, "pm25": pm25}


def curl_lines(settings: Settings) -> list[str]:
    url = f"http://{settings.host}:{settings.port}{BASE}"
    link = f"Link: {LINK}"
    lines = []
    for _, params in EXAMPLE_QUERIES[:3]:
        lines.append(f"curl -s '{url}/entities?{urlencode(params, quote_via=quote)}' -H '{link}'")
    lines.append(f"curl -s '{url}/types' -H '{link}'")
    history = {"attrs": "pm25", "options": "temporalValues", "lastN": "5"}
    lines.append(
        f"curl -s '{url}/temporal/entities/{AQ_WAT_PHNOM}?{urlencode(history, quote_via=quote)}' -H '{link}'"
    )
    lines.append(
        f"curl -s '{url}/entities?type=Building&limit=3' -H 'Accept: application/geo+json' -H '{link}'"
    )
    root = f"http://{settings.host}:{settings.port}"
    # the traffic service: its signals' state and commands, jams, and buses for passenger apps
    lines.append(f"curl -s '{url}/entities?type=TrafficSignal&options=keyValues&limit=3'")
    lines.append(f"curl -s '{url}/entities?type=Alert&q=subCategory==%22trafficJam%22&limit=3'")
    lines.append(f"curl -s '{root}/services/traffic/gtfs-rt/vehicle-positions?format=json'")
    # the energy service: tomorrow's district plan, and the chargers it talked to
    lines.append(
        f"curl -s '{url}/entities/urn:ngsi-ld:EnergySchedule:district:2026-12-01?options=keyValues'"
    )
    lines.append(f"curl -s '{url}/entities?type=EVChargingStation&options=keyValues'")
    return lines


def _by_step(updates: list[tuple[str, dict[str, Any]]]) -> list[list[tuple[str, dict[str, Any]]]]:
    """Group updates by observation time, in order: one batch per minute of readings."""
    steps: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for eid, frag in updates:
        key = next((a.get("observedAt") for a in frag.values() if isinstance(a, dict)), "")
        steps.setdefault(key or "", []).append((eid, frag))
    return list(steps.values())


def _first_flow(entities: list[dict[str, Any]]) -> str:
    return next(e["id"] for e in entities if e["type"] == "TrafficFlowObserved")


def _chunks(items: list[Any], n: int) -> list[list[Any]]:
    return [items[i : i + n] for i in range(0, len(items), n)]


def _check(resp: Any, what: str) -> None:
    if resp.status_code >= 300:
        raise RuntimeError(f"{what} failed: HTTP {resp.status_code}: {resp.text[:500]}")


def _reset_sqlite(url: str) -> bool:
    """The demo starts from an empty database each time (only for its own SQLite file);
    whether it removed one."""
    if url.startswith("sqlite:///") and not url.endswith(":memory:"):
        path = Path(url[len("sqlite:///") :])
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        return True
    return False
