"""The timeline: every available phase's events in simulated-time order on one clock, each
phase's entities counted, then the same day without CityOS and the table of the two.

A phase whose service is not registered (``cityos.services.registry``) is skipped with one
line; the others run. Events at the same time run in ``order`` (the district is loaded
before anything reads it; an hour's feeds before the replay that starts with it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from rich.console import Console

from cityos.config import Settings
from cityos.hub.core import Hub
from cityos.plug import Service
from cityos.services import registry
from cityos.services.settings import settings_of

from . import summary
from .baseline import fixed_time_traffic
from .cameras import CameraPhase
from .clock import DayClock
from .context import DAY, MIDNIGHT, Day, DayBar, Event, Phase, demo_folder
from .energy import EnergyPhase
from .fares import FarePhase
from .indicators import IndicatorPhase
from .people import PeoplePhase
from .traffic import TrafficPhase


def registered() -> dict[str, Service]:
    """The services this installation runs, by name."""
    return {s.name: s for s in registry.services()}


@dataclass(frozen=True)
class Timed:
    """An event with the phase it belongs to (whose entities it creates) and its rank among
    events at the same time."""

    phase: str
    event: Event
    order: int


def open_day(
    settings: Settings, hub: Hub, *, speed: float, console: Console, app_state: Any = None
) -> Day:
    day = Day(settings, hub, DayClock(MIDNIGHT, speed), console, demo_folder(settings),
              app_state=app_state, bar=DayBar(console))  # fmt: skip
    bar = day.bar
    assert bar is not None
    day.clock.on_tick = lambda s: bar.show(s, day.clock.label(s))
    return day


def make_phases(
    day: Day, minutes: int, available: dict[str, Service]
) -> tuple[list[Phase], list[str]]:
    """The phases whose service is registered, and the skipped services' names."""
    makers: list[tuple[str, Callable[[Service], Phase]]] = [
        ("flows", lambda s: PeoplePhase(day, settings_of(s, day.settings))),
        ("payments", lambda s: FarePhase(day, s)),
        ("traffic", lambda s: TrafficPhase(day, minutes)),
        ("safety", lambda s: CameraPhase(day, settings_of(s, day.settings))),
        ("energy", lambda s: EnergyPhase(day)),
        ("city", lambda s: IndicatorPhase(day)),
    ]
    phases, skipped = [], []
    for name, make in makers:
        if name in available:
            phases.append(make(available[name]))
        else:
            skipped.append(name)
    return phases, skipped


ORDER = {"district": 0, "flows": 5, "payments": 6, "replay": 7, "traffic": 8, "safety": 9,
         "energy": 9, "city": 10}  # fmt: skip


def timeline(phases: Iterable[Phase], extra: Iterable[tuple[str, Event, int]]) -> list[Timed]:
    found = [Timed(p.name, e, ORDER.get(p.service, 9)) for p in phases for e in p.events()]
    found += [Timed(name, e, order) for name, e, order in extra]
    return sorted(found, key=lambda t: (t.event.at_s, t.order))


def run(day: Day, timed: list[Timed]) -> None:
    """Every event at its time; the entities each creates counted for its phase."""
    stats = day.hub.store.stats
    assert day.bar is not None
    day.bar.start()
    day.clock.start()
    try:
        for t in timed:
            day.clock.advance(t.event.at_s)
            day.bar.show(day.clock.now_s, day.clock.label())
            before = stats()["entities"]
            line = t.event.run()
            day.entities[t.phase] = day.entities.get(t.phase, 0) + stats()["entities"] - before
            if line:
                day.say(line)
        day.bar.show(day.clock.now_s, day.clock.label())
    finally:
        day.bar.stop()


def run_day(
    day: Day,
    minutes: int,
    *,
    extra: Iterable[tuple[str, Event, int]] = (),
    available: dict[str, Service] | None = None,
) -> dict[str, Any]:
    """The whole day, its baseline and its table (printed); the summary for ``--json``."""
    started = time.perf_counter()
    phases, skipped = make_phases(day, minutes, registered() if available is None else available)
    for name in skipped:
        day.console.print(f"[dim]The {name} service is not installed: its part of the day is "
                          "skipped.[/dim]")  # fmt: skip
    try:
        run(day, timeline(phases, extra))
        results = {p.name: p.result() | {"entities": day.entities.get(p.name, 0)} for p in phases}
        baseline = _baseline(day, phases, results)
    finally:
        for p in phases:
            close = getattr(p, "close", None)
            if close is not None:
                close()
    rows = summary.day_rows(results, baseline)
    day.console.print()
    day.console.print(summary.rich_table(rows))
    for note in summary.notes(rows):
        day.console.print(f"  {note}", style="dim", highlight=False)
    return {
        "date": DAY.isoformat(),
        "speed": day.clock.speed if day.clock.speed != float("inf") else "max",
        "skipped": skipped,
        "phases": results,
        "baseline": baseline,
        "rows": [r.as_dict() for r in rows],
        "entities": dict(day.entities),
        "wall_s": round(time.perf_counter() - started, 1),
    }


def _baseline(day: Day, phases: list[Phase], results: dict[str, Any]) -> dict[str, Any]:
    """The same day without CityOS, for what both runs can measure (:mod:`.baseline`)."""
    out: dict[str, Any] = {}
    traffic = next((p for p in phases if isinstance(p, TrafficPhase)), None)
    if traffic is not None and traffic.scenario is not None and traffic.plan is not None:
        out["traffic"] = fixed_time_traffic(day, traffic.scenario, traffic.plan)
    if "energy" in results:
        e = results["energy"]
        out["energy"] = {k: e[f"{k}_no_control"] for k in ("peak_kw", "cost", "carbon_kg")}
    if "fares" in results:
        out["fares"] = {"cashless_share": 0.0, "assumed": "every fare paid in cash"}
    return out
