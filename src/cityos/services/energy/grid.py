"""Grid model of the energy service: one real low-voltage feeder, checked by AC power flow.

The scheduler plans batteries, PV and EV charging per home; this module says whether a plan
keeps the feeder inside its limits, and trims the controllable part of it where it does not.

* The feeder is a SimBench LV grid (default ``1-LV-rural2--0-sw``: a long, weak rural feeder
  behind a 250 kVA 20/0.4 kV transformer, 93 load buses), loaded into pandapower.
* **Transformer taps.** SimBench sets ``tap_pos``/``tap_step_percent`` but leaves
  ``trafo.tap_changer_type`` empty, and pandapower 3.x silently ignores a tap whose changer
  type is unset (the ratio stays nominal). :func:`enable_taps` sets ``"Ratio"`` wherever tap
  data exists, so a tap position (:meth:`Feeder.set_tap`) really changes the LV voltage.
* **No SimBench time series.** The grid's load/PV profiles are dropped and its PV units
  switched off: each mapped home's *net* kW (import positive, export negative, PV included)
  is set per step by us. Loads not mapped to a home stay at ``background`` x their SimBench
  nominal value (0 by default, so a result depends only on the homes).
* Limits: bus voltage within 0.95-1.05 p.u. (an LV planning band: EN 50160 itself allows
  +-10 %, the rest is left to the MV side), line and transformer loading at most 100 %. A power flow that does not converge (the
  load is past the feeder's voltage-collapse point) is a violation with a reason, never an
  exception.
* Reactive power: ``q = |p| * tan(acos(pf))`` absorbed at every home, i.e. lagging loads and,
  when exporting, under-excited PV inverters (the VDE-AR-N 4105 cos phi setting), which
  damps the voltage rise rather than hiding it.

Power flows are pandapower Newton-Raphson runs (``numba`` is not installed: ~20-50 ms a run
on this feeder), reusing the previous step's internal matrices while runs keep converging.
"""

from __future__ import annotations

import copy
import functools
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import networkx as nx
import numpy as np
import pandapower as pp
import pandapower.topology as top

from cityos.services.energy.errors import EnergyError

DEFAULT_CODE = "1-LV-rural2--0-sw"
V_MIN_PU = 0.95
V_MAX_PU = 1.05
MAX_LOADING_PCT = 100.0
_RECYCLE = {"trafo": False, "gen": False, "bus_pq": True}
_SOLVER_ERRORS = (pp.LoadflowNotConverged, np.linalg.LinAlgError, FloatingPointError)

ViolationKind = Literal[
    "undervoltage", "overvoltage", "line_overload", "trafo_overload", "not_converged"
]
Placement = Literal["far", "spread"]


# --- results -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Violation:
    """One kind of limit broken in one power flow: the worst element and how many broke it."""

    kind: ViolationKind
    element: str
    value: float
    limit: float
    count: int
    reason: str


