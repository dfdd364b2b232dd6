"""``cityos flows …``: DP releases (od, crowd, dwell), a day's build, zones, file feeds and
a simulated day of the sample district. Every error is one line and exit status 2."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

app = typer.Typer(
    help="People flows: crowd levels, origin-destination flows, DP releases.",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)

DatabaseUrl = Annotated[
    str,
    typer.Option(envvar="CITYOS_DATABASE_URL", help="The hub's database (default: settings)"),
]
Day = Annotated[str, typer.Option(help="The local day, YYYY-MM-DD")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON")]
Epsilon = Annotated[float, typer.Option(help="Privacy loss ε this release spends (> 0)")]
Delta = Annotated[float, typer.Option(help="δ (Gaussian mechanism only)")]
Mechanism = Annotated[str, typer.Option(help="laplace or gaussian")]
Zones = Annotated[
    list[str] | None, typer.Option("--zone", help="Only these zones (repeat); default all")
]


def fail(message: str) -> typer.Exit:
    err.print(Text(message, style="red"), soft_wrap=True)
    return typer.Exit(2)


@dataclass
class Opened:
    client: Any
    settings: Any  # FlowsSettings
    privacy: Any  # PrivacySettings

    @property
    def tz(self) -> Any:
        from zoneinfo import ZoneInfo

        return ZoneInfo(self.privacy.timezone)


def _flows_settings(core: Any) -> Any:
    """[services.flows] and CITYOS_FLOWS_*, read as the plug reads them."""
    import dataclasses

    from cityos.config import coerce

    from .service_settings import FlowsSettings

    table = dict(core.sections.get("flows", {}))
    known = {f.name: f for f in dataclasses.fields(FlowsSettings)}
    unknown = set(table) - set(known)
    if unknown:
        raise ValueError(f"unknown setting(s) in [services.flows]: {', '.join(sorted(unknown))}")
    values = {}
    for name, f in known.items():
        raw = core.environ.get(f"CITYOS_FLOWS_{name.upper()}", table.get(name))
        if raw is not None:
            values[name] = coerce(f.type, raw, f"flows.{name}")
    return FlowsSettings(**values)


@contextmanager
def opened(database_url: str) -> Iterator[Opened]:
    """The hub, the flows and privacy settings; every failure one line. Errors of the
    flows service, the privacy layer and the hub inside the block become one line too."""
    from cityos.config import Settings
    from cityos.hub.client import HubClient
    from cityos.hub.core import Hub
    from cityos.hub.errors import NgsiLdError
    from cityos.privacy import PrivacyError, load_settings

    from .errors import FlowsError

    try:
        core = Settings.load()
        privacy = load_settings(core)
        settings = _flows_settings(core)
    except (ValueError, OSError) as exc:
        raise fail(f"settings: {exc}") from None
    url = database_url or core.database_url
    pool_log = logging.getLogger("psycopg.pool")
    level = pool_log.level
    pool_log.setLevel(logging.CRITICAL)
    try:
        hub = Hub(Settings(database_url=url))
    except Exception as exc:  # a wrong URL or an unreachable server: one line
        raise fail(f"cannot open the hub at {url}: {exc}") from None
    finally:
        pool_log.setLevel(level)
    client = HubClient(hub, tenant=settings.tenant)
    try:
        yield Opened(client, settings, privacy)
    except (FlowsError, PrivacyError, NgsiLdError) as exc:
        raise fail(str(exc)) from None
    finally:
        hub.close()


def _release(kind: str, day: str, epsilon: float, delta: float, mechanism: str,
             zones: list[str] | None, database_url: str, as_json: bool) -> None:  # fmt: skip
    from .days import parse_day
    from .errors import BadInput
    from .releases import crowd_release, dwell_release, od_release

    run = {"od": od_release, "crowd": crowd_release, "dwell": dwell_release}[kind]
    try:
        when = parse_day(day)
    except BadInput as exc:
        raise fail(f"--day: {exc}") from None
    with opened(database_url) as o:
        release = run(
            o.client, when, epsilon=epsilon, delta=delta, mechanism=mechanism, zones=zones,
            settings=o.settings, privacy=o.privacy,
        )  # fmt: skip
    out = release.as_dict()
    if as_json:
        print(json.dumps(out, ensure_ascii=False))
        return
    p = out["privacy"]
    console.print(
        f"{out['query']} on {out['period']}: {p['mechanism']}, ε={p['epsilon']:.3g}, "
        f"δ={p['delta']:.3g}, noise std ≈{p['noiseStd']:.3g}",
        markup=False,
    )
    if kind == "od":
        zones_of = list(dict.fromkeys(k.split("->")[0] for k in out["cells"]))
        table = Table(title="journeys (origin rows, destination columns)")
        table.add_column("")
        for z in zones_of:
            table.add_column(z, justify="right")
        for o in zones_of:
            table.add_row(o, *(str(out["cells"][f"{o}->{d}"]) for d in zones_of))
        console.print(table)
    else:
        for key, value in out["cells"].items():
            console.print(f"{key}\t{value}", markup=False)
    for note in out["notes"]:
        err.print(note, markup=False)


@app.command()
def od(
    day: Day, epsilon: Epsilon = 1.0, delta: Delta = 0.0, mechanism: Mechanism = "laplace",
    zone: Zones = None, database_url: DatabaseUrl = "", as_json: AsJson = False,
) -> None:  # fmt: skip
    """Origin-destination journeys between zones on a day, as a differentially private
    release (the day's budget pays for it)."""
    _release("od", day, epsilon, delta, mechanism, zone, database_url, as_json)


@app.command()
def crowd(
    day: Day, epsilon: Epsilon = 1.0, delta: Delta = 0.0, mechanism: Mechanism = "laplace",
    zone: Zones = None, database_url: DatabaseUrl = "", as_json: AsJson = False,
) -> None:  # fmt: skip
    """People entering each zone per hour of a day, as a DP release."""
    _release("crowd", day, epsilon, delta, mechanism, zone, database_url, as_json)


@app.command()
def dwell(
    day: Day, epsilon: Epsilon = 1.0, delta: Delta = 0.0, mechanism: Mechanism = "laplace",
    zone: Zones = None, database_url: DatabaseUrl = "", as_json: AsJson = False,
) -> None:  # fmt: skip
    """Wi-Fi stays per zone and dwell time on a day, as a DP release."""
    _release("dwell", day, epsilon, delta, mechanism, zone, database_url, as_json)


@app.command()
def build(day: Day, database_url: DatabaseUrl = "", as_json: AsJson = False) -> None:
    """Build a day's crowd levels, crowding alerts, dwell times and forecast in the hub
    (internal outputs; `cityos serve` does today's every interval)."""
    from .daybuild import build_day
    from .days import parse_day

    with opened(database_url) as o:
        out = build_day(o.client, parse_day(day), o.tz, o.settings).as_dict()
    if as_json:
        print(json.dumps(out))
        return
    peak = out["peak"] or {}
    console.print(
        f"{out['day']}: {out['zones']} zones, {out['readings']} counter readings, "
        f"{out['alerts']} crowding alert(s); busiest: {peak.get('zone', '-')} "
        f"({peak.get('occupancy', 0):.0%} of capacity)"
    )


@app.command()
def zones(database_url: DatabaseUrl = "", as_json: AsJson = False) -> None:
    """The registered zones."""
    from .zones import load_zones

    with opened(database_url) as o:
        found = load_zones(o.client, required=False)
    rows = [{"id": z.id, "name": z.name, "capacity": z.capacity} for z in found.zones.values()]
    if as_json:
        print(json.dumps(rows, ensure_ascii=False))
        return
    for r in rows:
        console.print(f"{r['id']}\t{r['capacity']}\t{r['name']}", markup=False)
    if not rows:
        err.print("no zones registered (cityos flows simulate loads the sample district's)")


@app.command()
def ingest(
    taps: Annotated[Path | None, typer.Option(help="CSV: card,stop,time,kind")] = None,
    sightings: Annotated[Path | None, typer.Option(help="CSV: mac,sensor,time")] = None,
    counts: Annotated[
        Path | None, typer.Option(help="CSV: sensor,start,end,count,direction")
    ] = None,
    database_url: DatabaseUrl = "",
    as_json: AsJson = False,
) -> None:
    """Take in feed files; card numbers and MAC addresses are pseudonymised before anything
    is stored (needs CITYOS_PRIVACY_KEY)."""
    from cityos.privacy import Pseudonymiser

    from .counters import ingest_counts
    from .fares import ingest_taps
    from .feeds import read_counts, read_sightings, read_taps
    from .wifi import ingest_sightings

    if not (taps or sightings or counts):
        raise fail("give at least one of --taps, --sightings, --counts")
    out: dict[str, Any] = {}
    with opened(database_url) as o:
        if counts:
            out["counts"] = ingest_counts(o.client, read_counts(counts), o.settings).as_dict()
        if taps or sightings:
            p = Pseudonymiser.from_settings(o.privacy)
            if taps:
                out["taps"] = ingest_taps(o.client, p, read_taps(taps), o.settings).as_dict()
            if sightings:
                found = read_sightings(sightings)
                out["sightings"] = ingest_sightings(o.client, p, found, o.settings).as_dict()
    if as_json:
        print(json.dumps(out))
        return
    for name, result in out.items():
        console.print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in result.items()))


