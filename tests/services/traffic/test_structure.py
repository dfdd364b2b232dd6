"""Traffic is the template the next services copy: its layout and import rules hold.

Read from the import graph (grimp, as import-linter builds it), so a new import that
breaks a rule fails here with the modules named.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import grimp
import pytest

PKG = "cityos.services.traffic"
SIM = f"{PKG}.sim"
SUMO = {"traci", "libsumo", "sumolib"}
ROOT = Path(__file__).resolve().parents[3] / "src" / "cityos" / "services"


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("cityos", include_external_packages=True, cache_dir=None)


def _modules(graph: grimp.ImportGraph) -> set[str]:
    return {m for m in graph.modules if m == PKG or m.startswith(PKG + ".")}


def _cycles(nodes: set[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(set(edges), edges) == [["a", "b", "c"]]
    assert _cycles({"a", "b"}, {"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_among_the_traffic_modules(graph: grimp.ImportGraph) -> None:
    nodes = _modules(graph)
    edges = {m: graph.find_modules_directly_imported_by(m) & nodes for m in nodes}
    assert _cycles(nodes, edges) == []


def test_only_the_sim_package_imports_sumo(graph: grimp.ImportGraph) -> None:
    """traci, libsumo and sumolib (lazily or not) only under sim/: the service, its task,
    routes and controllers run where SUMO is not installed."""
    offenders = {
        (m, ext)
        for m in _modules(graph)
        if not (m == SIM or m.startswith(SIM + "."))
        for ext in graph.find_modules_directly_imported_by(m) & SUMO
    }
    assert offenders == set()
    # and the sim package does use them: the rule above is not vacuous
    assert any(graph.find_modules_directly_imported_by(m) & SUMO for m in _modules(graph))


def test_what_runs_under_serve_needs_no_simulation(graph: grimp.ImportGraph) -> None:
    sim = {m for m in _modules(graph) if m == SIM or m.startswith(SIM + ".")}
    for running in ("task", "api", "signalservice", "signalfile", "controllers"):
        for target in sim:
            chain = graph.find_shortest_chain(importer=f"{PKG}.{running}", imported=target)
            assert chain is None, f"{running} reaches the simulation: {' -> '.join(chain)}"


def test_the_template_modules_exist() -> None:
    for name in ("service", "model", "api", "cli", "errors", "signalguard", "congestion", "sim"):
        importlib.import_module(f"{PKG}.{name}")
    assert (ROOT / "traffic" / "sim" / "__init__.py").is_file()  # a subpackage
    traffic = importlib.import_module(PKG)
    service = importlib.import_module(f"{PKG}.service")
    # the entry point may name either
    assert traffic.SERVICE is service.SERVICE
    assert service.SERVICE.name == "traffic"
    for old in ("safety", "indicators", "hubloop", "tuning", "runner", "scenarios"):
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(f"{PKG}.{old}")  # moved: no second home for them


def test_cli_is_the_only_cli_module(graph: grimp.ImportGraph) -> None:
    assert {
        m for m in _modules(graph) if "typer" in graph.find_modules_directly_imported_by(m)
    } == {f"{PKG}.cli"}


# What of the hub a service may import: its client (and the errors it raises), and the
# HTTP helpers its routes use (the door's tenant, the error handling); the CLI also opens
# a Hub, since creating the database is the CLI's job. Never the store, delivery, the
# access check or the representation: those are the client's business.
HUB_ALLOWED = {"cityos.hub.client", "cityos.hub.errors", "cityos.hub.api.common"}
HUB_ALLOWED_CLI = HUB_ALLOWED | {"cityos.hub.core"}


def test_services_reach_the_hub_only_through_the_client(graph: grimp.ImportGraph) -> None:
    services = {m for m in graph.modules if m.startswith("cityos.services.")}
    found = {}
    for m in services & _modules(graph):
        hub = {i for i in graph.find_modules_directly_imported_by(m) if i.startswith("cityos.hub")}
        allowed = HUB_ALLOWED_CLI if m == f"{PKG}.cli" else HUB_ALLOWED
        if hub - allowed:
            found[m] = sorted(hub - allowed)
    assert found == {}


def test_no_service_source_names_the_store_or_delivery() -> None:
    """The grep the issue asks for, over every service's source."""
    pattern = re.compile(r"\.store\b|hub\.store|cityos\.hub\.store|cityos\.hub\.delivery")
    hits = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted(ROOT.rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert hits == []