@dataclass(frozen=True, slots=True)
class FlowResult:
    """One step's power flow: the extremes the limits are judged on, and what broke them.

    Metrics are NaN when the flow did not converge (then ``violations`` says so)."""

    converged: bool
    vm_min_pu: float
    vm_max_pu: float
    line_loading_max_pct: float
    trafo_loading_pct: float
    feeder_p_kw: float
    violations: tuple[Violation, ...]

    @property
    def ok(self) -> bool:
        """True when no limit is broken."""
        return not self.violations

    def kinds(self) -> set[str]:
        """The kinds of violation in this step."""
        return {v.kind for v in self.violations}

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (NaN becomes None)."""
        return {
            "converged": self.converged,
            "vm_min_pu": _num(self.vm_min_pu),
            "vm_max_pu": _num(self.vm_max_pu),
            "line_loading_max_pct": _num(self.line_loading_max_pct),
            "trafo_loading_pct": _num(self.trafo_loading_pct),
            "feeder_p_kw": _num(self.feeder_p_kw),
            "violations": [v.reason for v in self.violations],
        }


@dataclass(frozen=True, slots=True)
class ScheduleCheck:
    """Power flow of every step of a schedule, with the worst values over all steps."""

    steps: tuple[FlowResult, ...]
    elapsed_s: float = 0.0

    @property
    def violating_steps(self) -> tuple[int, ...]:
        """Indices of the steps that break a limit (non-convergence included)."""
        return tuple(i for i, r in enumerate(self.steps) if not r.ok)

    @property
    def ok(self) -> bool:
        """True when every step is within limits."""
        return not self.violating_steps

    @property
    def worst_vm_min_pu(self) -> float:
        """Lowest bus voltage over the converged steps (NaN if none converged)."""
        return _nanreduce(np.nanmin, [r.vm_min_pu for r in self.steps])

    @property
    def worst_vm_max_pu(self) -> float:
        """Highest bus voltage over the converged steps."""
        return _nanreduce(np.nanmax, [r.vm_max_pu for r in self.steps])

    @property
    def worst_line_loading_pct(self) -> float:
        """Highest line loading over the converged steps."""
        return _nanreduce(np.nanmax, [r.line_loading_max_pct for r in self.steps])

    @property
    def worst_trafo_loading_pct(self) -> float:
        """Highest transformer loading over the converged steps."""
        return _nanreduce(np.nanmax, [r.trafo_loading_pct for r in self.steps])

    def summary(self) -> dict[str, Any]:
        """The figures a scheduler or a report needs, JSON-friendly."""
        return {
            "steps": len(self.steps),
            "violating_steps": list(self.violating_steps),
            "not_converged_steps": [i for i, r in enumerate(self.steps) if not r.converged],
            "worst_vm_min_pu": _num(self.worst_vm_min_pu),
            "worst_vm_max_pu": _num(self.worst_vm_max_pu),
            "worst_line_loading_pct": _num(self.worst_line_loading_pct),
            "worst_trafo_loading_pct": _num(self.worst_trafo_loading_pct),
            "elapsed_s": round(self.elapsed_s, 4),
        }


@dataclass(frozen=True, slots=True)
class LimitedSchedule:
    """A schedule trimmed to the grid's limits by shedding controllable load.

    ``scale[t]`` is the share of the controllable kW kept at step t (1 = untouched).
    ``shed_kw[t]`` is the controllable kW removed at step t over all homes. ``unresolved``
    maps a step that still breaks a limit to the reason why."""

    net_kw: np.ndarray
    controllable_kw: np.ndarray
    scale: np.ndarray
    shed_kw: np.ndarray
    before: ScheduleCheck
    after: ScheduleCheck
    unresolved: dict[int, str] = field(default_factory=dict)


# --- loading the feeder --------------------------------------------------------------------


def available_feeders() -> list[str]:
    """SimBench's low-voltage grid codes (switch-level, base year) this module can load."""
    import simbench as sb

    codes = sb.collect_all_simbench_codes()
    return sorted(c for c in codes if "-LV-" in c and c.startswith("1-") and c.endswith("--0-sw"))


@functools.lru_cache(maxsize=4)
def simbench_net(code: str) -> pp.pandapowerNet:
    """The SimBench grid as published, read once per process (~4 s: simbench parses its whole
    CSV set). Shared and cached: read it (e.g. its ``profiles``), never change it."""
    import simbench as sb

    if code not in sb.collect_all_simbench_codes():
        raise EnergyError(f"unknown SimBench grid {code!r}; LV feeders: {available_feeders()}")
    return sb.get_simbench_net(code)


def enable_taps(net: pp.pandapowerNet) -> int:
    """Set ``tap_changer_type = "Ratio"`` where a transformer has tap data but no type.

    pandapower 3.x ignores ``tap_pos`` unless the changer type is set, and SimBench does not
    set it. Returns how many transformers were changed."""
    trafo = net.trafo
    has_tap = trafo["tap_pos"].notna() & trafo["tap_step_percent"].notna()
    no_angle = trafo["tap_step_degree"].fillna(0.0) == 0.0
    untyped = trafo["tap_changer_type"].isna()
    mask = has_tap & no_angle & untyped
    trafo["tap_changer_type"] = trafo["tap_changer_type"].astype(object)
    trafo.loc[mask, "tap_changer_type"] = "Ratio"
    return int(mask.sum())


