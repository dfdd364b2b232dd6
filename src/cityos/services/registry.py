"""The services this installation runs, found through the ``cityos.services`` entry points.

Each entry point names a :class:`~cityos.plug.Service` object (the built-in
traffic service is registered the same way, in pyproject.toml); the web app, the OpenAPI
document, the CLI and ``/health`` loop over :func:`services`. See docs/services/README.md.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from cityos.plug import Service

GROUP = "cityos.services"


class ServiceLoadError(Exception):
    """An entry point of the ``cityos.services`` group could not be loaded, is not a
    Service, or repeats another service's name. The message is one line and names it."""


@cache
def services() -> tuple[Service, ...]:
    """Every registered part, in start order (stage, then name); loaded once per process."""
    found: dict[str, Service] = {}
    for ep in entry_points(group=GROUP):
        where = f"entry point {ep.name!r} = {ep.value!r} (group {GROUP})"
        try:
            service = ep.load()
        except Exception as exc:  # an import error, a missing name, anything the module raises
            detail = str(exc).splitlines()[0] if str(exc) else ""
            raise ServiceLoadError(
                f"cannot load service {where}: {type(exc).__name__}: {detail}".rstrip(": ")
            ) from exc
        if not isinstance(service, Service):
            raise ServiceLoadError(
                f"service {where} is a {type(service).__name__}, not a cityos.plug.Service"
            )
        if service.name in found:
            if found[service.name] is service:  # the same distribution seen twice on the path
                continue
            raise ServiceLoadError(
                f"service {where}: another service is already named {service.name!r}"
            )
        found[service.name] = service
    return tuple(sorted(found.values(), key=lambda s: (s.stage, s.name)))


def describe(service: Service) -> dict[str, object]:
    """What a service declares, as plain data (``cityos services --json``, the docs)."""
    return {
        "name": service.name,
        "reads": list(service.reads),
        "writes": list(service.writes),
        "kpis": list(service.kpis),
        "paths": sorted(service.openapi_paths()),
        "cli": [f"cityos {group}" for group in service.cli_groups()],
        "tasks": len(service.tasks),
        "health": service.health is not None,
        "settings": service.settings is not None,
        "diagnostics": service.diagnostics is not None,
    }


def markdown(registered: tuple[Service, ...]) -> str:
    """The registered services as a Markdown table (docs/services/README.md)."""

    def yes(declared: object) -> str:
        return "yes" if declared is not None else "no"

    def cell(items: list[str]) -> str:
        return ", ".join(f"`{item}`" for item in items) or "—"

    lines = [
        "| service | reads | writes | KPIs | paths | CLI | tasks | health | settings | doctor |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for service in sorted(registered, key=lambda s: s.name):
        cli = [f"cityos {group}" for group in service.cli_groups()]
        lines.append(
            f"| `{service.name}` | {cell(list(service.reads))} | {cell(list(service.writes))} "
            f"| {cell(list(service.kpis))} | {cell(sorted(service.openapi_paths()))} | {cell(cli)} "
            f"| {len(service.tasks)} | {yes(service.health)} | {yes(service.settings)} "
            f"| {yes(service.diagnostics)} |"
        )
    return "\n".join(lines) + "\n"
