"""The scenarios the traffic service runs: the six RESCO benchmarks and a tiny generated crossing.

RESCO's scenarios are read from the installed ``sumo-rl`` package (never copied into this
repository). Control step and yellow time follow RESCO's own map configuration: a 10 s
control step with a 3 s yellow for every one of the six city scenarios.
"""

from __future__ import annotations

import importlib.util
import random
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import NetworkFileError, TrafficError, UnknownScenarioError

RESCO_STEP_S = 10.0
RESCO_YELLOW_S = 3.0

# name -> (begin, end) of the scenario's standard hour (RESCO map_config / sumo-rl resco_envs)
_RESCO_HOURS: dict[str, tuple[float, float]] = {
    "cologne1": (25200.0, 28800.0),
    "cologne3": (25200.0, 28800.0),
    "cologne8": (25200.0, 28800.0),
    "ingolstadt1": (57600.0, 61200.0),
    "ingolstadt7": (57600.0, 61200.0),
    "ingolstadt21": (57600.0, 61200.0),
}
RESCO_SCENARIOS: tuple[str, ...] = tuple(_RESCO_HOURS)


@dataclass(frozen=True)
class Scenario:
    """Everything needed to start one simulation: files, the hour it covers, RESCO's timing."""

    name: str
    net_file: Path
    route_files: tuple[Path, ...]
    begin: float
    end: float
    step_s: float = RESCO_STEP_S
    yellow_s: float = RESCO_YELLOW_S
    source: str = ""
    extra_files: tuple[Path, ...] = field(default=())

    @property
    def duration(self) -> float:
        return self.end - self.begin

    def check_files(self) -> None:
        """Fail with a clear message before SUMO sees a missing file (libsumo would abort)."""
        for path in (self.net_file, *self.route_files, *self.extra_files):
            if not path.is_file():
                raise NetworkFileError(f"scenario {self.name!r}: file {path} does not exist")