def _neutralise_profiles(net: pp.pandapowerNet, background: float) -> None:
    """Drop SimBench's time series and PV so that only the loads we set drive the flow."""
    if "profiles" in net:
        net["profiles"] = {}
    for table in ("load", "sgen", "storage"):
        if "profile" in net[table]:
            net[table]["profile"] = None
    net.sgen["in_service"] = False
    net.storage["in_service"] = False
    net.load["p_mw"] = net.load["p_mw"] * background
    net.load["q_mvar"] = net.load["q_mvar"] * background


def _load_bus_order(net: pp.pandapowerNet, lv_bus: int) -> list[int]:
    """Load buses, electrically farthest from the transformer first (ties by bus index).

    Far-first makes a small number of homes a conservative test of the feeder."""
    graph = top.create_nxgraph(
        net,
        respect_switches=True,
        calc_branch_impedances=True,
        branch_impedance_unit="ohm",
        multi=False,
        include_trafos=False,
    )
    dist = nx.single_source_dijkstra_path_length(graph, lv_bus, weight="z_ohm")
    buses = {int(b) for b in net.load.loc[net.load.in_service, "bus"] if int(b) in dist}
    return sorted(buses, key=lambda b: (-dist[b], b))


# --- the feeder ----------------------------------------------------------------------------


