"""Fares: what a rider pays for a day of journeys, and why each amount.

A :class:`Tariff` (one currency) has products — ``flat`` (one price), ``distance`` (a
boarding charge and a price per started km between the tap-in and tap-out stops, up to a
maximum) and ``zone`` (a price by the number of zones travelled) — and rules over a rider's
day: free transfers within a window, daily and weekly caps, and concessions (students,
elders ...: a percentage off every fare and every cap).

Each journey's charge is worked out in this order, every step kept for the explanation:

1. **base**: the product's fare for the journey; a journey with a tap-in and no tap-out
   (or a tap-out with no tap-in) is *incomplete* and pays the product's maximum; an *open*
   one (tapped in, not yet out, during the day) is charged the maximum provisionally.
2. **concession**: ``fare × (100 − percent) // 100`` (rounded down: in the rider's favour).
3. **transfer**: a journey that starts within ``transfer_window_s`` of the start of the
   last journey that paid in full (at most ``max_transfers`` times) pays only what it costs
   above that journey (nothing when it costs no more).
4. **daily cap**: what is charged in a day never passes the cap (after concession).
5. **weekly cap**: what is charged from Monday on never passes it (ISO week, local time).

Pure computation on integers of the currency's minor unit; no I/O. A day of a million
taps is priced in seconds (benchmarks/payments.py).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from .errors import PaymentsError
from .money import MoneyError, show, to_minor
from .money import currency as check_currency

KINDS = ("flat", "distance", "zone")
# the sample district's tariff: its stops, illustrative prices (docs/services/payments.md)
SAMPLE_TARIFF = Path(__file__).with_name("tariff-phnom-penh.json")


class FareError(PaymentsError):
    """A tariff or a tap that cannot be priced; the message names the field."""

    code = "bad_fare_input"
    status = 400


@dataclass(frozen=True)
class Stop:
    id: str
    name: str = ""
    zone: int = 1
    lon: float = 0.0
    lat: float = 0.0


@dataclass(frozen=True)
class Product:
    id: str
    kind: Literal["flat", "distance", "zone"]
    base: int  # flat: the fare; distance: the boarding charge; zone: unused
    operator: str  # the account fares of this product are credited to
    per_km: int = 0  # distance: per started km
    max_fare: int = 0  # distance: the most a journey costs (and an incomplete one)
    zone_prices: tuple[int, ...] = ()  # zone: by zones travelled, 1, 2, 3 ... (the last: more)
    name: str = ""

    @property
    def maximum(self) -> int:
        """What an incomplete journey pays."""
        if self.kind == "flat":
            return self.base
        if self.kind == "distance":
            return self.max_fare
        return max(self.zone_prices)


@dataclass(frozen=True)
class Tariff:
    currency: str
    products: Mapping[str, Product]
    stops: Mapping[str, Stop]
    transfer_window_s: int = 3600
    max_transfers: int = 2
    daily_cap: int | None = None
    weekly_cap: int | None = None
    concessions: Mapping[str, int] = field(default_factory=dict)  # name -> percent off
    max_journey_s: int = 3 * 3600  # a tap-out later than this after its tap-in: not its end
    timezone: str = "Asia/Phnom_Penh"

    def zone_info(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def product(self, product_id: str) -> Product:
        try:
            return self.products[product_id]
        except KeyError:
            known = ", ".join(sorted(self.products))
            raise FareError(f"unknown product {product_id!r}; this tariff has: {known}") from None

    def stop(self, stop_id: str) -> Stop:
        key = stop_key(stop_id)
        try:
            return self.stops[key]
        except KeyError:
            raise FareError(f"unknown stop {stop_id!r} (not in the tariff's stops)") from None

    def concession(self, name: str) -> int:
        if not name:
            return 0
        try:
            return self.concessions[name]
        except KeyError:
            known = ", ".join(sorted(self.concessions)) or "none"
            raise FareError(f"unknown concession {name!r}; this tariff has: {known}") from None

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Tariff:
        """A tariff as JSON holds it: amounts as decimal strings of the currency
        (``"1500"``, ``"1.25"``), the rest as in the dataclasses."""
        if not isinstance(doc, Mapping):
            raise FareError("a tariff is a JSON object")
        try:
            code = check_currency(doc.get("currency", ""))
            money = lambda v, what: _money(v, code, what)  # noqa: E731
            stops = {}
            for s in doc.get("stops", []):
                stop = Stop(
                    id=stop_key(str(s["id"])), name=str(s.get("name", "")),
                    zone=int(s.get("zone", 1)), lon=float(s.get("lon", 0.0)),
                    lat=float(s.get("lat", 0.0)),
                )  # fmt: skip
                stops[stop.id] = stop
            products = {}
            for p in doc.get("products", []):
                kind = p.get("kind")
                if kind not in KINDS:
                    raise FareError(f"product {p.get('id')!r}: kind must be one of {KINDS}")
                pid = str(p["id"])
                product = Product(
                    id=pid, kind=kind, name=str(p.get("name", pid)),
                    operator=str(p.get("operator") or f"operator:{pid}"),
                    base=money(p.get("base", "0"), f"product {pid} base"),
                    per_km=money(p.get("per_km", "0"), f"product {pid} per_km"),
                    max_fare=money(p.get("max_fare", "0"), f"product {pid} max_fare"),
                    zone_prices=tuple(
                        money(v, f"product {pid} zone_prices") for v in p.get("zone_prices", [])
                    ),
                )  # fmt: skip
                if kind == "zone" and not product.zone_prices:
                    raise FareError(f"product {pid}: a zone product needs zone_prices")
                if kind == "distance" and product.max_fare < product.base:
                    raise FareError(f"product {pid}: max_fare is below its base")
                products[pid] = product
            if not products:
                raise FareError("a tariff needs at least one product")
            concessions = {str(k): int(v) for k, v in (doc.get("concessions") or {}).items()}
            for name, pct in concessions.items():
                if not 0 <= pct <= 100:
                    raise FareError(f"concession {name!r}: percent off must be 0 to 100")
            cap = lambda key: None if doc.get(key) in (None, "") else money(doc[key], key)  # noqa: E731
            tariff = cls(
                currency=code, products=products, stops=stops,
                transfer_window_s=int(doc.get("transfer_window_s", 3600)),
                max_transfers=int(doc.get("max_transfers", 2)),
                daily_cap=cap("daily_cap"), weekly_cap=cap("weekly_cap"),
                concessions=concessions, max_journey_s=int(doc.get("max_journey_s", 3 * 3600)),
                timezone=str(doc.get("timezone", "Asia/Phnom_Penh")),
            )  # fmt: skip
            tariff.zone_info()
        except FareError:
            raise
        except MoneyError as exc:
            raise FareError(str(exc)) from None
        except (KeyError, TypeError, ValueError) as exc:
            raise FareError(f"bad tariff: {type(exc).__name__} {exc}") from None
        return tariff


def load_tariff(path: str | Path | None = None) -> Tariff:
    """The tariff in a JSON file (the sample district's when none is named)."""
    p = Path(path) if path else SAMPLE_TARIFF
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FareError(f"cannot read the tariff {p}: {exc.strerror}") from None
    except ValueError as exc:
        raise FareError(f"the tariff {p} is not JSON: {exc}") from None
    return Tariff.from_dict(doc)


def _money(value: Any, code: str, what: str) -> int:
    try:
        return to_minor(value if not isinstance(value, int) else str(value), code)
    except MoneyError as exc:
        raise FareError(f"{what}: {exc}") from None


def stop_key(stop_id: str) -> str:
    """``urn:ngsi-ld:GtfsStop:wat-phnom`` and ``wat-phnom`` name the same stop."""
    return stop_id.rsplit(":", 1)[-1] if stop_id.startswith("urn:") else stop_id


# -- taps and charges ---------------------------------------------------------------------
@dataclass(frozen=True)
class Tap:
    """One tap at a reader: ``at`` in seconds since the epoch (UTC)."""

    rider: str
    at: int
    stop: str
    product: str
    kind: Literal["in", "out"] = "in"
    concession: str = ""


@dataclass
class Charge:
    """One journey's charge; ``steps`` are ``(rule, amount after it, detail)``."""

    rider: str
    product: str
    start: int  # the tap-in's time (or the lone tap-out's)
    end: int | None
    from_stop: str
    to_stop: str | None
    amount: int
    steps: list[tuple[str, int, str]]
    status: Literal["complete", "incomplete", "open", "single"] = "complete"
    transfer: bool = False

    def explain(self, currency: str) -> str:
        """``base 1,500 KHR (flat); transfer within 60 min of 08:02: free`` ..."""
        parts = []
        for rule, amount, detail in self.steps:
            parts.append(f"{rule} {show(amount, currency)}" + (f" ({detail})" if detail else ""))
        return "; ".join(parts)

    def as_dict(self, currency: str, tz: ZoneInfo | None = None) -> dict[str, Any]:
        def when(t: int | None) -> str | None:
            if t is None:
                return None
            return datetime.fromtimestamp(t, tz or UTC).isoformat()

        return {
            "product": self.product, "from": self.from_stop, "to": self.to_stop,
            "start": when(self.start), "end": when(self.end), "status": self.status,
            "transfer": self.transfer, "amount": self.amount, "currency": currency,
            "steps": [{"rule": r, "amount": a, "detail": d} for r, a, d in self.steps],
            "explanation": self.explain(currency),
        }  # fmt: skip


@dataclass
class Day:
    """A rider's charges for one local day, and the week's total before it."""

    rider: str
    date: str
    charges: list[Charge]
    week_before: int = 0

    @property
    def total(self) -> int:
        return sum(c.amount for c in self.charges)


def distance_m(a: Stop, b: Stop) -> int:
    """Great-circle metres between two stops (haversine)."""
    lat1, lat2 = math.radians(a.lat), math.radians(b.lat)
    dlat, dlon = lat2 - lat1, math.radians(b.lon - a.lon)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return round(2 * 6_371_000 * math.asin(math.sqrt(h)))


def base_fare(tariff: Tariff, product: Product, start: str, end: str | None) -> tuple[int, str]:
    """A complete journey's fare before the day's rules, and how it was found."""
    if product.kind == "flat":
        return product.base, "flat"
    if end is None:
        return product.maximum, "no tap-out: maximum fare"
    stops = tariff.stops
    a = stops.get(start) or tariff.stop(start)
    b = stops.get(end) or tariff.stop(end)
    if product.kind == "distance":
        km = math.ceil(distance_m(a, b) / 1000) or 1
        fare = product.base + product.per_km * km
        if fare >= product.max_fare:
            return product.max_fare, f"{km} km, at the maximum"
        return fare, f"{km} km"
    zones = abs(a.zone - b.zone) + 1
    fare = product.zone_prices[min(zones, len(product.zone_prices)) - 1]
    return fare, f"{zones} zone{'s' if zones > 1 else ''}"


def journeys(tariff: Tariff, taps: list[Tap], *, final: bool) -> list[Charge]:
    """One rider's taps (sorted by time) paired into journeys, each with its base fare
    only. A flat product needs no tap-out (one it gets is ignored); a distance or zone
    product pairs a tap-in with the next tap-out of the same product within
    ``max_journey_s``. A trailing unpaired tap-in is ``open`` unless ``final``."""
    out: list[Charge] = []
    open_: Tap | None = None

    def close(tap_in: Tap, tap_out: Tap | None, status: str) -> None:
        product = tariff.product(tap_in.product)
        if status == "complete":
            fare, why = base_fare(tariff, product, tap_in.stop, tap_out.stop if tap_out else None)
        else:
            fare = product.maximum
            why = "open: the maximum until the tap-out" if status == "open" else (
                "no tap-out: maximum fare" if tap_in.kind == "in" else "no tap-in: maximum fare"
            )  # fmt: skip
        out.append(
            Charge(
                rider=tap_in.rider, product=product.id, start=tap_in.at,
                end=tap_out.at if tap_out else None, from_stop=tap_in.stop,
                to_stop=tap_out.stop if tap_out else None, amount=fare,
                steps=[("base", fare, why)], status=status,  # type: ignore[arg-type]
            )
        )  # fmt: skip

    stops = tariff.stops
    for tap in taps:
        product = tariff.product(tap.product)
        if tap.stop not in stops:
            tariff.stop(tap.stop)  # FareError unless it is a stop's URN
        if product.kind == "flat":
            if tap.kind == "in":
                if open_ is not None:
                    close(open_, None, "incomplete")
                    open_ = None
                close(tap, None, "complete")
            continue
        if tap.kind == "in":
            if open_ is not None:
                close(open_, None, "incomplete")
            open_ = tap
            continue
        if (
            open_ is not None
            and open_.product == tap.product
            and tap.at - open_.at <= tariff.max_journey_s
        ):
            close(open_, tap, "complete")
            open_ = None
            continue
        if open_ is not None:
            close(open_, None, "incomplete")
            open_ = None
        close(tap, None, "incomplete")  # a tap-out with no tap-in
    if open_ is not None:
        close(open_, None, "incomplete" if final else "open")
    return out


def price_day(
    tariff: Tariff,
    taps: list[Tap],
    *,
    week_before: int = 0,
    final: bool = True,
) -> list[Charge]:
    """One rider's charges for one local day (taps of that day, any order), with the
    week's charges before that day (for the weekly cap)."""
    ordered = sorted(taps, key=lambda t: (t.at, t.kind != "in"))
    charges = journeys(tariff, ordered, final=final)
    concession = ordered[-1].concession if ordered else ""
    pct = tariff.concession(concession)
    daily = _reduced(tariff.daily_cap, pct)
    weekly = _reduced(tariff.weekly_cap, pct)
    tz = tariff.zone_info()
    spent = 0
    anchor: Charge | None = None
    anchor_fare = 0
    transfers = 0
    for c in charges:
        amount = c.amount
        if pct:
            amount = amount * (100 - pct) // 100
            c.steps.append(("concession", amount, f"{concession} {pct}% off"))
        if (
            anchor is not None
            and c.start - anchor.start <= tariff.transfer_window_s
            and transfers < tariff.max_transfers
        ):
            transfers += 1
            c.transfer = True
            clock = _clock(anchor.start, tz)
            window = f"within {tariff.transfer_window_s // 60} min of the {clock} journey"
            if amount <= anchor_fare:
                amount = 0
                c.steps.append(("transfer", 0, f"{window}: free"))
            else:
                amount -= anchor_fare
                c.steps.append(("transfer", amount, f"{window}: pays the difference"))
        else:
            anchor, anchor_fare, transfers = c, amount, 0
        if daily is not None and spent + amount > daily:
            amount = max(0, daily - spent)
            c.steps.append(("daily cap", amount, f"capped at {show(daily, tariff.currency)}"))
        if weekly is not None and week_before + spent + amount > weekly:
            amount = max(0, weekly - week_before - spent)
            c.steps.append(("weekly cap", amount, f"capped at {show(weekly, tariff.currency)}"))
        c.amount = amount
        spent += amount
    return charges


@lru_cache(maxsize=8192)
def _clock(at: int, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(at, tz).strftime("%H:%M")


def _reduced(cap: int | None, pct: int) -> int | None:
    return None if cap is None else cap * (100 - pct) // 100


def single_fare(
    tariff: Tariff, product_id: str, start: str, end: str | None, concession: str = ""
) -> Charge:
    """A journey bought on its own (cash, a scheme's QR at the stop): the product's fare
    to ``end`` (the maximum with none), the concession; no transfers, no caps."""
    product = tariff.product(product_id)
    tariff.stop(start)
    fare, why = base_fare(tariff, product, start, end)
    charge = Charge(
        rider="", product=product.id, start=0, end=None, from_stop=start, to_stop=end,
        amount=fare, steps=[("base", fare, why)], status="single",
    )  # fmt: skip
    pct = tariff.concession(concession)
    if pct:
        charge.amount = fare * (100 - pct) // 100
        charge.steps.append(("concession", charge.amount, f"{concession} {pct}% off"))
    return charge


def local_day(tariff: Tariff, at: int) -> tuple[str, str]:
    """The local date of ``at`` and the Monday of its ISO week (both ``YYYY-MM-DD``)."""
    day = datetime.fromtimestamp(at, tariff.zone_info()).date()
    return day.isoformat(), (day - timedelta(days=day.weekday())).isoformat()


def price_taps(tariff: Tariff, taps: Iterable[Tap], *, final: bool = True) -> list[Day]:
    """Every rider's every day, in order, with the weekly cap carried across the days
    of a week (a city day of a million taps: benchmarks/payments.py)."""
    tz = tariff.zone_info()
    by_rider: dict[str, list[Tap]] = defaultdict(list)
    for tap in taps:
        by_rider[tap.rider].append(tap)
    days: list[Day] = []
    cache: dict[int, tuple[str, str]] = {}
    for rider, mine in by_rider.items():
        by_day: dict[tuple[str, str], list[Tap]] = defaultdict(list)
        for tap in mine:
            slot = tap.at // 900  # offsets are whole quarter hours: one lookup a quarter
            key = cache.get(slot)
            if key is None:
                d = datetime.fromtimestamp(slot * 900, tz).date()
                key = cache[slot] = (d.isoformat(), (d - timedelta(days=d.weekday())).isoformat())
            by_day[key].append(tap)
        week_spent: dict[str, int] = defaultdict(int)
        for (date, monday), day_taps in sorted(by_day.items()):
            charges = price_day(tariff, day_taps, week_before=week_spent[monday], final=final)
            day = Day(rider, date, charges, week_spent[monday])
            week_spent[monday] += day.total
            days.append(day)
    return days