@app.command()
def simulate(
    day: Day,
    cards: Annotated[int, typer.Option(min=0, help="Fare cards travelling that day")] = 20_000,
    devices: Annotated[int, typer.Option(min=0, help="Phones seen by Wi-Fi")] = 3_000,
    seed: Annotated[int, typer.Option(help="Random seed")] = 1,
    step_min: Annotated[
        int, typer.Option(min=5, max=60, help="Minutes each counter reading covers")
    ] = 15,
    database_url: DatabaseUrl = "",
    as_json: AsJson = False,
) -> None:
    """Load a synthetic day of the sample district (zones, counters, taps, Wi-Fi) through
    the same ingest path as real feeds, then build it (needs CITYOS_PRIVACY_KEY)."""
    from cityos.privacy import Pseudonymiser

    from .counters import ingest_counts
    from .daybuild import build_day
    from .days import parse_day
    from .fares import ingest_taps
    from .synthetic import sample_zones, synthetic_counts, synthetic_sightings, synthetic_taps
    from .wifi import ingest_sightings
    from .zones import register_zones

    with opened(database_url) as o:
        when = parse_day(day)
        p = Pseudonymiser.from_settings(o.privacy)
        zone_list = sample_zones()
        zone_map = register_zones(o.client, zone_list)
        tz = o.tz
        with console.status("counters"):
            counted = ingest_counts(
                o.client,
                synthetic_counts(zone_list, when, tz, seed=seed, step_min=step_min),
                o.settings,
                zone_map,
            )
        with console.status("fare taps"):
            taps = synthetic_taps(zone_list, when, tz, cards=cards, seed=seed)
            tapped = ingest_taps(o.client, p, taps, o.settings, zone_map)
        with console.status("Wi-Fi"):
            seen = synthetic_sightings(zone_list, when, tz, devices=devices, seed=seed)
            wifi = ingest_sightings(o.client, p, seen, o.settings, zone_map)
        built = build_day(o.client, when, tz, o.settings)
    out = {
        "counts": counted.as_dict(),
        "taps": tapped.as_dict(),
        "sightings": wifi.as_dict(),
        "build": built.as_dict(),
    }
    if as_json:
        print(json.dumps(out))
        return
    console.print(
        f"{day}: {counted.stored} counter readings, {tapped.journeys} journeys "
        f"({tapped.taps} taps), {wifi.stays} Wi-Fi stays; {built.alerts} crowding alert(s)"
    )
