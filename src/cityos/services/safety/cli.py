"""``cityos safety …``: run a camera (a video file or a stream) into the hub."""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

app = typer.Typer(
    help="Safety: people counts, zone alerts and masked snapshots from cameras (OpenCV).",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    err.print(Text(f"error: {message}", style="red"), soft_wrap=True)  # one line, as written
    return typer.Exit(2)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _settings() -> Any:
    """The safety settings, as ``cityos serve`` reads them (cityos.toml, CITYOS_SAFETY_*)."""
    from .settings import read_settings

    try:
        return read_settings()
    except ValueError as exc:
        raise _fail(_one_line(exc)) from None


def _camera_id(source: str) -> str:
    """A device id from the source: a file's name, or a URL's host and path."""
    name = Path(source).stem if "://" not in source else source.split("://", 1)[1]
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:64] or "camera"


def _location(text: str | None) -> tuple[float, float] | None:
    if not text:
        return None
    try:
        lon, lat = (float(p) for p in text.split(","))
    except ValueError:
        raise _fail(f"--location {text!r}: expected lon,lat (degrees)") from None
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise _fail(f"--location {text!r}: lon,lat out of range")
    return (lon, lat)


def _start(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _fail(f"--start {text!r} is not an ISO 8601 date-time") from None
    return at if at.tzinfo else at.astimezone()


def _open_hub(database_url: str) -> Any:
    from cityos.config import Settings
    from cityos.hub.core import Hub

    pool_log = logging.getLogger("psycopg.pool")  # its retries would print a line each
    level = pool_log.level
    pool_log.setLevel(logging.CRITICAL)
    try:
        return Hub(Settings(database_url=database_url))
    except Exception as exc:  # a wrong URL or an unreachable server: one line
        raise _fail(f"cannot open the hub at {database_url}: {_one_line(exc)}") from None
    finally:
        pool_log.setLevel(level)


@app.command()
def run(
    source: Annotated[str, typer.Option(help="A video file, or a stream URL (rtsp://, http://)")],
    zones: Annotated[
        Path | None, typer.Option(help="JSON file of zones (polygons, capacity, hours)")
    ] = None,
    line: Annotated[
        str | None, typer.Option(help="Counting line x1,y1,x2,y2 in pixels (in: to its right)")
    ] = None,
    mask_bodies: Annotated[
        bool | None,
        typer.Option("--mask-bodies/--mask-heads", help="Mask whole people in snapshots"),
    ] = None,
    max_frames: Annotated[int, typer.Option(min=0, help="Stop after this many frames")] = 0,
    camera_id: Annotated[
        str | None, typer.Option(help="The camera's device id (default: from the source)")
    ] = None,
    name: Annotated[str, typer.Option(help="The camera's name")] = "",
    location: Annotated[str | None, typer.Option(help="Where the camera is: lon,lat")] = None,
    flow_zone: Annotated[
        str, typer.Option(help="The flows zone whose entrance the counting line is")
    ] = "",
    detector: Annotated[
        str | None, typer.Option(help="motion-knn, motion-mog2, hog or combined")
    ] = None,
    interval_s: Annotated[
        float | None, typer.Option(min=1.0, help="Seconds of video per counts update")
    ] = None,
    start: Annotated[
        str | None, typer.Option(help="When the video's first frame was taken (ISO 8601)")
    ] = None,
    database_url: Annotated[
        str, typer.Option(envvar="CITYOS_DATABASE_URL", help="The hub's database")
    ] = "sqlite:///cityos.db",
    tenant: Annotated[str | None, typer.Option(help="Tenant of the camera's entities")] = None,
    hub: Annotated[
        bool, typer.Option("--hub/--no-hub", help="Write to the hub (--no-hub: only count)")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Count people, zones and line crossings; alert with masked snapshots; report health."""
    from .errors import SafetyError
    from .masking import MaskPolicy
    from .model import Camera
    from .pipeline import PipelineConfig
    from .zones import load_zones, parse_line

    settings = _settings()
    try:
        zone_list = load_zones(zones) if zones is not None else []
        counting = parse_line(line) if line else None
        config = PipelineConfig(
            detector=detector or settings.detector,
            work_width=settings.work_width,
            mask=MaskPolicy(
                bodies=settings.mask_bodies if mask_bodies is None else mask_bodies,
                head_fraction=settings.head_fraction,
                style=settings.mask_style,
            ),
            interval_s=settings.interval_s if interval_s is None else interval_s,
            hold_s=settings.hold_s,
            snapshot_max_side=settings.snapshot_max_side,
            snapshot_max_bytes=settings.snapshot_max_bytes,
            reconnect_attempts=settings.reconnect_attempts,
        )
        from .people import make_detector

        people = make_detector(config.detector, work_width=config.work_width)
    except SafetyError as exc:
        raise _fail(str(exc)) from None
    camera = Camera(camera_id or _camera_id(source), name, _location(location), flow_zone)
    origin = _start(start)
    the_hub = _open_hub(database_url) if hub else None
    try:
        result = _run(source, camera, the_hub, tenant if tenant is not None else settings.tenant,
                      zone_list, counting, config, origin, max_frames, people)  # fmt: skip
    except SafetyError as exc:
        raise _fail(str(exc)) from None
    finally:
        if the_hub is not None:
            the_hub.close()
    _show(result, as_json)
    if result.state != "ok":
        err.print(Text(f"error: {result.error}", style="red"), soft_wrap=True)
        raise typer.Exit(2)


def _run(
    source: str,
    camera: Any,
    the_hub: Any,
    tenant: str,
    zone_list: list[Any],
    counting: Any,
    config: Any,
    origin: datetime | None,
    max_frames: int,
    people: Any,
) -> Any:
    from .pipeline import run_camera

    client = agent = None
    if the_hub is not None:
        from cityos.devices.agent import Agent
        from cityos.hub.client import HubClient

        client = HubClient(the_hub, tenant=tenant)
        agent = Agent(the_hub)  # the camera is a device of the hub's own IoT agent
    with _bar() as bar:
        task = bar.add_task(f"camera {camera.camera_id}", total=None, frames=0)

        def progress(src: Any, frames: int) -> None:
            # a file's bar runs on video time: container frame counts are often wrong
            if bar.tasks[task].total is None and not src.stream and src.declared_duration_s:
                bar.update(task, total=round(src.declared_duration_s, 1))
            bar.update(task, completed=round(src.last_t, 1), frames=frames)

        return run_camera(
            source,
            camera,
            client=client,
            agent=agent,
            zones=zone_list,
            line=counting,
            config=config,
            origin=origin,
            max_frames=max_frames,
            detector=people,
            on_progress=progress,
        )


def _bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.1f} s of video, {task.fields[frames]} frames"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )


def _show(result: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.as_json()))
        return
    table = Table(title=f"camera {result.camera}: {result.frames} frames, {result.fps:.1f} fps")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("people in view (peak)", str(result.people_peak))
    table.add_row("people in view (mean)", f"{result.people_mean:.1f}")
    for zone, peak in result.zones_peak.items():
        table.add_row(f"zone {zone} (peak)", str(peak))
    table.add_row("crossed in / out", f"{result.crossed_in} / {result.crossed_out}")
    table.add_row("alerts", str(len(result.alerts) or len(result.incidents)))
    table.add_row("state", result.state)
    console.print(table)


@app.command()
def cameras(
    database_url: Annotated[
        str, typer.Option(envvar="CITYOS_DATABASE_URL", help="The hub's database")
    ] = "sqlite:///cityos.db",
    tenant: Annotated[str | None, typer.Option(help="Tenant of the cameras")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """The cameras the hub knows: state, frame rate, last frame, people in view."""
    from cityos.hub.client import HubClient

    settings = _settings()
    the_hub = _open_hub(database_url)
    try:
        client = HubClient(the_hub, tenant=tenant if tenant is not None else settings.tenant)
        found = client.query(
            type="Device", q='deviceCategory=="camera"', fmt="keyValues", limit=1000
        )
    finally:
        the_hub.close()
    keys = ("deviceState", "frameRate", "framesProcessed", "peopleCount", "dateLastFrame")
    rows = [{"id": d["id"], "name": d.get("name"), **{k: d.get(k) for k in keys}} for d in found]
    if as_json:
        print(json.dumps(rows))
        return
    table = Table(title=f"{len(rows)} camera(s)")
    for col in ("id", "state", "fps", "frames", "people", "last frame"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["id"], *(str(r[k]) if r[k] is not None else "" for k in keys))
    console.print(table)
