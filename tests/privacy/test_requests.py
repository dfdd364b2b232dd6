"""Access and erasure by raw identifier: hashed for every period within retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cityos.hub.client import HubClient
from cityos.hub.core import Hub
from cityos.privacy import Pseudonymiser, access, declare, erase

from .conftest import TRIPS, trip

NOW = datetime(2024, 6, 30, 12, tzinfo=UTC)
CARD, OTHER = "4000123456789010", "4000999988887777"


def _stored(client: HubClient, p: Pseudonymiser, card: str, days_ago: float, n: int) -> str:
    at = NOW - timedelta(days=days_ago)
    when = at.isoformat(timespec="microseconds").replace("+00:00", "Z")
    client.create(trip(p.pseudonym(card, "card", at), when, n))
    return f"urn:ngsi-ld:AnonymousCommuterId:t{n}"


def test_access_finds_the_records_of_every_day_within_retention(
    client: HubClient, pseudonymiser: Pseudonymiser
) -> None:
    declare(client, TRIPS)
    mine = {_stored(client, pseudonymiser, CARD, d, n) for n, d in enumerate((0.1, 3, 29))}
    _stored(client, pseudonymiser, OTHER, 3, 10)
    result = access(client, pseudonymiser, CARD, "card", now=NOW)
    assert {e["id"] for e in result.records["trips"]} == mine
    assert result.periods >= 31
    assert result.as_dict()["records"] == 3


def test_erasure_deletes_records_and_history_and_leaves_others(
    client: HubClient, hub: Hub, pseudonymiser: Pseudonymiser
) -> None:
    declare(client, TRIPS)
    mine = [_stored(client, pseudonymiser, CARD, d, n) for n, d in enumerate((1, 2, 20))]
    client.update_attrs(mine[0], {"dest": {"type": "Property", "value": "C"}})
    kept = _stored(client, pseudonymiser, OTHER, 1, 10)
    result = erase(client, pseudonymiser, CARD, "card", now=NOW)
    assert result.erased == {"trips": 3}
    assert [e["id"] for e in client.query(type="AnonymousCommuterId")] == [kept]
    for eid in mine:
        assert hub.store.history("", eid, None, 100) == []
    assert access(client, pseudonymiser, CARD, "card", now=NOW).records == {"trips": []}
    # what the hub keeps about the request names neither the card nor its pseudonyms
    log = str(client.query(type="PrivacyAction", fmt="keyValues"))
    assert CARD not in log
    assert pseudonymiser.pseudonym(CARD, "card", NOW) not in log
    assert "erasure" in log and "access" in log


def test_a_kind_no_dataset_holds_is_an_error(
    client: HubClient, pseudonymiser: Pseudonymiser
) -> None:
    declare(client, TRIPS)
    with pytest.raises(ValueError, match="no dataset is keyed by mac identifiers .*card"):
        access(client, pseudonymiser, "aa:bb:cc:dd:ee:ff", "mac", now=NOW)
