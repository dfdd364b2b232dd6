"""A double-entry ledger: riders' wallets, operators, the city, the settlement accounts.

Why a ledger of our own and not a payments library: fares move many small amounts between
a few kinds of account, and the city must be able to show that no riel was made or lost.
Every transfer debits one account and credits another by the same amount, so the balances
of a currency always sum to zero (:meth:`Ledger.check` proves it from the transfers).

* **Amounts** are integers of the currency's minor unit (:mod:`.money`), never floats.
* **Balance** = credits posted − debits posted. A rider's wallet is topped up from a
  settlement account (the bank's side: its balance goes negative as money comes in) and
  pays fares to an operator's account.
* **Overdraft**: a debit may not take an account's available balance (balance − pending
  debits) below −``overdraft_limit``; 0 (the default) allows none, None no limit (the
  settlement and city accounts, mirrors of money outside the ledger).
* **Idempotency**: a transfer's ``id`` is its idempotency key. Sending it again with the
  same content (accounts, amount, currency, pending, reference, memo) answers the stored
  result (``exists``) and changes nothing; with other content it is refused
  (``idempotency_conflict``). A refused transfer is not stored: its id may be sent again.
* **Two phases**: a ``pending`` transfer reserves the amount (the debit account's available
  balance drops, no balance moves) until it is posted — all of it or less, a tap-out's
  actual fare after a tap-in's maximum — or voided; an expired one is voided by
  :meth:`Ledger.expire_pending`.
* **Batches**: :meth:`Ledger.transfer_batch` applies many transfers in one transaction.
  ``atomic=True``: all or nothing — one refusal refuses the batch (:class:`BatchRefused`
  carries each item's result) and nothing is written. ``atomic=False``: each item's own
  result; the accepted ones are written, in order, the refused ones not.

A transfer id is known to be durable once the call returns: the commit happened first.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from .errors import PaymentsError
from .ledger_sql import Database, Tx
from .money import MAX_AMOUNT, MoneyError
from .money import currency as check_currency

ACCOUNT_KINDS = ("rider", "operator", "city", "settlement", "merchant")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_ID = 128


def now_us() -> int:
    return time.time_ns() // 1000


# -- errors -------------------------------------------------------------------------------
class LedgerError(PaymentsError):
    """A ledger operation refused; ``code`` names the reason for programs, ``status`` is
    the HTTP status the API answers with."""

    code = "refused"
    status = 400


class UnknownAccount(LedgerError):
    code, status = "unknown_account", 404


class UnknownTransfer(LedgerError):
    code, status = "unknown_transfer", 404


class IdempotencyConflict(LedgerError):
    code, status = "idempotency_conflict", 409


class InsufficientFunds(LedgerError):
    code, status = "insufficient_funds", 422


class StateConflict(LedgerError):
    code, status = "state_conflict", 422


class TransferRefused(LedgerError):
    """Bad on its face: an amount out of range, one account on both sides, currencies
    that differ."""

    code, status = "refused", 400


class BatchRefused(LedgerError):
    """An atomic batch with a refused item: nothing was written; ``results`` says why."""

    code, status = "batch_refused", 422

    def __init__(self, message: str, results: list[Result]) -> None:
        super().__init__(message)
        self.results = results


_ERRORS: dict[str, type[LedgerError]] = {
    e.code: e
    for e in (
        UnknownAccount,
        UnknownTransfer,
        IdempotencyConflict,
        InsufficientFunds,
        StateConflict,
        TransferRefused,
    )
}


# -- values -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Account:
    id: str
    currency: str
    kind: str = "rider"
    overdraft_limit: int | None = 0  # None: no limit
    debits_posted: int = 0
    credits_posted: int = 0
    debits_pending: int = 0
    credits_pending: int = 0
    created_at: int = 0

    @property
    def balance(self) -> int:
        return self.credits_posted - self.debits_posted

    @property
    def available(self) -> int:
        """What it may still spend: its balance less what pending debits reserve."""
        return self.balance - self.debits_pending

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "balance": self.balance, "available": self.available}


@dataclass(frozen=True)
class Transfer:
    """A transfer to make. ``id`` is the idempotency key (a fresh one when empty);
    ``at`` the time it belongs to (µs since the epoch; now when 0), as a tap's time."""

    debit: str
    credit: str
    amount: int
    currency: str
    id: str = ""
    pending: bool = False
    reference: str | None = None  # the outside world's reference (a bank's, a QR bill's)
    memo: str = ""
    at: int = 0
    timeout_s: int = 0  # pending only: voided by expire_pending() after this long (0: never)

    def content(self) -> tuple[Any, ...]:
        """What must match for a repeated id to be the same transfer."""
        return (
            self.debit, self.credit, self.amount, self.currency, bool(self.pending),
            self.reference, self.memo,
        )  # fmt: skip


