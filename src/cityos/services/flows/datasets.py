"""The datasets the flows service keeps, declared to the privacy layer (docs/privacy.md)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from cityos.privacy import Dataset, LegalBasis, declare

from .entities import COMMUTER, COUNT, LEVEL
from .service_settings import FlowsSettings

COUNTS = "crowd-counts"
JOURNEYS = "transit-journeys"
WIFI = "wifi-presence"
LEVELS = "crowd-levels"


def flows_datasets(s: FlowsSettings) -> dict[str, Dataset]:
    budget = {"epsilon": s.epsilon_per_day, "delta": s.delta_per_day}
    found = [
        Dataset(
            name=COUNTS,
            purpose="crowd safety: people entering and leaving each zone, crowding alerts",
            legal_basis=LegalBasis.PUBLIC_TASK,
            retention=timedelta(days=s.counts_retention_days),
            entity_type=COUNT,
            attributes=("peopleCount", "direction", "dateObserved", "sensor", "zoneCode"),
            sources=("people counters", "camera counting lines"),
            notes="counts of anonymous crossings: no identifier is ever received",
            **budget,
        ),
        Dataset(
            name=JOURNEYS,
            purpose="origin-destination flows between zones for transit planning",
            legal_basis=LegalBasis.PUBLIC_TASK,
            retention=timedelta(days=s.journeys_retention_days),
            entity_type=COMMUTER,
            selector='source=="fares"',
            attributes=("anonymizedId", "orig", "dest", "date", "dateArrived"),
            time_attr="date",
            pseudonym_attr="anonymizedId",
            id_kind="card",
            sources=("fare-card taps (tap-in/tap-out pairs)",),
            notes=f"card ids pseudonymised before storage; stops reduced to zones, times to "
            f"{s.time_resolution_min} min",
            **budget,
        ),
        Dataset(
            name=WIFI,
            purpose="dwell times and presence per zone (crowd safety, public-space planning)",
            legal_basis=LegalBasis.LEGITIMATE_INTEREST,
            retention=timedelta(days=s.wifi_retention_days),
            entity_type=COMMUTER,
            selector='source=="wifi"',
            attributes=("anonymizedId", "orig", "date", "dateLastSeen"),
            time_attr="date",
            pseudonym_attr="anonymizedId",
            id_kind="mac",
            sources=("Wi-Fi access points (probe requests)",),
            notes="MAC addresses pseudonymised before storage; needs notices at the zones and "
            "a documented legitimate-interest assessment",
            **budget,
        ),
        Dataset(
            name=LEVELS,
            purpose="crowd level per zone and hour, and the forecast learnt from it",
            legal_basis=LegalBasis.PUBLIC_TASK,
            retention=timedelta(days=s.counts_retention_days),
            entity_type=LEVEL,
            attributes=("peopleCount", "peoplePresent", "occupancy", "wifiDevices"),
            time_attr="dateObservedFrom",
            notes="aggregates (no pseudonyms); internal: published only through DP releases",
            **budget,
        ),
    ]
    return {d.name: d for d in found}


def declare_flows_datasets(client: Any, settings: FlowsSettings) -> dict[str, Dataset]:
    """Write the declarations into the hub (each ingest does, so they follow the settings)."""
    found = flows_datasets(settings)
    declare(client, *found.values())
    return found
