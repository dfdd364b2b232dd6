"""CityOS's own controller: movement pressure with spillback throttling and short-link care.

It sees only the detector observations (per lane group: vehicles, halting vehicles,
occupancy) and the phase on show, and keeps a little state of its own (the phase it last
asked for at every junction, the last observation of every junction). Each control step
it scores every green phase as the sum over its movements (approach group -> exit group)
of

    room(exit) x [ demand(approach) - exit_weight x vehicles per lane on the exit ]

where demand = halting + ``moving_weight`` x moving vehicles per lane, and room(exit)
falls from 1 to 0 as the free space left on the exit's detector drops below ``room_veh``
vehicles per lane: a green into a full exit moves nobody and leaves vehicles standing
inside the junction, blocking the cross traffic (with teleporting off, as in RESCO, such
a knot never clears: ingolstadt21's gridlock). Where two signals are joined by a short
link (an exit that holds fewer than ``short_link_veh`` vehicles per lane and is the
approach of the next signal, a pair found from the layouts), the downstream signal adds
``short_bonus`` vehicles per lane to that approach while it holds any vehicle, so the
link is emptied before it backs up into the upstream junction.

Two signals joined by short links in both directions (ingolstadt21 has two such pairs)
are chosen together: a pair of phases that sends vehicles into a short link while the
signal at its other end keeps that link red is never chosen (``pair_mode`` 2; 1 forbids
only the pairs that do so on both links at once, the knot itself). With teleporting off,
one vehicle standing on a full 12 m link with its tail in the junction behind it blocks
the cross traffic there for good. The first signal of a pair to decide in a step picks
the best allowed pair of phases (its partner scored on its last observation), the second
its best phase allowed next to the one just chosen, on its own fresh observation.

It keeps the current phase unless another scores more than ``switch_margin`` higher (a
change costs yellow + all-red, 4 s of a 10 s step). Ageing, a hard block of short links
and a max green are implemented but off: on the training seeds they did not help.

No learning framework, no GPU. The defaults were chosen by a hand-guided coordinate
search on training seeds 100-119 (never the benchmark's seeds 0-2); each RESCO network
also ships a setting tuned to it by simulation (``tuning.py``: random and local search on
training seeds, chosen on validation seeds), which ``make_controller(..., network=...)``
applies. See docs/services/traffic.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

from ..model import Decision, GreenPhase, LaneGroup, Observation, SignalLayout

JAM_SPACING_M = 7.5  # metres per standing vehicle (length + gap)


@dataclass(frozen=True)
class CityOSParams:
    moving_weight: float = 1.0  # a moving vehicle on the approach detector, against a halting one
    exit_weight: float = 0.5  # downstream vehicles per lane, as in max-pressure but lighter
    room_veh: float = 3.0  # exit room (vehicles per lane) below which a movement is throttled
    exit_moving_weight: float = 0.5  # a moving exit vehicle takes this much of the room
    switch_margin: float = 1.0  # vehicles per lane another phase must gain to be worth a change
    hold_per_moving: float = 0.0  # margin added per vehicle per lane moving on the green approaches
    demand_cap: float = 30.0  # vehicles per lane an approach counts at most (30: no cap on 200 m)
    switch_factor: float = 1.0  # share of its score a phase not on show keeps (lost time)
    age_weight: float = 0.0  # extra weight per minute of red, per waiting vehicle
    clip: float = 0.0  # 1: a movement never counts negative
    short_link_veh: float = 4.0  # an exit holding fewer vehicles per lane is a short link
    short_block: float = 0.0  # 1: send into a short link only while it is empty and green
    short_bonus: float = 2.0  # vehicles per lane added to a short link's demand while it holds any
    pair_mode: float = 2.0  # signals joined both ways by short links: 0 decide apart, 1 never
    #   fill both links with both their ends red, 2 never feed a link whose other end is red
    max_green_s: float = float("inf")  # the safety guard's max red bounds waiting anyway


class CityOSController:
    """See module docstring."""

    name = "cityos"
    native_program = None

    def __init__(self, params: CityOSParams | None = None, **overrides: float) -> None:
        self.params = CityOSParams(**{**asdict(params or CityOSParams()), **overrides})
        self.layouts: dict[str, SignalLayout] = {}
        self.step_s = 10.0
        self._red_since: dict[tuple[str, str], float] = {}
        self._last: dict[str, int] = {}
        self._obs: dict[str, Observation] = {}
        # (tls, exit group) -> (downstream tls, its approach groups on that edge)
        self._down: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}
        # (tls, approach group) -> [(upstream tls, its approach groups feeding this edge)]
        self._up: dict[tuple[str, str], list[tuple[str, tuple[str, ...]]]] = {}
        # tls -> its partner, joined both ways by short links; (tls, partner) -> the
        # (own phase, partner phase) pairs that feed a short link while its other end is
        # red, with the signals whose links they fill
        self._partner: dict[str, str] = {}
        self._bad: dict[tuple[str, str], dict[tuple[int, int], frozenset[str]]] = {}
        self._decided_at: dict[str, float] = {}

    def setup(self, layouts: Mapping[str, SignalLayout], step_s: float) -> None:
        self.layouts = dict(layouts)
        self.step_s = step_s
        self._red_since.clear()
        self._last.clear()
        self._obs.clear()
        self._down.clear()
        self._up.clear()
        self._partner.clear()
        self._bad.clear()
        self._decided_at.clear()
        self._link_neighbours()
        self._pair_up()

    def _link_neighbours(self) -> None:
        """Short links between two signals: what one sends in, the other must let out."""
        limit = self.params.short_link_veh * JAM_SPACING_M
        approaches: dict[str, list[tuple[str, str]]] = {}
        for tls, layout in self.layouts.items():
            for g in layout.approach_groups():
                approaches.setdefault(g.edge, []).append((tls, g.id))
        for tls, layout in self.layouts.items():
            for g in layout.groups.values():
                if g.kind != "exit" or not 0.0 < g.detector_length_m < limit:
                    continue
                down = [(t, gid) for t, gid in approaches.get(g.edge, []) if t != tls]
                if not down:
                    continue
                down_tls = down[0][0]
                ids = tuple(gid for t, gid in down if t == down_tls)
                self._down[(tls, g.id)] = (down_tls, ids)
                feeders = tuple(
                    sorted(
                        {src for ph in layout.phases for src, dst in ph.movements if dst == g.id}
                    )
                )
                for gid in ids:
                    self._up.setdefault((down_tls, gid), []).append((tls, feeders))

    def _pair_up(self) -> None:
        """Signals joined by short links both ways, and the phase pairs that jam those links."""
        links: dict[tuple[str, str], list[tuple[str, tuple[str, ...]]]] = {}
        for (tls, exit_id), (down_tls, ids) in self._down.items():
            links.setdefault((tls, down_tls), []).append((exit_id, ids))
        for a, b in links:
            if (b, a) not in links or a in self._partner or b in self._partner:
                continue
            self._partner[a], self._partner[b] = b, a
            la, lb = self.layouts[a], self.layouts[b]
            bad: dict[tuple[int, int], frozenset[str]] = {}
            for i, pa in enumerate(la.phases):
                for j, pb in enumerate(lb.phases):
                    fill = {a for e, ids in links[(a, b)] if _jams(pa, pb, e, ids)}
                    fill |= {b for e, ids in links[(b, a)] if _jams(pb, pa, e, ids)}
                    if fill:
                        bad[(i, j)] = frozenset(fill)
            self._bad[(a, b)] = bad
            self._bad[(b, a)] = {(j, i): f for (i, j), f in bad.items()}

    def decide(self, obs: Observation, now: float) -> Decision | None:
        layout = self.layouts.get(obs.tls_id)
        if layout is None or not layout.phases:
            return None
        p = self.params
        self._obs[obs.tls_id] = obs
        current = obs.current_phase if obs.current_phase is not None else self._last.get(obs.tls_id)
        self._age(layout, current, now)
        scores = [self.score(obs, layout, ph.index, now) for ph in layout.phases]
        partner = self._partner.get(obs.tls_id)
        if partner is not None and p.pair_mode:
            gains = self._gains(obs, scores, current, in_green=obs.current_phase is not None)
            choice = self._pair_choice(obs.tls_id, partner, gains, current, now)
        else:
            choice = max(range(len(scores)), key=scores.__getitem__)
            if current is not None and choice != current:
                in_green = obs.current_phase is not None
                too_long = in_green and obs.phase_elapsed >= p.max_green_s
                gain = p.switch_factor * scores[choice] - scores[current]
                margin = self._margin(obs, layout, current)
                if not in_green or not (too_long or gain > margin):
                    choice = current
        self._last[obs.tls_id] = choice
        self._decided_at[obs.tls_id] = now
        return Decision(obs.tls_id, choice, self.step_s, obs.observed_at)

    def _gains(
        self, obs: Observation, scores: list[float], current: int | None, *, in_green: bool
    ) -> list[float]:
        """What choosing each phase gains over keeping ``current``, less the price of a change.

        The same rule as for a lone signal: 0 for the current phase, -inf for any other
        while the lamps clear towards it, otherwise more than 0 only past the switch margin.
        """
        p = self.params
        if current is None:
            return list(scores)
        if not in_green:
            return [0.0 if i == current else -math.inf for i in range(len(scores))]
        layout = self.layouts[obs.tls_id]
        margin = 0.0 if obs.phase_elapsed >= p.max_green_s else self._margin(obs, layout, current)
        return [
            0.0 if i == current else p.switch_factor * s - scores[current] - margin
            for i, s in enumerate(scores)
        ]

    def _pair_choice(
        self, tls: str, partner: str, gains: list[float], current: int | None, now: float
    ) -> int:
        """Choose together with the partner signal so the short links between them never jam.

        The first of the two to decide in a step picks the best allowed pair of phases (the
        partner scored on its last observation); the second picks its best phase allowed
        next to the one the first has just chosen, on its own fresh observation.
        """
        bad = self._bad[(tls, partner)]
        strict = self.params.pair_mode >= 2

        def allowed(i: int, j: int) -> bool:
            fills = bad.get((i, j))
            return gains[i] > -math.inf and (not fills or (not strict and len(fills) < 2))

        def best(options: list[int], value: Callable[[int], float]) -> int:
            top = max(options, key=value)
            return current if current in options and value(current) >= value(top) else top

        everything = [i for i in range(len(gains)) if gains[i] > -math.inf]
        if self._decided_at.get(partner) == now and partner in self._last:
            j = self._last[partner]
            return best([i for i in everything if allowed(i, j)] or everything, gains.__getitem__)
        other = self._obs.get(partner)
        if other is None:
            return best(everything, gains.__getitem__)
        layout = self.layouts[partner]
        other_current = self._last.get(partner, other.current_phase)
        other_scores = [self.score(other, layout, ph.index, now) for ph in layout.phases]
        other_gains = self._gains(other, other_scores, other_current, in_green=True)
        joint = {
            i: max(other_gains[j] for j in range(len(other_gains)) if allowed(i, j))
            for i in everything
            if any(allowed(i, j) for j in range(len(other_gains)))
        }
        if not joint:
            return best(everything, gains.__getitem__)
        return best(list(joint), lambda i: gains[i] + joint[i])

    def _margin(self, obs: Observation, layout: SignalLayout, current: int) -> float:
        """What another phase must gain over ``current``: more while a platoon is still
        moving through its green (stopping it costs each vehicle a stop and a start)."""
        p = self.params
        if not p.hold_per_moving:
            return p.switch_margin
        groups = [
            g
            for g in layout.phases[current].serves
            if g in layout.groups and layout.groups[g].kind == "approach"
        ]
        moving = [
            self._per_lane(obs, layout, g, 1.0) - self._per_lane(obs, layout, g, 0.0)
            for g in groups
        ]
        return p.switch_margin + p.hold_per_moving * (sum(moving) / len(moving) if moving else 0.0)

    def score(self, obs: Observation, layout: SignalLayout, phase: int, now: float) -> float:
        """How much serving ``phase`` now is worth, in vehicles per lane."""
        p = self.params
        total = 0.0
        for src, dst in layout.phases[phase].movements:
            demand = self.demand(obs, layout, src, now)
            room = self.room(obs, layout, dst)
            link = self._down.get((layout.tls_id, dst))
            if link is not None and p.short_block:
                room = self._short_room(obs, dst, *link)
            downstream = self._per_lane(obs, layout, dst, 1.0)
            value = demand - p.exit_weight * downstream
            if p.clip:
                value = max(0.0, value)
            total += room * value
        return total

    def demand(self, obs: Observation, layout: SignalLayout, gid: str, now: float) -> float:
        """Waiting vehicles per lane on an approach, weighted up by how long it has had red."""
        p = self.params
        base = min(p.demand_cap, self._per_lane(obs, layout, gid, p.moving_weight))
        if base > 0.0 and (layout.tls_id, gid) in self._up:
            base += p.short_bonus  # a short link between two signals: empty it first
        if p.age_weight and base > 0.0:
            waited = now - self._red_since.get((layout.tls_id, gid), now)
            base *= 1.0 + p.age_weight * waited / 60.0
        return base

    def room(self, obs: Observation, layout: SignalLayout, gid: str) -> float:
        """1 when the exit has room for ``room_veh`` vehicles per lane, falling to 0 when full."""
        p = self.params
        group = layout.groups.get(gid)
        reading = obs.groups.get(gid)
        if group is None or reading is None or group.detector_length_m <= 0.0 or p.room_veh <= 0:
            return 1.0
        lanes = max(1, len(group.lanes))
        capacity = group.detector_length_m / JAM_SPACING_M
        moving = reading.vehicle_count - reading.queue
        used = (reading.queue + p.exit_moving_weight * moving) / lanes
        free = capacity - used
        return min(1.0, max(0.0, free / p.room_veh))

    def _short_room(
        self, obs: Observation, exit_id: str, tls: str, groups: tuple[str, ...]
    ) -> float:
        """A short link into the next signal takes vehicles only while it is empty and green."""
        reading = obs.groups.get(exit_id)
        if reading is not None and reading.queue > 0:
            return 0.0
        return 1.0 if self._serving(tls, groups) else 0.0

    def _serving(self, tls: str, groups: tuple[str, ...]) -> bool:
        """Whether signal ``tls`` is (about to be) green for any of ``groups``."""
        layout = self.layouts.get(tls)
        phase = self._last.get(tls)
        if layout is None or phase is None:
            return False
        return any(g in layout.phases[phase].serves for g in groups)

    def _age(self, layout: SignalLayout, current: int | None, now: float) -> None:
        served = set(layout.phases[current].serves) if current is not None else set()
        for group in layout.approach_groups():
            key = (layout.tls_id, group.id)
            if group.id in served:
                self._red_since[key] = now
            else:
                self._red_since.setdefault(key, now)

    @staticmethod
    def _per_lane(obs: Observation, layout: SignalLayout, gid: str, moving_weight: float) -> float:
        reading = obs.groups.get(gid)
        group: LaneGroup | None = layout.groups.get(gid)
        if reading is None or group is None:
            return 0.0
        moving = reading.vehicle_count - reading.queue
        return (reading.queue + moving_weight * moving) / max(1, len(group.lanes))


def _jams(feeder: GreenPhase, drain: GreenPhase, exit_id: str, ids: tuple[str, ...]) -> bool:
    """Whether ``feeder`` sends vehicles into the short link ``exit_id`` (the approach groups
    ``ids`` of the next signal) while that signal, showing ``drain``, keeps it red."""
    feeds = any(dst == exit_id for _, dst in feeder.movements)
    return feeds and not any(g in drain.serves for g in ids)
