"""Settings: defaults, then an optional TOML file, then ``CITYOS_*`` environment variables.

The TOML file is ``cityos.toml`` in the working directory or the path in ``CITYOS_CONFIG``;
keys are the field names below (``database_url = "postgresql://…"``).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass
class Settings:
    database_url: str = "sqlite:///data/city.db"
    pg_synchronous_commit: str = "off"  # "on": wait for the disk on every commit
    host: str = "127.0.0.1"
    port: int = 1026
    max_body_bytes: int = 1_048_576  # 1 MiB; 413 above
    max_json_depth: int = 32
    max_attributes: int = 1024
    default_page_size: int = 20
    max_page_size: int = 1000
    max_batch_entities: int = 10_000
    context_allow_hosts: list[str] = field(default_factory=list)
    mqtt_url: str = ""  # e.g. mqtt://127.0.0.1:1883: devices publish to /<apikey>/<device>/attrs
    mqtt_shared_group: str = ""  # set: workers share the device stream ($share/<group>/...)
    device_max_message_bytes: int = 65_536  # a device message over this is rejected and counted
    device_rate_per_s: float = 10.0  # per-device token bucket: sustained messages/s (0: no limit)
    device_burst: int = 50  # ... and how many a device may send at once
    device_stats_flush_s: float = 5.0  # device counters are written to Device entities this often
    device_command_timeout_s: float = 60.0  # a command unanswered this long: ERROR (EXPIRED)
    notify_timeout_s: float = 5.0  # a webhook slower than this counts as failed
    notify_backoff_s: float = 1.0  # first retry after this, doubling each time
    notify_max_attempts: int = 6  # then the subscription is marked failed
    notify_poll_s: float = 0.2  # how often the delivery worker looks at the outbox
    # history retention rules ("TrafficFlowObserved.intensity=90d", "*=365d"); none: keep all
    retention: list[str] = field(default_factory=list)
    retention_interval_s: int = 0  # > 0: `cityos serve` applies the rules this often
    retention_context: str = ""  # @context URL the rules' terms are expanded with (core if empty)
    context_fetch_timeout_s: float = 5.0
    context_max_bytes: int = 1_048_576

    @classmethod
    def load(cls, env: dict[str, str] | None = None, path: str | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        cfg = (
            path
            or env.get("CITYOS_CONFIG")
            or ("cityos.toml" if Path("cityos.toml").exists() else None)
        )
        if cfg:
            with open(cfg, "rb") as fh:
                values.update(tomllib.load(fh))
        for f in fields(cls):
            raw = env.get("CITYOS_" + f.name.upper())
            if raw is not None:
                values[f.name] = raw
        known = {f.name: f for f in fields(cls)}
        unknown = set(values) - set(known)
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        out = cls()
        for name, raw in values.items():
            setattr(out, name, _coerce(known[name].type, raw, name))
        return out


def _coerce(kind: Any, raw: Any, name: str) -> Any:
    kind = str(kind)
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind.startswith("list"):
            if isinstance(raw, list):
                return [str(x) for x in raw]
            return [x.strip() for x in str(raw).split(",") if x.strip()]
        return str(raw)
    except ValueError as exc:
        raise ValueError(f"setting {name}: {raw!r} is not a valid {kind}") from exc
