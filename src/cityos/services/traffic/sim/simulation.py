"""The simulation adapter: SUMO behind three calls, observe / apply / advance.

``observe()`` returns one :class:`Observation` per signal, read from lane-area detectors;
``apply()`` hands :class:`Decision` objects to each signal's :class:`SignalGuard`;
``advance()`` moves the clock. Nothing else crosses, so any transport (the hub, MQTT, a
real cabinet) can sit between the observations and the decisions.

libsumo (SUMO linked into this process) is used for speed; it allows one simulation per
process, so a second simultaneous simulation, or ``backend="traci"``, runs SUMO as a
subprocess over TraCI instead (also the way to attach sumo-gui or a second client).
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from ..errors import SimulationError
from ..model import Decision, LaneGroupObservation, Observation, SignalLayout
from ..signalguard import AlertHook, RunProgram, SafetyRules, ShowState, SignalGuard
from .detectors import detector_id, detector_spans, write_detectors
from .layout import read_network
from .programs import write_actuated_programs
from .scenarios import Scenario, sumo_binary

log = logging.getLogger(__name__)

Mode = Literal["guarded", "static", "actuated"]
Backend = Literal["libsumo", "traci"]

_libsumo_busy = False


def sumo_version() -> str:
    """The eclipse-sumo version in use (reported with every benchmark figure)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("eclipse-sumo")
    except PackageNotFoundError:
        return "unknown"


