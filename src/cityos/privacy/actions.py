"""The record of what the privacy layer did: retention runs, access and erasure requests.

Each action is a ``PrivacyAction`` entity in the hub (what, on which dataset, how many
records, when), so the privacy report and an auditor can show that data was deleted on
time and that requests were answered. It never holds an identifier or a pseudonym: an
erasure that left the erased person's pseudonym behind would not be one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cityos.hub.model import to_hub_time

TYPE = "PrivacyAction"
KINDS = ("retention", "access", "erasure")


@dataclass(frozen=True)
class Action:
    kind: str
    dataset: str
    records: int
    at: str
    detail: str = ""


def hub_time(at: datetime) -> str:
    """An aware (or UTC naive) datetime in the hub's text form, comparable in q."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return to_hub_time(at.astimezone(UTC).isoformat())


def record(
    client: Any, kind: str, dataset: str, records: int, *, detail: str = "", at: datetime
) -> Action:
    """Write one action; what was written."""
    if kind not in KINDS:
        raise ValueError(f"action kind {kind!r}: use {', '.join(KINDS)}")
    action = Action(kind, dataset, records, hub_time(at), detail)
    client.create(
        {
            "id": f"urn:ngsi-ld:{TYPE}:{uuid.uuid4().hex}",
            "type": TYPE,
            "actionKind": {"type": "Property", "value": kind},
            "dataset": {"type": "Property", "value": dataset},
            "records": {"type": "Property", "value": records},
            "detail": {"type": "Property", "value": detail},
            "dateIssued": {"type": "Property", "value": action.at},
        }
    )
    return action


def recent(client: Any, dataset: str, *, limit: int = 1000) -> list[Action]:
    """The dataset's recorded actions, newest first."""
    found = client.query(type=TYPE, q=f'dataset=="{dataset}"', limit=limit, fmt="keyValues")
    out = [
        Action(e["actionKind"], e["dataset"], int(e["records"]), e["dateIssued"], e["detail"])
        for e in found
    ]
    return sorted(out, key=lambda a: a.at, reverse=True)
