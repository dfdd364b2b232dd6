"""What every city service declares about itself (DESIGN.md, "services/<name>")."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Service:
    """A service's face to the rest of CityOS: the entity types it reads and writes in
    the hub, its HTTP routes (mounted under ``/services/<name>/``) and its KPIs."""

    name: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    routes: Callable[[], list[Any]]
    kpis: tuple[str, ...] = ()
