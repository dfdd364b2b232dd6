"""Taps paid through the ledger: what each tap moves, on the sample district's tariff (KHR,
minor units: 150000 is 1,500 riel). Bus 1,500 flat; rapid bus 1,000 + 300 a started km, at
most 4,000; daily cap 4,500; students half."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from cityos.services.payments.fares import FareError, load_tariff
from cityos.services.payments.ledger import InsufficientFunds, Ledger, Transfer, UnknownAccount
from cityos.services.payments.riders import pseudonym
from cityos.services.payments.taps import FareCollector, TapRequest, stop_days

TZ = ZoneInfo("Asia/Phnom_Penh")
KEY = b"k" * 32


def at(hhmm: str, day: str = "2026-03-02") -> int:
    return int(datetime.fromisoformat(f"{day} {hhmm}").replace(tzinfo=TZ).timestamp())


@pytest.fixture
def collector(ledger: Ledger) -> FareCollector:
    c = FareCollector(ledger, load_tariff(), pseudonym_key=KEY)
    c.open_operators()
    ledger.open_account("settlement:khqr", "KHR", kind="settlement", overdraft_limit=None)
    ledger.open_account("cash:city-bus", "KHR", kind="settlement", overdraft_limit=None)
    ledger.open_account("rider:a", "KHR")
    ledger.transfer(Transfer("settlement:khqr", "rider:a", 2_000_000, "KHR", id="top"))
    return c


def tap(n: int, when: str, stop: str, product: str = "bus", kind: str = "in", **kw) -> TapRequest:
    kw.setdefault("medium", "account")
    kw.setdefault("account", "rider:a")
    return TapRequest(id=f"r1:{n}", stop=stop, product=product, at=at(when), kind=kind, **kw)  # type: ignore[arg-type]


def test_flat_fares_are_posted_and_capped_through_the_day(collector, ledger) -> None:
    charged = [
        collector.tap(tap(1, "07:00", "wat-phnom")).charged,  # 1,500
        collector.tap(tap(2, "07:20", "phsar-thmei")).charged,  # a transfer: free
        collector.tap(tap(3, "12:00", "wat-phnom")).charged,  # 1,500 (3,000)
        collector.tap(tap(4, "17:00", "phsar-thmei")).charged,  # 1,500 (4,500: the cap)
        collector.tap(tap(5, "20:00", "wat-phnom")).charged,  # capped: nothing
    ]
    assert charged == [150000, 0, 150000, 150000, 0]
    assert ledger.account("rider:a").balance == 2_000_000 - 450000
    assert ledger.account("operator:city-bus").balance == 450000
    assert ledger.check() == []


def test_a_distance_fare_reserves_the_maximum_and_the_tap_out_posts_the_actual(
    collector, ledger
) -> None:
    first = collector.tap(tap(1, "08:00", "hotel-le-royal", "brt"))
    # the maximum, 4,000, is reserved until the tap-out
    assert (first.charged, first.state) == (400000, "pending")
    assert ledger.account("rider:a").available == 2_000_000 - 400000
    # Hotel Le Royal -> Riverside South: 2.3 km, 3 started km: 1,000 + 3 x 300 = 1,900
    out = collector.tap(tap(2, "08:25", "riverside-south", "brt", "out"))
    assert out.state == "posted" and out.transfer_id == first.transfer_id
    assert "3 km" in out.explanation
    rider = ledger.account("rider:a")
    assert (rider.balance, rider.available) == (2_000_000 - 190000, 2_000_000 - 190000)
    assert ledger.get_transfer(first.transfer_id).posted_amount == 190000
    assert ledger.check() == []
    # a tap-in that never gets its tap-out pays what it reserved at the next tap-in
    collector.tap(tap(3, "12:00", "wat-phnom", "brt"))
    collector.tap(tap(4, "18:00", "wat-phnom"))  # a bus
    assert ledger.get_transfer("tap:r1:3").state == "posted"
    assert ledger.check() == []


def test_a_tap_without_money_is_refused_and_leaves_nothing(collector, ledger) -> None:
    ledger.open_account("rider:poor", "KHR")
    with pytest.raises(InsufficientFunds):
        collector.tap(tap(1, "07:00", "wat-phnom", account="rider:poor"))
    with ledger.db.reading() as tx:
        assert tx.one("SELECT COUNT(*) FROM pay_taps")[0] == 0
    with pytest.raises(UnknownAccount):
        collector.tap(tap(2, "07:00", "wat-phnom", account="rider:nobody"))
    with pytest.raises(FareError, match="unknown stop"):
        collector.tap(tap(3, "07:00", "atlantis"))


def test_the_same_tap_twice_is_charged_once(collector, ledger) -> None:
    assert collector.tap(tap(1, "07:00", "wat-phnom")).status == "created"
    again = collector.tap(tap(1, "07:00", "wat-phnom"))
    assert (again.status, again.charged) == ("exists", 150000)
    assert ledger.account("rider:a").balance == 2_000_000 - 150000


def test_a_card_number_becomes_a_pseudonymous_account(collector, ledger) -> None:
    account = pseudonym("card-4111-0001", KEY)
    assert account.startswith("rider:") and "4111" not in account
    ledger.open_account(account, "KHR")
    ledger.transfer(Transfer("settlement:khqr", account, 500000, "KHR"))
    result = collector.tap(
        TapRequest(id="r9:1", stop="wat-phnom", product="bus", at=at("07:00"),
                   medium="account", rider="card-4111-0001")
    )  # fmt: skip
    assert result.account == account and result.charged == 150000


def test_cash_and_scheme_qr_journeys_pay_their_single_fare(collector, ledger) -> None:
    cash = collector.tap(tap(1, "07:00", "wat-phnom", medium="cash", account="cash:city-bus"))
    assert cash.charged == 150000 and cash.rider.startswith("anon:")
    qr = collector.tap(
        tap(2, "07:05", "hotel-le-royal", "brt", medium="emvco", account="settlement:khqr",
            to_stop="riverside-south", reference="KHQR-77")
    )  # fmt: skip
    assert qr.charged == 190000
    assert ledger.get_transfer(qr.transfer_id).reference == "KHQR-77"
    with pytest.raises(UnknownAccount, match="settlement account"):  # not a wallet
        collector.tap(tap(3, "07:10", "wat-phnom", medium="cash", account="rider:a"))


def test_each_stop_day_counts_boardings_revenue_and_the_cashless_share(collector) -> None:
    collector.tap(tap(1, "07:00", "wat-phnom"))
    collector.tap(tap(2, "07:30", "wat-phnom", medium="cash", account="cash:city-bus"))
    collector.tap(tap(3, "08:00", "hotel-le-royal", "brt"))
    collector.tap(tap(4, "08:25", "riverside-south", "brt", "out"))
    days = {d.stop: d for d in stop_days(collector.ledger, collector.tariff, "2026-03-02")}
    wat = days["wat-phnom"]
    assert (wat.passengers, wat.cashless, wat.cashless_share) == (2, 1, 0.5)
    assert wat.revenue == {"account": 150000, "cash": 150000}
    # the rapid bus's fare belongs to the stop where the rider boarded: within the hour
    # of the 07:00 bus, it pays its 1,900 less the 1,500 paid
    assert days["hotel-le-royal"].revenue == {"account": 40000}
    entity = wat.to_entity("Asia/Phnom_Penh")
    assert entity["id"] == "urn:ngsi-ld:FareCollectionObserved:wat-phnom:2026-03-02"
    assert entity["refStop"]["object"] == "urn:ngsi-ld:GtfsStop:wat-phnom"
    assert entity["cashlessShare"]["value"] == 0.5
    assert entity["revenue"]["value"] == 300000
    assert entity["dateObservedFrom"]["value"]["@value"] == "2026-03-02T00:00:00+07:00"


def test_a_journey_never_tapped_out_pays_its_maximum_when_the_task_closes_it(
    collector, ledger
) -> None:
    first = collector.tap(tap(1, "08:00", "hotel-le-royal", "brt"))
    assert collector.close_stale(now=at("10:00")) == 0  # 2 h: it may still tap out
    assert collector.close_stale(now=at("11:01")) == 1  # past max_journey_s (3 h)
    record = ledger.get_transfer(first.transfer_id)
    assert (record.state, record.posted_amount) == ("posted", 400000)
    assert ledger.account("rider:a").available == 2_000_000 - 400000
    assert collector.close_stale(now=at("12:00")) == 0
    assert ledger.check() == []
