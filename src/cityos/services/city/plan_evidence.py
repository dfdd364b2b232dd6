"""The expected effect of each service, read at run time from this project's own benchmark
results (benchmarks/results/*.json), each figure cited with its file. A plan never invents
an effect: a missing result file reads "not measured yet"."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .plan_catalogue import NATIONAL_QR
from .plan_data import City

CITED = "benchmarks/results"
SIMULATED = (
    "measured in simulation on benchmark networks, not in this city: the pilot must "
    "measure the city's own effect before scaling up"
)


@dataclass(frozen=True)
class Effect:
    """One expected effect on a named indicator, with the figure and the file it is from."""

    indicator: str
    text: str
    source: str
    measured: bool
    change_pct: float | None = None
    caveat: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The effect as written in the plan's JSON."""
        return asdict(self)


def find_results_dir(start: Path | None = None) -> Path | None:
    """benchmarks/results of the working directory or of the checkout CityOS runs from;
    None for an installed CityOS without its benchmarks."""
    here = [Path.cwd()] if start is None else [start]
    here += list(Path(__file__).resolve().parents)
    for base in here:
        candidate = base / CITED
        if candidate.is_dir():
            return candidate
    return None


def _load(results: Path | None, name: str) -> Any | None:
    """A results file's JSON, or None when it is missing."""
    if results is None or not (results / name).is_file():
        return None
    return json.loads((results / name).read_text(encoding="utf-8"))


def _cite(name: str) -> str:
    return f"{CITED}/{name}"


def _not_measured(indicator: str, name: str) -> Effect:
    return Effect(indicator, f"not measured yet ({_cite(name)} is missing)", _cite(name), False)


def _pct(new: float, old: float) -> float:
    return (new - old) / old * 100.0


def _signed(pct: float) -> str:
    """``−58 %`` / ``+6 %`` with a true minus sign, as the plan prints changes."""
    return f"{'−' if pct < 0 else '+'}{abs(pct):.0f} %"


def guarded(
    indicator: str, name: str, read: Callable[[Any], list[Effect]], results: Path | None
) -> list[Effect]:
    """``read`` applied to the results file; missing → not measured, unreadable → said so."""
    doc = _load(results, name) if results else None
    if doc is None:
        return [_not_measured(indicator, name)]
    try:
        return read(doc)
    except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError) as exc:
        text = f"{_cite(name)} has a shape the plan tool does not read ({exc!r})"
        return [Effect(indicator, text, _cite(name), False)]


