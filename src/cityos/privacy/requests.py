"""A resident's access and erasure requests, answered by pseudonym.

The resident gives the raw identifier (the card number printed on their card, their
phone's Wi-Fi MAC address); it is hashed for every period still within the longest
retention of the datasets keyed by that kind of identifier, and the records carrying any
of those pseudonyms are returned (access) or deleted with their history (erasure). The raw
identifier is used only in memory; the action recorded in the hub names the dataset and a
count, never the identifier or its pseudonyms. Checking that the requester is the card's
holder is the city's front office's job, before it runs the request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import actions
from .datasets import Dataset, declared
from .pseudonym import Pseudonymiser
from .retention import delete_matching

# pseudonyms in one q value list (each 34 characters quoted; q is limited to 4096)
_CHUNK = 60


@dataclass
class RequestResult:
    kind: str  # access or erasure
    identifier_kind: str
    periods: int  # how many periods were searched
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # access
    erased: dict[str, int] = field(default_factory=dict)  # erasure

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "request": self.kind,
            "identifierKind": self.identifier_kind,
            "periodsSearched": self.periods,
        }
        if self.kind == "access":
            out["datasets"] = {k: v for k, v in self.records.items()}
            out["records"] = sum(len(v) for v in self.records.values())
        else:
            out["erased"] = dict(self.erased)
            out["records"] = sum(self.erased.values())
        return out


def _datasets(client: Any, id_kind: str) -> list[Dataset]:
    found = [d for d in declared(client) if d.id_kind == id_kind]
    if not found:
        kinds = sorted({d.id_kind for d in declared(client) if d.id_kind})
        raise ValueError(
            f"no dataset is keyed by {id_kind} identifiers "
            f"(kinds held: {', '.join(kinds) or 'none'})"
        )
    return found


def _selectors(dataset: Dataset, pseudonyms: list[str]) -> list[str]:
    out = []
    for i in range(0, len(pseudonyms), _CHUNK):
        values = ",".join(f'"{p}"' for p in pseudonyms[i : i + _CHUNK])
        out.append(dataset.query(f"{dataset.pseudonym_attr}=={values}") or "")
    return out


def _pseudonyms(
    pseudonymiser: Pseudonymiser, raw_id: str, id_kind: str, dataset: Dataset, now: datetime
) -> list[str]:
    # one period more than the retention: a record dated just inside it may sit in the
    # period before the cutoff's
    current = pseudonymiser.period_of(now)
    since = now - dataset.retention - (current.end - current.start)
    return pseudonymiser.candidates(raw_id, id_kind, since, now)


def access(
    client: Any,
    pseudonymiser: Pseudonymiser,
    raw_id: str,
    id_kind: str,
    *,
    now: datetime | None = None,
) -> RequestResult:
    """Every record held about the identifier, by dataset (keyValues)."""
    now = now or datetime.now(UTC)
    result = RequestResult("access", id_kind, 0)
    for d in _datasets(client, id_kind):
        pseudonyms = _pseudonyms(pseudonymiser, raw_id, id_kind, d, now)
        result.periods = max(result.periods, len(pseudonyms))
        rows: list[dict[str, Any]] = []
        for q in _selectors(d, pseudonyms):
            rows += client.query(type=d.entity_type, q=q, limit=100_000, fmt="keyValues")
        result.records[d.name] = sorted(rows, key=lambda e: str(e.get(d.time_attr, "")))
        actions.record(client, "access", d.name, len(rows), at=now)
    return result


def erase(
    client: Any,
    pseudonymiser: Pseudonymiser,
    raw_id: str,
    id_kind: str,
    *,
    now: datetime | None = None,
) -> RequestResult:
    """Delete every record held about the identifier, history included; counts by dataset."""
    now = now or datetime.now(UTC)
    result = RequestResult("erasure", id_kind, 0)
    for d in _datasets(client, id_kind):
        pseudonyms = _pseudonyms(pseudonymiser, raw_id, id_kind, d, now)
        result.periods = max(result.periods, len(pseudonyms))
        erased = sum(delete_matching(client, d.entity_type, q) for q in _selectors(d, pseudonyms))
        result.erased[d.name] = erased
        actions.record(client, "erasure", d.name, erased, at=now)
    return result
