"""The privacy layer's settings: ``[services.privacy]`` in cityos.toml or ``CITYOS_PRIVACY_<FIELD>``.

The same places and rules as a service's own settings (docs/services/README.md), read here
without importing the services layer, which sits above this one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from cityos.config import Settings, coerce

KEY_HINT = (
    "set CITYOS_PRIVACY_KEY (or key in [services.privacy] of cityos.toml) to a secret of at "
    "least 32 characters, e.g. the output of "
    "`python -c 'import secrets; print(secrets.token_hex(32))'`, and keep it out of the database"
)
MIN_KEY_CHARS = 32


@dataclass(frozen=True)
class PrivacySettings:
    """``[services.privacy]`` in cityos.toml, or ``CITYOS_PRIVACY_<FIELD>``."""

    key: str = field(
        default="",
        metadata={"help": "Secret the pseudonym keys are derived from (32+ characters); "
                  "required before any personal data is taken in"},
    )  # fmt: skip
    rotation: str = field(
        default="daily",
        metadata={"help": "How often pseudonyms change: daily or weekly (at local midnight; "
                  "weeks start on Monday)"},
    )  # fmt: skip
    timezone: str = field(
        default="Asia/Phnom_Penh",
        metadata={"help": "IANA time zone whose midnight starts a period (pseudonyms, budgets)"},
    )
    suppress_below: int = field(
        default=10,
        metadata={"help": 'Released noisy counts below this are published as "<k"'},
    )
    retention_interval_s: int = field(
        default=3600,
        metadata={"help": "How often `cityos serve` deletes data past its retention; 0: never"},
    )
    tenant: str = field(default="", metadata={"help": "Tenant the personal datasets live in"})


def load_settings(core: Settings | None = None) -> PrivacySettings:
    """The settings from ``core``'s file table and environment (``Settings.load()`` if None).
    A bad value or an unknown key raises ValueError naming it."""
    core = core if core is not None else Settings.load()
    table = dict(core.sections.get("privacy", {}))
    known = {f.name: f for f in dataclasses.fields(PrivacySettings)}
    unknown = set(table) - set(known)
    if unknown:
        raise ValueError(f"unknown setting(s) in [services.privacy]: {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for name, f in known.items():
        raw = core.environ.get(f"CITYOS_PRIVACY_{name.upper()}", table.get(name))
        if raw is not None:
            values[name] = coerce(f.type, raw, f"privacy.{name}")
    return PrivacySettings(**values)
