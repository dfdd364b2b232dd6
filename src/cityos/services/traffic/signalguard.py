"""Safety rules enforced at the signal, outside every controller.

A :class:`SignalGuard` stands between controller decisions and one junction's lamps, the way
a conflict monitor sits in a controller cabinet. Whatever a controller asks for, the guard

* keeps every green for at least ``min_green_s``;
* inserts yellow (links losing green) and then all-red clearance on every change;
* serves any lane group that has waited longer than ``max_red_s`` (approaches with
  vehicles on their detectors, and pedestrian crossings, which have no detector and so
  always count as waiting: the program's pedestrian phases are never skipped for good);
* falls back to the network's own fixed-time program when no fresh decision has arrived
  for ``stale_after_s`` (a detector stopped reporting, the controller or the hub is
  down), logs it once, calls the alert hook, and takes over again when fresh data returns.

It never raises on bad input: an impossible decision is logged and ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from .model import GREEN, Alert, Decision, Observation, SignalLayout

log = logging.getLogger(__name__)

AlertHook = Callable[[Alert], None]


@dataclass(frozen=True, slots=True)
class SafetyRules:
    """The limits every signal keeps, whoever controls it (seconds)."""

    min_green_s: float = 5.0
    yellow_s: float = 3.0
    all_red_s: float = 1.0
    max_red_s: float = 120.0
    stale_after_s: float = 30.0
    keep_pedestrian_phases: bool = True


@dataclass(frozen=True, slots=True)
class ShowState:
    """Command to the lamps: show this SUMO signal string until told otherwise."""

    state: str


@dataclass(frozen=True, slots=True)
class RunProgram:
    """Command to the cabinet: run the fixed-time program, starting at this program phase."""

    program_id: str
    program_index: int


SignalCommand = ShowState | RunProgram


def yellow_state(current: str, target: str) -> str:
    """Links that lose green turn yellow; everything else stays as it is."""
    return "".join(
        "y" if c in GREEN and (i >= len(target) or target[i] not in GREEN) else c
        for i, c in enumerate(current)
    )


def all_red_state(current: str, target: str) -> str:
    """Red for every link except those green both before and after the change."""
    return "".join(
        c
        if c in GREEN and i < len(target) and target[i] in GREEN
        else ("r" if c not in "oO" else c)
        for i, c in enumerate(current)
    )


class SignalGuard:
    """One junction's safety wrapper: decisions in, lamp commands out (see module doc)."""

    def __init__(
        self,
        layout: SignalLayout,
        rules: SafetyRules,
        *,
        now: float,
        alert: AlertHook | None = None,
        initial_phase: int = 0,
    ) -> None:
        if not layout.phases:
            raise ValueError(f"signal {layout.tls_id} has no green phase to control")
        self.layout = layout
        self.rules = rules
        self._alert = alert
        self.mode: str = "adaptive"  # or "program" (the fixed-time fallback)
        self.phase = initial_phase
        self.green_since = now
        self.showing = layout.phases[initial_phase].state
        self._clearance: list[tuple[str, float]] = []  # (state, shown until)
        self._target: int | None = None
        self._wanted: int | None = None
        self._last_fresh = now
        waiting = [g.id for g in layout.groups.values() if g.kind in ("approach", "crossing")]
        self._last_served: dict[str, float] = {gid: now for gid in waiting}
        self._demand: dict[str, bool] = {}
        self._pending: SignalCommand | None = ShowState(self.showing)
        self.fallbacks = 0
        self.forced_services = 0

    # ---- inputs -------------------------------------------------------------------------
    def observe(self, obs: Observation, now: float) -> None:
        """Local detector data: which approaches have vehicles waiting (for max red)."""
        for gid, reading in obs.groups.items():
            self._demand[gid] = reading.vehicle_count > 0 or reading.queue > 0

    def request(self, decision: Decision, now: float) -> bool:
        """A controller's decision; returns whether it was accepted."""
        if decision.tls_id != self.layout.tls_id:
            return self._reject(
                decision, now, f"decision for {decision.tls_id} sent to this signal"
            )
        if not 0 <= decision.phase < len(self.layout.phases):
            return self._reject(
                decision,
                now,
                f"phase {decision.phase} does not exist (0..{len(self.layout.phases) - 1})",
            )
        if (
            decision.observed_at is not None
            and now - decision.observed_at > self.rules.stale_after_s
        ):
            log.debug(
                "%s: decision on data %.0f s old ignored",
                self.layout.tls_id,
                now - decision.observed_at,
            )
            return False
        self._last_fresh = now
        self._wanted = None if decision.phase == self._committed_phase() else decision.phase
        return True

    # ---- the clock ----------------------------------------------------------------------
    def tick(self, now: float, program_phase: int | None = None) -> SignalCommand | None:
        """Advance the guard to ``now``; returns a command when the lamps must change.

        ``program_phase`` is the fixed-time program's current phase index, reported by the
        signal while the fallback program runs (it decides when control can be taken back).
        """
        if self.mode == "program":
            self._tick_program(now, program_phase)
        else:
            self._tick_adaptive(now)
        command, self._pending = self._pending, None
        return command

    def _tick_adaptive(self, now: float) -> None:
        while self._clearance and now >= self._clearance[0][1]:
            self._clearance.pop(0)
        if self._clearance:
            self._show(self._clearance[0][0])
            return
        if self._target is not None:
            self._start_green(self._target, now)
        for gid in self.layout.phases[self.phase].serves:
            self._last_served[gid] = now
        if now - self._last_fresh > self.rules.stale_after_s:
            self._enter_fallback(now)
            return
        if now - self.green_since < self.rules.min_green_s:
            return
        overdue = self._overdue(now)
        if overdue is not None:
            self.forced_services += 1
            self._begin_change(self._phase_for(overdue), now)
        elif self._wanted is not None and self._wanted != self.phase:
            self._begin_change(self._wanted, now)
            self._wanted = None

    def _tick_program(self, now: float, program_phase: int | None) -> None:
        green = next((p for p in self.layout.phases if p.program_index == program_phase), None)
        if green is not None:
            for gid in green.serves:
                self._last_served[gid] = now
        if now - self._last_fresh <= self.rules.stale_after_s and green is not None:
            self.mode = "adaptive"
            self.phase, self.green_since = green.index, now
            self._show(green.state, force=True)
            log.info("%s: fresh decisions again, adaptive control resumed", self.layout.tls_id)
            self._raise(Alert(self.layout.tls_id, "recovered", "adaptive control resumed", now))

    # ---- helpers ------------------------------------------------------------------------
    def _committed_phase(self) -> int:
        return self._target if self._target is not None else self.phase

    def _begin_change(self, target: int, now: float) -> None:
        if target == self.phase:
            return
        current, nxt = self.layout.phases[self.phase].state, self.layout.phases[target].state
        steps: list[tuple[str, float]] = []
        t = now
        yellow = yellow_state(current, nxt)
        if yellow != current:  # some link loses green: it needs yellow, then all-red
            if self.rules.yellow_s > 0:
                t += self.rules.yellow_s
                steps.append((yellow, t))
            if self.rules.all_red_s > 0:
                t += self.rules.all_red_s
                steps.append((all_red_state(current, nxt), t))
        self._target = target
        self._clearance = steps
        if steps:
            self._show(steps[0][0])
        else:  # nothing loses green: the new phase starts at once
            self._start_green(target, now)

    def _start_green(self, phase: int, now: float) -> None:
        self.phase, self._target = phase, None
        self.green_since = now
        self._show(self.layout.phases[phase].state)
        for gid in self.layout.phases[phase].serves:
            self._last_served[gid] = now

    def _overdue(self, now: float) -> str | None:
        """The lane group waiting longest beyond max red that the current phase does not serve."""
        serving = set(self.layout.phases[self.phase].serves)
        worst, worst_wait = None, self.rules.max_red_s
        for gid, since in self._last_served.items():
            if gid in serving:
                continue
            kind = self.layout.groups[gid].kind
            if kind == "crossing" and not self.rules.keep_pedestrian_phases:
                continue
            if kind == "approach" and not self._demand.get(gid, True):
                continue
            if now - since > worst_wait:
                worst, worst_wait = gid, now - since
        return worst

    def _phase_for(self, gid: str) -> int:
        """The phase serving ``gid`` that also serves the most other waiting groups."""
        candidates = [p for p in self.layout.phases if gid in p.serves]
        return max(
            candidates,
            key=lambda p: sum(1 for g in p.serves if self._demand.get(g, True)),
        ).index

    def _enter_fallback(self, now: float) -> None:
        self.mode = "program"
        self.fallbacks += 1
        self._wanted = None
        green = self.layout.phases[self.phase]
        self._pending = RunProgram(self.layout.program_id, green.program_index)
        msg = (
            f"no fresh decision for {now - self._last_fresh:.0f} s "
            f"(limit {self.rules.stale_after_s:.0f} s): running the fixed-time program"
        )
        log.warning("%s: %s", self.layout.tls_id, msg)
        self._raise(Alert(self.layout.tls_id, "fallback", msg, now))

    def _show(self, state: str, *, force: bool = False) -> None:
        if force or state != self.showing:
            self.showing = state
            self._pending = ShowState(state)

    def _reject(self, decision: Decision, now: float, why: str) -> bool:
        log.warning("%s: decision rejected: %s", self.layout.tls_id, why)
        self._raise(Alert(self.layout.tls_id, "rejected", why, now, {"phase": decision.phase}))
        return False

    def _raise(self, alert: Alert) -> None:
        if self._alert is None:
            return
        try:
            self._alert(alert)
        except Exception:  # an alert sink must never stop the signal
            log.exception("%s: alert hook failed", self.layout.tls_id)
