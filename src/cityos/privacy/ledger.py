"""The privacy budget ledger: what each dataset's period has spent, kept in the hub.

Every release is charged before its noise is drawn, as one ``PrivacyBudgetEntry`` entity
numbered ``1, 2, 3 …`` within its dataset and period. The ledger is authoritative: the
spent budget is the sum of the entries (basic sequential composition, ε and δ added), and
a charge that would take it over the dataset's budget is refused. Two processes charging
at once cannot both pass: each writes entry ``n + 1`` with ``create``, which the hub
refuses for the second (AlreadyExists), and the loser recounts and checks again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from cityos.hub.errors import AlreadyExists

from .actions import hub_time
from .datasets import Dataset
from .errors import BudgetExceeded

TYPE = "PrivacyBudgetEntry"
_TOLERANCE = 1e-9  # floating sums: a budget spent exactly (0.5 + 0.5) is not exceeded
_RETRIES = 20


@dataclass(frozen=True)
class Entry:
    dataset: str
    period: str
    seq: int
    epsilon: float
    delta: float
    mechanism: str
    query: str
    at: str
    cells: int


@dataclass(frozen=True)
class Spent:
    epsilon: float
    delta: float
    releases: int


def entry_id(dataset: str, period: str, seq: int) -> str:
    return f"urn:ngsi-ld:{TYPE}:{quote(dataset, safe='')}:{period}:{seq:06d}"


def _from_entity(e: dict[str, Any]) -> Entry:
    return Entry(
        e["dataset"],
        e["period"],
        int(e["sequence"]),
        float(e["epsilon"]),
        float(e["delta"]),
        e["mechanism"],
        e["query"],
        e["dateIssued"],
        int(e.get("cells", 0)),
    )


class Ledger:
    """The budget ledger of one tenant (the client's)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def entries(self, dataset: str, period: str | None = None) -> list[Entry]:
        """A dataset's charges (in one period, or all), in order."""
        q = f'dataset=="{dataset}"' + (f';period=="{period}"' if period else "")
        found = self.client.query(type=TYPE, q=q, limit=100_000, fmt="keyValues")
        return sorted((_from_entity(e) for e in found), key=lambda e: (e.period, e.seq))

    def spent(self, dataset: str, period: str) -> Spent:
        entries = self.entries(dataset, period)
        return Spent(
            math.fsum(e.epsilon for e in entries),
            math.fsum(e.delta for e in entries),
            len(entries),
        )

    def charge(
        self,
        dataset: Dataset,
        period: str,
        epsilon: float,
        delta: float,
        *,
        mechanism: str,
        query: str,
        cells: int,
        now: datetime | None = None,
    ) -> Entry:
        """Charge one release, or :class:`BudgetExceeded` (and nothing written)."""
        at = hub_time(now or datetime.now(UTC))
        for _ in range(_RETRIES):
            entries = self.entries(dataset.name, period)
            eps = math.fsum([*(e.epsilon for e in entries), epsilon])
            dlt = math.fsum([*(e.delta for e in entries), delta])
            if eps > dataset.epsilon * (1 + _TOLERANCE) or dlt > dataset.delta * (1 + _TOLERANCE):
                left_eps = max(0.0, dataset.epsilon - (eps - epsilon))
                left_delta = max(0.0, dataset.delta - (dlt - delta))
                raise BudgetExceeded(
                    f"refused: dataset {dataset.name} has ε={left_eps:.4g}, δ={left_delta:.3g} "
                    f"left on {period} (budget ε={dataset.epsilon:g}, δ={dataset.delta:g} a day) "
                    f"and this release needs ε={epsilon:.4g}, δ={delta:.3g}; ask for less, or "
                    "release another period"
                )
            seq = max((e.seq for e in entries), default=0) + 1
            entry = Entry(dataset.name, period, seq, epsilon, delta, mechanism, query, at, cells)
            try:
                self.client.create(_to_entity(entry))
            except AlreadyExists:  # another release took this number first: look again
                continue
            return entry
        raise BudgetExceeded(f"refused: the ledger of {dataset.name} on {period} is too busy")


def _to_entity(e: Entry) -> dict[str, Any]:
    def prop(value: Any) -> dict[str, Any]:
        return {"type": "Property", "value": value}

    return {
        "id": entry_id(e.dataset, e.period, e.seq),
        "type": TYPE,
        "dataset": prop(e.dataset),
        "period": prop(e.period),
        "sequence": prop(e.seq),
        "epsilon": prop(e.epsilon),
        "delta": prop(e.delta),
        "mechanism": prop(e.mechanism),
        "query": prop(e.query),
        "cells": prop(e.cells),
        "dateIssued": prop(e.at),
    }
