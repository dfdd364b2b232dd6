"""``cityos traffic …``: run a scenario under a controller, directly or through the hub."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from cityos.clikit import finite

app = typer.Typer(
    help="Traffic: signal control on Eclipse SUMO (RESCO scenarios), through the hub.",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)


@contextlib.contextmanager
def hub_client(database_url: str, **settings: Any) -> Iterator[Any]:
    """A client of a hub on ``database_url``, for a command that runs without a server:
    opening the hub creates (and migrates) its database, which is the CLI's job; the
    service is handed only the :class:`~cityos.hub.client.HubClient`."""
    from cityos.config import Settings
    from cityos.hub.client import HubClient
    from cityos.hub.core import Hub

    hub = Hub(Settings(database_url=database_url, **settings))
    try:
        yield HubClient(hub)
    finally:
        hub.close()


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]{message}[/red]", soft_wrap=True)  # one line, however long
    return typer.Exit(2)


def _print_json(data: Any) -> None:
    print(json.dumps(finite(data), indent=2, allow_nan=False))


JSON_HELP = "Print machine-readable JSON (a number without a limit, such as infinity, is null)."


def _params_network(path: Path) -> str | None:
    """The network a setting file says it was tuned for (``cityos traffic tune --out``
    records it); None for a plain object of parameters."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # read_params reports the unreadable file
    network = data.get("network") if isinstance(data, dict) else None
    return network if isinstance(network, str) else None


def _scenario(name: str) -> Any:
    from .errors import TrafficError
    from .sim.scenarios import get_scenario

    try:
        scenario = get_scenario(name)
        scenario.check_files()
    except TrafficError as exc:
        raise _fail(str(exc)) from None
    return scenario


def _controller(
    name: str, network: str | None = None, params: Path | None = None, force: bool = False
) -> Any:
    from .controllers import make_controller
    from .errors import TrafficError

    options: dict[str, float] = {}
    if params is not None:
        if name != "cityos":
            raise _fail(f"--params sets the cityos controller's parameters, not {name!r}'s")
        from .controllers.presets import read_params

        try:
            options = read_params(params)
        except TrafficError as exc:
            raise _fail(f"--params: {exc}") from None
        tuned_for = _params_network(params)
        if tuned_for is not None and network is not None and tuned_for != network and not force:
            raise _fail(
                f"--params: {params} was tuned for {tuned_for!r}, not {network!r}: "
                "tune for this network, or add --force to use it anyway"
            )
    try:
        return make_controller(name, network=network, **options)
    except TrafficError as exc:
        raise _fail(str(exc)) from None


