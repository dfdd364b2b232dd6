"""The payments package keeps the template's rules (tests/services/traffic/test_structure.py):
no import cycles, typer only in cli.py, the hub only through the client (and the HTTP
helpers), the ledger only in its own tables."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import grimp
import pytest

PKG = "cityos.services.payments"
ROOT = Path(__file__).resolve().parents[3] / "src" / "cityos" / "services" / "payments"
HUB_ALLOWED = {"cityos.hub.client", "cityos.hub.errors", "cityos.hub.api.common"}


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("cityos", include_external_packages=True, cache_dir=None)


def _modules(graph: grimp.ImportGraph) -> set[str]:
    return {m for m in graph.modules if m == PKG or m.startswith(PKG + ".")}


def test_no_import_cycles(graph: grimp.ImportGraph) -> None:
    # the schemes subpackage is the codec's (its modules and __init__ import each other
    # as a package does); the rest of the service must have no cycle
    nodes = {m for m in _modules(graph) if not m.startswith(f"{PKG}.schemes")}
    for m in nodes:
        for other in graph.find_modules_directly_imported_by(m) & nodes:
            chain = graph.find_shortest_chain(importer=other, imported=m)
            assert chain is None, f"cycle: {m} -> {' -> '.join(chain)}"


def test_only_the_cli_imports_typer(graph: grimp.ImportGraph) -> None:
    found = {m for m in _modules(graph) if "typer" in graph.find_modules_directly_imported_by(m)}
    assert found == {f"{PKG}.cli"}


def test_the_hub_only_through_the_client(graph: grimp.ImportGraph) -> None:
    found = {}
    for m in _modules(graph):
        hub = {i for i in graph.find_modules_directly_imported_by(m) if i.startswith("cityos.hub")}
        if hub - HUB_ALLOWED:
            found[m] = sorted(hub - HUB_ALLOWED)
    assert found == {}


def test_the_plug_and_its_parts_exist() -> None:
    for name in ("service", "model", "api", "cli", "errors", "ledger", "fares", "tickets",
                 "reconcile"):  # fmt: skip
        importlib.import_module(f"{PKG}.{name}")
    service = importlib.import_module(f"{PKG}.service")
    assert service.SERVICE.name == "payments"
    assert set(service.SERVICE.cli_groups()) == {"pay"}


def test_no_store_and_no_entity_tables_named() -> None:
    pattern = re.compile(r"\.store\b|cityos\.hub\.store|cityos\.hub\.delivery|\bentities\b\s+WHERE")
    hits = [
        f"{p.name}:{n}"
        for p in sorted(ROOT.rglob("*.py"))
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert hits == []
