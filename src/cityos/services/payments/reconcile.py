"""Daily reconciliation: the ledger's settlement transfers against the bank's settlement file.

Every day the acquirer (the bank behind a KHQR, PromptPay or VietQR merchant account) sends
a CSV of what it settled: ``date, reference, amount, currency`` (other columns are kept and
ignored). The ledger holds the same payments as transfers on a settlement account, each
with the scheme's reference. Both sides are compared by reference for one local day and
every difference is reported, none hidden behind a total:

* ``missing_in_ledger``: the bank settled it, the ledger has no such transfer;
* ``missing_in_file``: the ledger has it, the bank did not settle it;
* ``amount_differs`` / ``currency_differs``: both have it, not the same;
* ``duplicate_in_file`` / ``duplicate_in_ledger``: one reference twice on one side;
* ``other_day``: both have it, on different days (a payment near midnight);
* ``pending_in_ledger``: the ledger's transfer is still pending (not yet money).

Amounts are signed from the settlement account's side: money in (the account is debited,
a rider's payment arriving) is positive, money out (a refund, a payout) negative, in the
file as in the ledger. File amounts are decimal strings in the currency's major unit
(``1500.00``), converted exactly (:mod:`.money`).
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from .errors import PaymentsError
from .ledger import Ledger, TransferRecord
from .money import MoneyError, to_major, to_minor
from .money import currency as check_currency

REQUIRED = ("date", "reference", "amount", "currency")


class SettlementFileError(PaymentsError):
    """A settlement file that cannot be read; the message names the line and column."""

    code = "bad_settlement_file"
    status = 400


@dataclass(frozen=True)
class SettlementRow:
    line: int
    date: str
    reference: str
    amount: int  # minor units, signed
    currency: str
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Mismatch:
    kind: str
    reference: str
    currency: str
    file_amount: int | None = None
    ledger_amount: int | None = None
    line: int | None = None  # in the file
    transfer_id: str | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if v not in (None, "")}
        for key in ("file_amount", "ledger_amount"):
            if key in out:
                out[key.replace("amount", "major")] = to_major(out[key], self.currency)
        return out


@dataclass
class Report:
    day: str
    accounts: list[str]
    matched: int = 0
    file_rows: int = 0
    ledger_transfers: int = 0
    other_dates_in_file: int = 0
    file_total: dict[str, int] = field(default_factory=dict)
    ledger_total: dict[str, int] = field(default_factory=dict)
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def as_dict(self) -> dict[str, Any]:
        return {
            "day": self.day, "accounts": self.accounts, "ok": self.ok, "matched": self.matched,
            "file_rows": self.file_rows, "ledger_transfers": self.ledger_transfers,
            "other_dates_in_file": self.other_dates_in_file,
            "file_total": self.file_total, "ledger_total": self.ledger_total,
            "mismatches": [m.as_dict() for m in self.mismatches],
            "by_kind": dict(Counter(m.kind for m in self.mismatches)),
        }  # fmt: skip


def read_settlement(source: str | Path, *, text: str | None = None) -> list[SettlementRow]:
    """The rows of a settlement CSV (a file, or ``text``); SettlementFileError names the
    line of the first one that cannot be read."""
    if text is None:
        try:
            text = Path(source).read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise SettlementFileError(f"cannot read {source}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise SettlementFileError(f"{source} is not UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise SettlementFileError(
            f"{source}: the header lacks {', '.join(missing)} (it needs {', '.join(REQUIRED)})"
        )
    reader.fieldnames = header
    rows = []
    for n, raw in enumerate(reader, start=2):
        if None in raw:
            raise SettlementFileError(f"{source} line {n}: more fields than the header has")
        row = {k: (v or "").strip() for k, v in raw.items()}
        try:
            day = date.fromisoformat(row["date"]).isoformat()
        except ValueError:
            raise SettlementFileError(
                f"{source} line {n}: date {row['date']!r} is not YYYY-MM-DD"
            ) from None
        if not row["reference"]:
            raise SettlementFileError(f"{source} line {n}: the reference is empty")
        try:
            code = check_currency(row["currency"])
            value = row["amount"]
            sign = -1 if value.startswith("-") else 1
            amount = sign * to_minor(value.lstrip("-+"), code)
        except MoneyError as exc:
            raise SettlementFileError(f"{source} line {n}: {exc}") from None
        extra = {k: v for k, v in row.items() if k not in REQUIRED}
        rows.append(SettlementRow(n, day, row["reference"], amount, code, extra))
    return rows


def day_bounds(day: date, tz: ZoneInfo) -> tuple[int, int]:
    """The local day as [start, end) in microseconds since the epoch."""
    start = datetime.combine(day, time(0), tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tz)
    return int(start.timestamp()) * 1_000_000, int(end.timestamp()) * 1_000_000


def _signed(t: TransferRecord, accounts: set[str]) -> int:
    amount = t.posted_amount if t.state == "posted" else t.amount
    return amount if t.debit in accounts else -amount


def reconcile(
    ledger: Ledger,
    day: date,
    rows: list[SettlementRow],
    *,
    accounts: list[str] | None = None,
    timezone: str = "Asia/Phnom_Penh",
) -> Report:
    """Compare one local day (see the module's docstring). ``accounts``: the settlement
    accounts the file covers (default: every settlement account but ``cash:`` ones)."""
    tz = ZoneInfo(timezone)
    if accounts is None:
        accounts = [
            a.id for a in ledger.accounts(kind="settlement") if not a.id.startswith("cash:")
        ]
    names = set(accounts)
    start, end = day_bounds(day, tz)
    ours = [
        t for a in sorted(names) for t in ledger.transfers(start, end, account=a)
        if t.reference and t.state != "voided"
    ]  # fmt: skip
    ours = list({t.id: t for t in ours}.values())  # a transfer between two of them: once
    report = Report(day.isoformat(), sorted(names))
    today = [r for r in rows if r.date == day.isoformat()]
    report.file_rows = len(today)
    report.other_dates_in_file = len(rows) - len(today)
    report.ledger_transfers = len(ours)
    file_by_ref: dict[str, list[SettlementRow]] = defaultdict(list)
    for r in today:
        file_by_ref[r.reference].append(r)
        report.file_total[r.currency] = report.file_total.get(r.currency, 0) + r.amount
    ledger_by_ref: dict[str, list[TransferRecord]] = defaultdict(list)
    for t in ours:
        ledger_by_ref[t.reference or ""].append(t)
        if t.state == "posted":
            amount = _signed(t, names)
            report.ledger_total[t.currency] = report.ledger_total.get(t.currency, 0) + amount
    mismatches = report.mismatches
    for ref, found in sorted(file_by_ref.items()):
        for dup in found[1:]:
            mismatches.append(Mismatch("duplicate_in_file", ref, dup.currency, dup.amount,
                                       line=dup.line, detail=f"also on line {found[0].line}"))  # fmt: skip
    for ref, found in sorted(ledger_by_ref.items()):
        for dup in found[1:]:
            mismatches.append(Mismatch("duplicate_in_ledger", ref, dup.currency,
                                       ledger_amount=_signed(dup, names), transfer_id=dup.id,
                                       detail=f"also transfer {found[0].id}"))  # fmt: skip
    elsewhere_ledger = {
        t.reference: t
        for t in ledger.by_reference(sorted(set(file_by_ref) - set(ledger_by_ref)))
        if t.state != "voided" and (t.debit in names or t.credit in names)
    }
    elsewhere_file = {r.reference: r for r in rows if r.date != day.isoformat()}
    for ref in sorted(set(file_by_ref) | set(ledger_by_ref)):
        f = file_by_ref.get(ref, [None])[0]
        t = ledger_by_ref.get(ref, [None])[0]
        if f is not None and t is None:
            other = elsewhere_ledger.get(ref)
            if other is not None:
                when = datetime.fromtimestamp(other.at / 1e6, tz).date().isoformat()
                mismatches.append(Mismatch("other_day", ref, f.currency, f.amount,
                                           _signed(other, names), f.line, other.id,
                                           f"the ledger has it on {when}"))  # fmt: skip
            else:
                mismatches.append(Mismatch("missing_in_ledger", ref, f.currency, f.amount,
                                           line=f.line))  # fmt: skip
            continue
        assert t is not None
        ledger_amount = _signed(t, names)
        if f is None:
            other_row = elsewhere_file.get(ref)
            if other_row is not None:
                mismatches.append(Mismatch("other_day", ref, t.currency, other_row.amount,
                                           ledger_amount, other_row.line, t.id,
                                           f"the file has it on {other_row.date}"))  # fmt: skip
            else:
                mismatches.append(Mismatch("missing_in_file", ref, t.currency,
                                           ledger_amount=ledger_amount, transfer_id=t.id))  # fmt: skip
            continue
        if t.state == "pending":
            mismatches.append(Mismatch("pending_in_ledger", ref, t.currency, f.amount,
                                       ledger_amount, f.line, t.id, "not yet posted"))  # fmt: skip
        elif f.currency != t.currency:
            mismatches.append(Mismatch("currency_differs", ref, t.currency, f.amount,
                                       ledger_amount, f.line, t.id,
                                       f"the file says {f.currency}"))  # fmt: skip
        elif f.amount != ledger_amount:
            mismatches.append(Mismatch("amount_differs", ref, t.currency, f.amount,
                                       ledger_amount, f.line, t.id,
                                       f"off by {to_major(f.amount - ledger_amount, t.currency)}"))  # fmt: skip
        else:
            report.matched += 1
    return report
