"""Run a battery controller through CityLearn 1.3.6 (the 2022 challenge) and score it.

CityLearn 1.3.6 lives in its own virtualenv (``make citylearn``: its numpy < 2 and gym pins
clash with ours) and runs ``citylearn_worker.py`` there; this adapter talks to it over a pipe,
one JSON line per message, once per simulated hour. So the controller scored is the very
object the service runs: it gets :class:`~cityos.services.energy.control.SiteInfo`, then an
:class:`~cityos.services.energy.control.Observation` per hour, and its actions go to the
simulator unchanged.

Timing, as CityLearn 1.3.6 has it: the observation of step ``t`` holds that hour's load, PV,
net draw and price; the action answered to it charges the battery during hour ``t + 1``
(whose draw is observed next). An episode of ``steps`` hours asks for ``steps − 1`` actions
(none after the last observation), as the challenge's own loop does.

Observation names (CityLearn → :class:`Observation`): ``month``, ``hour``, ``day_type`` →
same; ``non_shiftable_load`` → ``load_kwh``; ``solar_generation`` → ``solar_kwh``;
``electrical_storage_soc`` → ``soc``; ``net_electricity_consumption`` → ``net_kwh``;
``electricity_pricing`` → ``price``; ``carbon_intensity`` → ``carbon``;
``outdoor_dry_bulb_temperature`` → ``outdoor_temp_c``; the other shared ones (forecasts,
humidity, irradiance) and the price forecasts → ``extra``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..control import BuildingInfo, Controller, Future, Observation, SiteInfo
from ..errors import SimulatorError
from ..score import Score, score_2022

DATASET = "citylearn_challenge_2022_phase_1"
HINT = "run `make citylearn`"
WORKER = Path(__file__).resolve().with_name("citylearn_worker.py")
VENV = ".venv-citylearn"
ACTION_TOLERANCE = 1e-6  # an LP's 1.0000000002 is 1; anything further out is a bug

# CityLearn's names that become Observation fields (the rest go to `extra`)
_MAPPED = {
    "month",
    "hour",
    "day_type",
    "non_shiftable_load",
    "solar_generation",
    "electrical_storage_soc",
    "net_electricity_consumption",
    "electricity_pricing",
    "carbon_intensity",
    "outdoor_dry_bulb_temperature",
    "type",
    "t",
}

Progress = Callable[[int, int], None]  # (actions done, actions in the episode)


@dataclass(frozen=True)
class EpisodeSeries:
    """Per-step series of one episode, index ``t`` = CityLearn's time step."""

    net_district: tuple[float, ...]
    net: tuple[tuple[float, ...], ...]  # per building, kWh drawn (negative: exported)
    net_no_storage: tuple[tuple[float, ...], ...]  # the same without the batteries
    price: tuple[float, ...]
    carbon: tuple[float, ...]
    soc: tuple[tuple[float, ...], ...]  # per building, as observed (the last step left out)
    actions: tuple[tuple[float, ...], ...]  # per building, the action answered at step t


@dataclass(frozen=True)
class EpisodeResult:
    """CityLearn's own ``evaluate()`` and ours (:mod:`..score`) on the same series."""

    controller: str
    steps: int
    citylearn: Score
    ours: Score
    seconds: float  # wall time of the episode, the worker's start included
    site: SiteInfo
    series: EpisodeSeries
    details: dict[str, Any]  # the worker's site message (battery curves, versions)

    @property
    def score(self) -> float:
        return self.citylearn.score

    @property
    def cost(self) -> float:
        return self.citylearn.cost

    @property
    def carbon(self) -> float:
        return self.citylearn.carbon

    @property
    def grid(self) -> float:
        return self.citylearn.grid

    @property
    def ramping(self) -> float:
        return self.citylearn.ramping

    @property
    def load_factor(self) -> float:
        return self.citylearn.load_factor

    def disagreement(self) -> float:
        """The largest difference between CityLearn's components and ours."""
        a, b = self.citylearn.as_dict(), self.ours.as_dict()
        return max(abs(a[k] - b[k]) for k in a)


def citylearn_python(root: Path | None = None) -> Path:
    """The interpreter of CityLearn's virtualenv: ``$CITYOS_CITYLEARN_PYTHON``, else
    ``.venv-citylearn`` in the checkout (or `root`); :class:`SimulatorError` if it is missing
    or unfinished."""
    if env := os.environ.get("CITYOS_CITYLEARN_PYTHON"):
        python = Path(env)
        if python.exists():
            return python
        raise SimulatorError(f"CITYOS_CITYLEARN_PYTHON={env} does not exist: {HINT}")
    checkout = Path(__file__).resolve().parents[5]  # src/cityos/services/energy/sim/
    for base in [root] if root else [checkout, Path.cwd()]:
        python = base / VENV / "bin" / "python"
        if python.exists() and (base / VENV / ".installed").exists():
            return python
    where = (root or checkout) / VENV
    raise SimulatorError(f"CityLearn's virtualenv {where} is missing or unfinished: {HINT}")


