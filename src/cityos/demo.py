"""``cityos demo``: the sample district of Phnom Penh loaded and replayed through the hub's API.

Everything goes through the real interfaces, exactly as outside clients would use them: the
district as batch upserts over the NGSI-LD API; then an hour of sensor readings, published by
the sensors themselves as MQTT devices (``/<apikey>/<device>/attrs``, provisioned over the
IoT Agent API) when a broker is reachable, else sent as batch updates over HTTP. A
subscription prints the congested flows its notifications carry as the replay raises them.
"""

from __future__ import annotations

import json
import socket
import time
import warnings
from datetime import timedelta
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


def run_demo(
    settings: Settings, *, minutes: int = 60, console: Console | None = None
) -> dict[str, Any]:
    """Load and replay the district into a fresh demo database; returns a summary."""
    console = console or Console()
    if _reset_sqlite(settings.database_url):
        # the audit log went with the database: so does the anchor of how far it reached
        # (else the signer would rightly refuse the new, shorter log)
        import os

        from cityos.security.audit import anchor_path_for

        database = "sqlite:" + os.path.realpath(settings.database_url[len("sqlite:///") :])
        anchor = anchor_path_for(settings.audit_key_path, settings.audit_anchor_path, database)
        if anchor is not None:
            anchor.unlink(missing_ok=True)
    from cityos.web.app import create_app

    broker = _reachable_broker(settings.mqtt_url or DEFAULT_BROKER)
    if broker:
        settings.mqtt_url = broker
        settings.device_rate_per_s = 0  # the replay squeezes an hour into seconds
    hub = Hub(settings)
    hub.store.put_context(
        StoredContext("district", CONTEXT_URL, DISTRICT_CONTEXT, "hosted", now_iso())
    )
    entities = generate_district(seed=0)
    updates = list(sensor_updates(entities, DISTRICT_TIME, minutes=minutes))
    steps = _by_step(updates)
    summary: dict[str, Any] = {
        "database_url": settings.database_url,
        "entities": count_by_type(entities),
    }
    with TestClient(
        create_app(settings, hub), base_url=f"http://{settings.host}:{settings.port}"
    ) as client:
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        with progress:
            t0 = time.perf_counter()
            task = progress.add_task("Loading the district", total=len(entities))
            for chunk in _chunks(entities, 100):
                r = client.post(
                    f"{BASE}/entityOperations/upsert", content=json.dumps(chunk), headers=HEADERS
                )
                _check(r, "loading the district")
                progress.advance(task, len(chunk))
            load_s = time.perf_counter() - t0
            congestion = _watch_congestion(hub, progress.console)
            t0 = time.perf_counter()
            how = "over MQTT" if broker else "over HTTP"
            task = progress.add_task(
                f"Replaying {minutes} min of sensor data {how}", total=len(updates)
            )
            devices = 0
            if broker:
                devices = _replay_mqtt(client, broker, steps, progress, task)
            else:
                for batch in steps:
                    body = [{"id": eid, **frag} for eid, frag in batch]
                    r = client.post(
                        f"{BASE}/entityOperations/update",
                        content=json.dumps(body),
                        headers=HEADERS,
                    )
                    _check(r, "replaying sensor data")
                    progress.advance(task, len(batch))
            replay_s = time.perf_counter() - t0
            congestion.wait_quiet()
        summary.update(
            replay_transport="mqtt" if broker else "http",
            devices=devices,
            # notifications received, and the congested flows they reported (one or more each)
            congestion_notifications=congestion.notifications,
            congested_flows_reported=congestion.flows,
            loaded=len(entities),
            load_seconds=round(load_s, 3),
            updates=len(updates),
            replay_seconds=round(replay_s, 3),
            updates_per_second=round(len(updates) / replay_s, 1) if replay_s else None,
        )
        table = Table(title="The district, loaded through the NGSI-LD API")
        table.add_column("entity type")
        table.add_column("count", justify="right")
        for kind, n in summary["entities"].items():
            table.add_row(kind, str(n))
        console.print(table)
        console.print(
            f"Loaded {len(entities)} entities in {load_s:.2f} s; replayed {len(updates)} sensor "
            f"updates ({minutes} min) {how} in {replay_s:.2f} s "
            f"({summary['updates_per_second']}/s); {congestion.notifications} congestion "
            f"notifications received, reporting {congestion.flows} congested flows."
        )
        summary["queries"] = []
        for title, params in EXAMPLE_QUERIES:
            r = client.get(
                f"{BASE}/entities",
                params={**params, "options": "keyValues"},
                headers={"Link": LINK},
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
            summary["queries"].append(answer)
        history = hub.store.history("", _first_flow(entities), None, limit=100_000)
        summary["history_rows_first_sensor"] = len(history)
        summary["history"] = _history_example(client, console, minutes)
    summary["traffic"] = run_traffic(settings, console, minutes)
    summary["energy"] = run_energy(settings, console)
    summary["curl"] = curl_lines(settings)
    return summary


# the district's local midnight (Phnom Penh, UTC+7): simulation time 0 of the traffic run
DISTRICT_MIDNIGHT = DISTRICT_TIME.replace(hour=0) - timedelta(hours=7)


def _traffic_folder(settings: Settings) -> Path:
    """Where the district's network, demand and GTFS feed are written: beside a SQLite
    database (the served GTFS-realtime refers to the feed), else in data/."""
    url = settings.database_url
    base = Path(url.removeprefix("sqlite:///")).parent if url.startswith("sqlite:///") else None
    return (base or Path("data")) / "traffic"


def run_traffic(settings: Settings, console: Console, minutes: int) -> dict[str, Any]:
    """The traffic service on the district's own streets, through the hub: SUMO's junctions
    and buses report as devices, CityOS's controller with bus priority decides, the signals
    answer their commands; congestion, jams, emissions and GTFS-realtime land in the hub."""
    import asyncio

    from cityos.services.traffic import make_controller
    from cityos.services.traffic.priority import BusPriority
    from cityos.services.traffic.sim.hubloop import run_through_hub
    from cityos.services.traffic.sim.roadnet import district_scenario
    from cityos.services.traffic.sim.transit import make_bus_lines

    folder = _traffic_folder(settings)
    begin = (DISTRICT_TIME - DISTRICT_MIDNIGHT).total_seconds()
    scenario = district_scenario(folder, begin=begin, end=begin + 60 * minutes)
    plan = make_bus_lines(scenario.net_file, scenario.begin, scenario.end, 0, folder / "transit")
    controller = make_controller("cityos", network=scenario.name)
    hub = Hub(settings)
    before = hub.store.stats()["entities"]
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} s simulated"),
        TimeElapsedColumn(),
        console=console,
    )
    try:
        with progress:
            task = progress.add_task(
                f"Signals and buses under the traffic service ({minutes} min, SUMO)",
                total=scenario.duration,
            )
            result, stats = asyncio.run(
                run_through_hub(
                    scenario,
                    controller,
                    hub,
                    transit=plan,
                    priority=BusPriority(controller),
                    context=CONTEXT_URL,
                    origin=DISTRICT_MIDNIGHT,
                    progress=lambda done, total: progress.update(task, completed=done),
                )
            )
        created = hub.store.stats()["entities"] - before
    finally:
        hub.close()
    summary = {
        "scenario": scenario.name,
        "controller": result.controller,
        "average_delay_s": round(result.average_delay_s, 2),
        "vehicles": result.vehicles,
        "bus_lines": len(plan.lines),
        "bus_trips": len(plan.trips),
        "hub": dict(vars(stats)),
        "entities": created,  # signals, flows, segments, buses, alerts, emissions
        "wall_s": round(result.wall_s, 2),
    }
    console.print(
        f"Traffic: {result.vehicles:,} vehicles and {len(plan.trips)} buses on {len(plan.lines)} "
        f"lines through the district's signals under {result.controller}, in "
        f"{result.wall_s:.1f} s: average delay {result.average_delay_s:.1f} s; "
        f"{stats.commands:,} signal commands, {stats.jams} jams, "
        f"{stats.emission_entities} emission records, {stats.bus_reports:,} bus reports."
    )
    return summary


