"""Signed tickets: a screenshot cannot ride twice, an old one not at all, a changed one never;
and a ticket pays a fare once, even when two readers take it at the same moment."""

from __future__ import annotations

import base64
import threading

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cityos.services.payments.fares import load_tariff
from cityos.services.payments.ledger import Transfer
from cityos.services.payments.taps import FareCollector, TapRequest
from cityos.services.payments.tickets import (
    MemoryNonces,
    TicketRefused,
    TicketSigner,
    TicketVerifier,
    load_or_create_key,
    redeem,
)

NOW = 1_800_000_000


@pytest.fixture
def signer() -> TicketSigner:
    return TicketSigner(Ed25519PrivateKey.generate(), ttl_s=60)


def test_a_ticket_is_accepted_once_then_refused_as_replayed(signer) -> None:
    payload = signer.issue("rider:abc", concession="student", now=NOW)
    assert payload.startswith("CTK1.") and len(payload) < 300
    nonces = MemoryNonces()
    ticket = redeem(payload, signer.verifier(), nonces, now=NOW + 5)
    assert (ticket.account, ticket.concession, ticket.expires_at) == (
        "rider:abc",
        "student",
        NOW + 60,
    )
    with pytest.raises(TicketRefused) as refused:
        redeem(payload, signer.verifier(), nonces, now=NOW + 6)  # the screenshot
    assert refused.value.reason == "replayed"
    # a fresh ticket for the same rider is another nonce: accepted
    redeem(signer.issue("rider:abc", now=NOW + 7), signer.verifier(), nonces, now=NOW + 8)


def test_an_expired_or_future_ticket_is_refused(signer) -> None:
    payload = signer.issue("rider:abc", now=NOW)
    with pytest.raises(TicketRefused) as refused:
        signer.verifier().verify(payload, now=NOW + 60)  # expiry is exclusive
    assert refused.value.reason == "expired"
    signer.verifier().verify(payload, now=NOW - 30)  # a reader's clock a little behind
    with pytest.raises(TicketRefused) as refused:
        signer.verifier().verify(payload, now=NOW - 31)
    assert refused.value.reason == "not_yet_valid"


def _tamper(payload: str, **claims) -> str:
    prefix, body, sig = payload.split(".")
    data = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    data.update(claims)
    body = base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()
    return f"{prefix}.{body}.{sig}"


def test_a_tampered_ticket_is_refused(signer) -> None:
    payload = signer.issue("rider:abc", now=NOW)
    for changed in (
        _tamper(payload, a="rider:someone-else"),
        _tamper(payload, exp=NOW + 86_400),  # a longer life
        _tamper(payload, c="elder"),  # a better concession
        payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB"),  # another signature
    ):
        with pytest.raises(TicketRefused) as refused:
            signer.verifier().verify(changed, now=NOW + 1)
        assert refused.value.reason == "bad_signature"
    other = TicketSigner(Ed25519PrivateKey.generate())  # a key the reader does not know
    with pytest.raises(TicketRefused) as refused:
        signer.verifier().verify(other.issue("rider:abc", now=NOW), now=NOW + 1)
    assert refused.value.reason == "unknown_key"
    for junk in ("", "CTK1.", "CTK1.a.b", "KHQR...", "CTK1." + "A" * 2000, 42):
        with pytest.raises(TicketRefused) as refused:
            signer.verifier().verify(junk, now=NOW)  # type: ignore[arg-type]
        assert refused.value.reason == "malformed"


def test_a_rotated_key_keeps_old_tickets_valid_until_they_expire(signer) -> None:
    new = TicketSigner(Ed25519PrivateKey.generate())
    both = TicketVerifier([signer.key.public_key(), new.key.public_key()])
    both.verify(signer.issue("rider:a", now=NOW), now=NOW + 1)
    both.verify(new.issue("rider:a", now=NOW), now=NOW + 1)


def test_the_key_file_is_made_once_and_private(tmp_path) -> None:
    path = tmp_path / "keys" / "ticket.pem"
    key = load_or_create_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    again = load_or_create_key(path)
    assert TicketSigner(key).key_id == TicketSigner(again).key_id


def _collector(ledger, signer: TicketSigner) -> FareCollector:
    collector = FareCollector(ledger, load_tariff(), verifier=signer.verifier())
    collector.open_operators()
    ledger.open_account("settlement:khqr", "KHR", kind="settlement", overdraft_limit=None)
    ledger.open_account("rider:abc", "KHR")
    ledger.transfer(Transfer("settlement:khqr", "rider:abc", 1_000_000, "KHR", id="top"))
    return collector


def _tap(payload: str, n: int, at: int) -> TapRequest:
    return TapRequest(id=f"reader-1:{n}", stop="wat-phnom", product="bus", at=at,
                      medium="ticket", ticket=payload)  # fmt: skip


def test_a_ticket_pays_one_fare_and_its_replay_at_another_reader_is_refused(ledger, signer) -> None:
    collector = _collector(ledger, signer)
    import time

    now = int(time.time())
    payload = signer.issue("rider:abc", now=now)
    first = collector.tap(_tap(payload, 1, now))
    assert (first.status, first.charged) == ("created", 150000)  # 1,500 riel
    # the same tap sent again (a retry) is the first's answer, not a second fare
    assert collector.tap(_tap(payload, 1, now)).status == "exists"
    with pytest.raises(TicketRefused) as refused:  # the screenshot, at another reader
        collector.tap(_tap(payload, 2, now))
    assert refused.value.reason == "replayed"
    assert ledger.account("rider:abc").balance == 1_000_000 - 150000
    assert ledger.check() == []


def test_a_ticket_taken_by_two_readers_at_once_pays_once(open_ledger, signer) -> None:
    import time

    collector = _collector(open_ledger(), signer)
    now = int(time.time())
    payload = signer.issue("rider:abc", now=now)
    outcomes: list[str] = []

    def reader(n: int) -> None:
        mine = FareCollector(open_ledger(), collector.tariff, verifier=signer.verifier())
        try:
            mine.tap(_tap(payload, 10 + n, now))
            outcomes.append("paid")
        except TicketRefused as exc:
            outcomes.append(exc.reason)

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["paid", "replayed", "replayed", "replayed"]
    ledger = open_ledger()
    assert ledger.account("rider:abc").balance == 1_000_000 - 150000
    assert ledger.check() == []