class _Worker:
    """The worker process and its two pipes; its stderr goes to a file for error messages."""

    def __init__(self, python: Path, steps: int | None, future: bool) -> None:
        args = [str(python), "-I", str(WORKER)]
        args += ["--steps", str(steps)] if steps is not None else []
        args += ["--future"] if future else []
        # closed in close(): the process outlives this call
        self.stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                args,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.stderr,
                text=True,
                bufsize=1,
            )
        except OSError as exc:
            self.stderr.close()
            raise SimulatorError(f"could not start the CityLearn worker ({exc}): {HINT}") from exc
        self.t = -1

    @property
    def where(self) -> str:
        return "while starting" if self.t < 0 else f"at step {self.t}"

    def receive(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise self._died()
        message = json.loads(line)
        if message.get("type") == "error":
            broken = message["message"].startswith(("ModuleNotFoundError", "ImportError"))
            hint = f" ({HINT}: its virtualenv is incomplete)" if broken else ""
            raise SimulatorError(f"CityLearn failed {self.where}: {message['message']}{hint}")
        return message

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError as exc:
            raise self._died() from exc

    def _died(self) -> SimulatorError:
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        self.stderr.seek(0)
        tail = self.stderr.read().decode(errors="replace").strip().splitlines()[-15:]
        last = tail[-1] if tail else "no output"
        error = SimulatorError(
            f"the CityLearn worker stopped (exit {code}) {self.where}: {last} "
            f"({HINT} if its virtualenv is broken)"
        )
        if tail:
            error.add_note("worker stderr:\n" + "\n".join(tail))
        return error

    def close(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()


def _site(message: dict[str, Any]) -> SiteInfo:
    buildings = tuple(
        BuildingInfo(
            name=b["name"],
            capacity_kwh=b["capacity_kwh"],
            power_kw=b["power_kw"],
            efficiency=b["efficiency"],
            soc_init=b["soc_init"],
        )
        for b in message["buildings"]
    )
    future = None
    if f := message.get("future"):
        future = Future(
            load_kwh=tuple(tuple(s) for s in f["load_kwh"]),
            solar_kwh=tuple(tuple(s) for s in f["solar_kwh"]),
            price=tuple(f["price"]),
            carbon=tuple(f["carbon"]),
        )
    return SiteInfo(
        buildings=buildings, steps=message["steps"], step_hours=message["step_hours"], future=future
    )


def _observation(message: dict[str, Any]) -> Observation:
    extra: dict[str, float] = {}
    for name, value in message.items():
        if name in _MAPPED:
            continue
        # shared values as they are; per-building ones (the price forecasts) from the first
        # building, as all five share one price file
        extra[name] = float(value[0] if isinstance(value, list) else value)
    return Observation(
        t=int(message["t"]),
        month=int(message["month"]),
        hour=int(message["hour"]),
        day_type=int(message["day_type"]),
        load_kwh=tuple(message["non_shiftable_load"]),
        solar_kwh=tuple(message["solar_generation"]),
        soc=tuple(message["electrical_storage_soc"]),
        net_kwh=tuple(message["net_electricity_consumption"]),
        price=float(message["electricity_pricing"][0]),
        carbon=float(message["carbon_intensity"]),
        outdoor_temp_c=float(message["outdoor_dry_bulb_temperature"]),
        extra=extra,
    )


def _checked(controller: Controller, obs: Observation, actions: list[float], n: int) -> list[float]:
    """The actions as floats in [-1, 1]; a wrong count, NaN or a value out of range is a
    controller bug and says so."""
    name = getattr(controller, "name", type(controller).__name__)
    if len(actions) != n:
        raise ValueError(
            f"controller {name!r} gave {len(actions)} actions at step {obs.t}, not {n}"
        )
    out = []
    for a in actions:
        a = float(a)
        if not (math.isfinite(a) and -1 - ACTION_TOLERANCE <= a <= 1 + ACTION_TOLERANCE):
            raise ValueError(f"controller {name!r} gave action {a} at step {obs.t}: not in [-1, 1]")
        out.append(min(1.0, max(-1.0, a)))
    return out


def run_episode(
    controller: Controller,
    steps: int | None = None,
    progress: Progress | None = None,
    *,
    python: Path | None = None,
) -> EpisodeResult:
    """One episode of the 2022 phase_1 data set (5 homes, `steps` hours from the start;
    default the whole year, 8,760) under `controller`, scored by CityLearn and by us.

    The controller sees :attr:`SiteInfo.future` only if it has ``needs_future = True``.
    """
    needs_future = getattr(controller, "needs_future", False) is True
    started = time.perf_counter()
    worker = _Worker(python or citylearn_python(), steps, needs_future)
    try:
        details = worker.receive()
        site = _site(details)
        details.pop("future", None)
        controller.reset(site)
        n = len(site.buildings)
        socs: list[tuple[float, ...]] = []
        actions: list[tuple[float, ...]] = []
        while (message := worker.receive())["type"] == "obs":
            obs = _observation(message)
            worker.t = obs.t
            act = _checked(controller, obs, controller.act(obs), n)
            worker.send({"actions": act})
            socs.append(obs.soc)
            actions.append(tuple(act))
            if progress is not None:
                progress(len(actions), site.steps - 1)
        if message["type"] != "result":
            raise SimulatorError(f"the CityLearn worker sent {message['type']!r}: {HINT}")
    finally:
        worker.close()
    seconds = time.perf_counter() - started
    raw = message["series"]
    series = EpisodeSeries(
        net_district=tuple(raw["net_district"]),
        net=tuple(tuple(s) for s in raw["net"]),
        net_no_storage=tuple(tuple(s) for s in raw["net_no_storage"]),
        price=tuple(raw["price"]),
        carbon=tuple(raw["carbon"]),
        soc=tuple(zip(*socs, strict=True)),
        actions=tuple(zip(*actions, strict=True)),
    )
    return EpisodeResult(
        controller=getattr(controller, "name", type(controller).__name__),
        steps=site.steps,
        citylearn=Score(**message["evaluate"]),
        ours=score_2022(series.net, series.net_no_storage, series.price, series.carbon),
        seconds=seconds,
        site=SiteInfo(site.buildings, site.steps, site.step_hours),
        series=series,
        details=details,
    )
