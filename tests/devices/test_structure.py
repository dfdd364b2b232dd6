"""No import cycles inside the devices package or the audit log's package (issue 12): each
module can be read, tested and replaced from the modules below it. Checked on the real
import graph (grimp, the graph import-linter uses), TYPE_CHECKING imports included."""

from __future__ import annotations

from functools import cache

import grimp
import pytest


@cache
def _graph() -> grimp.ImportGraph:
    return grimp.build_graph("cityos")


def cycles_within(graph: grimp.ImportGraph, package: str) -> list[list[str]]:
    """The import cycles among ``package`` and its modules: every strongly connected set of
    more than one module, or a module importing itself (Tarjan's algorithm)."""
    modules = sorted({package} | graph.find_descendants(package))
    inside = set(modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m) & inside) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(m: str) -> None:
        index[m] = low[m] = len(index)
        stack.append(m)
        on_stack.add(m)
        for n in edges[m]:
            if n not in index:
                visit(n)
                low[m] = min(low[m], low[n])
            elif n in on_stack:
                low[m] = min(low[m], index[n])
        if low[m] == index[m]:
            component = []
            while True:
                n = stack.pop()
                on_stack.discard(n)
                component.append(n)
                if n == m:
                    break
            if len(component) > 1 or m in edges[m]:
                found.append(sorted(component))

    for m in modules:
        if m not in index:
            visit(m)
    return found


def test_the_check_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for a, b in [("p.agent", "p.commands"), ("p.commands", "p.agent"), ("p.agent", "p.limits")]:
        graph.add_import(importer=a, imported=b)
    graph.add_module("p")
    assert cycles_within(graph, "p") == [["p.agent", "p.commands"]]


@pytest.mark.parametrize("package", ["cityos.devices", "cityos.security.audit"])
def test_no_import_cycles(package: str) -> None:
    graph = _graph()
    assert graph.find_descendants(package), f"{package} is not a package"
    assert cycles_within(graph, package) == []


def test_commands_do_not_import_the_agent() -> None:
    """The agent builds the commands; they see it only through DeviceBook."""
    assert not _graph().direct_import_exists(
        importer="cityos.devices.commands", imported="cityos.devices.agent"
    )