def resco_directory() -> Path:
    """Where sumo-rl keeps the RESCO scenario files.

    Found through the import system without importing sumo-rl itself (that would pull in
    gymnasium and pandas, and insists on SUMO_HOME); nothing is downloaded.
    """
    spec = importlib.util.find_spec("sumo_rl")
    if spec is None or not spec.submodule_search_locations:
        raise TrafficError(
            "the RESCO scenarios ship with the sumo-rl package: pip install sumo-rl==1.4.5"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "nets" / "RESCO"


def get_scenario(name: str) -> Scenario:
    """A RESCO scenario by name; an unknown name raises an error that lists the known ones."""
    if name not in _RESCO_HOURS:
        known = ", ".join(RESCO_SCENARIOS)
        raise UnknownScenarioError(f"unknown scenario {name!r}; known scenarios: {known}")
    begin, end = _RESCO_HOURS[name]
    folder = resco_directory() / name
    return Scenario(
        name=name,
        net_file=folder / f"{name}.net.xml",
        route_files=(folder / f"{name}.rou.xml",),
        begin=begin,
        end=end,
        source="RESCO via sumo-rl 1.4.5",
    )


def sumo_binary(name: str) -> str:
    """Path of a SUMO tool from the eclipse-sumo wheel (falls back to PATH)."""
    try:
        import sumo

        candidate = Path(sumo.SUMO_HOME) / "bin" / name
        if candidate.is_file():
            return str(candidate)
    except ImportError:
        pass
    import shutil

    found = shutil.which(name)
    if found is None:
        raise TrafficError(f"{name} not found: pip install eclipse-sumo==1.28.0")
    return found


# The tiny crossing: four 200 m arms, two lanes each way, a signal in the middle.
_ARM = 200.0
_NODES = {"C": (0.0, 0.0), "N": (0.0, _ARM), "S": (0.0, -_ARM), "E": (_ARM, 0.0), "W": (-_ARM, 0.0)}
_ROUTES = {  # route id -> edges; rates are vehicles per hour
    "WE": ("WC", "CE"),
    "EW": ("EC", "CW"),
    "NS": ("NC", "CS"),
    "SN": ("SC", "CN"),
    "WN": ("WC", "CN"),
    "ES": ("EC", "CS"),
}


def tiny_scenario(
    directory: Path,
    *,
    duration: float = 600.0,
    rates: dict[str, float] | None = None,
    vehicles: list[tuple[str, float]] | None = None,
    pedestrians: bool = False,
    seed: int = 0,
) -> Scenario:
    """Generate a single signalised crossing with netconvert, and its demand, into ``directory``.

    ``vehicles`` (route id, depart offset) gives an exact demand; otherwise ``rates`` (route id
    -> vehicles/hour) draws Poisson arrivals with ``seed``. Used by tests, small and fast.
    """
    directory.mkdir(parents=True, exist_ok=True)
    nodes = directory / "tiny.nod.xml"
    edges = directory / "tiny.edg.xml"
    net = directory / "tiny.net.xml"
    nodes.write_text(
        "<nodes>\n"
        + "".join(
            f'  <node id="{n}" x="{x}" y="{y}" type="{"traffic_light" if n == "C" else "priority"}"/>\n'
            for n, (x, y) in _NODES.items()
        )
        + "</nodes>\n"
    )
    arms = [n for n in _NODES if n != "C"]
    edges.write_text(
        "<edges>\n"
        + "".join(
            f'  <edge id="{a}{b}" from="{a}" to="{b}" numLanes="2" speed="13.89"/>\n'
            for arm in arms
            for a, b in ((arm, "C"), ("C", arm))
        )
        + "</edges>\n"
    )
    cmd = [
        sumo_binary("netconvert"),
        "-n",
        str(nodes),
        "-e",
        str(edges),
        "-o",
        str(net),
        "--no-turnarounds",
        "--tls.default-type",
        "static",
    ]
    if pedestrians:
        cmd += ["--sidewalks.guess", "--crossings.guess"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise NetworkFileError(f"netconvert failed: {done.stderr.strip()[-500:]}")

    begin = 0.0
    demand = (
        vehicles if vehicles is not None else _poisson(rates or _default_rates(), duration, seed)
    )
    routes = directory / "tiny.rou.xml"
    lines = [
        '<routes>\n  <vType id="car" accel="2.6" decel="4.5" sigma="0" speedFactor="1" speedDev="0"/>\n'
    ]
    lines += [f'  <route id="{r}" edges="{" ".join(e)}"/>\n' for r, e in _ROUTES.items()]
    for i, (route, offset) in enumerate(sorted(demand, key=lambda v: v[1])):
        if route not in _ROUTES:
            raise TrafficError(
                f"unknown route {route!r} on the tiny crossing; known: {', '.join(_ROUTES)}"
            )
        lines.append(
            f'  <vehicle id="v{i}" type="car" route="{route}" depart="{begin + offset:.1f}" departLane="best" departSpeed="max"/>\n'
        )
    lines.append("</routes>\n")
    routes.write_text("".join(lines))
    return Scenario(
        name="tiny",
        net_file=net,
        route_files=(routes,),
        begin=begin,
        end=begin + duration,
        source="generated by cityos (netconvert)",
    )


def _default_rates() -> dict[str, float]:
    return {"WE": 500.0, "EW": 500.0, "NS": 200.0, "SN": 200.0, "WN": 60.0, "ES": 60.0}


def _poisson(rates: dict[str, float], duration: float, seed: int) -> list[tuple[str, float]]:
    rng = random.Random(seed)
    out: list[tuple[str, float]] = []
    for route, per_hour in sorted(rates.items()):
        t = 0.0
        while per_hour > 0:
            t += rng.expovariate(per_hour / 3600.0)
            if t >= duration:
                break
            out.append((route, round(t, 1)))
    return out
