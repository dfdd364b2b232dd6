"""Daily reconciliation finds every kind of difference between the ledger and the bank's
settlement file, by reference, for one local day."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from cityos.services.payments.ledger import Ledger, Transfer
from cityos.services.payments.reconcile import (
    SettlementFileError,
    read_settlement,
    reconcile,
)

TZ = ZoneInfo("Asia/Phnom_Penh")
DAY = date(2026, 3, 2)


def _at(when: str) -> int:
    return int(datetime.fromisoformat(when).replace(tzinfo=TZ).timestamp() * 1_000_000)


def _books(ledger: Ledger) -> None:
    ledger.open_account("settlement:khqr", "KHR", kind="settlement", overdraft_limit=None)
    ledger.open_account("cash:city-bus", "KHR", kind="settlement", overdraft_limit=None)
    ledger.open_account("operator:city-bus", "KHR", kind="operator")
    ledger.open_account("rider:a", "KHR")

    def pay(tid: str, amount: int, ref: str | None, when: str, **kw) -> None:
        ledger.transfer(
            Transfer("settlement:khqr", "operator:city-bus", amount, "KHR", id=tid,
                     reference=ref, at=_at(when), **kw)
        )  # fmt: skip

    pay("t1", 150000, "KHQR-0001", "2026-03-02 07:10")  # matches
    pay("t2", 150000, "KHQR-0002", "2026-03-02 07:20")  # the bank has 1,600.00
    pay("t3", 300000, "KHQR-0003", "2026-03-02 08:00")  # the bank does not have it
    pay("t4", 150000, "KHQR-0005", "2026-03-02 23:59")  # the bank settles it the next day
    pay("t5", 150000, "KHQR-0006", "2026-03-02 09:00")  # twice in the ledger ...
    pay("t6", 150000, "KHQR-0006", "2026-03-02 09:01")  # ... under two ids
    pay("t7", 400000, "KHQR-0007", "2026-03-02 10:00", pending=True)  # not yet posted
    pay("t8", 150000, "KHQR-0008", "2026-03-01 23:50")  # the day before; the bank: today
    # a refund to the rider's bank: money out of the settlement account (negative)
    ledger.transfer(Transfer("operator:city-bus", "rider:a", 50000, "KHR", id="fund"))
    ledger.open_account("settlement:refunds", "KHR", kind="settlement", overdraft_limit=None)
    ledger.transfer(Transfer("rider:a", "settlement:khqr", 50000, "KHR", id="t9",
                             reference="KHQR-R01", at=_at("2026-03-02 11:00")))  # fmt: skip
    # cash is not the bank's: not reconciled against its file
    ledger.transfer(Transfer("cash:city-bus", "operator:city-bus", 150000, "KHR", id="c1",
                             reference="CASH-1", at=_at("2026-03-02 12:00")))  # fmt: skip


FILE = """date,reference,amount,currency,merchant
2026-03-02,KHQR-0001,1500.00,KHR,city-bus
2026-03-02,KHQR-0002,1600.00,KHR,city-bus
2026-03-02,KHQR-0004,1500.00,KHR,city-bus
2026-03-02,KHQR-0004,1500.00,KHR,city-bus
2026-03-03,KHQR-0005,1500.00,KHR,city-bus
2026-03-02,KHQR-0006,1500.00,KHR,city-bus
2026-03-02,KHQR-0007,4000.00,KHR,city-bus
2026-03-02,KHQR-0008,1500.00,KHR,city-bus
2026-03-02,KHQR-R01,-500.00,KHR,refund
"""


def test_every_mismatch_is_reported(ledger: Ledger) -> None:
    _books(ledger)
    report = reconcile(ledger, DAY, read_settlement("bank.csv", text=FILE))
    found = sorted((m.kind, m.reference) for m in report.mismatches)
    assert found == [
        ("amount_differs", "KHQR-0002"),
        ("duplicate_in_file", "KHQR-0004"),
        ("duplicate_in_ledger", "KHQR-0006"),
        ("missing_in_file", "KHQR-0003"),
        ("missing_in_ledger", "KHQR-0004"),
        ("other_day", "KHQR-0005"),  # the ledger's 23:59, the bank's next day
        ("other_day", "KHQR-0008"),  # the ledger's day before
        ("pending_in_ledger", "KHQR-0007"),
    ]
    assert report.matched == 3  # KHQR-0001, KHQR-0006 (once) and the refund KHQR-R01
    assert not report.ok
    differs = next(m for m in report.mismatches if m.kind == "amount_differs")
    assert (differs.file_amount, differs.ledger_amount, differs.line) == (160000, 150000, 3)
    assert differs.as_dict()["file_major"] == "1600.00"
    assert "off by 100.00" in differs.detail
    assert report.other_dates_in_file == 1
    assert report.accounts == ["settlement:khqr", "settlement:refunds"]  # not cash


def test_a_day_that_matches_reports_no_mismatch(ledger: Ledger) -> None:
    ledger.open_account("settlement:khqr", "KHR", kind="settlement", overdraft_limit=None)
    ledger.open_account("operator:city-bus", "KHR", kind="operator")
    ledger.transfer(Transfer("settlement:khqr", "operator:city-bus", 150000, "KHR", id="t1",
                             reference="KHQR-0001", at=_at("2026-03-02 07:10")))  # fmt: skip
    clean = "date,reference,amount,currency\n2026-03-02,KHQR-0001,1500.00,KHR\n"
    report = reconcile(ledger, DAY, read_settlement("x", text=clean))
    assert report.ok and report.matched == 1
    assert report.file_total == report.ledger_total == {"KHR": 150000}
    # another account's file does not match this one's transfers
    ledger.open_account("settlement:promptpay", "KHR", kind="settlement", overdraft_limit=None)
    other = reconcile(
        ledger, DAY, read_settlement("x", text=clean), accounts=["settlement:promptpay"]
    )
    assert [m.kind for m in other.mismatches] == ["missing_in_ledger"]


@pytest.mark.parametrize(
    "text, match",
    [
        ("reference,amount,currency\nx,1,KHR\n", "lacks date"),
        ("date,reference,amount,currency\n2026-13-01,x,1.00,KHR\n", "line 2: date"),
        ("date,reference,amount,currency\n2026-03-02,,1.00,KHR\n", "line 2: the reference"),
        ("date,reference,amount,currency\n2026-03-02,x,1.001,KHR\n", "line 2: .*decimals"),
        ("date,reference,amount,currency\n2026-03-02,x,abc,KHR\n", "line 2: .*not a decimal"),
        ("date,reference,amount,currency\n2026-03-02,x,1,ZZZ\n", "line 2: unknown currency"),
        ("date,reference,amount,currency\n2026-03-02,x,1,KHR,extra\n", "line 2: more fields"),
    ],
)
def test_a_bad_settlement_file_names_its_line(text: str, match: str) -> None:
    with pytest.raises(SettlementFileError, match=match):
        read_settlement("bank.csv", text=text)


def test_a_missing_file_is_one_clear_error(tmp_path) -> None:
    with pytest.raises(SettlementFileError, match="cannot read"):
        read_settlement(tmp_path / "nope.csv")
