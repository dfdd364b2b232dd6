"""Fares through the day (the payments service): riders tap at the district's bus stops
(its ``GtfsStop`` entities, which the tariff prices), each tap paid through the service's
fare collector and double-entry ledger — a wallet card, a scheme's QR (KHQR) or cash at the
stop — and every hour the service's publishing step writes each stop's day so far into the
hub as ``FareCollectionObserved``.

Who pays how is this simulation's assumption, not a measurement: :data:`MEDIA`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cityos.services.payments.errors import PaymentsError
from cityos.services.payments.ledger import Transfer
from cityos.services.payments.model import SUMMARY_TYPE
from cityos.services.payments.riders import pseudonym
from cityos.services.payments.runtime import Payments, PaymentsSettings, payments_of
from cityos.services.payments.service import publish_once
from cityos.services.payments.taps import TapRequest
from cityos.services.runtime import context_for

from .context import DAY, HOUR_S, Day, Event

RIDERS = 500
# the riders' means of payment (an assumption of this simulation): a wallet card, a
# scheme's QR code (KHQR) at the stop, cash at the stop
MEDIA = {"account": 0.45, "emvco": 0.25, "cash": 0.30}
TOP_UP = 2_000_000  # minor units (20,000 riel) on each wallet at dawn
SEED = 7
TOPUP_ACCOUNT = "settlement:topup"
QR_ACCOUNT = "settlement:khqr"
CASH_ACCOUNT = "cash:city-bus"


@dataclass(frozen=True)
class Journey:
    rider: int
    medium: str
    product: str
    start: int  # seconds since the epoch
    end: int
    origin: str
    destination: str


def plan_journeys(stops: list[str], midnight: int, riders: int = RIDERS) -> list[Journey]:
    """The day's journeys: one to three per rider (a morning or midday first departure,
    the next ones hours later), a flat-fare bus or, one in five, the distance-priced rapid
    bus; seeded, so every run rides the same day."""
    rng = np.random.default_rng(SEED)
    media = list(MEDIA)
    out = []
    for r in range(riders):
        medium = media[int(rng.choice(len(media), p=list(MEDIA.values())))]
        hour = float(rng.normal(7.5, 1.0) if rng.random() < 0.6 else rng.normal(12.0, 2.5))
        for _ in range(int(rng.choice([1, 2, 3], p=[0.3, 0.6, 0.1]))):
            hour = min(max(hour, 5.0), 21.5)
            a, b = rng.choice(len(stops), size=2, replace=False)
            start = midnight + int(hour * HOUR_S)
            ride = int(rng.uniform(10, 40) * 60)
            product = "brt" if rng.random() < 0.2 else "bus"
            out.append(Journey(r, medium, product, start, start + ride, stops[a], stops[b]))
            hour += float(rng.uniform(2, 9))
            if hour > 21.5:
                break
    return out


@dataclass
class FarePhase:
    day: Day
    service_obj: Any  # the registered payments Service
    name: str = "fares"
    service: str = "payments"
    title: str = "Fares"
    journeys: list[Journey] = field(default_factory=list)
    parts: Payments | None = None
    ctx: Any = None
    taps: int = 0
    refused: int = 0
    published: int = 0

    def events(self) -> list[Event]:
        return [Event(0.0, self.open)] + [
            Event((h + 1) * HOUR_S, lambda h=h: self.hour(h)) for h in range(5, 23)
        ]

    def _context(self) -> Any:
        """The service's context on the day's hub; its key files beside the demo's
        database unless configured elsewhere (not in the working directory)."""
        ctx = context_for(self.service_obj, self.day.hub)
        s, default = ctx.settings, PaymentsSettings()
        files = {
            "ticket_key_path": "payments-ticket.pem",
            "pseudonym_key_path": "payments-pseudonym.key",
        }
        moved = {
            name: str(self.day.folder / file)
            for name, file in files.items()
            if getattr(s, name) == getattr(default, name)
        }
        ctx.settings = dataclasses.replace(s, **moved)
        return ctx

    def open(self) -> str:
        self.ctx = self._context()
        self.parts = payments_of(self.ctx)
        tariff = self.parts.tariff
        found = self.day.client().query(type="GtfsStop", limit=1000, fmt="keyValues")
        stops = sorted(s["id"].rsplit(":", 1)[-1] for s in found)
        stops = [s for s in stops if s in tariff.stops]
        midnight = int(self.day.clock.midnight.timestamp())
        self.journeys = plan_journeys(stops, midnight)
        ledger = self.parts.ledger(self.ctx.settings.tenant)
        for account in (TOPUP_ACCOUNT, QR_ACCOUNT, CASH_ACCOUNT):
            ledger.open_account(account, tariff.currency, kind="settlement", overdraft_limit=None)
        self.parts.collector(self.ctx.settings.tenant).open_operators()
        wallets = sorted({j.rider for j in self.journeys if j.medium == "account"})
        for r in wallets:
            ledger.open_account(self._wallet(r), tariff.currency)
        ledger.transfer_batch(
            Transfer(TOPUP_ACCOUNT, self._wallet(r), TOP_UP, tariff.currency, id=f"top-up:{r}",
                     at=midnight * 1_000_000)
            for r in wallets
        )  # fmt: skip
        return (f"Fares: {len(stops)} stops priced, {len(self.journeys):,} journeys to ride "
                f"({len(wallets)} wallets topped up)")  # fmt: skip

    def _wallet(self, rider: int) -> str:
        assert self.parts is not None
        return pseudonym(self._card(rider), self.parts.pseudonym_key)

    @staticmethod
    def _card(rider: int) -> str:
        return f"6200{rider:012d}"

    def _requests(self, j: Journey, n: int) -> list[TapRequest]:
        reader = f"stop-reader:{j.origin}"
        if j.medium == "account":
            taps = [TapRequest(f"{reader}:{n}", j.origin, j.product, j.start, "in",
                               "account", rider=self._card(j.rider))]  # fmt: skip
            if j.product == "brt":  # a distance fare: tapped out at the destination
                taps.append(TapRequest(f"stop-reader:{j.destination}:{n}", j.destination,
                                       "brt", j.end, "out", "account",
                                       rider=self._card(j.rider)))  # fmt: skip
            return taps
        account = QR_ACCOUNT if j.medium == "emvco" else CASH_ACCOUNT
        reference = f"KHQR-{DAY:%Y%m%d}-{n:06d}" if j.medium == "emvco" else None
        return [TapRequest(f"{reader}:{n}", j.origin, j.product, j.start, "in", j.medium,
                           account=account, to_stop=j.destination, reference=reference)]  # fmt: skip

    def hour(self, h: int) -> str | None:
        """The journeys that start in hour ``h`` paid, then each stop's day published."""
        assert self.parts is not None and self.ctx is not None
        start = int(self.day.clock.at(h * HOUR_S).timestamp())
        collector = self.parts.collector(self.ctx.settings.tenant)
        batch = [(n, j) for n, j in enumerate(self.journeys) if start <= j.start < start + 3600]
        requests = sorted((t for n, j in batch for t in self._requests(j, n)), key=lambda t: t.at)
        for req in requests:
            try:
                collector.tap(req, now=req.at)
                self.taps += 1
            except PaymentsError:  # a refused tap (no money left): counted, the day goes on
                self.refused += 1
        self.published = publish_once(self.ctx, DAY.isoformat())
        return None

    def totals(self) -> dict[str, int]:
        """Boardings and revenue as the hub holds them (FareCollectionObserved)."""
        found = self.day.client(None).query(type=SUMMARY_TYPE, limit=1000, fmt="keyValues")
        mine = [e for e in found if str(e["id"]).endswith(DAY.isoformat())]
        keys = ("passengerCount", "cashlessCount", "cashCount", "revenue", "cashlessRevenue")
        return {k: sum(int(e.get(k) or 0) for e in mine) for k in keys} | {"stops": len(mine)}

    def result(self) -> dict[str, Any]:
        totals = self.totals()
        riders = totals["passengerCount"]
        return {
            "journeys": len(self.journeys),
            "taps": self.taps,
            "refused": self.refused,
            **totals,
            "currency": self.parts.tariff.currency if self.parts else "",
            "cashless_share": round(totals["cashlessCount"] / riders, 4) if riders else None,
            "media_assumed": MEDIA,
        }

    def close(self) -> None:
        if self.parts is not None:
            self.parts.close()
