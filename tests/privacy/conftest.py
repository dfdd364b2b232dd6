"""A real hub on SQLite in a temporary directory, and the privacy objects the tests share."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from cityos.config import Settings
from cityos.hub.client import HubClient
from cityos.hub.core import Hub
from cityos.privacy import Dataset, LegalBasis, Pseudonymiser

KEY = "test-key-0123456789abcdef0123456789abcdef"


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    hub = Hub(Settings(database_url=f"sqlite:///{tmp_path}/hub.db"))
    yield hub
    hub.close()


@pytest.fixture
def client(hub: Hub) -> HubClient:
    return HubClient(hub)


@pytest.fixture
def pseudonymiser() -> Pseudonymiser:
    return Pseudonymiser(KEY, rotation="daily", timezone="Asia/Phnom_Penh")


TRIPS = Dataset(
    name="trips",
    purpose="origin-destination flows for transit planning",
    legal_basis=LegalBasis.PUBLIC_TASK,
    retention=timedelta(days=30),
    entity_type="AnonymousCommuterId",
    attributes=("anonymizedId", "orig", "dest", "date"),
    time_attr="date",
    selector='source=="fares"',
    pseudonym_attr="anonymizedId",
    id_kind="card",
    epsilon=1.0,
    delta=1e-6,
)


def trip(pseudonym: str, at: str, n: int, *, orig: str = "A", dest: str = "B") -> dict:
    """One stored journey, as the flows service writes it."""
    return {
        "id": f"urn:ngsi-ld:AnonymousCommuterId:t{n}",
        "type": "AnonymousCommuterId",
        "anonymizedId": {"type": "Property", "value": pseudonym},
        "source": {"type": "Property", "value": "fares"},
        "orig": {"type": "Property", "value": orig},
        "dest": {"type": "Property", "value": dest},
        "date": {"type": "Property", "value": at},
    }