@dataclass(frozen=True)
class TransferRecord:
    id: str
    debit: str
    credit: str
    amount: int
    currency: str
    pending: bool
    state: Literal["posted", "pending", "voided"]
    posted_amount: int
    reference: str | None
    memo: str
    at: int
    created_at: int
    resolved_at: int | None
    expires_at: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Result:
    """One transfer's outcome: ``created``, ``exists`` (the same transfer, sent again) or
    ``refused`` (``code`` and ``detail`` say why; nothing of it was written)."""

    id: str
    status: Literal["created", "exists", "refused"]
    state: str | None = None
    code: str | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status != "refused"

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, "")}

    def raise_for(self) -> Result:
        if not self.ok:
            raise _ERRORS.get(self.code or "", LedgerError)(self.detail)
        return self


@dataclass
class _Row:  # an account being changed inside a transaction
    currency: str
    limit: int | None
    dp: int
    cp: int
    dq: int
    cq: int
    changed: bool = False


_T_COLS = (
    "id, debit, credit, amount, currency, pending, state, posted_amount, reference, memo, at, "
    "created_at, resolved_at, expires_at"
)
_INSERT_COLS = (
    "tenant", "id", "debit", "credit", "amount", "currency", "pending", "state",
    "posted_amount", "reference", "memo", "at", "created_at", "resolved_at", "expires_at",
)  # fmt: skip
_A_COLS = (
    "id, currency, kind, overdraft_limit, debits_posted, credits_posted, debits_pending, "
    "credits_pending, created_at"
)


def _record(row: Sequence[Any]) -> TransferRecord:
    return TransferRecord(
        id=row[0], debit=row[1], credit=row[2], amount=int(row[3]), currency=row[4],
        pending=bool(row[5]), state=row[6], posted_amount=int(row[7]), reference=row[8],
        memo=row[9], at=int(row[10]), created_at=int(row[11]),
        resolved_at=None if row[12] is None else int(row[12]),
        expires_at=None if row[13] is None else int(row[13]),
    )  # fmt: skip


def _account(row: Sequence[Any]) -> Account:
    return Account(
        id=row[0], currency=row[1], kind=row[2],
        overdraft_limit=None if row[3] is None else int(row[3]),
        debits_posted=int(row[4]), credits_posted=int(row[5]), debits_pending=int(row[6]),
        credits_pending=int(row[7]), created_at=int(row[8]),
    )  # fmt: skip


def _check_id(value: str, what: str) -> None:
    if not isinstance(value, str) or not value or len(value) > MAX_ID:
        raise TransferRefused(f"{what} must be a non-empty string of at most {MAX_ID} characters")
    if _CONTROL.search(value):
        raise TransferRefused(f"{what} {value!r} holds a control character")


