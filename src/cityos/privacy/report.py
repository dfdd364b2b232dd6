"""The privacy report: per dataset, what is held, why, on what basis, for how long, and what
was released from it at what privacy cost — read from the hub, so it shows what is true
now, not what the code intends."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from . import actions
from .datasets import Dataset, declared
from .ledger import Ledger
from .pseudonym import ALGORITHM
from .settings import PrivacySettings


def _iso_duration(seconds: float) -> str:
    days, rest = divmod(int(seconds), 86_400)
    return f"P{days}D" if not rest else f"P{days}DT{rest}S"


def dataset_report(client: Any, d: Dataset, now: datetime) -> dict[str, Any]:
    cutoff = actions.hub_time(now - d.retention)
    held = client.count(type=d.entity_type, q=d.query())
    overdue = client.count(type=d.entity_type, q=d.query(f"{d.time_attr}<{cutoff}"))
    by_period: dict[str, list[Any]] = defaultdict(list)
    for e in Ledger(client).entries(d.name):
        by_period[e.period].append(e)
    releases = [
        {
            "period": period,
            "releases": len(entries),
            "epsilonSpent": math.fsum(e.epsilon for e in entries),
            "deltaSpent": math.fsum(e.delta for e in entries),
            "epsilonLeft": max(0.0, d.epsilon - math.fsum(e.epsilon for e in entries)),
            "queries": [
                {
                    "query": e.query,
                    "epsilon": e.epsilon,
                    "delta": e.delta,
                    "mechanism": e.mechanism,
                    "cells": e.cells,
                    "at": e.at,
                }
                for e in entries
            ],
        }  # fmt: skip
        for period, entries in sorted(by_period.items())
    ]
    done = actions.recent(client, d.name)
    return {
        "dataset": d.name,
        "purpose": d.purpose,
        "legalBasis": str(d.legal_basis),
        "controller": d.controller,
        "personal": d.personal,
        "identifierKind": d.id_kind or None,
        "entityType": d.entity_type,
        "selector": d.selector or None,
        "attributes": list(d.attributes),
        "sources": list(d.sources),
        "retention": _iso_duration(d.retention.total_seconds()),
        "recordsHeld": held,
        "recordsPastRetention": overdue,
        "budgetPerPeriod": {"epsilon": d.epsilon, "delta": d.delta},
        "released": releases,
        "lastRetention": next((a.at for a in done if a.kind == "retention"), None),
        "requests": {
            "access": sum(1 for a in done if a.kind == "access"),
            "erasure": sum(1 for a in done if a.kind == "erasure"),
            "recordsErased": sum(a.records for a in done if a.kind == "erasure"),
        },
        "notes": d.notes or None,
    }


def privacy_report(
    client: Any, settings: PrivacySettings | None = None, *, now: datetime | None = None
) -> dict[str, Any]:
    """The report of every declared dataset in the client's tenant."""
    now = now or datetime.now(UTC)
    settings = settings or PrivacySettings()
    return {
        "generatedAt": actions.hub_time(now),
        "pseudonyms": {
            "algorithm": ALGORITHM,
            "rotation": settings.rotation,
            "timezone": settings.timezone,
            "keyConfigured": bool(settings.key),
        },
        "releases": {
            "composition": "basic (ε and δ add up per dataset and local day)",
            "suppressedBelow": settings.suppress_below,
        },
        "datasets": [dataset_report(client, d, now) for d in declared(client)],
    }
