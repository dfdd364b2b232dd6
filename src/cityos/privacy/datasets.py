"""Datasets: what each service holds about people, why, on what legal basis, for how long.

A service declares each dataset it keeps (:class:`Dataset`) and writes the declaration into
the hub as a ``PrivacyDataset`` entity (:func:`declare`), so the retention job, the
access/erasure requests, the budget ledger and the privacy report — in whatever process
they run — read one record of processing from the hub (:func:`declared`), not from code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from cityos.hub.errors import ResourceNotFound

from .errors import UnknownDataset

TYPE = "PrivacyDataset"
_NAME = re.compile(r"[a-z0-9][a-z0-9\-]{0,62}\Z")


class LegalBasis(StrEnum):
    """The lawful grounds the ASEAN data-protection laws share (names as in docs/privacy.md)."""

    CONSENT = "consent"
    CONTRACT = "contract"
    LEGAL_OBLIGATION = "legal-obligation"
    VITAL_INTEREST = "vital-interest"
    PUBLIC_TASK = "public-task"
    LEGITIMATE_INTEREST = "legitimate-interest"


@dataclass(frozen=True)
class Dataset:
    """One declared dataset: records of ``entity_type`` (narrowed by ``selector``, an
    NGSI-LD q) whose ``time_attr`` dates them for retention.

    ``pseudonym_attr`` names the attribute holding a person's pseudonym of ``id_kind``
    (card, mac, plate); empty for a dataset about no one in particular (counter counts).
    ``epsilon``/``delta`` are the privacy budget of each released period (a local day).
    """

    name: str
    purpose: str
    legal_basis: LegalBasis
    retention: timedelta
    entity_type: str
    attributes: tuple[str, ...]
    time_attr: str = "dateObserved"
    selector: str = ""
    pseudonym_attr: str = ""
    id_kind: str = ""
    epsilon: float = 1.0
    delta: float = 0.0
    controller: str = "the city"
    notes: str = ""
    sources: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"dataset name {self.name!r}: lower-case letters, digits and '-'")
        if self.retention <= timedelta(0):
            raise ValueError(f"dataset {self.name}: retention must be longer than zero")
        if self.epsilon <= 0 or not 0 <= self.delta < 1:
            raise ValueError(f"dataset {self.name}: budget needs epsilon > 0, 0 <= delta < 1")
        if bool(self.pseudonym_attr) != bool(self.id_kind):
            raise ValueError(f"dataset {self.name}: pseudonym_attr and id_kind go together")
        object.__setattr__(self, "legal_basis", LegalBasis(self.legal_basis))

    @property
    def personal(self) -> bool:
        """Whether its records are about identifiable (pseudonymised) people."""
        return bool(self.pseudonym_attr)

    def query(self, extra: str = "") -> str | None:
        """The q that selects its records, with ``extra`` ANDed in."""
        parts = [p for p in (self.selector, extra) if p]
        return ";".join(f"({p})" if "|" in p else p for p in parts) or None


def entity_id(name: str) -> str:
    return f"urn:ngsi-ld:{TYPE}:{quote(name, safe='')}"


def _prop(value: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value}


def to_entity(dataset: Dataset) -> dict[str, Any]:
    d = dataset
    return {
        "id": entity_id(d.name),
        "type": TYPE,
        "name": _prop(d.name),
        "purpose": _prop(d.purpose),
        "legalBasis": _prop(str(d.legal_basis)),
        "retentionSeconds": _prop(int(d.retention.total_seconds())),
        "coveredType": _prop(d.entity_type),
        "coveredAttributes": _prop(list(d.attributes)),
        "timeAttribute": _prop(d.time_attr),
        "selector": _prop(d.selector),
        "pseudonymAttribute": _prop(d.pseudonym_attr),
        "identifierKind": _prop(d.id_kind),
        "epsilonPerPeriod": _prop(d.epsilon),
        "deltaPerPeriod": _prop(d.delta),
        "dataController": _prop(d.controller),
        "notes": _prop(d.notes),
        "sources": _prop(list(d.sources)),
    }


def from_entity(entity: dict[str, Any]) -> Dataset:
    """A declaration read back (keyValues)."""
    e = entity

    def listed(key: str) -> tuple[str, ...]:
        value = e.get(key, [])
        return tuple(value if isinstance(value, list) else [value])

    return Dataset(
        name=e["name"],
        purpose=e["purpose"],
        legal_basis=LegalBasis(e["legalBasis"]),
        retention=timedelta(seconds=int(e["retentionSeconds"])),
        entity_type=e["coveredType"],
        attributes=listed("coveredAttributes"),
        time_attr=e.get("timeAttribute", "dateObserved"),
        selector=e.get("selector", ""),
        pseudonym_attr=e.get("pseudonymAttribute", ""),
        id_kind=e.get("identifierKind", ""),
        epsilon=float(e.get("epsilonPerPeriod", 1.0)),
        delta=float(e.get("deltaPerPeriod", 0.0)),
        controller=e.get("dataController", "the city"),
        notes=e.get("notes", ""),
        sources=listed("sources"),
    )


def declare(client: Any, *datasets: Dataset) -> None:
    """Record (or update) these declarations in the hub."""
    client.upsert([to_entity(d) for d in datasets], replace=True)


def declared(client: Any) -> list[Dataset]:
    """Every dataset declared in the client's tenant, by name."""
    found = client.query(type=TYPE, limit=1000, fmt="keyValues")
    return sorted((from_entity(e) for e in found), key=lambda d: d.name)


def dataset(client: Any, name: str) -> Dataset:
    """One declaration; :class:`UnknownDataset` when none has that name."""
    try:
        return from_entity(client.get(entity_id(name), fmt="keyValues"))
    except ResourceNotFound:
        known = ", ".join(d.name for d in declared(client)) or "none yet"
        raise UnknownDataset(
            f"no dataset {name!r} is declared (declared: {known}); a service declares its "
            "datasets when it first takes data in"
        ) from None
