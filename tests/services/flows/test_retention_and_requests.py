"""The flows datasets under the privacy layer: retention, access and erasure by card or MAC."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from cityos.hub.client import HubClient
from cityos.hub.core import Hub
from cityos.privacy import Pseudonymiser, access, erase, run_retention
from cityos.services.flows import Sighting, Tap, ZoneMap, ingest_sightings, ingest_taps

from .conftest import DAY, at

CARD = "4000111122223333"
MAC = "02:00:00:00:00:09"


def _journey(day_offset: int) -> list[Tap]:
    day = DAY + timedelta(days=day_offset)
    return [Tap(CARD, "stop-riverside-1", at(8, day=day), "in"),
            Tap(CARD, "stop-wat-phnom-1", at(8, 30, day=day), "out")]  # fmt: skip


def test_journeys_and_stays_expire_with_their_history(
    client: HubClient, hub: Hub, zones: ZoneMap, pseudonymiser: Pseudonymiser
) -> None:
    ingest_taps(client, pseudonymiser, _journey(0) + _journey(25))
    later = DAY + timedelta(days=25)
    ingest_sightings(client, pseudonymiser, [Sighting(MAC, "ap-riverside-1", at(9)),
                                             Sighting(MAC, "ap-riverside-1", at(9, day=later))])  # fmt: skip
    ids = [e["id"] for e in client.query(type="AnonymousCommuterId", limit=100)]
    assert len(ids) == 4
    results = {r.dataset: r.deleted for r in run_retention(client, now=at(12) + timedelta(days=31))}
    # 31 days on: day 0's journey (30-day retention) and stay (7 days) go; day 25's
    # journey and stay (6 days old) stay
    assert results["transit-journeys"] == 1 and results["wifi-presence"] == 1
    left = {e["id"] for e in client.query(type="AnonymousCommuterId", limit=100)}
    assert len(left) == 2
    for gone in set(ids) - left:
        assert hub.store.history("", gone, None, 100) == []


def test_a_resident_reaches_their_journeys_and_stays(
    client: HubClient, zones: ZoneMap, pseudonymiser: Pseudonymiser
) -> None:
    ingest_taps(client, pseudonymiser, _journey(0) + _journey(3))
    ingest_sightings(client, pseudonymiser, [Sighting(MAC, "ap-riverside-1", at(9))])
    now = at(12) + timedelta(days=4)
    assert access(client, pseudonymiser, CARD, "card", now=now).as_dict()["records"] == 2
    assert access(client, pseudonymiser, MAC, "mac", now=now).as_dict()["records"] == 1
    assert erase(client, pseudonymiser, CARD, "card", now=now).erased == {"transit-journeys": 2}
    assert client.count(type="AnonymousCommuterId") == 1


def test_an_erased_pseudonym_is_not_left_in_the_database_file(
    client: HubClient, hub: Hub, db_path: Path, zones: ZoneMap, pseudonymiser: Pseudonymiser
) -> None:
    """SQLite overwrites deleted content only with secure_delete on (Debian's build has it
    on by default; docs/privacy.md says to set it where it is not)."""
    if sqlite3.connect(":memory:").execute("PRAGMA secure_delete").fetchone()[0] == 0:
        pytest.skip("this SQLite keeps deleted bytes in free pages (secure_delete off)")
    ingest_taps(client, pseudonymiser, _journey(0))
    gone = pseudonymiser.pseudonym(CARD, "card", at(8))
    erase(client, pseudonymiser, CARD, "card", now=at(12))
    hub.close()
    stored = b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))
    assert gone.encode() not in stored
