"""The flows service keeps the template's rules (docs/services/README.md), and the privacy
layer below it has no import cycles either; read from the import graph (grimp)."""

from __future__ import annotations

import grimp
import pytest

from cityos.privacy import service as privacy_service
from cityos.services.flows import SERVICE
from cityos.services.flows import service as flows_service

PKG = "cityos.services.flows"
HUB_ALLOWED = {"cityos.hub.client", "cityos.hub.errors", "cityos.hub.api.common"}
HUB_ALLOWED_CLI = HUB_ALLOWED | {"cityos.hub.core"}


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("cityos", include_external_packages=True, cache_dir=None)


def _modules(graph: grimp.ImportGraph, pkg: str) -> set[str]:
    return {m for m in graph.modules if m == pkg or m.startswith(pkg + ".")}


def _has_cycle(nodes: set[str], edges: dict[str, set[str]]) -> list[str]:
    """A module that reaches itself, if any (depth-first search)."""
    state: dict[str, int] = {}

    def visit(v: str) -> bool:
        state[v] = 1
        for w in edges[v]:
            if state.get(w) == 1 or (w not in state and visit(w)):
                return True
        state[v] = 2
        return False

    return [v for v in sorted(nodes) if v not in state and visit(v)]


@pytest.mark.parametrize("pkg", [PKG, "cityos.privacy"])
def test_no_import_cycles(graph: grimp.ImportGraph, pkg: str) -> None:
    nodes = _modules(graph, pkg) - {pkg}  # the package's __init__ re-exports: not an edge
    edges = {m: graph.find_modules_directly_imported_by(m) & nodes for m in nodes}
    assert _has_cycle(nodes, edges) == []


@pytest.mark.parametrize("pkg", [PKG, "cityos.privacy"])
def test_only_the_cli_imports_typer(graph: grimp.ImportGraph, pkg: str) -> None:
    users = {
        m for m in _modules(graph, pkg) if "typer" in graph.find_modules_directly_imported_by(m)
    }
    assert users == {f"{pkg}.cli"}


def test_flows_reaches_the_hub_only_through_the_client(graph: grimp.ImportGraph) -> None:
    found = {}
    for m in _modules(graph, PKG):
        hub = {i for i in graph.find_modules_directly_imported_by(m) if i.startswith("cityos.hub")}
        allowed = HUB_ALLOWED_CLI if m == f"{PKG}.cli" else HUB_ALLOWED
        if hub - allowed:
            found[m] = sorted(hub - allowed)
    assert found == {}


def test_privacy_imports_no_service(graph: grimp.ImportGraph) -> None:
    for m in _modules(graph, "cityos.privacy"):
        above = {
            i for i in graph.find_modules_directly_imported_by(m)
            if i.startswith(("cityos.services", "cityos.web", "cityos.cli", "cityos.demo"))
        }  # fmt: skip
        assert above == set(), m


def test_the_plugs() -> None:
    assert SERVICE is flows_service.SERVICE and SERVICE.name == "flows"
    assert privacy_service.SERVICE.name == "privacy"
    for plug in (SERVICE, privacy_service.SERVICE):
        assert plug.settings is not None and plug.cli is not None and plug.tasks
        assert not plug.builtin
