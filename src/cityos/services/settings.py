"""A service's own settings, read from the same places as CityOS's and checked against its
declaration (``Service.settings``, a dataclass).

``[services.<name>]`` in cityos.toml, then ``CITYOS_<NAME>_<FIELD>`` in the environment
(later wins); an unknown key in the table is an error, like an unknown top-level key.
docs/configuration.md documents every registered service's settings from the same
declaration (:func:`markdown`; a test keeps it current).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from cityos.config import Settings, coerce
from cityos.plug import Service


def env_name(service: str, field: str) -> str:
    return f"CITYOS_{service.upper()}_{field.upper()}"


def settings_of(service: Service, core: Settings) -> Any:
    """The service's settings (an instance of its dataclass), or None when it declares none.
    A bad value or an unknown key raises ValueError with a one-line message naming it."""
    table = dict(core.sections.get(service.name, {}))
    if service.settings is None:
        if table:
            raise ValueError(
                f"setting services.{service.name}: the service declares no settings "
                f"(got {', '.join(sorted(table))})"
            )
        return None
    known = {f.name: f for f in dataclasses.fields(service.settings)}
    unknown = set(table) - set(known)
    if unknown:
        raise ValueError(
            f"unknown setting(s) in [services.{service.name}]: {', '.join(sorted(unknown))}"
        )
    values: dict[str, Any] = {}
    for name, f in known.items():
        raw = core.environ.get(env_name(service.name, name), table.get(name))
        if raw is not None:
            values[name] = coerce(f.type, raw, f"{service.name}.{name}")
    return service.settings(**values)


def _default(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "(required)"
    if value in ("", [], None):
        return "(none)"
    return f"`{value}`" if not isinstance(value, list) else ", ".join(f"`{v}`" for v in value)


def _type_name(kind: object) -> str:
    return kind.__name__ if isinstance(kind, type) else str(kind)


def markdown(registered: tuple[Service, ...]) -> str:
    """Each registered service's settings as a Markdown table (docs/configuration.md)."""
    out: list[str] = []
    for service in registered:
        if service.settings is None:
            continue
        out += [
            f"### `{service.name}`",
            "",
            "| setting | env variable | type | default | meaning |",
            "|---|---|---|---|---|",
        ]
        for f in dataclasses.fields(service.settings):
            help_text = str(f.metadata.get("help", "")).replace("|", "\\|")
            out.append(
                f"| `services.{service.name}.{f.name}` | `{env_name(service.name, f.name)}` "
                f"| `{_type_name(f.type)}` | {_default(f)} | {help_text} |"
            )
        out.append("")
    if not out:
        return "No registered service declares settings.\n"
    return "\n".join(out)
