"""The payments service's page of the operations dashboard, from what it publishes into the
hub: one ``FareCollectionObserved`` per stop and local day (:mod:`.model`).

The ledger stays out of the hub (financial data, in tables of its own, governed as
``FareLedger``), and so out of this page: a viewer sees what the hub lets it read, and the
summaries carry no rider. Whether the books balance is ``cityos pay ledger check``'s.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from cityos.services.base import Page, Panel

from .model import CASHLESS, SUMMARY_TYPE
from .money import MoneyError, exponent, show

MAX_SUMMARIES = 1000  # the newest published (stops × days)
DAYS_CHARTED = 14
MEDIA = {"ticket": "Signed ticket (QR)", "account": "Wallet account",
         "emvco": "Scheme QR (EMVCo)", "cash": "Cash"}  # fmt: skip
ATTRS = ["refStop", "dateObservedFrom", "passengerCount", "cashlessCount", "revenue",
         "currency", "byMedium"]  # fmt: skip
NOTHING = (
    "No FareCollectionObserved in the hub yet. Readers' taps reach the ledger through "
    "POST /services/payments/taps; under `cityos serve` the service then publishes each "
    "stop's day into the hub every services.payments.publish_interval_s seconds."
)


def _day(e: dict[str, Any]) -> date | None:
    """The local day a summary covers (its ``dateObservedFrom``, local midnight)."""
    value = e.get("dateObservedFrom")
    if isinstance(value, dict):
        value = value.get("@value")
    try:
        return datetime.fromisoformat(value).date() if isinstance(value, str) else None
    except ValueError:
        return None


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _stop(e: dict[str, Any]) -> str:
    ref = e.get("refStop")
    return str(ref).rsplit(":", 1)[-1] if ref else e["id"].split(":")[-2]


def _major(minor: int, currency: str) -> tuple[float | int, str]:
    """An amount for people (value, unit): the currency's major unit when it is known."""
    try:
        exp = exponent(currency)
    except MoneyError:
        return minor, f"{currency} (minor units)"
    value = minor / 10**exp
    return (int(value) if value == int(value) else value), currency


def _money(minor: int, currency: str) -> str:
    try:
        return show(minor, currency)
    except MoneyError:
        return f"{minor} {currency} (minor units)"


def _metrics(day: date, rows: list[dict[str, Any]]) -> Panel:
    riders = sum(_int(e.get("passengerCount")) for e in rows)
    cashless = sum(_int(e.get("cashlessCount")) for e in rows)
    out: list[dict[str, Any]] = [
        {"label": "Boardings", "value": riders, "hint": f"{day}, at {len(rows)} stops"},
    ]
    revenue: Counter[str] = Counter()
    for e in rows:
        revenue[str(e.get("currency") or "?")] += _int(e.get("revenue"))
    for currency, minor in sorted(revenue.items()):
        value, unit = _major(minor, currency)
        out.append({"label": "Fare revenue", "value": value, "unit": unit,
                    "hint": "after transfers, caps and concessions"})  # fmt: skip
    if riders:
        out.append({"label": "Cashless share", "value": round(100 * cashless / riders, 1),
                    "unit": "%", "hint": f"{cashless} of {riders} boardings"})  # fmt: skip
    return Panel(f"Fares on {day}", "metrics", out)


def _media(rows: list[dict[str, Any]]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for e in rows:
        by = e.get("byMedium")
        for medium, n in by.items() if isinstance(by, dict) else ():
            counts[str(medium)] += _int(n)
    return counts


def _media_panels(day: date, counts: Counter[str]) -> list[Panel]:
    """Boardings by how they were paid: a bar chart and a table."""
    if not counts:
        return []
    order = [m for m in MEDIA if m in counts] + sorted(set(counts) - set(MEDIA))
    names = [MEDIA.get(m, m) for m in order]
    total = sum(counts.values()) or 1
    chart = {"x": names, "series": [{"name": str(day), "values": [counts[m] for m in order]}],
             "unit": "boardings", "kind": "bar"}  # fmt: skip
    table = {
        "columns": ["Paid by", "Cashless", "Boardings", "Share (%)"],
        "rows": [[MEDIA.get(m, m), m in CASHLESS, counts[m], round(100 * counts[m] / total, 1)]
                 for m in order],
    }  # fmt: skip
    return [
        Panel(f"Boardings by payment medium, {day}", "chart", chart),
        Panel("Payment media", "table", table),
    ]


def _days_chart(summaries: list[tuple[date, dict[str, Any]]]) -> Panel | None:
    """Boardings per day, all and cashless; None with fewer than two days."""
    riders: Counter[date] = Counter()
    cashless: Counter[date] = Counter()
    for day, e in summaries:
        riders[day] += _int(e.get("passengerCount"))
        cashless[day] += _int(e.get("cashlessCount"))
    days = sorted(riders)[-DAYS_CHARTED:]
    if len(days) < 2:
        return None
    data = {"x": [str(d) for d in days], "unit": "boardings", "kind": "bar",
            "series": [{"name": "All", "values": [riders[d] for d in days]},
                       {"name": "Cashless", "values": [cashless[d] for d in days]}]}  # fmt: skip
    return Panel("Boardings per day", "chart", data, wide=True)


def _stops(rows: list[dict[str, Any]]) -> Panel:
    body = []
    for e in sorted(rows, key=lambda e: (-_int(e.get("passengerCount")), _stop(e))):
        riders, cashless = _int(e.get("passengerCount")), _int(e.get("cashlessCount"))
        share = round(100 * cashless / riders, 1) if riders else None
        money = _money(_int(e.get("revenue")), str(e.get("currency") or "?"))
        body.append([_stop(e), riders, share, money])
    columns = ["Stop", "Boardings", "Cashless (%)", "Revenue"]
    return Panel("Stops", "table", {"columns": columns, "rows": body}, wide=True)


def panels(client: Any) -> list[Panel]:
    """The page, for the viewer's tenant: the latest day published, and the days before."""
    total = client.count(type=SUMMARY_TYPE)
    found = client.query(type=SUMMARY_TYPE, attrs=ATTRS, limit=MAX_SUMMARIES,
                         offset=max(0, total - MAX_SUMMARIES), fmt="keyValues")  # fmt: skip
    summaries = [(d, e) for e in found if (d := _day(e)) is not None]
    if not summaries:
        return [Panel("Payments", "text", NOTHING)]
    latest = max(d for d, _ in summaries)
    rows = [e for d, e in summaries if d == latest]
    out: Iterable[Panel | None] = (
        _metrics(latest, rows),
        *_media_panels(latest, _media(rows)),
        _days_chart(summaries),
        _stops(rows),
    )
    return [p for p in out if p is not None]


def pages() -> list[Page]:
    return [
        Page(
            slug="payments",
            title="Payments",
            panels=panels,
            watch=(SUMMARY_TYPE,),
            reads=(SUMMARY_TYPE,),
            order=60,
        )
    ]
