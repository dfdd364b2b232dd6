"""No raw identifier reaches the store or any output: after a day of taps and Wi-Fi
sightings goes through every path (ingest, build, releases, the report, an access
request), the hub's database files and every answer are scanned for each card number and
MAC address, in the forms a feed writes them."""

from __future__ import annotations

import json
import re
from pathlib import Path

from cityos.hub.client import HubClient
from cityos.hub.core import Hub
from cityos.privacy import Pseudonymiser, access, privacy_report
from cityos.services.flows import (
    build_day,
    ingest_counts,
    ingest_sightings,
    ingest_taps,
    od_release,
)
from cityos.services.flows.releases import crowd_release, dwell_release
from cityos.services.flows.synthetic import (
    sample_zones,
    synthetic_counts,
    synthetic_sightings,
    synthetic_taps,
)

from .conftest import DAY, PRIVACY, TZ, at

# every shape the synthetic identifiers can take (cards 4000 + 12 digits, MAC addresses
# 02:xx:..: with or without separators, any case), matched overlapping
_SHAPES = re.compile(
    rb"(?=(4000[0-9]{12}|02[0-9a-f]{10}|02(?:[:.\- ][0-9a-f]{2}){5}))", re.IGNORECASE
)


def _found(blob: bytes, raw: set[str]) -> set[str]:
    """The raw identifiers written anywhere in ``blob``, in any of those shapes."""
    bare = {re.sub(r"[:.\- ]", "", r).lower() for r in raw}
    hits = {re.sub(rb"[:.\- ]", b"", m.group(1)).lower().decode() for m in _SHAPES.finditer(blob)}
    return hits & bare


def test_the_scan_finds_an_identifier_in_any_shape() -> None:
    raw = {"4000000000000007", "02:00:00:00:00:2a"}
    for planted in (b"x4000000000000007y", b'"02-00-00-00-00-2A"', b"0202000000002a"):
        assert _found(planted, raw), planted
    assert not _found(b"4000000000000008 02:00:00:00:00:2b", raw)


def test_no_raw_identifier_in_the_database_or_any_output(
    hub: Hub, client: HubClient, db_path: Path, pseudonymiser: Pseudonymiser, zones
) -> None:
    zone_list = sample_zones()
    taps = synthetic_taps(zone_list, DAY, TZ, cards=200, seed=3)
    sightings = synthetic_sightings(zone_list, DAY, TZ, devices=80, seed=3)
    raw = {t.card for t in taps} | {s.mac for s in sightings}
    assert len(raw) == 280

    ingest_counts(client, synthetic_counts(zone_list, DAY, TZ, seed=3, step_min=60))
    tapped = ingest_taps(client, pseudonymiser, taps)
    seen = ingest_sightings(client, pseudonymiser, sightings)
    assert tapped.journeys > 150 and seen.stays >= 80
    outputs = [
        build_day(client, DAY, TZ, now=at(23, 59)).as_dict(),
        od_release(client, DAY, epsilon=0.3, privacy=PRIVACY).as_dict(),
        crowd_release(client, DAY, epsilon=0.3, privacy=PRIVACY).as_dict(),
        dwell_release(client, DAY, epsilon=0.3, privacy=PRIVACY).as_dict(),
        privacy_report(client, PRIVACY),
        access(client, pseudonymiser, taps[0].card, "card", now=at(23)).as_dict(),
        access(client, pseudonymiser, sightings[0].mac, "mac", now=at(23)).as_dict(),
        tapped.as_dict(),
        seen.as_dict(),
        client.query(limit=1_000_000),
    ]
    text = json.dumps(outputs, default=str)
    # the scan can see what is there: the pseudonyms are
    assert pseudonymiser.pseudonym(taps[0].card, "card", taps[0].at) in text
    hub.close()
    stored = b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))
    assert pseudonymiser.pseudonym(taps[0].card, "card", taps[0].at).encode() in stored
    assert _found(text.encode(), raw) == set()
    assert _found(stored, raw) == set()