def _run_one(
    scenario: Any,
    controller_name: str,
    seed: int,
    through_hub: str | None,
    quiet: bool,
    buses: Path | None = None,
    bus_priority: bool = False,
    params: Path | None = None,
    mqtt: str | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """One run with a progress bar (on stderr); the result as JSON-ready data."""
    from .errors import TrafficError
    from .sim.runner import run_scenario

    controller = _controller(controller_name, scenario.name, params, force)
    columns = (
        TextColumn(f"{scenario.name} · {controller_name} · seed {seed}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} s simulated"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, disable=quiet, transient=True) as bar:
        task = bar.add_task("run", total=scenario.duration)

        def progress(done: float, total: float) -> None:
            bar.update(task, completed=done, total=total)

        try:
            plan = _bus_lines(scenario, buses) if buses is not None else None
            priority = None
            if bus_priority:
                from .priority import BusPriority

                priority = BusPriority(controller)
            if through_hub is not None:
                result, stats = _through_hub(
                    scenario, controller, seed, through_hub, progress, plan, priority, mqtt
                )
                out = {**result.as_dict(), "hub": stats}
            elif plan is not None:
                from .sim.buses import run_with_buses

                out = run_with_buses(scenario, controller, plan, seed=seed, priority=priority)
                out.update(scenario=scenario.name, seed=seed, sumo_version=_sumo_version())
            else:
                result = run_scenario(scenario, controller, seed=seed, progress=progress)
                out = result.as_dict()
        except (TrafficError, ValueError) as exc:
            raise _fail(str(exc)) from None
    out["through_hub"] = through_hub is not None
    setting = getattr(controller, "params", None)
    if setting is not None:  # the setting that produced the figure (tuned for this network?)
        out["controller_params"] = asdict(setting)
    return out


def _sumo_version() -> str:
    from .sim.simulation import sumo_version

    return sumo_version()


def _bus_lines(scenario: Any, folder: Path) -> Any:
    """Bus lines and a timetable on the scenario's network, written (GTFS and SUMO) to
    ``folder`` — kept, as the hub's GTFS-realtime refers to the feed."""
    from .sim.transit import make_bus_lines

    return make_bus_lines(scenario.net_file, scenario.begin, scenario.end, 0, folder)


def _through_hub(
    scenario: Any,
    controller: Any,
    seed: int,
    database_url: str,
    progress: Any,
    plan: Any = None,
    priority: Any = None,
    mqtt: str | None = None,
) -> tuple[Any, dict[str, Any]]:
    from .sim.hubloop import run_through_hub

    # over MQTT, a simulated hour sends each device a message every 10 simulated seconds,
    # dozens a second of wall time: this run's hub takes them all (no per-device flood limit)
    broker = {"mqtt_url": mqtt, "device_rate_per_s": 0.0} if mqtt is not None else {}
    with hub_client(database_url, **broker) as client:
        result, stats = asyncio.run(
            run_through_hub(
                scenario,
                controller,
                client,
                seed=seed,
                progress=progress,
                transit=plan,
                priority=priority,
                over_mqtt=mqtt is not None,
            )
        )
    return result, asdict(stats)


@app.command("run")
def run(
    scenario: Annotated[str, typer.Option("--scenario", "-s", help="A RESCO scenario name.")],
    controller: Annotated[
        str,
        typer.Option(
            "--controller",
            "-c",
            help="fixed, actuated, max-pressure, max-pressure-plain or cityos.",
        ),
    ] = "cityos",
    seed: Annotated[int, typer.Option(help="SUMO's random seed.")] = 0,
    through_hub: Annotated[
        str | None,
        typer.Option(
            "--through-hub",
            help="Run the loop through a hub on this database URL (detectors as devices, "
            "decisions as TrafficSignal commands), e.g. sqlite:///data/traffic.db.",
        ),
    ] = None,
    buses: Annotated[
        Path | None,
        typer.Option(
            "--buses",
            help="Generate bus lines and a timetable (GTFS, validated) into this folder and "
            "run them: buses report as devices, GTFS-realtime is served from the hub.",
        ),
    ] = None,
    bus_priority: Annotated[
        bool, typer.Option("--bus-priority", help="Green extension / early green for late buses.")
    ] = False,
    mqtt: Annotated[
        str | None,
        typer.Option(
            "--mqtt",
            help="With --through-hub: the junctions speak to the hub over this MQTT broker "
            "(e.g. mqtt://127.0.0.1:1883), as cabinets in the field would.",
        ),
    ] = None,
    params: Annotated[
        Path | None,
        typer.Option(
            "--params",
            help="The cityos controller's setting from `cityos traffic tune --out` (instead "
            "of the one shipped for the network).",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Use a --params file tuned for another network anyway."),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Run one scenario's standard hour under one controller; report the RESCO delay."""
    sc = _scenario(scenario)
    if bus_priority and buses is None:
        raise _fail("--bus-priority needs buses: add --buses FOLDER")
    if mqtt is not None and through_hub is None:
        raise _fail("--mqtt needs a hub: add --through-hub DATABASE_URL")
    out = _run_one(
        sc, controller, seed, through_hub, json_out, buses, bus_priority, params, mqtt, force
    )
    if json_out:
        _print_json(out)
        return
    if "average_delay_s" not in out:  # buses, direct: their own figures
        table = Table(title=f"{sc.name}: {out['controller']}, seed {seed}, with buses")
        table.add_column("measure")
        table.add_column("value", justify="right")
        table.add_row("bus time loss (stops excluded)", f"{out['bus_time_loss_s']:.1f} s")
        table.add_row("general traffic delay (RESCO)", f"{out['general_delay_s']:.2f} s")
        table.add_row("buses / other vehicles", f"{out['buses']:,} / {out['vehicles']:,}")
        console.print(table)
        return
    table = Table(title=f"{sc.name}: {out['controller']}, seed {seed}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("average delay (RESCO)", f"{out['average_delay_s']:.2f} s")
    table.add_row("vehicles", f"{out['vehicles']:,}")
    table.add_row("arrived / in network / never inserted",
                  f"{out['arrived']:,} / {out['in_network']:,} / {out['never_inserted']:,}")  # fmt: skip
    table.add_row("wall time", f"{out['wall_s']:.1f} s for {out['simulated_s']:.0f} s simulated")
    table.add_row("SUMO", out["sumo_version"])
    if "hub" in out:
        hub = out["hub"]
        table.add_row("through the hub", f"{hub['commands']:,} commands, {hub['alerts']} alerts")
    console.print(table)


@app.command("compare")
def compare(
    scenario: Annotated[str, typer.Option("--scenario", "-s", help="A RESCO scenario name.")],
    controllers: Annotated[
        str, typer.Option(help="Comma-separated controllers.")
    ] = "fixed,max-pressure,cityos",
    seed: Annotated[int, typer.Option(help="SUMO's random seed.")] = 0,
    plot: Annotated[
        Path | None, typer.Option(help="Write a bar chart of delay per controller (PNG).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Run several controllers on one scenario and compare their RESCO delay."""
    sc = _scenario(scenario)
    names = [c.strip() for c in controllers.split(",") if c.strip()]
    for name in names:
        _controller(name)  # every name checked before an hour of simulation starts
    results = [_run_one(sc, name, seed, None, quiet=json_out) for name in names]
    if plot is not None:
        from .plot import delay_chart

        delay_chart({sc.name: {r["controller"]: [r["average_delay_s"]] for r in results}}, plot)
    if json_out:
        _print_json(results)
        return
    table = Table(title=f"{sc.name}, seed {seed}: average delay per vehicle (RESCO)")
    table.add_column("controller")
    table.add_column("delay (s)", justify="right")
    table.add_column("wall (s)", justify="right")
    for r in results:
        table.add_row(r["controller"], f"{r['average_delay_s']:.2f}", f"{r['wall_s']:.1f}")
    console.print(table)
    if plot is not None:
        console.print(f"chart: {plot}")


@app.command("tune")
def tune_cmd(
    scenario: Annotated[str, typer.Option("--scenario", "-s", help="The network to tune for.")],
    budget: Annotated[int, typer.Option(help="Settings to try (each over every seed).")] = 80,
    seeds: Annotated[
        str, typer.Option(help="Training seeds, comma-separated (keep them apart from test seeds).")
    ] = "100,101,102,103",
    validation_seeds: Annotated[
        str, typer.Option(help="Seeds the best settings are checked on, comma-separated.")
    ] = "200,201,202,203,204,205,206,207",
    keep: Annotated[int, typer.Option(help="Best training settings checked on them.")] = 5,
    jobs: Annotated[int, typer.Option(help="Simulated hours in parallel.")] = 2,
    out: Annotated[
        Path | None, typer.Option(help="Write the setting here (default: print it only).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Tune the cityos controller to one network by simulation (minutes on two cores)."""
    from .errors import TrafficError
    from .sim.tuning import tune

    sc = _scenario(scenario)
    try:
        seed_list = [int(x) for x in seeds.split(",") if x.strip()]
        check_list = [int(x) for x in validation_seeds.split(",") if x.strip()]
    except ValueError:
        raise _fail("--seeds and --validation-seeds must be integers separated by commas") from None
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, disable=json_out, transient=True) as bar:
        task = bar.add_task(f"tuning {sc.name}", total=budget)

        def progress(done: int, total: int, best: float) -> None:
            bar.update(
                task,
                completed=done,
                total=total,
                description=f"tuning {sc.name}: best {best:.2f} s",
            )

        try:
            result = tune(
                sc,
                seeds=seed_list,
                budget=budget,
                validation_seeds=check_list,
                keep=keep,
                jobs=jobs,
                progress=progress,
            )
        except TrafficError as exc:
            raise _fail(str(exc)) from None
    if out is not None:
        result.write(out)
    if json_out:
        _print_json({k: v for k, v in asdict(result).items() if k != "history"})
        return
    console.print(
        f"{sc.name}: {result.default_delay_s:.2f} s with the defaults on training seeds "
        f"{seed_list}; best {min(h['delay_s'] for h in result.history):.2f} s "
        f"({result.evaluations} runs of a setting, {result.wall_s:.0f} s)"
    )
    if result.validation_delay_s is not None:
        console.print(
            f"chosen on seeds {check_list}: {result.default_validation_delay_s:.2f} s with the "
            f"defaults -> {result.validation_delay_s:.2f} s"
        )
    console.print(json.dumps(result.params))
    if out is not None:
        console.print(f"written to {out}")


@app.command("scenarios")
def scenarios(
    json_out: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """The scenarios this installation can run (shipped inside sumo-rl)."""
    from .sim.scenarios import RESCO_SCENARIOS, get_scenario

    rows = []
    for name in RESCO_SCENARIOS:
        sc = get_scenario(name)
        rows.append({"name": name, "begin": sc.begin, "end": sc.end, "net_file": str(sc.net_file)})
    if json_out:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="RESCO scenarios")
    for col in ("name", "hour", "network"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], f"{r['begin']:.0f}–{r['end']:.0f} s", Path(r["net_file"]).name)
    console.print(table)


@app.command("signals")
def signals_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="The signals file to write.")],
    scenario: Annotated[
        str | None, typer.Option("--scenario", "-s", help="A scenario's network (RESCO name).")
    ] = None,
    network: Annotated[
        Path | None, typer.Option("--network", help="A SUMO network file (.net.xml) instead.")
    ] = None,
) -> None:
    """Write the signals file the service controls under `cityos serve` (setting
    services.traffic.signals): every signalised junction of a SUMO network."""
    from .errors import TrafficError
    from .signalfile import write_signals
    from .sim.layout import read_network

    if (scenario is None) == (network is None):
        raise _fail("give one of --scenario NAME or --network FILE")
    try:
        net_file = _scenario(scenario).net_file if scenario is not None else network
        assert net_file is not None
        layouts = read_network(Path(net_file)).layouts
    except TrafficError as exc:
        raise _fail(str(exc)) from None
    write_signals(layouts, out, network=scenario or Path(net_file).name)
    controlled = sum(1 for layout in layouts.values() if layout.phases)
    console.print(f"{controlled} signals written to {out}")