class Feeder:
    """A low-voltage feeder with homes on its load buses, checked step by step by power flow.

    Each run writes into ``net``: use one Feeder per thread (a copy is cheap, the SimBench
    read is cached)."""

    def __init__(
        self,
        net: pp.pandapowerNet,
        *,
        code: str = "",
        v_min_pu: float = V_MIN_PU,
        v_max_pu: float = V_MAX_PU,
        max_loading_pct: float = MAX_LOADING_PCT,
    ) -> None:
        if len(net.trafo) != 1 or len(net.ext_grid) != 1:
            raise EnergyError("a feeder needs exactly one transformer and one external grid")
        self.net = net
        self.code = code
        self.v_min_pu = v_min_pu
        self.v_max_pu = v_max_pu
        self.max_loading_pct = max_loading_pct
        self._base_load = net.load.copy()
        self._trafo = int(net.trafo.index[0])
        self._bus_order = _load_bus_order(net, int(net.trafo.at[self._trafo, "lv_bus"]))
        slack = set(net.ext_grid["bus"].astype(int))
        self._checked_buses = np.array(
            [b for b in net.bus.index[net.bus.in_service] if b not in slack]
        )
        self._homes: dict[str, int] = {}
        self._home_loads = np.array([], dtype=int)
        self._warm = False

    @classmethod
    def simbench(
        cls,
        code: str = DEFAULT_CODE,
        *,
        tap_pos: int | None = None,
        honour_taps: bool = True,
        slack_vm_pu: float | None = None,
        background: float = 0.0,
        **limits: float,
    ) -> Feeder:
        """Load a SimBench LV grid, taps honoured, profiles and PV removed.

        ``honour_taps=False`` keeps pandapower's silent default (tap ignored), only so the
        difference can be shown. ``slack_vm_pu`` overrides the MV voltage (SimBench: 1.025)."""
        net = copy.deepcopy(simbench_net(code))
        if honour_taps:
            enable_taps(net)
        _neutralise_profiles(net, background)
        if slack_vm_pu is not None:
            net.ext_grid["vm_pu"] = slack_vm_pu
        feeder = cls(net, code=code, **limits)
        if tap_pos is not None:
            feeder.set_tap(tap_pos)
        return feeder

    # -- description --

    @property
    def transformer_kva(self) -> float:
        """Rated apparent power of the feeder's transformer."""
        return float(self.net.trafo.at[self._trafo, "sn_mva"]) * 1000.0

    @property
    def load_buses(self) -> tuple[int, ...]:
        """Load buses a home can be mapped to, farthest from the transformer first."""
        return tuple(self._bus_order)

    @property
    def homes(self) -> tuple[str, ...]:
        """Mapped homes, in the row order :meth:`check_schedule` expects."""
        return tuple(self._homes)

    @property
    def home_buses(self) -> dict[str, int]:
        """Home -> pandapower bus index."""
        return dict(self._homes)

    def describe(self) -> dict[str, Any]:
        """Size and ratings of the feeder, for logs and reports."""
        net = self.net
        return {
            "code": self.code,
            "buses": len(net.bus),
            "lines": len(net.line),
            "loads": len(self._base_load),
            "load_buses": len(self._bus_order),
            "transformer_kva": self.transformer_kva,
            "transformer": str(net.trafo.at[self._trafo, "std_type"]),
            "tap_pos": float(net.trafo.at[self._trafo, "tap_pos"]),
            "tap_changer_type": net.trafo.at[self._trafo, "tap_changer_type"],
            "slack_vm_pu": float(net.ext_grid["vm_pu"].iat[0]),
            "homes": len(self._homes),
        }

    def import_limit_kw(self, pf: float = 0.95) -> float:
        """A simple kW cap on the homes' total import, for the optimiser as a constraint.

        The smaller of the transformer rating and the summed thermal rating of the cables
        leaving its LV busbar, times ``pf``, less the background load. It ignores voltage
        drop, which often binds first on long rural feeders: check plans with
        :meth:`check_schedule` / :meth:`limit_schedule`."""
        _check_pf(pf)
        net = self.net
        lv_bus = int(net.trafo.at[self._trafo, "lv_bus"])
        vn_kv = float(net.bus.at[lv_bus, "vn_kv"])
        out = net.line[(net.line.from_bus == lv_bus) | (net.line.to_bus == lv_bus)]
        out = out[out.in_service]
        cables_kva = float((math.sqrt(3) * vn_kv * out.max_i_ka * out.parallel * 1000).sum())
        kva = min(self.transformer_kva, cables_kva) if len(out) else self.transformer_kva
        background = net.load.in_service & ~net.load.index.isin(self._home_loads)
        background_kw = float(net.load.loc[background, "p_mw"].sum()) * 1000
        return kva * pf - background_kw

    # -- set-up --

    def set_tap(self, pos: int) -> None:
        """Move the transformer tap (within its range); each step is ``tap_step_percent``."""
        trafo = self.net.trafo.loc[self._trafo]
        lo, hi = trafo["tap_min"], trafo["tap_max"]
        if not lo <= pos <= hi:
            raise EnergyError(f"tap position {pos} is outside the transformer's range {lo}..{hi}")
        self.net.trafo.at[self._trafo, "tap_pos"] = float(pos)
        self._warm = False

    def map_homes(self, n: int, placement: Placement = "far") -> tuple[str, ...]:
        """Map ``n`` homes named ``home-0`` ... onto ``n`` distinct load buses."""
        names = [f"home-{i}" for i in range(n)]
        self.attach(names, placement=placement)
        return tuple(names)

    def attach(self, buildings: Sequence[str], placement: Placement = "far") -> dict[str, int]:
        """Put each building on its own load bus; the same input always gives the same map.

        ``far``: the farthest buses, in order (worst case). ``spread``: evenly over the
        far-to-near order. SimBench loads on a chosen bus are replaced by the home."""
        names = list(buildings)
        if len(set(names)) != len(names):
            raise EnergyError("building names must be distinct")
        if len(names) > len(self._bus_order):
            raise EnergyError(
                f"{len(names)} buildings but this feeder has {len(self._bus_order)} load buses;"
                " use a larger SimBench grid (see available_feeders())"
            )
        buses = self._pick_buses(len(names), placement)
        self._rebuild_loads(dict(zip(names, buses, strict=True)))
        return dict(self._homes)

    def _pick_buses(self, n: int, placement: Placement) -> list[int]:
        if placement == "far":
            return self._bus_order[:n]
        if placement == "spread":
            idx = np.linspace(0, len(self._bus_order) - 1, n).round().astype(int) if n else []
            return [self._bus_order[i] for i in idx]
        raise EnergyError(f"placement must be 'far' or 'spread', not {placement!r}")

    def _rebuild_loads(self, homes: dict[str, int]) -> None:
        """Restore the SimBench loads, then replace those on the homes' buses by the homes."""
        net = self.net
        net.load = self._base_load.copy()
        net.load.loc[net.load.bus.isin(list(homes.values())), "in_service"] = False
        idx = [
            pp.create_load(net, bus=b, p_mw=0.0, q_mvar=0.0, name=f"home:{h}")
            for h, b in homes.items()
        ]
        self._homes = homes
        self._home_loads = np.array(idx, dtype=int)
        self._warm = False

    # -- power flow --

    def run(self, step_loads_kw: Mapping[str, float], pf: float = 0.95) -> FlowResult:
        """Power flow of one step: net kW per home (import +, export -); absent homes 0 kW."""
        _check_pf(pf)
        p_kw = np.zeros(len(self._homes))
        order = {h: i for i, h in enumerate(self._homes)}
        for home, kw in step_loads_kw.items():
            if home not in order:
                raise EnergyError(f"unknown home {home!r}; attach() it first")
            p_kw[order[home]] = kw
        _check_finite(p_kw)
        return self._solve(p_kw, _q_of(p_kw, pf))

    def check_schedule(
        self, series: np.ndarray | Mapping[str, Sequence[float]], pf: float = 0.95
    ) -> ScheduleCheck:
        """Power flow of every step of ``series`` [homes x steps] (rows in ``homes`` order)."""
        _check_pf(pf)
        p_kw = self._as_matrix(series)
        q_kvar = _q_of(p_kw, pf)
        start = time.perf_counter()
        steps = tuple(self._solve(p_kw[:, t], q_kvar[:, t]) for t in range(p_kw.shape[1]))
        return ScheduleCheck(steps, time.perf_counter() - start)

    def _as_matrix(self, series: np.ndarray | Mapping[str, Sequence[float]]) -> np.ndarray:
        """A [homes x steps] float array from an array or a home -> series mapping."""
        if isinstance(series, Mapping):
            unknown = set(series) - set(self._homes)
            if unknown:
                raise EnergyError(f"unknown homes {sorted(unknown)}; attach() them first")
            lengths = {len(v) for v in series.values()}
            if len(lengths) > 1:
                raise EnergyError(f"every home needs the same number of steps, got {lengths}")
            n = lengths.pop() if lengths else 0
            rows = [series.get(h, np.zeros(n)) for h in self._homes]
            arr = np.asarray(rows, dtype=float).reshape(len(self._homes), n)
        else:
            arr = np.asarray(series, dtype=float)
        if arr.ndim != 2 or arr.shape[0] != len(self._homes):
            raise EnergyError(
                f"expected a [homes x steps] array with {len(self._homes)} rows, got {arr.shape}"
            )
        _check_finite(arr)
        return arr

    def _solve(self, p_kw: np.ndarray, q_kvar: np.ndarray) -> FlowResult:
        """Set the homes' loads, run the flow, judge it; non-convergence becomes a violation."""
        net = self.net
        net.load.loc[self._home_loads, "p_mw"] = p_kw / 1000.0
        net.load.loc[self._home_loads, "q_mvar"] = q_kvar / 1000.0
        if not self._runpp():
            return self._not_converged(float(p_kw.sum()))
        return self._judge()

    def _runpp(self) -> bool:
        """Run the flow, reusing the last internal state while it is valid; False if diverged.

        After a failure pandapower's stored state is unusable, so a cold start is retried."""
        if self._warm:
            try:
                pp.runpp(self.net, numba=False, recycle=_RECYCLE)
                return True
            except _SOLVER_ERRORS:
                self._warm = False
        try:
            pp.runpp(self.net, numba=False, max_iteration=20)
        except _SOLVER_ERRORS:
            return False
        self._warm = True
        return True

    def _not_converged(self, total_kw: float) -> FlowResult:
        reason = (
            f"power flow did not converge with the homes at {total_kw:.1f} kW in total: the "
            "load is beyond what the feeder can carry (voltage collapse)"
        )
        v = Violation("not_converged", "feeder", total_kw, math.nan, 1, reason)
        nan = math.nan
        return FlowResult(False, nan, nan, nan, nan, nan, (v,))

    def _judge(self) -> FlowResult:
        """Extremes and violations of the flow just run, from the result tables."""
        net = self.net
        vm = net.res_bus.loc[self._checked_buses, "vm_pu"].to_numpy()
        line_pct = net.res_line["loading_percent"].to_numpy()
        line_max = net.line["max_loading_percent"].fillna(self.max_loading_pct).to_numpy()
        line_max = np.minimum(line_max, self.max_loading_pct)
        trafo_pct = float(net.res_trafo.at[self._trafo, "loading_percent"])
        violations = [
            *self._bus_violations(vm),
            *self._line_violations(line_pct, line_max),
            *self._trafo_violations(trafo_pct),
        ]
        return FlowResult(
            converged=True,
            vm_min_pu=float(np.nanmin(vm)),
            vm_max_pu=float(np.nanmax(vm)),
            line_loading_max_pct=float(np.nanmax(line_pct)) if len(line_pct) else 0.0,
            trafo_loading_pct=trafo_pct,
            feeder_p_kw=float(net.res_trafo.at[self._trafo, "p_hv_mw"]) * 1000.0,
            violations=tuple(violations),
        )

    def _bus_violations(self, vm: np.ndarray) -> list[Violation]:
        names = self.net.bus.loc[self._checked_buses, "name"].to_numpy()
        out = []
        low = vm < self.v_min_pu
        if low.any():
            i = int(np.nanargmin(vm))
            out.append(_violation("undervoltage", names[i], vm[i], self.v_min_pu, low, "p.u."))
        high = vm > self.v_max_pu
        if high.any():
            i = int(np.nanargmax(vm))
            out.append(_violation("overvoltage", names[i], vm[i], self.v_max_pu, high, "p.u."))
        return out

    def _line_violations(self, pct: np.ndarray, limit: np.ndarray) -> list[Violation]:
        over = pct > limit
        if not over.any():
            return []
        i = int(np.nanargmax(np.where(over, pct - limit, -np.inf)))
        name = self.net.line["name"].to_numpy()[i]
        return [_violation("line_overload", name, pct[i], limit[i], over, "%")]

    def _trafo_violations(self, pct: float) -> list[Violation]:
        if pct <= self.max_loading_pct:
            return []
        name = self.net.trafo.at[self._trafo, "name"]
        return [_violation("trafo_overload", name, pct, self.max_loading_pct, np.ones(1), "%")]

    # -- keeping a schedule within limits --

    def limit_schedule(
        self,
        net_kw: np.ndarray,
        controllable_kw: np.ndarray,
        *,
        pf: float = 0.95,
        tol_kw: float = 0.5,
    ) -> LimitedSchedule:
        """Shed controllable load (battery/EV charging) at violating steps until the flow is ok.

        ``net_kw`` [homes x steps] already includes ``controllable_kw`` (>= 0, same shape),
        the part that may be shed. At each violating step one share ``scale`` of every
        home's controllable kW is kept (fair share), found by bisection on the power flow to
        within ``tol_kw``. Shedding only helps import-side limits (undervoltage, overload or
        collapse while importing); overvoltage from export is reported, not "fixed"."""
        p_kw = self._as_matrix(net_kw)
        ctrl = self._as_matrix(controllable_kw)
        if (ctrl < 0).any():
            raise EnergyError("controllable_kw must be >= 0 (charging that could be shed)")
        start = time.perf_counter()
        before = self.check_schedule(p_kw, pf)
        scale = np.ones(p_kw.shape[1])
        after = list(before.steps)
        unresolved: dict[int, str] = {}
        for t in before.violating_steps:
            scale[t], after[t], reason = self._limit_step(
                p_kw[:, t], ctrl[:, t], before.steps[t], pf, tol_kw
            )
            if reason:
                unresolved[t] = reason
        kept = ctrl * scale
        adjusted = p_kw - ctrl + kept
        shed = (ctrl - kept).sum(axis=0)
        check = ScheduleCheck(tuple(after), time.perf_counter() - start)
        return LimitedSchedule(adjusted, kept, scale, shed, before, check, unresolved)

    def _limit_step(
        self, p_kw: np.ndarray, ctrl: np.ndarray, first: FlowResult, pf: float, tol_kw: float
    ) -> tuple[float, FlowResult, str]:
        """Largest share of ``ctrl`` kept at one step with no import-side violation."""
        if not _import_side(first, float(p_kw.sum())):
            why = "shedding charging cannot lower an export-side violation"
            return 1.0, first, _remaining(first, why)
        if ctrl.sum() <= 0:
            return 1.0, first, _remaining(first, "no controllable load at this step")

        def flow(share: float) -> FlowResult:
            p = p_kw - ctrl * (1.0 - share)
            return self._solve(p, _q_of(p, pf))

        lo, best = 0.0, flow(0.0)
        if _import_side(best, float((p_kw - ctrl).sum())):
            return 0.0, best, _remaining(best, "still broken with all controllable load shed")
        hi = 1.0
        while (hi - lo) * ctrl.sum() > tol_kw:
            mid = (lo + hi) / 2
            res = flow(mid)
            if _import_side(res, float((p_kw - ctrl * (1 - mid)).sum())):
                hi = mid
            else:
                lo, best = mid, res
        return lo, best, _remaining(best, "export-side violation left after shedding")


