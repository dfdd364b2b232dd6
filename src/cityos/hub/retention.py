"""History retention: how long the hub keeps each entity type's and attribute's history.

Rules are written ``<type>.<attribute>=<duration>``, ``<type>=<duration>`` or
``*=<duration>``, with durations as ISO 8601 (``P90D``) or shorthand (``90d``, ``12h``,
``2w``). Names are terms of the core @context (or full IRIs). Each rule deletes, among the
history rows it matches, those the hub recorded longer ago than its window; so where
several rules match a row, the shortest window wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from cityos.hub.ldcontext import Context
from cityos.hub.store.base import Store
from cityos.hub.temporal import parse_duration

if TYPE_CHECKING:
    from cityos.hub.core import Hub

_SHORT = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class RetentionRule:
    text: str
    entity_type: str | None  # expanded IRI, None for every type
    attr: str | None  # expanded IRI, None for every attribute
    keep: timedelta


def parse_rules(rules: list[str], ctx: Context) -> list[RetentionRule]:
    out = []
    for text in rules:
        target, sep, duration = text.partition("=")
        target, duration = target.strip(), duration.strip()
        if not sep or not target or not duration:
            raise ValueError(
                f"retention rule {text!r}: write <type>[.<attribute>]=<duration>, e.g. TrafficFlowObserved.intensity=90d"
            )
        keep = _duration(duration, text)
        if target == "*":
            out.append(RetentionRule(text, None, None, keep))
            continue
        # a type name never contains '.', an attribute IRI may: split at the first dot
        type_name, _, attr_name = target.partition(".") if "://" not in target else (target, "", "")
        out.append(
            RetentionRule(
                text,
                ctx.expand_term(type_name),
                ctx.expand_term(attr_name) if attr_name else None,
                keep,
            )
        )
    return out


def _duration(text: str, rule: str) -> timedelta:
    m = _SHORT.match(text)
    if m:
        return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        return parse_duration(text)
    except Exception:
        raise ValueError(
            f"retention rule {rule!r}: {text!r} is not a duration (90d, 12h, P90D)"
        ) from None


def retention_rules(hub: Hub) -> list[RetentionRule]:
    """The hub's configured rules, terms expanded with ``retention_context`` (or the core)."""
    ctx = hub.contexts.resolve(hub.settings.retention_context or None)
    return parse_rules(hub.settings.retention, ctx)


@dataclass
class RetentionResult:
    rule: str
    cutoff: str
    deleted: int


def run_retention(
    store: Store, rules: list[RetentionRule], now: datetime | None = None
) -> list[RetentionResult]:
    """Apply every rule once, across all tenants; what each deleted."""
    now = now or datetime.now(UTC)
    results = []
    for rule in rules:
        cutoff = (now - rule.keep).astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"
        deleted = store.purge_history(cutoff, entity_type=rule.entity_type, attr=rule.attr)
        results.append(RetentionResult(rule.text, cutoff, deleted))
    return results
