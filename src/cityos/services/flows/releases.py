"""What the flows service publishes: differentially private releases, and nothing else.

Each function reads the day's records inside CityOS, bounds what one person contributes,
and hands the true counts over a fixed domain (the registered zones, the hours, the dwell
bins) to :func:`cityos.privacy.release_counts`, which charges the dataset's daily budget
and adds OpenDP noise. Zones and parameters are checked before anything is read or charged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from cityos.privacy import PrivacySettings, Release, release_counts
from cityos.privacy.mechanisms import check_budget_request

from .crowd import readings_of_day
from .datasets import COUNTS, JOURNEYS, WIFI, declare_flows_datasets
from .days import hours
from .dwell import LABELS, bin_of
from .entities import parse_time
from .od import build_od, journeys_of_day
from .service_settings import FlowsSettings
from .wifi import stays_of_day
from .zones import load_zones


def _prepare(
    client: Any,
    zones: Sequence[str] | None,
    epsilon: float,
    delta: float,
    mechanism: str,
) -> list[str]:
    zone_map = load_zones(client)
    chosen = zone_map.check(zones) if zones else zone_map.ids
    check_budget_request(epsilon, delta, mechanism)
    return chosen


def _publish(
    client: Any,
    dataset: Any,
    day: date,
    what: str,
    counts: Counter[str] | dict[str, int],
    domain: list[str],
    sensitivity: int,
    privacy: PrivacySettings,
    *,
    epsilon: float,
    delta: float,
    mechanism: str,
    now: datetime | None,
    note: str,
) -> Release:
    """Charge the dataset's budget and release ``counts`` over ``domain`` (the one path
    every flows release takes), with the contribution bound it assumed as a note."""
    release = release_counts(
        client,
        dataset,
        day.isoformat(),
        what,
        counts,
        domain,
        sensitivity=sensitivity,
        epsilon=epsilon,
        delta=delta,
        mechanism=mechanism,
        threshold=privacy.suppress_below,
        now=now,
    )
    release.notes.append(note)
    return release


def od_release(
    client: Any,
    day: date,
    *,
    epsilon: float,
    delta: float = 0.0,
    mechanism: str = "laplace",
    zones: Sequence[str] | None = None,
    settings: FlowsSettings | None = None,
    privacy: PrivacySettings | None = None,
    now: datetime | None = None,
) -> Release:
    """Journeys between zones (all registered, or ``zones``) that started on ``day``."""
    settings, privacy = settings or FlowsSettings(), privacy or PrivacySettings()
    chosen = _prepare(client, zones, epsilon, delta, mechanism)
    dataset = declare_flows_datasets(client, settings)[JOURNEYS]
    k = settings.max_journeys_per_day
    od = build_od(journeys_of_day(client, day, ZoneInfo(privacy.timezone)), chosen, max_per_card=k)
    return _publish(
        client, dataset, day, f"origin-destination journeys between {', '.join(chosen)}",
        od.counts, od.domain(), k, privacy, epsilon=epsilon, delta=delta,
        mechanism=mechanism, now=now,
        note=f"each card counts for at most {k} journeys a day (its first)",
    )  # fmt: skip


def crowd_release(
    client: Any,
    day: date,
    *,
    epsilon: float,
    delta: float = 0.0,
    mechanism: str = "laplace",
    zones: Sequence[str] | None = None,
    settings: FlowsSettings | None = None,
    privacy: PrivacySettings | None = None,
    now: datetime | None = None,
) -> Release:
    """People entering each zone in each local hour of ``day`` (cells ``zone@HH:00``)."""
    settings, privacy = settings or FlowsSettings(), privacy or PrivacySettings()
    chosen = _prepare(client, zones, epsilon, delta, mechanism)
    dataset = declare_flows_datasets(client, settings)[COUNTS]
    tz = ZoneInfo(privacy.timezone)
    slots = hours(day, tz)
    labels = [f"{s.astimezone(tz):%H:00}" for s, _ in slots]
    counts: Counter[str] = Counter()
    for r in readings_of_day(client, day, tz):
        slot = int((parse_time(r["dateObservedFrom"]) - slots[0][0]).total_seconds() // 3600)
        if r["direction"] == "inbound" and r.get("zoneCode") in chosen and 0 <= slot < len(slots):
            counts[f"{r['zoneCode']}@{labels[slot]}"] += int(r["peopleCount"])
    domain = list(dict.fromkeys(f"{z}@{label}" for z in chosen for label in labels))
    k = settings.max_crossings_per_day
    return _publish(
        client, dataset, day, f"people entering per zone and hour: {', '.join(chosen)}",
        counts, domain, k, privacy, epsilon=epsilon, delta=delta, mechanism=mechanism,
        now=now,
        note=f"assumes a person crosses counters at most {k} times a day (counters cannot tell)",
    )  # fmt: skip


def dwell_release(
    client: Any,
    day: date,
    *,
    epsilon: float,
    delta: float = 0.0,
    mechanism: str = "laplace",
    zones: Sequence[str] | None = None,
    settings: FlowsSettings | None = None,
    privacy: PrivacySettings | None = None,
    now: datetime | None = None,
) -> Release:
    """Stays per zone and dwell-time bin that began on ``day`` (cells ``zone:bin``)."""
    settings, privacy = settings or FlowsSettings(), privacy or PrivacySettings()
    chosen = _prepare(client, zones, epsilon, delta, mechanism)
    dataset = declare_flows_datasets(client, settings)[WIFI]
    k = settings.max_zones_per_day
    stays = sorted(
        stays_of_day(client, day, ZoneInfo(privacy.timezone)).values(), key=lambda p: p.first
    )
    per_device: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    for p in stays:
        if per_device[p.pseudonym] >= k:
            continue
        per_device[p.pseudonym] += 1
        if p.zone in chosen:
            counts[f"{p.zone}:{bin_of(p.minutes)}"] += 1
    return _publish(
        client, dataset, day, f"Wi-Fi stays per zone and dwell time: {', '.join(chosen)}",
        counts, [f"{z}:{label}" for z in chosen for label in LABELS], k, privacy,
        epsilon=epsilon, delta=delta, mechanism=mechanism, now=now,
        note=f"each device counts in at most {k} zones a day (its first)",
    )  # fmt: skip
