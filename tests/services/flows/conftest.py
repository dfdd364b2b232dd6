"""A real hub on SQLite with the sample district's zones registered, and one small
synthetic day (the same generator the benchmark uses)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cityos.config import Settings
from cityos.hub.client import HubClient
from cityos.hub.core import Hub
from cityos.privacy import PrivacySettings, Pseudonymiser
from cityos.services.flows import ZoneMap, register_zones
from cityos.services.flows.synthetic import sample_zones

KEY = "flows-test-key-0123456789abcdef0123456789"
TZ = ZoneInfo("Asia/Phnom_Penh")
DAY = date(2024, 5, 1)
PRIVACY = PrivacySettings(key=KEY, timezone="Asia/Phnom_Penh")


def at(hour: int, minute: int = 0, day: date = DAY) -> datetime:
    """A local time on the test day, as an aware datetime."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=TZ).astimezone(UTC)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "hub.db"


@pytest.fixture
def hub(db_path: Path) -> Iterator[Hub]:
    hub = Hub(Settings(database_url=f"sqlite:///{db_path}"))
    yield hub
    hub.close()


@pytest.fixture
def client(hub: Hub) -> HubClient:
    return HubClient(hub)


@pytest.fixture
def pseudonymiser() -> Pseudonymiser:
    return Pseudonymiser.from_settings(PRIVACY)


@pytest.fixture
def zones(client: HubClient) -> ZoneMap:
    return register_zones(client, sample_zones())
