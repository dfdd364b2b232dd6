"""Wi-Fi sightings become one stay per device, zone and day, under the day's pseudonym."""

from __future__ import annotations

from cityos.hub.client import HubClient
from cityos.privacy import Pseudonymiser
from cityos.services.flows import Sighting, ZoneMap, ingest_sightings
from cityos.services.flows.wifi import stays_of_day

from .conftest import DAY, TZ, at

MAC = "02:00:00:00:00:07"


def test_sightings_make_stays_extended_by_later_batches(
    client: HubClient, zones: ZoneMap, pseudonymiser: Pseudonymiser
) -> None:
    first = ingest_sightings(client, pseudonymiser, [
        Sighting(MAC, "ap-riverside-1", at(18, 2)),
        Sighting(MAC.upper().replace(":", "-"), "ap-riverside-1", at(18, 31)),  # same phone
        Sighting(MAC, "ap-wat-phnom-1", at(20, 0)),
        Sighting(MAC, "somewhere-else", at(20, 0)),
        Sighting("not-a-mac", "ap-wat-phnom-1", at(20, 0)),
    ])  # fmt: skip
    assert (first.stays, first.unknown_sensors, first.bad_addresses) == (2, 1, 1)
    later = ingest_sightings(client, pseudonymiser, [Sighting(MAC, "ap-riverside-1", at(19, 12))])
    assert later.extended == 1
    stays = {p.zone: p for p in stays_of_day(client, DAY, TZ).values()}
    assert stays["riverside"].first == at(18, 0) and stays["riverside"].last == at(19, 10)
    assert stays["riverside"].pseudonym == pseudonymiser.pseudonym(MAC, "mac", at(18))
    assert stays["wat-phnom"].minutes == 0
