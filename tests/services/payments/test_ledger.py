"""The ledger on both engines: idempotency, two phases, overdraft, batches, many writers at
once (threads and processes) and a worker killed in the middle of a batch — the books
balance after each, and nothing acknowledged is lost."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cityos.services.payments.ledger import (
    BatchRefused,
    IdempotencyConflict,
    InsufficientFunds,
    Ledger,
    StateConflict,
    Transfer,
    TransferRefused,
    UnknownAccount,
    UnknownTransfer,
)

SRC = str(Path(__file__).resolve().parents[3] / "src")


def _books(ledger: Ledger, riders: int = 3, top_up: int = 10_000) -> None:
    """A settlement account (no limit), an operator, riders each topped up."""
    ledger.open_account("settlement:khqr", "KHR", kind="settlement", overdraft_limit=None)
    ledger.open_account("operator:bus", "KHR", kind="operator")
    for n in range(riders):
        ledger.open_account(f"rider:{n}", "KHR")
    ledger.transfer_batch(
        [Transfer("settlement:khqr", f"rider:{n}", top_up, "KHR", id=f"top-{n}")
         for n in range(riders)]
    )  # fmt: skip


def _count(ledger: Ledger) -> int:
    with ledger.db.reading() as tx:
        row = tx.one("SELECT COUNT(*) FROM pay_transfers WHERE tenant = ?", (ledger.tenant,))
    return int(row[0])


def test_a_transfer_moves_money_and_the_books_balance(ledger: Ledger) -> None:
    _books(ledger)
    result = ledger.transfer(Transfer("rider:0", "operator:bus", 1500, "KHR", id="fare-1"))
    assert (result.status, result.state) == ("created", "posted")
    assert ledger.account("rider:0").balance == 10_000 - 1500
    assert ledger.account("operator:bus").balance == 1500
    assert ledger.account("settlement:khqr").balance == -30_000  # the bank's side
    assert ledger.get_transfer("fare-1").posted_amount == 1500
    assert ledger.check() == []


def test_the_same_key_and_content_is_the_same_transfer_other_content_is_refused(ledger) -> None:
    _books(ledger)
    fare = Transfer("rider:0", "operator:bus", 1500, "KHR", id="fare-1")
    assert ledger.transfer(fare).status == "created"
    again = ledger.transfer(fare)
    assert (again.status, again.state) == ("exists", "posted")
    assert ledger.account("rider:0").balance == 8500  # charged once
    with pytest.raises(IdempotencyConflict, match="fare-1"):
        ledger.transfer(Transfer("rider:0", "operator:bus", 2000, "KHR", id="fare-1"))
    with pytest.raises(IdempotencyConflict):
        ledger.transfer(Transfer("rider:1", "operator:bus", 1500, "KHR", id="fare-1"))
    # twice in one batch: the second is the first's result
    results = ledger.transfer_batch(
        [Transfer("rider:1", "operator:bus", 100, "KHR", id="b"),
         Transfer("rider:1", "operator:bus", 100, "KHR", id="b")]
    )  # fmt: skip
    assert [r.status for r in results] == ["created", "exists"]
    assert ledger.account("rider:1").balance == 9900
    assert ledger.check() == []


def test_a_refused_transfer_is_not_stored_and_its_key_can_be_used_again(ledger) -> None:
    _books(ledger, top_up=1000)
    with pytest.raises(InsufficientFunds):
        ledger.transfer(Transfer("rider:0", "operator:bus", 1500, "KHR", id="fare-1"))
    with pytest.raises(UnknownTransfer):
        ledger.get_transfer("fare-1")
    ledger.transfer(Transfer("settlement:khqr", "rider:0", 1000, "KHR", id="top-again"))
    assert ledger.transfer(Transfer("rider:0", "operator:bus", 1500, "KHR", id="fare-1")).ok


def test_no_overdraft_unless_the_account_allows_it_up_to_its_limit(ledger: Ledger) -> None:
    ledger.open_account("settlement:x", "KHR", kind="settlement", overdraft_limit=None)
    ledger.open_account("op", "KHR", kind="operator")
    ledger.open_account("strict", "KHR")
    ledger.open_account("credit", "KHR", overdraft_limit=500)
    with pytest.raises(InsufficientFunds, match="strict has 0 available"):
        ledger.transfer(Transfer("strict", "op", 1, "KHR"))
    ledger.transfer(Transfer("credit", "op", 300, "KHR"))
    ledger.transfer(Transfer("credit", "op", 200, "KHR"))  # exactly at the limit
    with pytest.raises(InsufficientFunds):
        ledger.transfer(Transfer("credit", "op", 1, "KHR"))
    assert ledger.account("credit").balance == -500
    ledger.transfer(Transfer("settlement:x", "op", 10**12, "KHR"))  # no limit
    assert ledger.check() == []


def test_bad_transfers_are_refused_and_write_nothing(ledger: Ledger) -> None:
    _books(ledger)
    ledger.open_account("usd", "USD")
    before = _count(ledger)
    for bad, error in (
        (Transfer("rider:0", "operator:bus", 0, "KHR"), TransferRefused),
        (Transfer("rider:0", "operator:bus", -5, "KHR"), TransferRefused),
        (Transfer("rider:0", "operator:bus", 1.5, "KHR"), TransferRefused),  # type: ignore[arg-type]
        (Transfer("rider:0", "rider:0", 5, "KHR"), TransferRefused),
        (Transfer("rider:0", "usd", 5, "KHR"), TransferRefused),
        (Transfer("rider:0", "operator:bus", 5, "USD"), TransferRefused),
        (Transfer("rider:0", "nobody", 5, "KHR"), UnknownAccount),
    ):
        with pytest.raises(error):
            ledger.transfer(bad)
    assert _count(ledger) == before
    assert ledger.account("rider:0").balance == 10_000


def test_an_account_opened_twice_is_the_same_unless_its_terms_differ(ledger: Ledger) -> None:
    first = ledger.open_account("rider:a", "KHR")
    assert ledger.open_account("rider:a", "KHR") == first
    with pytest.raises(IdempotencyConflict):
        ledger.open_account("rider:a", "USD")
    with pytest.raises(TransferRefused, match="unknown currency"):
        ledger.open_account("rider:b", "XYZ")


def test_two_phases_reserve_then_post_less_or_void(ledger: Ledger) -> None:
    _books(ledger)
    # a tap-in reserves the maximum fare: the balance stays, what is available drops
    ledger.transfer(Transfer("rider:0", "operator:bus", 4000, "KHR", id="trip", pending=True))
    rider = ledger.account("rider:0")
    assert (rider.balance, rider.available, rider.debits_pending) == (10_000, 6000, 4000)
    assert ledger.account("operator:bus").balance == 0
    with pytest.raises(InsufficientFunds):  # the reservation counts
        ledger.transfer(Transfer("rider:0", "operator:bus", 6001, "KHR"))
    # the tap-out posts the actual fare; the rest is released
    assert ledger.post("trip", 2500).state == "posted"
    rider = ledger.account("rider:0")
    assert (rider.balance, rider.available, rider.debits_pending) == (7500, 7500, 0)
    assert ledger.account("operator:bus").balance == 2500
    assert ledger.post("trip", 2500).status == "exists"  # the same post again
    with pytest.raises(StateConflict):
        ledger.post("trip", 3000)
    with pytest.raises(StateConflict, match="only a pending transfer"):
        ledger.void("trip")
    # a voided one releases it all and cannot be posted
    ledger.transfer(Transfer("rider:1", "operator:bus", 4000, "KHR", id="trip2", pending=True))
    assert ledger.void("trip2").state == "voided"
    assert ledger.void("trip2").status == "exists"
    with pytest.raises(StateConflict):
        ledger.post("trip2")
    assert ledger.account("rider:1").available == 10_000
    with pytest.raises(TransferRefused):  # more than it reserved
        ledger.transfer(Transfer("rider:2", "operator:bus", 100, "KHR", id="t3", pending=True))
        ledger.post("t3", 101)
    with pytest.raises(UnknownTransfer):
        ledger.post("nope")
    assert ledger.check() == []


def test_an_expired_pending_transfer_is_voided(ledger: Ledger) -> None:
    _books(ledger)
    ledger.transfer(
        Transfer("rider:0", "operator:bus", 4000, "KHR", id="t", pending=True, timeout_s=60)
    )
    ledger.transfer(Transfer("rider:1", "operator:bus", 4000, "KHR", id="u", pending=True))
    later = ledger.get_transfer("t").created_at + 61_000_000
    assert ledger.expire_pending(now=later) == 1
    assert ledger.get_transfer("t").state == "voided"
    assert ledger.get_transfer("u").state == "pending"  # no timeout: kept
    assert ledger.account("rider:0").available == 10_000
    assert ledger.check() == []


def test_an_atomic_batch_is_all_or_nothing(ledger: Ledger) -> None:
    _books(ledger, top_up=1000)
    batch = [
        Transfer("rider:0", "operator:bus", 600, "KHR", id="a"),
        Transfer("rider:1", "operator:bus", 600, "KHR", id="b"),
        Transfer("rider:0", "operator:bus", 600, "KHR", id="c"),  # rider:0 has 400 left
    ]
    with pytest.raises(BatchRefused) as refused:
        ledger.transfer_batch(batch)
    codes = [r.code for r in refused.value.results]
    assert codes == ["not_applied", "not_applied", "insufficient_funds"]
    assert _count(ledger) == 3  # the top-ups only
    assert ledger.account("rider:0").balance == 1000
    # per item: the accepted ones are written
    results = ledger.transfer_batch(batch, atomic=False)
    assert [r.status for r in results] == ["created", "created", "refused"]
    assert ledger.account("rider:0").balance == 400
    assert ledger.check() == []


def test_tenants_keep_their_own_accounts(open_ledger) -> None:
    city, other = open_ledger("phnom-penh"), open_ledger("bangkok")
    _books(city)
    with pytest.raises(UnknownAccount):
        other.account("rider:0")
    _books(other, top_up=5)
    assert city.account("rider:0").balance == 10_000
    assert other.account("rider:0").balance == 5
    assert city.check() == [] and other.check() == []


def test_check_finds_books_that_do_not_balance(ledger: Ledger) -> None:
    _books(ledger)
    with ledger.db.transaction() as tx:  # what a bug or a hand edit would do
        tx.execute("UPDATE pay_accounts SET credits_posted = credits_posted + 1 WHERE id = ?",
                   ("rider:0",))  # fmt: skip
    problems = ledger.check()
    assert any("sum to 1" in p for p in problems)
    assert any("rider:0" in p for p in problems)


# -- many writers --------------------------------------------------------------------------
RIDERS = 8


def _random_batches(seed: int, n: int, size: int) -> list[list[Transfer]]:
    """Fares, refunds and top-ups among a few accounts (much contention), some with ids
    another writer also sends (the same content: one of them creates it)."""
    rng = random.Random(seed)
    batches = []
    for b in range(n):
        items = []
        for i in range(size):
            r = rng.randrange(RIDERS)
            kind = rng.random()
            if kind < 0.7:
                t = Transfer(f"rider:{r}", "operator:bus", rng.randint(1, 900), "KHR",
                             id=f"w{seed}-{b}-{i}")  # fmt: skip
            elif kind < 0.9:
                t = Transfer("settlement:khqr", f"rider:{r}", rng.randint(1, 500), "KHR",
                             id=f"w{seed}-{b}-{i}")  # fmt: skip
            else:  # shared between writers: the same key and content
                t = Transfer("operator:bus", f"rider:{r}", 7, "KHR", id=f"shared-{b}-{i}-{r}",
                             memo="refund")  # fmt: skip
            items.append(t)
        batches.append(items)
    return batches


def _setup_contended(ledger: Ledger) -> None:
    ledger.open_account("settlement:khqr", "KHR", kind="settlement", overdraft_limit=None)
    ledger.open_account("operator:bus", "KHR", kind="operator", overdraft_limit=None)
    for r in range(RIDERS):
        ledger.open_account(f"rider:{r}", "KHR", overdraft_limit=300)
    ledger.transfer_batch(
        [Transfer("settlement:khqr", f"rider:{r}", 1_000_000, "KHR") for r in range(RIDERS)]
    )


def test_concurrent_threads_keep_the_books_balanced(open_ledger) -> None:
    first = open_ledger()
    _setup_contended(first)
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        ledger = open_ledger()  # its own connection, as a worker has
        try:
            for batch in _random_batches(seed, 12, 25):
                if seed % 2:  # per item
                    ledger.transfer_batch(batch, atomic=False)
                    continue
                with contextlib.suppress(BatchRefused):  # all or nothing
                    ledger.transfer_batch(batch)
            for t in _random_batches(seed + 100, 1, 20)[0]:
                with contextlib.suppress(InsufficientFunds):
                    ledger.transfer(t)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(s,)) for s in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert first.check() == []
    assert all(first.account(f"rider:{r}").available >= -300 for r in range(RIDERS))


_WORKER = """
import sys
sys.path.insert(0, {src!r})
from cityos.services.payments.ledger import Ledger, Transfer, InsufficientFunds, BatchRefused
url, schema, seed = sys.argv[1], (sys.argv[2] or None), int(sys.argv[3])
ledger = Ledger.open(url, schema=schema)
import random
rng = random.Random(seed)
for b in range(int(sys.argv[4])):
    batch = [
        Transfer(f"rider:{{rng.randrange(8)}}", "operator:bus", rng.randint(1, 900), "KHR",
                 id=f"p{{seed}}-{{b}}-{{i}}")
        if rng.random() < 0.8 else
        Transfer("settlement:khqr", f"rider:{{rng.randrange(8)}}", rng.randint(1, 900), "KHR",
                 id=f"p{{seed}}-{{b}}-{{i}}")
        for i in range(int(sys.argv[5]))
    ]
    try:
        ledger.transfer_batch(batch)
    except BatchRefused:
        continue
    print(f"ACK p{{seed}}-{{b}}", flush=True)  # only once it is committed
