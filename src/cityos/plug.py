"""The plug: what every part of CityOS that plugs in declares about itself.

A city service (``services/<name>``) and each built-in part (devices, identity, audit)
is a :class:`Service` found through the ``cityos.services`` entry-point group (see
:mod:`cityos.services.registry` and docs/services/README.md); the web app, the OpenAPI
document, the CLI, ``/health`` and ``cityos doctor`` take what they need from it, so a
package installed beside CityOS adds a service with no edit to CityOS. This module sits
beside the settings, below every part that declares itself, and imports none of them.
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
    # the part's own running state, shared by its tasks, health and routes (what a task
    # last did, for /health); lives as long as the app
    state: dict[str, Any] = field(default_factory=dict)
    # built-in parts only (devices, identity, audit): the web application's state, where
    # the door and they share the IoT agent, the audit log and the detector. A service
    # under services/ never uses it (tests/test_layers.py checks).
    app: Any = None


def _no_routes() -> list[Any]:
    return []


def _no_pages() -> list[Page]:
    return []


# What a dashboard panel shows; the web layer draws each kind (escaped, charts and the map
# as SVG drawn on the server), so a service hands over data, never markup.
PANEL_KINDS = ("metrics", "table", "chart", "map", "text", "alerts", "form")
FIELD_KINDS = ("select", "number", "checkbox", "range", "text")


@dataclass(frozen=True)
class Panel:
    """One box of a dashboard page. ``data`` by ``kind``:

    - ``metrics``: ``[{"label", "value", "unit"?, "hint"?}]`` — big numbers.
    - ``table``: ``{"columns": [...], "rows": [[...], ...]}``.
    - ``chart``: ``{"x": [labels], "series": [{"name", "values": [...]}], "unit"?,
      "kind"?: "line"|"bar"}``.
    - ``map``: ``{"features": [{"geometry": GeoJSON, "layer", "label"?, "level"?: 0..1}]}``
      — lon/lat geometries drawn on one projected SVG, coloured by layer (and by ``level``
      for crowds or congestion).
    - ``text``: a string (plain; shown as a paragraph), or a list of strings (one
      paragraph each).
    - ``alerts``: ``[{"id", "category", "severity", "description", "time", "where"?}]`` —
      rows that open to their details.
    - ``form``: ``{"fields": [field, ...], "submit": "button label", "intro"?: text}``, each
      field ``{"name", "label", "kind": "select"|"number"|"checkbox"|"range"|"text",
      "value"?, "help"?, "group"?, "options"?, "min"?, "max"?, "step"?, "fills"?}``:
      ``options`` (select) are values or ``{"value", "label"}``; ``min``/``max``/``step``
      bound a number or range; ``group`` puts consecutive fields under one heading;
      ``fills`` (select) maps an option's value to ``{field name: value}`` that choosing it
      puts into the other fields (presets). The browser sends the values as one JSON object
      (a checkbox as true/false, a number or range as a number, the rest as text) to the
      page's :attr:`Page.answer`, and shows the panels it returns under the form.
    """

    title: str
    kind: str
    data: Any
    wide: bool = False  # spans the page's width

    def __post_init__(self) -> None:
        if self.kind not in PANEL_KINDS:
            raise ValueError(f"panel kind {self.kind!r}: one of {', '.join(PANEL_KINDS)}")
        if self.kind == "form":
            for f in (self.data or {}).get("fields", ()):
                if f.get("kind") not in FIELD_KINDS:
                    raise ValueError(
                        f"form field {f.get('name')!r} of kind {f.get('kind')!r}: one of "
                        f"{', '.join(FIELD_KINDS)}"
                    )


class FormError(ValueError):
    """What a page's :attr:`Page.answer` raises for a submitted value it refuses: the
    dashboard answers 400 with ``detail`` (the message, which names the field) and
    ``field`` (the form field's ``name``, so the browser can mark it)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Page:
    """A page of the operations dashboard (``/``), brought by the service that owns it.

    ``panels(client)`` is called for each view of the page with a
    :class:`cityos.hub.client.HubClient` for the viewer's tenant, inside the viewer's
    request: the hub's access check narrows what it reads to the viewer's grant, so a page
    shows each role only what it may see. It runs in a worker thread. ``watch``: the entity
    types whose changes refresh the page live; ``reads``: those it shows (a viewer whose
    role may not read one is told so on the page).

    ``answer(client, values)``, for a page with a ``form`` panel: the panels that answer
    the submitted form (``values``: the fields' values by name, as the browser sent them;
    checked by ``answer``, never trusted). It is called like ``panels`` (the viewer's
    client, a worker thread) for ``POST /ui/api/pages/{slug}``, which the door judges a
    *read*: it computes and reads, and must never write to the hub. A value it refuses
    raises :class:`FormError` (a 400 naming the field). None: the page takes no answers
    (405).
    """

    slug: str
    title: str
    panels: Callable[[Any], list[Panel]]
    watch: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    order: int = 100
    answer: Callable[[Any, dict[str, Any]], list[Panel]] | None = None


@dataclass(frozen=True)
class Service:
    """A service's face to the rest of CityOS.

    - ``name``: its name; its routes live under ``/services/<name>/`` and its CLI group is
      ``cityos <name>``.
    - ``reads`` / ``writes``: the entity types it reads and writes in the hub.
    - ``routes``: a callable returning its Starlette routes, mounted by the web app.
    - ``kpis``: the names of the indicators it reports.
    - ``cli``: a ``typer.Typer`` mounted as ``cityos <name>``, or a mapping of group name to
      ``typer.Typer`` for a part with several groups (identity: users, token, keys); or None.
    - ``openapi``: path -> OpenAPI path item, for the paths its routes answer (or a
      callable returning that, built when the document is first asked for); merged into
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
    - ``pages``: a callable returning its :class:`Page` list for the operations dashboard.
    - ``stage``: parts start in ascending stage (then name) and stop in reverse; the
      built-ins use 0–20 (audit first up, last down), services keep the default.
    """

    name: str
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    routes: Callable[[], list[Any]] = _no_routes
    kpis: tuple[str, ...] = ()
    cli: Any = None  # typer.Typer | None (typer is not imported here)
    openapi: Mapping[str, dict[str, Any]] | Callable[[], Mapping[str, dict[str, Any]]] = field(
        default_factory=dict
    )
    tasks: tuple[Callable[[ServiceContext], Awaitable[Any]], ...] = ()
    health: Callable[[ServiceContext], dict[str, Any]] | None = None
    settings: type | None = None
    diagnostics: Callable[[ServiceContext], Iterable[Check]] | None = None
    pages: Callable[[], list[Page]] = _no_pages
    stage: int = 100
    builtin: bool = False  # a part of CityOS itself: its context carries the app state

    def openapi_paths(self) -> dict[str, dict[str, Any]]:
        """Its OpenAPI path items."""
        return dict(self.openapi() if callable(self.openapi) else self.openapi)

    def cli_groups(self) -> dict[str, Any]:
        """Its CLI groups: group name -> ``typer.Typer``."""
        if self.cli is None:
            return {}
        if isinstance(self.cli, Mapping):
            return dict(self.cli)
        return {self.name: self.cli}
