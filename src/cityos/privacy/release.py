"""Differentially private releases: the only way a count about people leaves CityOS.

:func:`release_counts` takes true counts over a fixed, public domain of cells (zones, zone
pairs, histogram bins — never cells read from the data, whose presence would itself leak),
charges the ledger, adds OpenDP noise to every cell and post-processes: negative noisy
counts become 0, and those below the suppression threshold ``k`` are published as ``"<k"``.
The release carries its ε, δ, mechanism, noise scale and sensitivity, so every figure in
it can be read with its uncertainty. Bad parameters are refused before anything is charged.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .datasets import Dataset
from .errors import InvalidRelease
from .ledger import Ledger
from .mechanisms import check_budget_request, noise


@dataclass(frozen=True)
class Release:
    """One published set of figures and how private they are."""

    dataset: str
    period: str
    query: str
    mechanism: str
    epsilon: float
    delta: float
    scale: float
    std: float
    sensitivity: int
    threshold: int
    cells: dict[str, int | str]
    released_at: str
    sequence: int
    notes: list[str] = field(default_factory=list)

    def value(self, key: str) -> int | None:
        """A cell's figure as a number (None where suppressed)."""
        v = self.cells[key]
        return v if isinstance(v, int) else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "period": self.period,
            "query": self.query,
            "privacy": {
                "mechanism": self.mechanism,
                "epsilon": self.epsilon,
                "delta": self.delta,
                "noiseScale": self.scale,
                "noiseStd": self.std,
                "sensitivity": self.sensitivity,
                "suppressedBelow": self.threshold,
                "ledgerEntry": self.sequence,
            },
            "releasedAt": self.released_at,
            "cells": dict(self.cells),
            "notes": list(self.notes),
        }


def cell_key(key: Hashable) -> str:
    """How a cell is named in a release: tuples joined with '->' (origin->destination)."""
    if isinstance(key, tuple):
        return "->".join(str(k) for k in key)
    return str(key)


def release_counts(
    client: Any,
    dataset: Dataset,
    period: str,
    query: str,
    counts: Mapping[Hashable, int],
    domain: Sequence[Hashable],
    *,
    sensitivity: int,
    epsilon: float,
    delta: float = 0.0,
    mechanism: str = "laplace",
    threshold: int = 10,
    now: datetime | None = None,
) -> Release:
    """Release ``counts`` (missing cells of ``domain`` count 0) at (ε, δ), charged to the
    dataset's budget for ``period``. :class:`InvalidRelease` or :class:`BudgetExceeded`
    before any noise is drawn or anything is written."""
    check_budget_request(epsilon, delta, mechanism)
    if not domain:
        raise InvalidRelease("a release needs at least one cell")
    cells_in = set(domain)
    if len(cells_in) != len(domain):
        raise InvalidRelease("the cells of a release must be distinct")
    outside = [k for k in counts if k not in cells_in]
    if outside:
        raise InvalidRelease(
            f"{len(outside)} counted cell(s) outside the release's domain, e.g. "
            f"{cell_key(outside[0])!r}: the domain must be fixed in advance, not read from data"
        )
    if any(int(v) < 0 for v in counts.values()):
        raise InvalidRelease("counts cannot be negative")
    if not isinstance(threshold, int) or threshold < 0:
        raise InvalidRelease(
            f"the suppression threshold must be a whole number >= 0 ({threshold!r})"
        )
    measured = noise(mechanism, sensitivity, epsilon, delta)
    entry = Ledger(client).charge(
        dataset,
        period,
        measured.epsilon,
        measured.delta,
        mechanism=mechanism,
        query=query,
        cells=len(domain),
        now=now,
    )
    noisy = measured([int(counts.get(k, 0)) for k in domain])
    cells: dict[str, int | str] = {}
    for key, value in zip(domain, noisy, strict=True):
        value = max(0, value)
        cells[cell_key(key)] = f"<{threshold}" if value < threshold else value
    return Release(
        dataset=dataset.name,
        period=period,
        query=query,
        mechanism=f"OpenDP {'discrete Laplace' if mechanism == 'laplace' else 'discrete Gaussian'}",
        epsilon=measured.epsilon,
        delta=measured.delta,
        scale=measured.scale,
        std=measured.std,
        sensitivity=sensitivity,
        threshold=threshold,
        cells=cells,
        released_at=entry.at,
        sequence=entry.seq,
        notes=[
            f"each figure is the true count plus {mechanism} noise of standard deviation "
            f"≈{measured.std:.3g}; negative figures are shown as 0 and those below "
            f"{threshold} as <{threshold}",
        ],
    )