# -- the ledger ---------------------------------------------------------------------------
@dataclass
class Ledger:
    """One tenant's ledger in ``db`` (several tenants share the tables, never an account)."""

    db: Database
    tenant: str = ""
    _opened: dict[str, Account] = field(default_factory=dict, repr=False)

    @classmethod
    def open(
        cls, url: str, *, tenant: str = "", schema: str | None = None, durable: bool = True
    ) -> Ledger:
        return cls(Database(url, schema=schema, durable=durable), tenant)

    def for_tenant(self, tenant: str) -> Ledger:
        return Ledger(self.db, tenant)

    def close(self) -> None:
        self.db.close()

    # -- accounts --------------------------------------------------------------------
    def open_account(
        self,
        account_id: str,
        currency: str,
        *,
        kind: str = "rider",
        overdraft_limit: int | None = 0,
    ) -> Account:
        """Open an account (or answer the one already open with these terms; other terms:
        IdempotencyConflict)."""
        _check_id(account_id, "account id")
        try:
            code = check_currency(currency)
        except MoneyError as exc:
            raise TransferRefused(str(exc)) from None
        if kind not in ACCOUNT_KINDS:
            raise TransferRefused(f"account kind {kind!r} is not one of {', '.join(ACCOUNT_KINDS)}")
        if overdraft_limit is not None and not (0 <= overdraft_limit <= MAX_AMOUNT):
            raise TransferRefused(f"overdraft_limit must be 0 to {MAX_AMOUNT} or None")

        def work(tx: Tx) -> Account:
            tx.execute(
                "INSERT INTO pay_accounts (tenant, id, currency, kind, overdraft_limit, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, id) DO NOTHING",
                (self.tenant, account_id, code, kind, overdraft_limit, now_us()),
            )
            row = tx.one(
                f"SELECT {_A_COLS} FROM pay_accounts WHERE tenant = ? AND id = ?",
                (self.tenant, account_id),
            )
            assert row is not None
            return _account(row)

        found = self.db.run(work)
        if (found.currency, found.kind, found.overdraft_limit) != (code, kind, overdraft_limit):
            raise IdempotencyConflict(
                f"account {account_id} is already open as {found.kind} in {found.currency} "
                f"with overdraft limit {found.overdraft_limit}"
            )
        return found

    def account(self, account_id: str) -> Account:
        with self.db.reading() as tx:
            return self.account_in(tx, account_id)

    def account_in(self, tx: Tx, account_id: str) -> Account:
        row = tx.one(
            f"SELECT {_A_COLS} FROM pay_accounts WHERE tenant = ? AND id = ?",
            (self.tenant, account_id),
        )
        if row is None:
            raise UnknownAccount(f"no account {account_id!r}")
        return _account(row)

    def accounts(self, kind: str | None = None) -> list[Account]:
        sql = f"SELECT {_A_COLS} FROM pay_accounts WHERE tenant = ?"
        params: list[Any] = [self.tenant]
        if kind:
            sql += " AND kind = ?"
            params.append(kind)
        with self.db.reading() as tx:
            return [_account(r) for r in tx.all(sql + " ORDER BY id", params)]

    # -- transfers -------------------------------------------------------------------
    def transfer(self, transfer: Transfer) -> Result:
        """One transfer; its result, or the LedgerError saying why it was refused."""
        return self.transfer_batch([transfer], atomic=False)[0].raise_for()

    def transfer_batch(self, transfers: Iterable[Transfer], *, atomic: bool = True) -> list[Result]:
        """Many transfers in one transaction, in order (see the module's docstring)."""
        items = [t if t.id else _with_id(t) for t in transfers]
        if not items:
            return []

        def work(tx: Tx) -> list[Result]:
            results = self._apply(tx, items)
            if atomic and not all(r.ok for r in results):
                first = next(r for r in results if not r.ok)
                results = [
                    r if not r.ok else Result(r.id, "refused", code="not_applied",
                                              detail="another transfer of the batch was refused")
                    for r in results
                ]  # fmt: skip
                raise BatchRefused(
                    f"batch refused, nothing written: transfer {first.id}: {first.detail}",
                    results,
                )
            return results

        return self.db.run(work)

    def apply_in(self, tx: Tx, items: list[Transfer]) -> list[Result]:
        """Apply transfers inside the caller's transaction (a tap's): each one's result;
        the refused ones change nothing."""
        return self._apply(tx, [t if t.id else _with_id(t) for t in items])

    def _apply(self, tx: Tx, items: list[Transfer]) -> list[Result]:
        t0 = now_us()
        ids = sorted({t.id for t in items})
        stored: dict[str, tuple[Any, ...]] = {}
        for row in tx.where_in(
            "SELECT id, debit, credit, amount, currency, pending, reference, memo, state "
            "FROM pay_transfers WHERE tenant = ? AND {in}",
            "id",
            ids,
            [self.tenant],
        ):
            content = (row[1], row[2], int(row[3]), row[4], bool(row[5]), row[6], row[7])
            stored[row[0]] = (content, row[8])
        names = sorted({a for t in items for a in (t.debit, t.credit) if isinstance(a, str)})
        accounts: dict[str, _Row] = {}
        for row in tx.where_in(
            "SELECT id, currency, overdraft_limit, debits_posted, credits_posted, "
            "debits_pending, credits_pending FROM pay_accounts WHERE tenant = ? AND {in} "
            "ORDER BY id" + tx.for_update,  # row locks in one order: no deadlock
            "id",
            names,
            [self.tenant],
        ):
            accounts[row[0]] = _Row(
                row[1], None if row[2] is None else int(row[2]),
                int(row[3]), int(row[4]), int(row[5]), int(row[6]),
            )  # fmt: skip
        results: list[Result] = []
        inserts: list[tuple[Any, ...]] = []
        for t in items:
            prior = stored.get(t.id)
            if prior is not None:
                if prior[0] == t.content():
                    results.append(Result(t.id, "exists", state=prior[1]))
                else:
                    results.append(
                        Result(t.id, "refused", code=IdempotencyConflict.code,
                               detail=f"transfer {t.id} exists with other content")
                    )  # fmt: skip
                continue
            why = _refusal(t, accounts)
            if why is not None:
                results.append(Result(t.id, "refused", code=why[0], detail=why[1]))
                continue
            d, c = accounts[t.debit], accounts[t.credit]
            if t.pending:
                d.dq += t.amount
                c.cq += t.amount
            else:
                d.dp += t.amount
                c.cp += t.amount
            d.changed = c.changed = True
            state = "pending" if t.pending else "posted"
            stored[t.id] = (t.content(), state)
            expires = t0 + t.timeout_s * 1_000_000 if t.pending and t.timeout_s > 0 else None
            inserts.append(
                (self.tenant, t.id, t.debit, t.credit, t.amount, t.currency, int(t.pending),
                 state, 0 if t.pending else t.amount, t.reference, t.memo, t.at or t0, t0,
                 None, expires)
            )  # fmt: skip
            results.append(Result(t.id, "created", state=state))
        tx.insert_many("pay_transfers", _INSERT_COLS, inserts)
        self._write_accounts(tx, accounts)
        return results

    def _write_accounts(self, tx: Tx, accounts: dict[str, _Row]) -> None:
        tx.update_accounts(
            self.tenant,
            [(a.dp, a.cp, a.dq, a.cq, name) for name, a in sorted(accounts.items()) if a.changed],
        )

    # -- two phases ------------------------------------------------------------------
    def post(self, transfer_id: str, amount: int | None = None) -> Result:
        """Post a pending transfer: all it reserved, or ``amount`` of it (the rest is
        released). Posting it again with the same amount answers ``exists``."""
        return self._resolve(transfer_id, "posted", amount)

    def void(self, transfer_id: str) -> Result:
        """Release what a pending transfer reserved. Voiding it again answers ``exists``."""
        return self._resolve(transfer_id, "voided", None)

    def _resolve(self, transfer_id: str, target: str, amount: int | None) -> Result:
        return self.db.run(lambda tx: self.resolve_in(tx, transfer_id, target, amount))

    def resolve_in(self, tx: Tx, transfer_id: str, target: str, amount: int | None) -> Result:
        """Post (``target="posted"``) or void a pending transfer inside the caller's
        transaction (a tap's)."""
        row = tx.one(
            f"SELECT {_T_COLS} FROM pay_transfers WHERE tenant = ? AND id = ?" + tx.for_update,
            (self.tenant, transfer_id),
        )
        if row is None:
            raise UnknownTransfer(f"no transfer {transfer_id!r}")
        rec = _record(row)
        if not rec.pending:
            raise StateConflict(f"transfer {transfer_id} was not pending: it cannot be {target}")
        if rec.state == target:
            if target == "posted" and amount is not None and amount != rec.posted_amount:
                raise StateConflict(
                    f"transfer {transfer_id} is already posted for {rec.posted_amount}"
                )
            return Result(transfer_id, "exists", state=rec.state)
        if rec.state != "pending":
            raise StateConflict(
                f"transfer {transfer_id} is {rec.state}: only a pending transfer can be {target}"
            )
        now = now_us()
        if target == "posted" and rec.expires_at is not None and now >= rec.expires_at:
            raise StateConflict(f"pending transfer {transfer_id} has expired")
        posted = 0
        if target == "posted":
            posted = rec.amount if amount is None else amount
            if isinstance(posted, bool) or not isinstance(posted, int):
                raise TransferRefused("amount must be an integer of minor units")
            if not 0 < posted <= rec.amount:
                raise TransferRefused(
                    f"a pending transfer of {rec.amount} posts 1 to {rec.amount}, not {posted}"
                )
        self._release(tx, [rec], {rec.id: posted})
        tx.execute(
            "UPDATE pay_transfers SET state = ?, posted_amount = ?, resolved_at = ? "
            "WHERE tenant = ? AND id = ?",
            (target, posted, now, self.tenant, transfer_id),
        )
        return Result(transfer_id, "created", state=target)

    def _release(self, tx: Tx, recs: list[TransferRecord], posted: dict[str, int]) -> None:
        names = sorted({a for r in recs for a in (r.debit, r.credit)})
        accounts: dict[str, _Row] = {}
        for row in tx.where_in(
            "SELECT id, currency, overdraft_limit, debits_posted, credits_posted, "
            "debits_pending, credits_pending FROM pay_accounts WHERE tenant = ? AND {in} "
            "ORDER BY id" + tx.for_update,
            "id",
            names,
            [self.tenant],
        ):
            accounts[row[0]] = _Row(row[1], row[2], int(row[3]), int(row[4]), int(row[5]),
                                    int(row[6]))  # fmt: skip
        for rec in recs:
            d, c = accounts[rec.debit], accounts[rec.credit]
            d.dq -= rec.amount
            c.cq -= rec.amount
            d.dp += posted.get(rec.id, 0)
            c.cp += posted.get(rec.id, 0)
            d.changed = c.changed = True
        self._write_accounts(tx, accounts)

    def expire_pending(self, now: int | None = None) -> int:
        """Void every pending transfer whose timeout has passed; how many."""
        at = now_us() if now is None else now

        def work(tx: Tx) -> int:
            rows = tx.all(
                f"SELECT {_T_COLS} FROM pay_transfers WHERE tenant = ? AND state = 'pending' "
                "AND expires_at IS NOT NULL AND expires_at <= ? ORDER BY id" + tx.for_update,
                (self.tenant, at),
            )
            recs = [_record(r) for r in rows]
            if not recs:
                return 0
            self._release(tx, recs, {})
            tx.executemany(
                "UPDATE pay_transfers SET state = 'voided', posted_amount = 0, resolved_at = ? "
                "WHERE tenant = ? AND id = ?",
                [(at, self.tenant, r.id) for r in recs],
            )
            return len(recs)

        return self.db.run(work)

    # -- reads -----------------------------------------------------------------------
    def get_transfer(self, transfer_id: str) -> TransferRecord:
        with self.db.reading() as tx:
            row = tx.one(
                f"SELECT {_T_COLS} FROM pay_transfers WHERE tenant = ? AND id = ?",
                (self.tenant, transfer_id),
            )
        if row is None:
            raise UnknownTransfer(f"no transfer {transfer_id!r}")
        return _record(row)

    def transfers(
        self, start_us: int, end_us: int, *, account: str | None = None
    ) -> list[TransferRecord]:
        """The transfers whose time (``at``) is in [start, end), of one account or all."""
        sql = f"SELECT {_T_COLS} FROM pay_transfers WHERE tenant = ? AND at >= ? AND at < ?"
        params: list[Any] = [self.tenant, start_us, end_us]
        if account is not None:
            sql += " AND (debit = ? OR credit = ?)"
            params += [account, account]
        with self.db.reading() as tx:
            return [_record(r) for r in tx.all(sql + " ORDER BY at, id", params)]

    def by_reference(self, references: Sequence[str]) -> list[TransferRecord]:
        with self.db.reading() as tx:
            rows = tx.where_in(
                f"SELECT {_T_COLS} FROM pay_transfers WHERE tenant = ? AND {{in}}",
                "reference",
                list(references),
                [self.tenant],
            )
        return [_record(r) for r in rows]

    # -- invariants ------------------------------------------------------------------
    def check(self) -> list[str]:
        """What is wrong with the books (empty: nothing), recomputed from the transfers:
        each currency's balances sum to zero, pending debits equal pending credits, each
        account's totals are the sum of its transfers, none is past its overdraft limit,
        no amount is negative."""
        problems: list[str] = []
        with self.db.reading() as tx:
            for cur, net, cq, dq in tx.all(
                "SELECT currency, SUM(credits_posted - debits_posted), SUM(credits_pending), "
                "SUM(debits_pending) FROM pay_accounts WHERE tenant = ? GROUP BY currency",
                (self.tenant,),
            ):
                if int(net) != 0:
                    problems.append(f"{cur}: balances sum to {int(net)}, not 0")
                if int(cq) != int(dq):
                    problems.append(f"{cur}: pending credits {int(cq)} != debits {int(dq)}")
            sums: dict[tuple[str, str], int] = {}
            for side in ("debit", "credit"):
                for name, posted, pending in tx.all(
                    f"SELECT {side}, SUM(CASE WHEN state = 'posted' THEN posted_amount ELSE 0 "
                    "END), SUM(CASE WHEN state = 'pending' THEN amount ELSE 0 END) "
                    f"FROM pay_transfers WHERE tenant = ? GROUP BY {side}",
                    (self.tenant,),
                ):
                    sums[(name, side + "_posted")] = int(posted or 0)
                    sums[(name, side + "_pending")] = int(pending or 0)
            for row in tx.all(
                f"SELECT {_A_COLS} FROM pay_accounts WHERE tenant = ?", (self.tenant,)
            ):
                a = _account(row)
                for name, value in (
                    ("debit_posted", a.debits_posted), ("credit_posted", a.credits_posted),
                    ("debit_pending", a.debits_pending), ("credit_pending", a.credits_pending),
                ):  # fmt: skip
                    if value != sums.get((a.id, name), 0):
                        problems.append(
                            f"account {a.id}: {name} {value} but its transfers sum to "
                            f"{sums.get((a.id, name), 0)}"
                        )
                    if value < 0:
                        problems.append(f"account {a.id}: {name} is negative ({value})")
                if a.overdraft_limit is not None and a.available < -a.overdraft_limit:
                    problems.append(
                        f"account {a.id}: available {a.available} is past its overdraft limit "
                        f"{a.overdraft_limit}"
                    )
            bad = tx.one(
                "SELECT COUNT(*) FROM pay_transfers WHERE tenant = ? AND (amount <= 0 OR "
                "posted_amount < 0 OR posted_amount > amount)",
                (self.tenant,),
            )
            if bad and int(bad[0]):
                problems.append(f"{int(bad[0])} transfers with an amount out of range")
        return problems