class Simulation:
    """One SUMO run of a scenario, its signals either guarded (controller-driven) or native.

    ``mode="guarded"``: signals show what :class:`SignalGuard` lets through from ``apply()``.
    ``mode="static"``: the network's fixed-time programs run untouched.
    ``mode="actuated"``: SUMO's own actuated logic runs (see :mod:`.programs`).
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        seed: int = 0,
        mode: Mode = "guarded",
        rules: SafetyRules | None = None,
        backend: Backend = "libsumo",
        work_dir: Path | None = None,
        detector_range_m: float = 200.0,
        alert: AlertHook | None = None,
        sumo_args: Iterable[str] = (),
    ) -> None:
        scenario.check_files()
        self.scenario = scenario
        self.seed = seed
        self.mode = mode
        self.rules = rules or SafetyRules(yellow_s=scenario.yellow_s)
        self.backend = backend
        self._alert = alert
        self._sumo_args = list(sumo_args)
        self._tmp = None if work_dir else tempfile.TemporaryDirectory(prefix="cityos-traffic-")
        self.work_dir = work_dir or Path(self._tmp.name)  # type: ignore[union-attr]
        self.work_dir.mkdir(parents=True, exist_ok=True)
        net = read_network(scenario.net_file)
        self._spans = detector_spans(net.layouts.values(), net, detector_range_m)
        self.layouts: dict[str, SignalLayout] = {
            tls: self._with_detector_lengths(layout) for tls, layout in net.layouts.items()
        }
        self.tripinfo_file = self.work_dir / "tripinfo.xml"
        self.guards: dict[str, SignalGuard] = {}
        self._conn: Any = None
        self._label: str | None = None
        self._failed: set[str] = set()
        self._last_obs: dict[str, Observation] = {}

    # ---- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        global _libsumo_busy
        sc = self.scenario
        additional = [write_detectors(self.work_dir / "detectors.add.xml", self._spans)]
        programs: dict[str, str] = {}
        if self.mode == "actuated":
            programs = write_actuated_programs(sc.net_file, self.work_dir / "actuated.add.xml")
            additional.append(self.work_dir / "actuated.add.xml")
        args = [
            "-n", str(sc.net_file),
            "-r", ",".join(str(p) for p in sc.route_files),
            "-a", ",".join(str(p) for p in (*additional, *sc.extra_files)),
            "-b", f"{sc.begin:g}", "-e", f"{sc.end:g}",
            "--seed", str(self.seed),
            "--time-to-teleport", "-1",
            "--tripinfo-output", str(self.tripinfo_file),
            "--tripinfo-output.write-unfinished", "true",
            "--tripinfo-output.write-undeparted", "true",
            "--no-step-log", "true", "--no-warnings", "true",
            "--duration-log.disable", "true",
            *self._sumo_args,
        ]  # fmt: skip
        use_libsumo = self.backend == "libsumo" and not _libsumo_busy
        try:
            if use_libsumo:
                import libsumo

                libsumo.start(["sumo", *args])
                _libsumo_busy = True
                self._conn = libsumo
            else:
                import traci

                self._label = f"cityos-{id(self)}"
                traci.start([sumo_binary("sumo"), *args], label=self._label)
                self._conn = traci.getConnection(self._label)
        except Exception as exc:
            raise SimulationError(f"SUMO did not start for {sc.name}: {exc}") from exc
        self.backend = "libsumo" if use_libsumo else "traci"
        now = self.time
        for tls, program in programs.items():
            self._conn.trafficlight.setProgram(tls, program)
        if self.mode == "guarded":
            for tls, layout in self.layouts.items():
                if not layout.phases:
                    continue
                self.guards[tls] = SignalGuard(layout, self.rules, now=now, alert=self._alert)
            self._push(now)

    def close(self) -> None:
        """Stop SUMO (this writes the trip information the metric reads)."""
        global _libsumo_busy
        if self._conn is None:
            return
        try:
            self._conn.close()
        finally:
            if self.backend == "libsumo":
                _libsumo_busy = False
            self._conn = None

    def __enter__(self) -> Simulation:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the three calls ------------------------------------------------------------------
    @property
    def time(self) -> float:
        return float(self._conn.simulation.getTime())

    @property
    def done(self) -> bool:
        return self.time >= self.scenario.end

    def observe(self, tls_ids: Iterable[str] | None = None) -> dict[str, Observation]:
        """Detector readings per lane group of each signal, stamped with the time read."""
        now = self.time
        out: dict[str, Observation] = {}
        for tls in tls_ids if tls_ids is not None else self.layouts:
            if tls in self._failed and tls in self._last_obs:
                out[tls] = self._last_obs[tls]  # a dead detector: the last value, ever older
                continue
            obs = self._read(tls, now)
            self._last_obs[tls] = obs
            out[tls] = obs
        return out

    def apply(self, decisions: Iterable[Decision]) -> int:
        """Pass decisions through the guards; returns how many were accepted."""
        now = self.time
        accepted = 0
        for decision in decisions:
            guard = self.guards.get(decision.tls_id)
            if guard is None:
                log.warning("decision for unknown or unguarded signal %s ignored", decision.tls_id)
                continue
            accepted += guard.request(decision, now)
        self._push(now)
        return accepted

    def feed_guards(self, observations: dict[str, Observation]) -> None:
        """Give each guard its junction's local detector data (demand for the max-red rule)."""
        now = self.time
        for tls, obs in observations.items():
            guard = self.guards.get(tls)
            if guard is not None:
                guard.observe(obs, now)

    def advance(self, seconds: float) -> None:
        """Run ``seconds`` of simulated time, ticking every guard each step."""
        step = float(self._conn.simulation.getDeltaT())
        for _ in range(max(1, math.ceil(seconds / step - 1e-9))):
            if self.done:
                return
            self._conn.simulationStep()
            if self.guards:
                self._push(self.time)

    def fail_detectors(self, tls_id: str, failed: bool = True) -> None:
        """Simulate a detector outage at one junction: its readings stop updating."""
        (self._failed.add if failed else self._failed.discard)(tls_id)

    # ---- internals ------------------------------------------------------------------------
    def _with_detector_lengths(self, layout: SignalLayout) -> SignalLayout:
        groups = {}
        for gid, group in layout.groups.items():
            lengths = [
                self._spans[d].length
                for lane in group.lanes
                if (d := detector_id(lane, group.kind)) in self._spans
            ]
            groups[gid] = replace(group, detector_length_m=min(lengths, default=0.0))
        return replace(layout, groups=groups)

    def _push(self, now: float) -> None:
        tl = self._conn.trafficlight
        for tls, guard in self.guards.items():
            program_phase = tl.getPhase(tls) if guard.mode == "program" else None
            command = guard.tick(now, program_phase)
            if isinstance(command, ShowState):
                tl.setRedYellowGreenState(tls, command.state)
            elif isinstance(command, RunProgram):
                tl.setProgram(tls, command.program_id)
                tl.setPhase(tls, command.program_index)

    def _read(self, tls: str, now: float) -> Observation:
        layout = self.layouts[tls]
        area = self._conn.lanearea
        groups: dict[str, LaneGroupObservation] = {}
        for group in layout.groups.values():
            if group.kind == "crossing":
                continue
            count = halting = 0
            occ_sum = length_sum = speed_sum = 0.0
            for lane in group.lanes:
                det = detector_id(lane, group.kind)
                span = self._spans.get(det)
                if span is None:
                    continue
                n = area.getLastStepVehicleNumber(det)
                count += n
                halting += area.getLastStepHaltingNumber(det)
                occ_sum += area.getLastStepOccupancy(det) * span.length
                length_sum += span.length
                if n:
                    speed_sum += area.getLastStepMeanSpeed(det) * n
            groups[group.id] = LaneGroupObservation(
                group_id=group.id,
                vehicle_count=count,
                occupancy=occ_sum / length_sum if length_sum else 0.0,
                queue=halting,
                mean_speed=speed_sum / count if count else None,
                observed_at=now,
            )
        guard = self.guards.get(tls)
        if guard is not None:
            in_green = (
                guard.mode == "adaptive" and guard.showing == layout.phases[guard.phase].state
            )
            current = guard.phase if in_green else None
            elapsed = now - guard.green_since if in_green else 0.0
        else:
            index = self._conn.trafficlight.getPhase(tls)
            green = next((p for p in layout.phases if p.program_index == index), None)
            current = green.index if green is not None else None
            elapsed = 0.0
        return Observation(tls, now, groups, current, elapsed)
