"""What every city service declares about itself (DESIGN.md, "services/<name>").

A service is found through the ``cityos.services`` entry-point group (see
:mod:`cityos.services.registry` and docs/services/README.md): the entry point names a
:class:`Service`, and the web app, the OpenAPI document, the CLI and ``/health`` take
what they need from it, so a package installed beside CityOS adds a service with no edit
to CityOS.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


def _no_routes() -> list[Any]:
    return []


@dataclass(frozen=True)
class Service:
    """A service's face to the rest of CityOS.

    - ``name``: its name; its routes live under ``/services/<name>/`` and its CLI group is
      ``cityos <name>``.
    - ``reads`` / ``writes``: the entity types it reads and writes in the hub.
    - ``routes``: a callable returning its Starlette routes, mounted by the web app.
    - ``kpis``: the names of the indicators it reports.
    - ``cli``: a ``typer.Typer`` mounted as ``cityos <name>``, or None.
    - ``openapi``: path -> OpenAPI path item, for the paths its routes answer; merged into
      ``/openapi.json``.
    - ``tasks``: callables ``(hub) -> awaitable``, each started as a background task by the
      web app's lifespan (``cityos serve``) and cancelled when it stops.
    - ``health``: a callable ``(hub) -> dict``, reported by ``/health`` under
      ``services.<name>``; or None.
    """

    name: str
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    routes: Callable[[], list[Any]] = _no_routes
    kpis: tuple[str, ...] = ()
    cli: Any = None  # typer.Typer | None (typer is not imported here)
    openapi: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    tasks: tuple[Callable[[Any], Awaitable[Any]], ...] = ()
    health: Callable[[Any], dict[str, Any]] | None = None
