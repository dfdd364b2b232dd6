"""Taps pair into journeys under daily pseudonyms; what cannot pair is counted, not stored."""

from __future__ import annotations

from datetime import timedelta

from cityos.hub.client import HubClient
from cityos.privacy import Pseudonymiser
from cityos.services.flows import Tap, ZoneMap, ingest_taps, pair_taps
from cityos.services.flows.od import journeys_of_day

from .conftest import DAY, TZ, at

A, B = "4000000000000001", "4000000000000002"


def test_a_tap_in_and_its_tap_out_make_one_journey(
    zones: ZoneMap, pseudonymiser: Pseudonymiser
) -> None:
    taps = [
        Tap(A, "stop-riverside-1", at(8, 3), "in"),
        Tap(A, "stop-wat-phnom-2", at(8, 27), "out"),
        Tap(A, "stop-wat-phnom-1", at(17, 2), "in"),
        Tap(A, "stop-riverside-2", at(17, 40), "out"),
    ]
    journeys, result = pair_taps(reversed(taps), zones, pseudonymiser)
    assert result.journeys == 2 and result.unmatched_in == result.unmatched_out == 0
    first, second = sorted(journeys, key=lambda j: j.start)
    assert (first.origin, first.destination) == ("riverside", "wat-phnom")
    assert (second.origin, second.destination) == ("wat-phnom", "riverside")
    assert first.pseudonym == second.pseudonym == pseudonymiser.pseudonym(A, "card", at(8))
    assert first.start == at(8, 0) and first.end == at(8, 25)  # 5-minute resolution


def test_what_cannot_pair_is_counted(zones: ZoneMap, pseudonymiser: Pseudonymiser) -> None:
    taps = [
        Tap(A, "stop-riverside-1", at(7), "in"),  # no tap-out: next is another in
        Tap(A, "stop-riverside-1", at(9), "in"),
        Tap(A, "stop-old-market-1", at(9, 20), "out"),
        Tap(B, "stop-old-market-1", at(10), "out"),  # tap-out with no tap-in
        Tap(B, "nowhere", at(11), "in"),  # a stop no zone holds
        Tap(B, "stop-riverside-1", at(12), "in"),  # out more than 4 hours later
        Tap(B, "stop-wat-phnom-1", at(12) + timedelta(hours=5), "out"),
        Tap(B, "stop-riverside-1", at(20), "sideways"),
    ]
    journeys, result = pair_taps(taps, zones, pseudonymiser)
    assert len(journeys) == 1
    assert result.as_dict() == {
        "taps": 8, "journeys": 1, "unmatched_in": 2, "unmatched_out": 2,
        "unknown_stops": 1, "bad_kind": 1,
    }  # fmt: skip


def test_a_card_on_two_days_has_unrelated_pseudonyms(
    zones: ZoneMap, pseudonymiser: Pseudonymiser
) -> None:
    nxt = DAY + timedelta(days=1)
    taps = [
        Tap(A, "stop-riverside-1", at(8), "in"),
        Tap(A, "stop-wat-phnom-1", at(8, 20), "out"),
        Tap(A, "stop-riverside-1", at(8, day=nxt), "in"),
        Tap(A, "stop-wat-phnom-1", at(8, 20, day=nxt), "out"),
    ]
    journeys, _ = pair_taps(taps, zones, pseudonymiser)
    assert len({j.pseudonym for j in journeys}) == 2


def test_two_short_journeys_in_one_rounded_minute_are_both_kept(
    client: HubClient, zones: ZoneMap, pseudonymiser: Pseudonymiser
) -> None:
    taps = [
        Tap(A, "stop-riverside-1", at(8, 0), "in"),
        Tap(A, "stop-old-market-1", at(8, 1), "out"),
        Tap(A, "stop-old-market-1", at(8, 2), "in"),
        Tap(A, "stop-wat-phnom-1", at(8, 3), "out"),
    ]
    assert ingest_taps(client, pseudonymiser, taps).journeys == 2
    stored = journeys_of_day(client, DAY, TZ)
    assert sorted((j.origin, j.destination) for j in stored) == [
        ("old-market", "wat-phnom"),
        ("riverside", "old-market"),
    ]
    # a feed sent twice changes nothing
    ingest_taps(client, pseudonymiser, taps)
    assert len(journeys_of_day(client, DAY, TZ)) == 2


def test_a_tap_never_shows_its_card() -> None:
    assert A not in repr(Tap(A, "stop-riverside-1", at(8), "in"))
