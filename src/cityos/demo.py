"""``cityos demo``: the sample district of Phnom Penh loaded and replayed through the hub's API.

Everything goes through the real HTTP API (in process), exactly as an outside client would
send it: the district as batch upserts, then an hour of sensor readings as batch updates.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cityos.config import Settings

with warnings.catch_warnings():  # Starlette nudges towards httpx2; httpx is what ships today
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient
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
    _reset_sqlite(settings.database_url)
    from cityos.web.app import create_app

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
            t0 = time.perf_counter()
            task = progress.add_task(f"Replaying {minutes} min of sensor data", total=len(updates))
            for batch in steps:
                body = [{"id": eid, **frag} for eid, frag in batch]
                r = client.post(
                    f"{BASE}/entityOperations/update", content=json.dumps(body), headers=HEADERS
                )
                _check(r, "replaying sensor data")
                progress.advance(task, len(batch))
            replay_s = time.perf_counter() - t0
        summary.update(
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
            f"updates ({minutes} min) in {replay_s:.2f} s ({summary['updates_per_second']}/s)."
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
    summary["curl"] = curl_lines(settings)
    return summary


AQ_WAT_PHNOM = "urn:ngsi-ld:AirQualityObserved:wat-phnom"


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


def _reset_sqlite(url: str) -> None:
    """The demo starts from an empty database each time (only for its own SQLite file)."""
    if url.startswith("sqlite:///") and not url.endswith(":memory:"):
        path = Path(url[len("sqlite:///") :])
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
