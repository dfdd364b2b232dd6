"""Fares on worked examples: each expected amount is worked out by hand in the test.

The tariff (VND: no minor unit, so amounts read as written): a flat bus at 7,000; a metro
by distance, 8,000 plus 1,000 per started km, at most 20,000; a ferry by zones, 10,000 /
15,000 / 20,000 for 1 / 2 / 3 zones. Free transfers within 60 minutes of the journey that
paid in full (at most 2 after it); a daily cap of 20,000 and a weekly cap of 60,000;
students pay half, elders nothing. Stops lie on one meridian: 0.01 degree of latitude is
1.112 km.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from cityos.services.payments.fares import (
    FareError,
    Tap,
    Tariff,
    load_tariff,
    price_day,
    price_taps,
    single_fare,
)

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
TARIFF = Tariff.from_dict(
    {
        "currency": "VND",
        "timezone": "Asia/Ho_Chi_Minh",
        "transfer_window_s": 3600,
        "max_transfers": 2,
        "daily_cap": "20000",
        "weekly_cap": "60000",
        "concessions": {"student": 50, "elder": 100},
        "products": [
            {"id": "bus", "kind": "flat", "base": "7000"},
            {"id": "metro", "kind": "distance", "base": "8000", "per_km": "1000",
             "max_fare": "20000"},
            {"id": "ferry", "kind": "zone", "zone_prices": ["10000", "15000", "20000"]},
        ],
        "stops": [
            {"id": "s0", "zone": 1, "lon": 106.7, "lat": 10.0},
            {"id": "s1", "zone": 1, "lon": 106.7, "lat": 10.0089},  # 0.99 km from s0
            {"id": "s2", "zone": 2, "lon": 106.7, "lat": 10.0267},  # 2.97 km from s0
            {"id": "s3", "zone": 3, "lon": 106.7, "lat": 10.1},  # 11.1 km from s0
        ],
    }
)  # fmt: skip


def at(when: str) -> int:
    """Local time in Ho Chi Minh City -> seconds since the epoch (2026-03-02 is a Monday)."""
    return int(datetime.strptime(when, "%Y-%m-%d %H:%M").replace(tzinfo=TZ).timestamp())


def tap(when: str, stop: str, product: str = "bus", kind: str = "in", who: str = "r", c: str = ""):
    return Tap(who, at(when), stop, product, kind, c)  # type: ignore[arg-type]


def amounts(charges) -> list[int]:
    return [c.amount for c in charges]


def test_flat_fares_a_free_transfer_and_the_daily_cap() -> None:
    charges = price_day(
        TARIFF,
        [
            tap("2026-03-02 07:00", "s0"),  # 7,000: pays in full
            tap("2026-03-02 07:30", "s1"),  # within 60 min of 07:00, costs no more: free
            tap("2026-03-02 12:00", "s0"),  # 5 h later: 7,000 (14,000 so far)
            tap("2026-03-02 18:00", "s2"),  # 7,000 would make 21,000: capped at 20,000 -> 6,000
        ],
    )
    assert amounts(charges) == [7000, 0, 7000, 6000]
    assert sum(amounts(charges)) == 20000
    assert charges[1].transfer
    assert "transfer 0 VND (within 60 min of the 07:00 journey: free)" in charges[1].explain("VND")
    assert (
        charges[3].explain("VND")
        == "base 7,000 VND (flat); daily cap 6,000 VND (capped at 20,000 VND)"
    )


def test_distance_fares_by_started_km_and_a_transfer_paying_the_difference() -> None:
    charges = price_day(
        TARIFF,
        [
            # s0 -> s2: 2.97 km, 3 started km: 8,000 + 3 x 1,000 = 11,000
            tap("2026-03-02 08:00", "s0", "metro"), tap("2026-03-02 08:20", "s2", "metro", "out"),
            # a bus within 60 min of 08:00: 7,000 is less than the 11,000 paid: free
            tap("2026-03-02 08:50", "s2"),
        ],
    )  # fmt: skip
    assert amounts(charges) == [11000, 0]
    assert charges[0].steps[0] == ("base", 11000, "3 km")
    # a bus first (7,000), then s0 -> s3 by metro within the hour: 12 km would be 20,000
    # (the maximum); as a transfer it pays what it costs above the bus: 20,000 - 7,000
    charges = price_day(
        TARIFF,
        [tap("2026-03-02 07:00", "s1"),
         tap("2026-03-02 07:20", "s0", "metro"), tap("2026-03-02 07:50", "s3", "metro", "out")],
    )  # fmt: skip
    assert amounts(charges) == [7000, 13000]
    assert charges[1].steps == [
        ("base", 20000, "12 km, at the maximum"),
        ("transfer", 13000, "within 60 min of the 07:00 journey: pays the difference"),
    ]


def test_zone_fares_count_the_zones_travelled() -> None:
    trips = [("s0", "s1"), ("s0", "s2"), ("s0", "s3"), ("s3", "s1")]
    fares = []
    for n, (a, b) in enumerate(trips):  # a day each, so that no cap or transfer applies
        day = f"2026-03-0{n + 2}"
        fares += amounts(price_day(TARIFF, [tap(f"{day} 09:00", a, "ferry"),
                                            tap(f"{day} 09:40", b, "ferry", "out")]))  # fmt: skip
    # zone 1 -> 1: one zone, 10,000; 1 -> 2: 15,000; 1 -> 3: 20,000; 3 -> 1: 20,000
    assert fares == [10000, 15000, 20000, 20000]


def test_a_journey_without_its_tap_out_or_tap_in_pays_the_maximum() -> None:
    charges = price_day(
        TARIFF,
        [
            tap("2026-03-02 06:00", "s1", "metro"),  # never tapped out: 20,000
            tap("2026-03-02 20:00", "s2", "ferry", "out"),  # no tap-in: 20,000, capped to 0
        ],
    )
    assert [c.status for c in charges] == ["incomplete", "incomplete"]
    assert amounts(charges) == [20000, 0]
    assert charges[0].steps[0] == ("base", 20000, "no tap-out: maximum fare")
    assert charges[1].steps[0] == ("base", 20000, "no tap-in: maximum fare")
    # while the day goes on, the last tap-in is open: the maximum, provisionally
    (open_,) = price_day(TARIFF, [tap("2026-03-02 06:00", "s1", "metro")], final=False)
    assert (open_.status, open_.amount) == ("open", 20000)
    # a tap-out more than max_journey_s (3 h) after its tap-in does not end that journey
    late = price_day(TARIFF, [tap("2026-03-02 06:00", "s1", "metro"),
                              tap("2026-03-02 09:01", "s2", "metro", "out")])  # fmt: skip
    assert [c.status for c in late] == ["incomplete", "incomplete"]


def test_concessions_take_their_share_off_fares_and_caps() -> None:
    student = [tap(f"2026-03-02 {h:02d}:00", "s0", c="student") for h in (7, 9, 11, 13)]
    # half of 7,000 = 3,500 each, two hours apart (no transfer); the cap is halved too,
    # 10,000: 3,500 + 3,500 = 7,000, then 3,000 of the third, nothing of the fourth
    assert amounts(price_day(TARIFF, student)) == [3500, 3500, 3000, 0]
    elder = [tap("2026-03-02 07:00", "s0", c="elder")]
    (charge,) = price_day(TARIFF, elder)
    assert charge.amount == 0
    assert charge.steps[-1] == ("concession", 0, "elder 100% off")
    # an odd fare is rounded down, in the rider's favour: half of 11,001 is 5,500
    odd = Tariff.from_dict({**_doc(), "concessions": {"student": 50}})
    assert odd.products["bus"].base == 11001
    assert amounts(price_day(odd, [tap("2026-03-02 07:00", "s0", c="student")])) == [5500]


def _doc() -> dict:
    return {
        "currency": "VND",
        "products": [{"id": "bus", "kind": "flat", "base": "11001"}],
        "stops": [{"id": "s0"}],
    }


def test_at_most_max_transfers_after_the_journey_that_paid() -> None:
    charges = price_day(
        TARIFF,
        [tap(f"2026-03-02 07:{m:02d}", "s0") for m in (0, 10, 20, 30)],
    )
    # 07:00 pays; 07:10 and 07:20 are its two transfers; 07:30 would be a third: it pays
    # in full and starts a window of its own
    assert amounts(charges) == [7000, 0, 0, 7000]
    assert [c.transfer for c in charges] == [False, True, True, False]


def test_the_weekly_cap_counts_from_monday() -> None:
    taps = []
    for day in ("2026-03-02", "2026-03-03", "2026-03-04", "2026-03-05"):  # Mon..Thu
        taps += [tap(f"{day} {h:02d}:00", "s0") for h in (7, 10, 13)]  # 21,000 -> 20,000
    taps += [tap("2026-03-09 07:00", "s0")]  # the next Monday
    days = price_taps(TARIFF, taps)
    # Monday to Wednesday hit the daily cap (20,000 each: 60,000, the weekly cap);
    # Thursday pays nothing; the next Monday starts a new week
    assert [(d.date, d.total) for d in days] == [
        ("2026-03-02", 20000), ("2026-03-03", 20000), ("2026-03-04", 20000),
        ("2026-03-05", 0), ("2026-03-09", 7000),
    ]  # fmt: skip
    assert days[3].charges[0].steps[-1] == ("weekly cap", 0, "capped at 60,000 VND")


def test_days_are_local_days() -> None:
    # 23:30 and 00:30 local are two days (the daily cap and transfers restart at midnight)
    days = price_taps(TARIFF, [tap("2026-03-02 23:30", "s0"), tap("2026-03-03 00:10", "s0")])
    assert [(d.date, d.total) for d in days] == [("2026-03-02", 7000), ("2026-03-03", 7000)]


def test_riders_are_priced_apart() -> None:
    days = price_taps(
        TARIFF, [tap("2026-03-02 07:00", "s0", who="a"), tap("2026-03-02 07:10", "s0", who="b")]
    )
    assert sorted((d.rider, d.total) for d in days) == [("a", 7000), ("b", 7000)]


def test_a_single_fare_bought_at_the_stop() -> None:
    assert single_fare(TARIFF, "metro", "s0", "s2").amount == 11000
    assert single_fare(TARIFF, "metro", "s0", None).amount == 20000  # no destination: maximum
    assert single_fare(TARIFF, "bus", "s0", None, "student").amount == 3500


def test_bad_tariffs_and_taps_are_refused_with_the_field_named() -> None:
    with pytest.raises(FareError, match="unknown product 'tram'"):
        price_day(TARIFF, [tap("2026-03-02 07:00", "s0", "tram")])
    with pytest.raises(FareError, match="unknown stop 'nowhere'"):
        price_day(TARIFF, [tap("2026-03-02 07:00", "s0", "metro"),
                           tap("2026-03-02 07:10", "nowhere", "metro", "out")])  # fmt: skip
    with pytest.raises(FareError, match="unknown concession 'vip'"):
        price_day(TARIFF, [tap("2026-03-02 07:00", "s0", c="vip")])
    for bad, match in (
        ({**_doc(), "currency": "XXX"}, "unknown currency"),
        ({**_doc(), "products": [{"id": "b", "kind": "flat", "base": 1.5}]}, "float"),
        ({**_doc(), "products": [{"id": "b", "kind": "flat", "base": "1.5"}]}, "decimals"),
        ({**_doc(), "products": [{"id": "b", "kind": "teleport"}]}, "kind must be"),
        ({**_doc(), "products": [{"id": "f", "kind": "zone"}]}, "zone_prices"),
        ({**_doc(), "concessions": {"x": 120}}, "0 to 100"),
        ({**_doc(), "timezone": "Mars/Olympus"}, "bad tariff"),
    ):
        with pytest.raises(FareError, match=match):
            Tariff.from_dict(bad)


def test_the_sample_tariff_loads() -> None:
    tariff = load_tariff()
    assert tariff.currency == "KHR"
    assert tariff.products["bus"].base == 150000  # 1,500 riel in minor units (ISO 4217: 2)
    assert "wat-phnom" in tariff.stops
    assert tariff.stop("urn:ngsi-ld:GtfsStop:wat-phnom").name == "Wat Phnom"