# --- helpers -------------------------------------------------------------------------------


def _import_side(res: FlowResult, total_kw: float) -> bool:
    """Whether ``res`` breaks a limit that less import would relieve."""
    for v in res.violations:
        if v.kind == "undervoltage":
            return True
        if v.kind in ("line_overload", "trafo_overload", "not_converged") and total_kw > 0:
            return True
    return False


def _remaining(res: FlowResult, why: str) -> str:
    """Reason text for a step left with violations; empty when the step is clean."""
    if res.ok:
        return ""
    return f"{why}: " + "; ".join(v.reason for v in res.violations)


def _violation(
    kind: ViolationKind, element: str, value: float, limit: float, mask: np.ndarray, unit: str
) -> Violation:
    """One violation record: the worst element, how many broke the limit, a readable reason."""
    count = int(np.count_nonzero(mask))
    if unit == "%":
        what, shown = "element(s) over", f"{value:.1f}"
    else:
        what, shown = ("buses below" if value < limit else "buses above"), f"{value:.3f}"
    reason = f"{kind}: {count} {what} {limit:g} {unit}, worst {element} at {shown} {unit}"
    return Violation(kind, str(element), float(value), float(limit), count, reason)


def _q_of(p_kw: np.ndarray, pf: float) -> np.ndarray:
    """Reactive kvar absorbed at power factor ``pf`` (see module docstring for the sign)."""
    return np.abs(p_kw) * math.tan(math.acos(pf))


def _check_pf(pf: float) -> None:
    if not 0.0 < pf <= 1.0:
        raise EnergyError(f"power factor must be in (0, 1], got {pf}")


def _check_finite(arr: np.ndarray) -> None:
    if not np.isfinite(arr).all():
        raise EnergyError("loads must be finite numbers (no NaN or inf)")


def _num(x: float) -> float | None:
    return None if math.isnan(x) else round(float(x), 6)


def _nanreduce(fn: Any, values: list[float]) -> float:
    arr = np.asarray(values, dtype=float)
    return float(fn(arr)) if np.isfinite(arr).any() else math.nan