"""


def _worker(url: str, schema: str | None, seed: int, batches: int, size: int) -> subprocess.Popen:
    code = _WORKER.format(src=SRC)
    return subprocess.Popen(
        [sys.executable, "-c", code, url, schema or "", str(seed), str(batches), str(size)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _batch_sizes(ledger: Ledger) -> dict[str, int]:
    with ledger.db.reading() as tx:
        rows = tx.all("SELECT id FROM pay_transfers WHERE tenant = '' AND id LIKE 'p%'")
    sizes: dict[str, int] = {}
    for (tid,) in rows:
        batch = tid.rsplit("-", 1)[0]
        sizes[batch] = sizes.get(batch, 0) + 1
    return sizes


@pytest.mark.slow
def test_concurrent_processes_keep_the_books_balanced(ledger: Ledger, ledger_target) -> None:
    _setup_contended(ledger)
    url, schema = ledger_target
    procs = [_worker(url, schema, seed, 15, 40) for seed in range(4)]
    acked = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        acked += [line.split()[1] for line in out.splitlines()]
    assert ledger.check() == []
    sizes = _batch_sizes(ledger)
    assert all(sizes.get(a) == 40 for a in acked)  # every acknowledged batch is there, whole
    assert set(sizes) == set(acked)  # and none that was refused
    assert acked


@pytest.mark.slow
def test_a_worker_killed_mid_batch_leaves_no_half_transfer_and_loses_no_acknowledged_one(
    ledger: Ledger, ledger_target
) -> None:
    _setup_contended(ledger)
    url, schema = ledger_target
    for attempt in range(3):
        proc = _worker(url, schema, 50 + attempt, 100_000, 400)
        acked: list[str] = []
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while len(acked) < 3 + attempt and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acked.append(line.split()[1])
        time.sleep(random.uniform(0.0, 0.05))  # somewhere inside a later batch
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        acked += [line.split()[1] for line in proc.stdout.read().splitlines() if line]
        assert len(acked) >= 3, proc.stderr.read() if proc.stderr else ""
        sizes = _batch_sizes(ledger)
        assert all(sizes.get(a) == 400 for a in acked), "an acknowledged batch was lost"
        assert all(n == 400 for n in sizes.values()), "half a batch was written"
        assert ledger.check() == []
