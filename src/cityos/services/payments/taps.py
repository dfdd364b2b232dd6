"""A tap at a reader, paid: the ticket checked, the day repriced, the ledger moved — in one
transaction.

What a tap pays depends on the rider's earlier taps that day and week (transfers, caps), so
each tap prices the rider's day so far (:func:`.fares.price_day`) and moves only what the
new tap adds:

* a **flat** product's tap-in: the journey's charge, posted to the product's operator;
* a **distance** or **zone** product's tap-in: the maximum fare (after concession,
  transfer and caps) *reserved* with a pending transfer; its tap-out posts the actual
  fare (the rest is released) — or voids it when the fare comes to nothing; a tap-in that
  never gets its tap-out pays the reserved maximum at the next tap-in;
* a tap-out with no tap-in: the product's maximum, posted;
* a journey paid at the stop in **cash** or with a scheme's QR (``emvco``): its single fare,
  from the cash or settlement account the reader names, with the scheme's reference (what
  daily reconciliation matches against the bank's file); no caps or transfers.

The tap's ticket nonce, the tap row and the ledger transfers commit together or not at all:
a refused tap (no money, a replayed ticket) leaves nothing behind, and the same tap id sent
again answers the first result. Riders are pseudonyms (:mod:`.riders`). A tap that arrives
late (an offline reader) is priced against the rider's taps up to its time; charges
already made are not revised.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

from .errors import PaymentsError
from .fares import Charge, FareError, Tap, Tariff, local_day, price_day, single_fare, stop_key
from .ledger import IdempotencyConflict, Ledger, Transfer, UnknownAccount
from .ledger_sql import Tx
from .model import StopDay
from .riders import pseudonym
from .tickets import TicketRefused, TicketVerifier

MEDIA = ("ticket", "account", "emvco", "cash")
WALLET_MEDIA = ("ticket", "account")


@dataclass(frozen=True)
class TapRequest:
    """What a reader sends. ``id`` is the idempotency key (reader and sequence number)."""

    id: str
    stop: str
    product: str
    at: int  # seconds since the epoch
    kind: Literal["in", "out"] = "in"
    medium: Literal["ticket", "account", "emvco", "cash"] = "ticket"
    ticket: str | None = None  # medium ticket: the scanned payload
    account: str | None = None  # account: a wallet; emvco/cash: the account that pays
    rider: str | None = None  # account: a rider's own id (a card's number), pseudonymised
    concession: str = ""  # checked by the reader (a student card shown)
    to_stop: str | None = None  # emvco/cash: a journey bought to this stop
    reference: str | None = None  # emvco: the scheme's payment reference
    terminal: str = ""


@dataclass(frozen=True)
class TapResult:
    id: str
    status: Literal["created", "exists"]
    rider: str
    account: str
    charged: int  # what this tap moved or reserved (minor units)
    currency: str
    transfer_id: str | None
    state: str | None  # of that transfer: posted, pending, voided
    explanation: str
    available: int | None = None  # the wallet's available balance after it

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class FareCollector:
    """Takes taps for one tenant: a ledger, a tariff, the ticket keys, the pseudonym key."""

    def __init__(
        self,
        ledger: Ledger,
        tariff: Tariff,
        *,
        verifier: TicketVerifier | None = None,
        pseudonym_key: bytes = b"",
    ) -> None:
        self.ledger = ledger
        self.tariff = tariff
        self.verifier = verifier
        self.pseudonym_key = pseudonym_key

    def open_operators(self) -> None:
        """Open each product's operator account (idempotent)."""
        for product in self.tariff.products.values():
            self.ledger.open_account(
                product.operator, self.tariff.currency, kind="operator", overdraft_limit=0
            )

    # -- a tap ---------------------------------------------------------------------
    def tap(self, req: TapRequest, *, now: int | None = None) -> TapResult:
        """Take one tap (see the module's docstring); PaymentsError says why not."""
        self._check(req)
        ticket = None
        if req.medium == "ticket":
            if self.verifier is None:
                raise TicketRefused("unknown_key", "this service has no ticket key configured")
            ticket = self.verifier.verify(req.ticket or "", now=now, tenant=self.ledger.tenant)
        return self.ledger.db.run(lambda tx: self._tap(tx, req, ticket))

    def _check(self, req: TapRequest) -> None:
        if not isinstance(req.id, str) or not 0 < len(req.id) <= 100:
            raise FareError("a tap's id is 1 to 100 characters (the reader's own key)")
        if req.kind not in ("in", "out"):
            raise FareError(f"kind must be 'in' or 'out', not {req.kind!r}")
        if req.medium not in MEDIA:
            raise FareError(f"medium must be one of {', '.join(MEDIA)}, not {req.medium!r}")
        self.tariff.product(req.product)
        self.tariff.stop(req.stop)
        if req.to_stop is not None:
            self.tariff.stop(req.to_stop)
        if req.medium == "ticket" and not req.ticket:
            raise FareError("a ticket tap needs the scanned ticket")
        if req.medium == "account" and not (req.account or req.rider):
            raise FareError("an account tap names the account or the rider")
        if req.medium in ("emvco", "cash"):
            if not req.account:
                raise FareError(f"a {req.medium} tap names the account that pays (cash or "
                                "settlement)")  # fmt: skip
            if req.kind != "in":
                raise FareError(f"a {req.medium} journey is paid at its tap-in")
        if req.concession:
            self.tariff.concession(req.concession)

    def _tap(self, tx: Tx, req: TapRequest, ticket: Any) -> TapResult:
        tenant = self.ledger.tenant
        known = tx.one(
            "SELECT rider, account, stop, product, kind, medium, at, charged, transfer_id "
            "FROM pay_taps WHERE tenant = ? AND id = ?",
            (tenant, req.id),
        )
        rider, account, concession = self._who(req, ticket)
        if known is not None:
            return self._again(tx, req, known, rider)
        if ticket is not None:
            self._spend(tx, ticket.nonce, ticket.expires_at)
        operator = self.tariff.product(req.product).operator
        tx.execute(  # the product's operator, opened with its first fare (same transaction)
            "INSERT INTO pay_accounts (tenant, id, currency, kind, overdraft_limit, created_at) "
            "VALUES (?, ?, ?, 'operator', 0, ?) ON CONFLICT (tenant, id) DO NOTHING",
            (tenant, operator, self.tariff.currency, int(time.time() * 1_000_000)),
        )
        if req.medium in WALLET_MEDIA:
            self.ledger.account_in(tx, account)  # 404 before anything else
            tx.one(  # one tap of a rider at a time (PostgreSQL; SQLite's lock has it)
                "SELECT id FROM pay_accounts WHERE tenant = ? AND id = ?" + tx.for_update,
                (tenant, account),
            )
            charged, tid, state, why = self._wallet(tx, req, rider, account, concession)
        else:
            charged, tid, state, why = self._single(tx, req, account, concession)
        day, _ = local_day(self.tariff, req.at)
        tx.execute(
            "INSERT INTO pay_taps (tenant, id, rider, account, day, at, stop, kind, medium, "
            "product, concession, terminal, charged, transfer_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (tenant, req.id, rider, account, day, req.at, stop_key(req.stop), req.kind,
             req.medium, req.product, concession, req.terminal, charged, tid),
        )  # fmt: skip
        available = None
        if req.medium in WALLET_MEDIA:
            available = self.ledger.account_in(tx, account).available
        return TapResult(
            req.id, "created", rider, account, charged, self.tariff.currency, tid, state, why,
            available,
        )  # fmt: skip

    def _who(self, req: TapRequest, ticket: Any) -> tuple[str, str, str]:
        """(rider pseudonym, paying account, concession)."""
        if ticket is not None:
            return ticket.account, ticket.account, ticket.concession or req.concession
        if req.medium == "account":
            if req.account:
                return req.account, req.account, req.concession
            if not self.pseudonym_key:
                raise PaymentsError("no pseudonym key: set services.payments.pseudonym_key_path")
            account = pseudonym(req.rider or "", self.pseudonym_key)
            return account, account, req.concession
        return f"anon:{req.id}", req.account or "", req.concession

    def _again(self, tx: Tx, req: TapRequest, known: tuple[Any, ...], rider: str) -> TapResult:
        same = (
            known[0] == rider and known[2] == stop_key(req.stop) and known[3] == req.product
            and known[4] == req.kind and known[5] == req.medium and int(known[6]) == req.at
        )  # fmt: skip
        if not same:
            raise IdempotencyConflict(f"tap {req.id} was already taken with other content")
        tid = known[8]
        state = None
        if tid:
            row = tx.one(
                "SELECT state FROM pay_transfers WHERE tenant = ? AND id = ?",
                (self.ledger.tenant, tid),
            )
            state = row[0] if row else None
        return TapResult(
            req.id, "exists", known[0], known[1], int(known[7]), self.tariff.currency, tid,
            state, "the same tap, sent again: nothing more charged",
        )  # fmt: skip

    def _spend(self, tx: Tx, nonce: str, expires_at: int) -> None:
        cur = tx.execute(
            "INSERT INTO pay_nonces (tenant, nonce, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT (tenant, nonce) DO NOTHING",
            (self.ledger.tenant, nonce, expires_at + 30),
        )
        if cur.rowcount == 0:
            raise TicketRefused("replayed", "the ticket was already used")

    def close_stale(self, now: int | None = None) -> int:
        """Post the reservation of every journey tapped in more than ``max_journey_s`` ago
        and never tapped out: an incomplete journey pays its maximum (what it reserved).
        How many (the service's task calls it)."""
        before = (int(time.time()) if now is None else now) - self.tariff.max_journey_s

        def work(tx: Tx) -> int:
            rows = tx.all(
                "SELECT t.id, t.at, t.stop, t.product, t.kind, t.transfer_id, t.charged "
                "FROM pay_taps t JOIN pay_transfers p ON p.tenant = t.tenant "
                "AND p.id = t.transfer_id WHERE t.tenant = ? AND t.kind = 'in' AND t.at < ? "
                "AND p.state = 'pending' ORDER BY t.transfer_id",
                (self.ledger.tenant, before),
            )
            for row in rows:
                self._settle(tx, row, int(row[6]))
            return len(rows)

        return self.ledger.db.run(work)

    # -- pricing -------------------------------------------------------------------
    def _wallet(
        self, tx: Tx, req: TapRequest, rider: str, account: str, concession: str
    ) -> tuple[int, str | None, str | None, str]:
        tenant = self.ledger.tenant
        product = self.tariff.product(req.product)
        if product.kind == "flat" and req.kind == "out":
            return 0, None, None, "a flat fare is paid at the tap-in: nothing at the tap-out"
        day, monday = local_day(self.tariff, req.at)
        rows = tx.all(
            "SELECT id, at, stop, product, kind, transfer_id, charged FROM pay_taps "
            "WHERE tenant = ? AND rider = ? AND day = ? AND at <= ? ORDER BY at, id",
            (tenant, rider, day, req.at),
        )
        week = tx.one(
            "SELECT COALESCE(SUM(charged), 0) FROM pay_taps WHERE tenant = ? AND rider = ? "
            "AND day >= ? AND day < ?",
            (tenant, rider, monday, day),
        )
        taps = [Tap(rider, int(r[1]), r[2], r[3], r[4], concession) for r in rows]
        new = Tap(rider, req.at, stop_key(req.stop), req.product, req.kind, concession)
        charges = price_day(
            self.tariff, [*taps, new], week_before=int(week[0]) if week else 0, final=False
        )
        operator = product.operator
        last = charges[-1]
        why = last.explain(self.tariff.currency)
        # the rider's last tap-in of a distance or zone product still waiting for its tap-out
        waiting = next(
            (r for r in reversed(rows) if r[4] == "in"
             and self.tariff.product(r[3]).kind != "flat" and r[5]),
            None,
        )  # fmt: skip
        if req.kind == "in":
            if waiting is not None and self._is_pending(tx, waiting[5]):
                # it never got its tap-out: it pays what it reserved, the maximum
                closed = _charge_of(charges, int(waiting[1]))
                self._settle(tx, waiting, closed.amount if closed else int(waiting[6]))
            tid = f"tap:{req.id}"
            if last.amount == 0:
                return 0, None, None, why
            pending = product.kind != "flat"
            result = self.ledger.apply_in(
                tx,
                [Transfer(account, operator, last.amount, self.tariff.currency, id=tid,
                          pending=pending, memo=f"fare {req.product}", at=req.at * 1_000_000)],
            )[0].raise_for()  # fmt: skip
            return last.amount, tid, result.state, why
        # a tap-out: it closes the waiting journey, or stands alone (the maximum)
        closes = last.status == "complete" and waiting is not None
        if closes and last.start == int(waiting[1]) and self._is_pending(tx, waiting[5]):
            self._settle(tx, waiting, last.amount)
            row = tx.one(
                "SELECT state FROM pay_transfers WHERE tenant = ? AND id = ?",
                (tenant, waiting[5]),
            )
            return 0, waiting[5], row[0] if row else None, why
        if last.amount == 0 or last.status == "complete":
            return 0, None, None, why
        tid = f"tap:{req.id}"
        self.ledger.apply_in(
            tx,
            [Transfer(account, operator, last.amount, self.tariff.currency, id=tid,
                      memo=f"fare {req.product}, no tap-in", at=req.at * 1_000_000)],
        )[0].raise_for()  # fmt: skip
        return last.amount, tid, "posted", why

    def _is_pending(self, tx: Tx, transfer_id: str) -> bool:
        row = tx.one(
            "SELECT state FROM pay_transfers WHERE tenant = ? AND id = ?",
            (self.ledger.tenant, transfer_id),
        )
        return row is not None and row[0] == "pending"

    def _settle(self, tx: Tx, tap_in: tuple[Any, ...], amount: int) -> None:
        """Post a journey's reservation at its final fare (void at nothing), and book the
        fare on its tap-in's row (revenue belongs to the boarding stop)."""
        tid = tap_in[5]
        if amount > 0:
            self.ledger.resolve_in(tx, tid, "posted", min(amount, int(tap_in[6])))
        else:
            self.ledger.resolve_in(tx, tid, "voided", None)
        tx.execute(
            "UPDATE pay_taps SET charged = ? WHERE tenant = ? AND id = ?",
            (min(amount, int(tap_in[6])), self.ledger.tenant, tap_in[0]),
        )

    def _single(
        self, tx: Tx, req: TapRequest, account: str, concession: str
    ) -> tuple[int, str | None, str | None, str]:
        charge = single_fare(self.tariff, req.product, stop_key(req.stop),
                             stop_key(req.to_stop) if req.to_stop else None, concession)  # fmt: skip
        why = charge.explain(self.tariff.currency)
        if charge.amount == 0:
            return 0, None, None, why
        source = self.ledger.account_in(tx, account)
        if source.kind != "settlement":
            raise UnknownAccount(
                f"a {req.medium} journey is paid from a settlement account; {account} is a "
                f"{source.kind} account"
            )
        tid = f"tap:{req.id}"
        operator = self.tariff.product(req.product).operator
        self.ledger.apply_in(
            tx,
            [Transfer(account, operator, charge.amount, self.tariff.currency, id=tid,
                      reference=req.reference, memo=f"fare {req.product}, {req.medium}",
                      at=req.at * 1_000_000)],
        )[0].raise_for()  # fmt: skip
        return charge.amount, tid, "posted", why


def stop_days(ledger: Ledger, tariff: Tariff, day: str) -> list[StopDay]:
    """Boardings and revenue per stop and medium on one local day (for the hub)."""
    with ledger.db.reading() as tx:
        rows = tx.all(
            "SELECT stop, medium, SUM(CASE WHEN kind = 'in' THEN 1 ELSE 0 END), "
            "COALESCE(SUM(charged), 0) FROM pay_taps WHERE tenant = ? AND day = ? "
            "GROUP BY stop, medium ORDER BY stop",
            (ledger.tenant, day),
        )
    out: dict[str, StopDay] = {}
    for stop, medium, count, revenue in rows:
        place = tariff.stops.get(stop)
        found = out.setdefault(
            stop,
            StopDay(stop, day, tariff.currency, lon=place.lon if place else None,
                    lat=place.lat if place else None),
        )  # fmt: skip
        found.boardings[medium] = int(count)
        found.revenue[medium] = int(revenue)
    return list(out.values())


def _charge_of(charges: list[Charge], start: int) -> Charge | None:
    return next((c for c in charges if c.start == start), None)


def now_s() -> int:
    return int(time.time())