def _with_id(t: Transfer) -> Transfer:
    from dataclasses import replace

    return replace(t, id=uuid.uuid4().hex)


def _refusal(t: Transfer, accounts: dict[str, _Row]) -> tuple[str, str] | None:
    """Why ``t`` cannot be applied to the accounts as they stand now (None: it can)."""
    if not isinstance(t.id, str) or not t.id or len(t.id) > MAX_ID:
        return TransferRefused.code, f"a transfer id is 1 to {MAX_ID} characters"
    if (
        _CONTROL.search(t.id)
        or (t.memo and _CONTROL.search(t.memo))
        or (t.reference and _CONTROL.search(t.reference))
    ):
        return TransferRefused.code, f"transfer {t.id!r}: a control character in its id or text"
    if isinstance(t.amount, bool) or not isinstance(t.amount, int):
        return TransferRefused.code, f"transfer {t.id}: amount must be an integer of minor units"
    if not 0 < t.amount <= MAX_AMOUNT:
        return TransferRefused.code, f"transfer {t.id}: amount must be 1 to {MAX_AMOUNT}"
    if t.debit == t.credit:
        return TransferRefused.code, f"transfer {t.id}: debit and credit are the same account"
    for name in (t.debit, t.credit):
        if name not in accounts:
            return UnknownAccount.code, f"transfer {t.id}: no account {name!r}"
    d, c = accounts[t.debit], accounts[t.credit]
    if not (t.currency == d.currency == c.currency):
        return (
            TransferRefused.code,
            f"transfer {t.id}: currency {t.currency} but {t.debit} holds {d.currency} and "
            f"{t.credit} holds {c.currency}",
        )
    if d.limit is not None and (d.cp - d.dp - d.dq) - t.amount < -d.limit:
        return (
            InsufficientFunds.code,
            f"transfer {t.id}: {t.debit} has {d.cp - d.dp - d.dq} available "
            f"(overdraft limit {d.limit}), {t.amount} asked",
        )
    if c.cp + c.cq + t.amount > MAX_AMOUNT * 1000:
        return TransferRefused.code, f"transfer {t.id}: {t.credit} would hold too much"
    return None