DEMO_CHARGERS = [("market-ac-1", 11.0), ("market-ac-2", 11.0), ("wat-phnom-dc", 22.0)]
DEMO_CARD = "04CITYOS0001"


def run_energy(settings: Settings, console: Console) -> dict[str, Any]:
    """The energy service on the district: tomorrow's battery plan for every metered
    building (forecast from the meters in the hub, stored as EnergySchedule entities), and
    the district's chargers speaking OCPP 2.0.1 to the service's central system, charging
    under the plan's limits."""
    import asyncio

    from cityos.services.energy.mpc import Battery
    from cityos.services.energy.ocpp import CentralSystem
    from cityos.services.energy.planner import Tariff, ev_limits, plan_day, schedule_entities
    from cityos.services.energy.sim.chargers import run_chargers

    hub = Hub(settings)
    before = hub.store.stats()["entities"]
    try:
        client = HubClient(hub).for_context(CONTEXT_URL)
        day = (DISTRICT_TIME + timedelta(days=1)).date()
        plan = plan_day(client, day, battery=Battery(13.5, 5.0))
        client.upsert(schedule_entities(plan))
        tariff = Tariff()
        start = DISTRICT_TIME.replace(hour=11)  # 18:00 in Phnom Penh, the evening peak

        async def chargers() -> list[Any]:
            async with CentralSystem(HubClient(hub), port=0, id_tokens={DEMO_CARD}) as system:
                return await run_chargers(
                    system, DEMO_CHARGERS, DEMO_CARD, start, limits_kw=ev_limits(tariff, 22.0)
                )

        runs = asyncio.run(chargers())
        created = hub.store.stats()["entities"] - before
    finally:
        hub.close()
    summary = {
        "day": day.isoformat(),
        "buildings": len(plan.buildings),
        "status": "fallback" if plan.fallback else "optimal",
        "forecaster": plan.forecaster,
        **plan.summary,
        "chargers": [vars(r) for r in runs],
        "entities": created,  # schedules, chargers
    }
    console.print(
        f"Energy: {len(plan.buildings)} buildings planned for {day} ({plan.forecaster}, "
        f"{summary['status']}): evening peak {plan.summary['peak_kw_no_control']:.0f} → "
        f"{plan.summary['peak_kw']:.0f} kW with batteries; {len(runs)} chargers over OCPP 2.0.1 "
        f"delivered {sum(r.kwh for r in runs):.1f} kWh under the plan's limits."
    )
    return summary


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


def _watch_congestion(hub: Hub, console: Console) -> _CongestionWatch:
    """An in-process subscription: a road segment becoming congested is news."""
    watch = _CongestionWatch(console)
    HubClient(hub, context=CONTEXT_URL).subscribe(
        watch,
        entity_type="TrafficFlowObserved",
        watched_attributes=["congested"],
        q="congested==true",
        attributes=["averageVehicleSpeed", "intensity", "dateObserved"],
        fmt="keyValues",
    )
    return watch


def _replay_mqtt(
    client: TestClient,
    broker: str,
    steps: list[list[tuple[str, dict[str, Any]]]],
    progress: Progress,
    task: TaskID,
) -> int:
    """Provision every sensor as a device, then publish its readings as it would; how many
    devices there are."""
    import paho.mqtt.client as mqtt

    devices = _provision_devices(client, steps)
    agent = client.app.state.agent  # type: ignore[attr-defined]
    ingest = client.app.state.mqtt_ingest  # type: ignore[attr-defined]
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
        for batch in steps:
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
    client: TestClient, steps: list[list[tuple[str, dict[str, Any]]]]
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


def _history_example(client: TestClient, console: Console, minutes: int) -> dict[str, Any]:
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
