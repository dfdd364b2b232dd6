"""What every phase of the day shares: the hub, the clock, where files go, the console
with the day's progress bar, and the events a phase hands the timeline."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from cityos.config import Settings
from cityos.hub.client import HubClient
from cityos.hub.core import Hub
from cityos.twin.district import CONTEXT_URL, DISTRICT_TIME

from .clock import DAY_S, DayClock

TIMEZONE = "Asia/Phnom_Penh"
TZ = ZoneInfo(TIMEZONE)
# the district's local midnight (UTC+7): simulation time 0 of the traffic run, hour 0 of the day
DISTRICT_MIDNIGHT = DISTRICT_TIME.replace(hour=0) - timedelta(hours=7)
MIDNIGHT = DISTRICT_MIDNIGHT.astimezone(TZ)
DAY = MIDNIGHT.date()
HOUR_S = 3600.0


def hhmm(text: str) -> float:
    """Seconds since midnight of ``HH:MM``."""
    hours, minutes = text.split(":")
    return int(hours) * HOUR_S + int(minutes) * 60.0


def demo_folder(settings: Settings) -> Path:
    """Where the day's generated files go (the traffic network and feed, camera footage,
    the payments keys): beside a SQLite database, else in data/."""
    url = settings.database_url
    if url.startswith("sqlite:///") and not url.endswith(":memory:"):
        return Path(url.removeprefix("sqlite:///")).parent
    return Path("data")


@dataclass(frozen=True)
class Event:
    """Something a phase does at ``at_s`` seconds after midnight; ``run`` answers a line
    for the console (or None)."""

    at_s: float
    run: Callable[[], str | None]


class Phase(Protocol):
    """One service's part of the day."""

    name: str  # its key in the summary
    service: str  # the registered service it needs (cityos.services.registry)
    title: str

    def events(self) -> list[Event]: ...

    def result(self) -> dict[str, Any]: ...


class DayBar:
    """The day's clock as a progress bar (stderr with --json); paused while a phase shows
    a bar of its own (rich shows one live display at a time)."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("[bold]The day[/bold]"),
            BarColumn(),
            TextColumn("{task.fields[clock]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.task = self.progress.add_task("day", total=DAY_S, clock="00:00")
        self.running = False

    def show(self, seconds: float, label: str) -> None:
        self.progress.update(self.task, completed=min(seconds, DAY_S), clock=label)

    def start(self) -> None:
        if not self.running:
            self.progress.start()
            self.running = True

    def stop(self) -> None:
        if self.running:
            self.progress.stop()
            self.running = False


@dataclass
class Day:
    """The day being run: the hub every phase writes to, the clock, the console."""

    settings: Settings
    hub: Hub
    clock: DayClock
    console: Console
    folder: Path
    app_state: Any = None  # the served application's state (its IoT agent), when serving
    bar: DayBar | None = None
    entities: dict[str, int] = field(default_factory=dict)  # created, per phase

    def client(self, context: str | None = CONTEXT_URL) -> HubClient:
        """A client of the hub, in the district's @context unless told otherwise."""
        return HubClient(self.hub, context=context) if context else HubClient(self.hub)

    def say(self, line: str) -> None:
        self.console.print(f"[dim]{self.clock.label()}[/dim] {line}", highlight=False)

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        """No day bar while a phase draws its own progress."""
        bar = self.bar
        running = bar is not None and bar.running
        if bar is not None:
            bar.stop()
        try:
            yield
        finally:
            if bar is not None and running:
                bar.start()
