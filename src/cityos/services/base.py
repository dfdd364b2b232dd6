"""What every city service declares about itself (DESIGN.md, "services/<name>").

A service is found through the ``cityos.services`` entry-point group (see
:mod:`cityos.services.registry` and docs/services/README.md): the entry point names a
:class:`Service`, and the web app, the OpenAPI document, the CLI and ``/health`` take
what they need from it, so a package installed beside CityOS adds a service with no edit
to CityOS.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Check:
    """One diagnostic of ``cityos doctor``: what was checked, whether it holds, and if not,
    what to do about it (one line each)."""

    name: str
    ok: bool
    detail: str = ""
    hint: str = ""


@dataclass
class ServiceContext:
    """What a running service is handed by CityOS (its tasks, health and diagnostics get it).

    - ``client``: a :class:`cityos.hub.client.HubClient` for the default tenant (in process
      under ``cityos serve``; ``client.for_tenant(name)`` for another). A service reaches the
      hub only through it.
    - ``settings``: an instance of the service's ``settings`` dataclass, read from the
      ``[services.<name>]`` table of cityos.toml and ``CITYOS_<NAME>_<FIELD>`` variables;
      None when it declares none.
    - ``core``: CityOS's own :class:`cityos.config.Settings` (read, never changed).
    """

    name: str
    client: Any
    settings: Any = None
    core: Any = None


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
    - ``tasks``: callables ``(ServiceContext) -> awaitable``, each started as a background
      task by the web app's lifespan (``cityos serve``) and cancelled when it stops.
    - ``health``: a callable ``(ServiceContext) -> dict``, reported by ``/health`` under
      ``services.<name>``; or None.
    - ``settings``: a dataclass whose fields (each with a default and ``metadata["help"]``)
      are the service's settings: ``[services.<name>]`` in cityos.toml,
      ``CITYOS_<NAME>_<FIELD>`` in the environment; docs/configuration.md is generated
      from it. None: no settings.
    - ``diagnostics``: a callable ``(ServiceContext) -> iterable of Check``, run by
      ``cityos doctor``; or None.
    """

    name: str
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    routes: Callable[[], list[Any]] = _no_routes
    kpis: tuple[str, ...] = ()
    cli: Any = None  # typer.Typer | None (typer is not imported here)
    openapi: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    tasks: tuple[Callable[[ServiceContext], Awaitable[Any]], ...] = ()
    health: Callable[[ServiceContext], dict[str, Any]] | None = None
    settings: type | None = None
    diagnostics: Callable[[ServiceContext], Iterable[Check]] | None = None
