"""What every ``cityos`` command group shares: the consoles, one-line failures, the
``--database-url`` and ``--json`` options, loading the settings and opening the database.

Top level (beside :mod:`cityos.config`) so that each package's own CLI module — the hub's
included, which may import nothing above it — can use it without importing
:mod:`cityos.cli`. Importing it also fixes Typer's help for flags (:func:`_no_type_on_flags`).
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import typer
from rich.console import Console

from cityos.config import Settings

console = Console()
err = Console(stderr=True)


def _no_type_on_flags() -> None:
    """Typer's rich help prints a type column for every option, a flag's included, so each
    ``--json``, ``--serve/--no-serve`` and ``--help`` showed ``<bool>`` though a flag takes no
    value (Click's plain help, and Typer's own before 0.2x, leave it out). One fix for every
    command, the services' groups included: a flag has no type to show."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "flags_untyped", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        if self.is_flag or self.count:
            return None
        return shown(self, ctx)

    display_type_rich.flags_untyped = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_no_type_on_flags()


def finite(value: Any) -> Any:
    """``value`` with every non-finite number as ``None`` (JSON's ``null``): ``--json``
    output stays strict JSON (``Infinity`` and ``NaN`` are not JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def fail(message: str, code: int = 2) -> typer.Exit:
    """One line on stderr (no wrapping, no traceback); raise what it returns."""
    err.print(message, soft_wrap=True, highlight=False, emoji=False)  # ids hold ":x:"-like runs
    return typer.Exit(code)


DbOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        "-d",
        help="Database URL (default: CITYOS_DATABASE_URL or sqlite:///data/city.db).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def load_settings(database_url: str | None = None, **overrides: object) -> Settings:
    """The settings (environment, config file) with what the command line gave on top; a
    bad configuration is one line and exit 2."""
    try:
        settings = Settings.load()
    except (ValueError, OSError) as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc
    if database_url:
        settings.database_url = database_url
    for key, value in overrides.items():
        if value is not None:
            setattr(settings, key, value)
    return settings


def open_database(settings: Settings, code: int = 1):  # type: ignore[no-untyped-def]
    """The store the settings name; a wrong URL or an unreachable server is one line and
    exit ``code``."""
    import logging

    from cityos.hub.store import open_store

    pool_log = logging.getLogger("psycopg.pool")  # its retries would print one line each
    level = pool_log.level
    pool_log.setLevel(logging.ERROR)
    try:
        return open_store(settings.database_url)
    except Exception as exc:  # a wrong URL or an unreachable server: say which and how
        raise fail(
            f"[red]cannot open the database {settings.database_url}:[/red] {exc}"
            " (set --database-url or CITYOS_DATABASE_URL)",
            code,
        ) from exc
    finally:
        pool_log.setLevel(level)
