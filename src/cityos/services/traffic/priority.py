"""Bus signal priority: green extension and early green for a late bus, around any controller.

A bus's on-board unit knows its trip, where it is on its line and the next signal on its
path with the distance to its stop line (what a transit-signal-priority request carries, as
SAE J2735's signal request message does); it reports that with its position. The service
compares the bus with its timetable (:func:`.gtfs_rt.estimate_delay`), and for a bus at
least ``late_after_s`` behind that is within ``reach_s`` of its stop line:

* **green extension** — its approach has green: the phase is held (up to
  ``max_extension_s`` per bus and junction) instead of switching away;
* **early green** — its approach has red: the controller's choice is replaced by a phase
  that serves it; the safety guard still ends the current green no earlier than its
  minimum and runs yellow and all-red first.

Everything else is the wrapped controller's decision, so priority costs general traffic
only the seconds it actually gives.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .gtfs_rt import BusPosition
from .model import Decision, Observation, SignalLayout


@dataclass(frozen=True, slots=True)
class BusReport:
    """One bus at one moment, as its on-board unit reports it."""

    vehicle_id: str
    trip_id: str
    route_id: str
    lon: float
    lat: float
    bearing: float
    speed_mps: float
    at: float  # simulation seconds
    distance_m: float  # along its line (GTFS shape_dist_traveled scale)
    next_signal: str | None  # traffic-light id ahead on its path
    approach_lane: str | None  # the lane it will cross that signal from
    to_stop_line_m: float | None
    delay_s: float | None = None  # behind its timetable (negative: early)
    next_stop_sequence: int | None = None
    at_stop: bool = False
    exit_lane: str | None = None  # the lane it leaves that signal on

    def position(self, service_day_start: int | None = None) -> BusPosition:
        """The GTFS-realtime view of this report."""
        return BusPosition(
            vehicle_id=self.vehicle_id,
            trip_id=self.trip_id,
            route_id=self.route_id,
            lon=self.lon,
            lat=self.lat,
            bearing=self.bearing,
            speed_mps=self.speed_mps,
            timestamp=int(self.at + (service_day_start or 0)),
            delay_s=self.delay_s,
            next_stop_sequence=self.next_stop_sequence,
            stopped=self.at_stop,
        )


@dataclass
class PriorityStats:
    """What priority did in a run."""

    extensions: int = 0
    early_greens: int = 0
    requests: int = 0
    blocked: int = 0  # requests not served: the bus's exit was full


@dataclass
class BusPriority:
    """Wraps a controller; buses late by ``late_after_s`` or more get their green."""

    controller: Any
    late_after_s: float = 0.0  # behind its timetable at all (seconds)
    reach_s: float = 10.0  # act for a bus one control step (at its speed) from the stop line
    reach_m: float = 30.0  # …or this close: at the head of the queue
    max_extension_s: float = 20.0
    # >0: person-weighted priority — the bus's approach counts as ``weight`` more queued
    # vehicles for the wrapped controller (a full bus carries the people of many cars)
    # instead of overriding its decision
    weight: float = 0.0
    early_green: bool = True  # False: extensions only
    # no priority into a full exit: the bus could not leave, and the junction would block
    blocked_occupancy: float = 35.0
    stats: PriorityStats = field(default_factory=PriorityStats)
    native_program: None = None
    _layouts: dict[str, SignalLayout] = field(default_factory=dict)
    _group_of_lane: dict[tuple[str, str], str] = field(default_factory=dict)
    _exit_of_lane: dict[tuple[str, str], str] = field(default_factory=dict)
    _requests: dict[str, BusReport] = field(default_factory=dict)
    _extended: dict[tuple[str, str], float] = field(default_factory=dict)
    _step_s: float = 10.0

    def _weighted(self, obs: Observation, bus: BusReport) -> Observation:
        group = self._group_of_lane.get((obs.tls_id, bus.approach_lane or ""))
        if group is None:
            return obs
        self.stats.extensions += obs.current_phase is not None and any(
            group in p.serves and p.index == obs.current_phase
            for p in self._layouts[obs.tls_id].phases
        )
        return _weighted_observation(obs, group, self.weight)

    @property
    def name(self) -> str:
        return f"{self.controller.name}+bus-priority"

    def setup(self, layouts: Mapping[str, SignalLayout], step_s: float) -> None:
        self.controller.setup(layouts, step_s)
        self._layouts = dict(layouts)
        self._step_s = step_s
        self._group_of_lane = {
            (tls, lane): gid
            for tls, layout in layouts.items()
            for gid, group in layout.groups.items()
            if group.kind == "approach"
            for lane in group.lanes
        }
        self._exit_of_lane = {
            (tls, lane): gid
            for tls, layout in layouts.items()
            for gid, group in layout.groups.items()
            if group.kind == "exit"
            for lane in group.lanes
        }

    def _exit_full(self, obs: Observation, bus: BusReport) -> bool:
        group = self._exit_of_lane.get((obs.tls_id, bus.exit_lane or ""))
        reading = obs.groups.get(group) if group is not None else None
        return reading is not None and reading.occupancy >= self.blocked_occupancy

    def request(self, reports: Iterable[BusReport]) -> None:
        """This step's buses: the most pressing late bus per junction is the request."""
        self._requests.clear()
        for r in reports:
            if r.next_signal is None or r.to_stop_line_m is None or r.delay_s is None:
                continue
            if r.delay_s < self.late_after_s:
                continue
            near = r.to_stop_line_m <= max(self.reach_m, r.speed_mps * self.reach_s)
            if not near:
                continue
            self.stats.requests += 1
            held = self._requests.get(r.next_signal)
            if held is None or (r.to_stop_line_m or 0) < (held.to_stop_line_m or 0):
                self._requests[r.next_signal] = r

    def decide(self, obs: Observation, now: float) -> Decision | None:
        bus = self._requests.get(obs.tls_id)
        if bus is not None and self._exit_full(obs, bus):
            self.stats.blocked += 1
            bus = None
        if self.weight and bus is not None and bus.approach_lane is not None:
            obs = self._weighted(obs, bus)
        decision = self.controller.decide(obs, now)
        if self.weight:
            return decision
        layout = self._layouts.get(obs.tls_id)
        if bus is None or layout is None or bus.approach_lane is None:
            return decision
        group = self._group_of_lane.get((obs.tls_id, bus.approach_lane))
        serving = [p.index for p in layout.phases if group is not None and group in p.serves]
        if not serving:
            return decision
        current = obs.current_phase
        key = (obs.tls_id, bus.vehicle_id)
        if current in serving:
            if decision is not None and decision.phase == current:
                return decision  # the controller keeps it green anyway
            used = self._extended.get(key, 0.0)
            if used >= self.max_extension_s:
                return decision
            self._extended[key] = used + self._step_s
            self.stats.extensions += 1
            return Decision(obs.tls_id, current, self._step_s, obs.observed_at)
        if current is None or not self.early_green:  # in a clearance: let it finish
            return decision
        if decision is not None and decision.phase in serving:
            return decision
        self.stats.early_greens += 1
        return Decision(obs.tls_id, serving[0], self._step_s, obs.observed_at)


def _weighted_observation(obs: Observation, group: str, weight: float) -> Observation:
    from dataclasses import replace

    g = obs.groups.get(group)
    if g is None:
        return obs
    heavier = replace(
        g, queue=g.queue + round(weight), vehicle_count=g.vehicle_count + round(weight)
    )
    return replace(obs, groups={**obs.groups, group: heavier})