def _resco_delays(doc: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Network → controller → mean average delay (s) of the RESCO benchmark."""
    out: dict[str, dict[str, float]] = {}
    for net, runs in doc["results"].items():
        out[net] = {
            c: r["average_delay_s"]["mean"] for c, r in runs.items() if "average_delay_s" in r
        }
    return out


def _traffic_resco(doc: dict[str, Any]) -> list[Effect]:
    name = "traffic-resco.json"
    delays = _resco_delays(doc)
    head = "cologne8" if "cologne8" in delays else sorted(delays)[0]
    d = delays[head]
    change = _pct(d["cityos"], d["fixed"])
    changes = sorted(_pct(v["cityos"], v["fixed"]) for v in delays.values())
    seeds = len(doc.get("seeds", ()))
    return [
        Effect(
            "average vehicle delay",
            f"average delay {_signed(change)} against fixed-time signals on RESCO {head} "
            f"({d['cityos']:.1f} s vs {d['fixed']:.1f} s, {seeds} seeds; {_cite(name)})",
            _cite(name),
            True,
            round(change, 1),
            SIMULATED,
        ),
        Effect(
            "average vehicle delay (median over RESCO networks)",
            f"from {_signed(changes[0])} to {_signed(changes[-1])} against fixed-time signals "
            f"across {len(changes)} RESCO networks, median {_signed(statistics.median(changes))} "
            f"({_cite(name)})",
            _cite(name),
            True,
            round(statistics.median(changes), 1),
            SIMULATED,
        ),
    ]


def _traffic_priority(doc: dict[str, Any]) -> list[Effect]:
    name = "traffic-priority.json"
    results = doc["results"]
    head = "cologne8" if "cologne8" in results else sorted(results)[0]
    r = results[head]
    return [
        Effect(
            "bus time lost at signals",
            f"bus time loss {_signed(r['bus_change_pct'])} with bus priority on RESCO {head} "
            f"({r['bus_time_loss_s']['with']:.0f} s vs {r['bus_time_loss_s']['without']:.0f} s); "
            f"other traffic {_signed(r['general_change_pct'])} ({_cite(name)})",
            _cite(name),
            True,
            round(r["bus_change_pct"], 1),
            SIMULATED,
        )
    ]


def traffic_effects(results: Path | None) -> list[Effect]:
    """Delay from the RESCO benchmark, bus time loss from the priority benchmark."""
    return guarded(
        "average vehicle delay", "traffic-resco.json", _traffic_resco, results
    ) + guarded("bus time lost at signals", "traffic-priority.json", _traffic_priority, results)


def _energy_citylearn(doc: dict[str, Any]) -> list[Effect]:
    name = "energy-citylearn.json"
    mpc = doc["mpc"]
    where = f"CityLearn 2022 ({doc.get('dataset', 'phase 1')}), a year hourly; {_cite(name)}"
    caveat = "five simulated homes with batteries, not the city's buildings"
    out = []
    for key, indicator in (("cost", "electricity cost"), ("carbon", "carbon emissions")):
        change = (mpc[key] - 1.0) * 100.0
        text = f"{indicator} {_signed(change)} against no control with the MPC schedule ({where})"
        out.append(Effect(indicator, text, _cite(name), True, round(change, 1), caveat))
    return out


def _energy_grid(doc: dict[str, Any]) -> list[Effect]:
    name = "energy-grid.json"
    sched = doc["limit_schedule"]
    before, after = len(sched["violating_steps_before"]), len(sched["violating_steps_after"])
    feeder = doc["feeder"]["code"]
    text = (
        f"hours with the feeder outside its limits {before} → {after} on SimBench {feeder} "
        f"({doc['homes']} homes, a winter day), {sched['shed_kwh']:.0f} kWh of flexible load "
        f"moved ({_cite(name)})"
    )
    change = _pct(after, before) if before else 0.0
    return [Effect("feeder overload hours", text, _cite(name), True, round(change, 1), SIMULATED)]


def energy_effects(results: Path | None) -> list[Effect]:
    """Cost and carbon from CityLearn, feeder overloads from the SimBench grid benchmark."""
    return guarded(
        "electricity cost", "energy-citylearn.json", _energy_citylearn, results
    ) + guarded("feeder overload hours", "energy-grid.json", _energy_grid, results)


def _hub_conformance(doc: dict[str, Any]) -> list[Effect]:
    name = "conformance-sqlite.json"
    text = (
        f"{doc['passed']} of {doc['run']} ETSI NGSI-LD conformance tests pass "
        f"({doc['passed'] / doc['run'] * 100:.1f} %; {_cite(name)})"
    )
    return [Effect("interoperability (NGSI-LD conformance)", text, _cite(name), True)]


def _hub_capacity(doc: dict[str, Any]) -> list[Effect]:
    name = "hub-sqlite.json"
    upsert = doc["batch_upsert"]["entities_per_s"]
    patch = doc["patch"]["ok_rps"]
    text = (
        f"one worker on one core takes {upsert:,.0f} entities/s in batches and {patch:,.0f} "
        f"attribute updates/s over HTTP (SQLite; {_cite(name)}): about "
        f"{patch * 60:,.0f} devices reporting once a minute"
    )
    return [Effect("hub capacity", text, _cite(name), True)]


def hub_effects(results: Path | None) -> list[Effect]:
    """Conformance and capacity: the hub changes no city indicator by itself."""
    return guarded(
        "interoperability", "conformance-sqlite.json", _hub_conformance, results
    ) + guarded("hub capacity", "hub-sqlite.json", _hub_capacity, results)


def _payments_codec(city: City) -> Callable[[Any], list[Effect]]:
    scheme_name, codec = NATIONAL_QR.get(city.iso2, ("the national QR scheme", None))

    def read(doc: dict[str, Any]) -> list[Effect]:
        name = "payments-codec.json"
        if codec is None or codec not in doc["schemes"]:
            text = (
                f"CityOS has no codec for {scheme_name} yet: the payments service needs one first"
            )
            return [Effect("QR payments throughput", text, _cite(name), False)]
        s = doc["schemes"][codec]
        text = (
            f"{scheme_name}: {s['encode']['per_s']:,} payloads/s encoded and "
            f"{s['decode']['per_s']:,}/s decoded on one core ({_cite(name)})"
        )
        return [Effect("QR payments throughput", text, _cite(name), True)]

    return read


def _payments_fares(doc: dict[str, Any]) -> list[Effect]:
    name = "payments-fares.json"
    text = (
        f"{doc['taps_per_s']:,} fare taps/s priced with transfers, concessions and daily caps "
        f"({doc['journeys']:,} journeys of {doc['riders']:,} riders; {_cite(name)})"
    )
    return [Effect("fare pricing throughput", text, _cite(name), True)]


def _payments_ledger(doc: dict[str, Any]) -> list[Effect]:
    name = "payments-ledger.json"
    run = next(r for r in doc["runs"] if r["engine"] == "sqlite")
    text = (
        f"{run['single']['transfers_per_s']:,} durable ledger transfers/s one at a time, "
        f"{run['batched']['transfers_per_s']:,}/s in batches (SQLite, {run['durability']}; "
        f"invariants {run['invariants']}; {_cite(name)})"
    )
    return [Effect("ledger throughput", text, _cite(name), True)]


def payments_effects(results: Path | None, city: City) -> list[Effect]:
    """Capacity of the codec for the city's scheme, fare pricing and the ledger; the share
    of fares paid cashless is an outcome no benchmark can give."""
    out = guarded("QR payments throughput", "payments-codec.json", _payments_codec(city), results)
    out += guarded("fare pricing throughput", "payments-fares.json", _payments_fares, results)
    out += guarded("ledger throughput", "payments-ledger.json", _payments_ledger, results)
    share = "share of payments made cashless"
    text = "not measured yet (an outcome of the pilot: count fares and fees by channel)"
    return out + [Effect(share, text, "", False)]


def _present(name: str, indicator: str) -> Callable[[Any], list[Effect]]:
    """A results file the plan tool does not summarise yet: cite it, claim nothing."""

    def read(doc: Any) -> list[Effect]:
        text = f"results recorded in {_cite(name)}; not yet summarised by the plan tool"
        return [Effect(indicator, text, _cite(name), False)]

    return read


def flows_effects(results: Path | None) -> list[Effect]:
    """People-flows accuracy under differential privacy (benchmarks/results/flows.json)."""
    indicator = "crowd-level error under differential privacy"
    return guarded(indicator, "flows.json", _present("flows.json", indicator), results)


def safety_effects(results: Path | None) -> list[Effect]:
    """Camera counting and masking (benchmarks/results/cameras.json)."""
    indicator = "people-count accuracy and faces masked"
    return guarded(indicator, "cameras.json", _present("cameras.json", indicator), results)


def indicators_effects(results: Path | None) -> list[Effect]:
    """The indicators service measures; it has no effect of its own to claim."""
    indicator = "ISO 37120/37122 indicators computed from hub data"
    return guarded(indicator, "indicators.json", _present("indicators.json", indicator), results)


def effects(service: str, results: Path | None, city: City) -> list[Effect]:
    """The expected effects of ``service`` from the results in ``results``."""
    table: dict[str, Callable[[], list[Effect]]] = {
        "hub": lambda: hub_effects(results),
        "traffic": lambda: traffic_effects(results),
        "energy": lambda: energy_effects(results),
        "flows": lambda: flows_effects(results),
        "safety": lambda: safety_effects(results),
        "payments": lambda: payments_effects(results, city),
        "indicators": lambda: indicators_effects(results),
    }
    return table[service]()
