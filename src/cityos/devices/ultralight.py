"""UltraLight 2.0, the FIWARE IoT agents' compact text format: ``t|25.1|h|60``.

A line is ``key|value`` pairs separated by ``|``; several measure groups are separated by
``#``; a group may start with a timestamp (an ISO 8601 date-time as its first field), which
becomes the measures' ``observedAt``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


class UltraLightError(ValueError):
    """A payload that is not UltraLight 2.0; the message says where."""


@dataclass(frozen=True)
class MeasureGroup:
    measures: dict[str, str]
    timestamp: str | None = None


def _is_timestamp(text: str) -> bool:
    if "T" not in text:
        return False
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def parse(payload: str) -> list[MeasureGroup]:
    groups = []
    for n, raw in enumerate(p for p in payload.strip().split("#") if p.strip()):
        fields = [f.strip() for f in raw.strip().split("|")]
        timestamp = None
        if fields and _is_timestamp(fields[0]):
            timestamp = fields.pop(0)
        if not fields or len(fields) % 2:
            raise UltraLightError(
                f"measure group {n}: expected key|value pairs, got {raw.strip()!r}"
            )
        measures: dict[str, str] = {}
        for i in range(0, len(fields), 2):
            key, value = fields[i], fields[i + 1]
            if not key:
                raise UltraLightError(f"measure group {n}: empty key at field {i}")
            measures[key] = value
        groups.append(MeasureGroup(measures, timestamp))
    if not groups:
        raise UltraLightError("empty UltraLight payload")
    return groups
