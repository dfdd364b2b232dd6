"""Dynamic ticket QR codes: signed, short-lived, used once.

A rider's app shows a ticket that the gate or the bus reader scans. A screenshot must not
ride twice, so each ticket is

* **signed** with the city's Ed25519 key (:mod:`cryptography`): the reader checks it with
  the public key alone, and a changed byte (another account, a later expiry) fails;
* **time-limited**: issued at ``iat``, refused from ``exp`` on (default 60 s after: the app
  draws a new one every few seconds), and refused if issued more than ``SKEW_S`` in the
  future (a reader's clock may be a little off, no more);
* **used once**: its random ``nonce`` is remembered until the ticket expires (in the
  ledger's database, in the same transaction as the fare it pays, so two readers cannot
  both accept it); a second presentation is refused as replayed.

The payload is ``CTK1.<claims>.<signature>``, both parts base64url (no padding), the claims
a compact JSON object: ``{"a": account, "c": concession, "iat": s, "exp": s, "n": nonce,
"k": key id}``. About 200 characters: a version 10 QR at medium error correction.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import PaymentsError

PREFIX = "CTK1."
SKEW_S = 30  # how far a ticket's issue time may be ahead of the reader's clock
MAX_TTL_S = 600
MAX_PAYLOAD = 1024


class TicketRefused(PaymentsError):
    """A ticket that does not pay a fare; ``reason``: malformed, bad_signature, unknown_key,
    expired, not_yet_valid, replayed or other_tenant."""

    status = 400

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.code = f"ticket_{reason}"


@dataclass(frozen=True)
class Ticket:
    account: str
    concession: str
    issued_at: int
    expires_at: int
    nonce: str
    key_id: str
    tenant: str = ""  # the tenant it was issued in: it pays there and nowhere else


class NonceBook(Protocol):
    """Where used nonces are remembered until their ticket expires."""

    def use(self, nonce: str, expires_at: int) -> bool:
        """Record ``nonce``; False when it was already used."""
        ...


class MemoryNonces:
    """Nonces in this process only (a single reader, tests); the service keeps them in
    the database so that every worker and reader shares them."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def use(self, nonce: str, expires_at: int) -> bool:
        now = int(time.time())
        if len(self._seen) > 100_000:
            self._seen = {n: e for n, e in self._seen.items() if e >= now}
        if nonce in self._seen and self._seen[nonce] >= now:
            return False
        self._seen[nonce] = expires_at
        return True


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:8]


def load_or_create_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """The signing key in ``path`` (PEM, PKCS#8), made (mode 0600) when there is none."""
    p = Path(path)
    if p.exists():
        key = serialization.load_pem_private_key(p.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise PaymentsError(f"{p} holds no Ed25519 private key: move it away to make one")
        return key
    key = Ed25519PrivateKey.generate()
    p.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return key


class TicketSigner:
    """Issues tickets with one private key."""

    def __init__(self, key: Ed25519PrivateKey, *, ttl_s: int = 60) -> None:
        if not 1 <= ttl_s <= MAX_TTL_S:
            raise PaymentsError(f"a ticket lives 1 to {MAX_TTL_S} s, not {ttl_s}")
        self.key = key
        self.ttl_s = ttl_s
        self.key_id = key_id(key.public_key())

    def issue(
        self, account: str, *, concession: str = "", tenant: str = "", now: int | None = None
    ) -> str:
        """A ticket payload for ``account`` in ``tenant``, valid from now for ``ttl_s``
        seconds. The tenant is signed in: the same account id in another tenant (a rider's
        pseudonym is the same everywhere) is another wallet, and refuses it."""
        iat = int(time.time()) if now is None else now
        claims = {
            "a": account, "c": concession, "iat": iat, "exp": iat + self.ttl_s,
            "n": secrets.token_urlsafe(12), "k": self.key_id, "t": tenant,
        }  # fmt: skip
        body = _b64(orjson.dumps(claims))
        signature = self.key.sign((PREFIX + body).encode("ascii"))
        return f"{PREFIX}{body}.{_b64(signature)}"

    def verifier(self) -> TicketVerifier:
        return TicketVerifier([self.key.public_key()])


class TicketVerifier:
    """Checks tickets with the public keys it knows (several while a key is rotated)."""

    def __init__(self, keys: list[Ed25519PublicKey]) -> None:
        self.keys = {key_id(k): k for k in keys}

    def verify(self, payload: str, *, now: int | None = None, tenant: str | None = None) -> Ticket:
        """The ticket's claims if its signature and times hold and, when ``tenant`` is
        given, it was issued in that tenant (the nonce is not checked here: :func:`redeem`
        does); TicketRefused otherwise."""
        if not isinstance(payload, str) or len(payload) > MAX_PAYLOAD:
            raise TicketRefused("malformed", "a ticket is a string of at most 1024 characters")
        if not payload.startswith(PREFIX) or payload.count(".") != 2:
            raise TicketRefused("malformed", f"a ticket starts {PREFIX} and has three parts")
        signed, _, sig = payload.rpartition(".")
        try:
            claims = orjson.loads(_unb64(signed[len(PREFIX) :]))
            signature = _unb64(sig)
            ticket = Ticket(
                account=str(claims["a"]), concession=str(claims.get("c", "")),
                issued_at=int(claims["iat"]), expires_at=int(claims["exp"]),
                nonce=str(claims["n"]), key_id=str(claims["k"]), tenant=str(claims.get("t", "")),
            )  # fmt: skip
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
            raise TicketRefused("malformed", "the ticket's claims cannot be read") from None
        key = self.keys.get(ticket.key_id)
        if key is None:
            raise TicketRefused(
                "unknown_key", f"the ticket is signed by unknown key {ticket.key_id}"
            )
        try:
            key.verify(signature, signed.encode("ascii"))
        except (InvalidSignature, ValueError):
            raise TicketRefused("bad_signature", "the ticket's signature does not hold") from None
        at = int(time.time()) if now is None else now
        if ticket.issued_at > at + SKEW_S:
            raise TicketRefused("not_yet_valid", "the ticket is issued in the future")
        if at >= ticket.expires_at:
            raise TicketRefused("expired", "the ticket has expired: show a fresh one")
        if tenant is not None and ticket.tenant != tenant:
            raise TicketRefused("other_tenant", "the ticket was issued for another city's wallet")
        return ticket


def redeem(
    payload: str, verifier: TicketVerifier, nonces: NonceBook, *, now: int | None = None
) -> Ticket:
    """Verify a ticket and spend its nonce: the second presentation is refused."""
    ticket = verifier.verify(payload, now=now)
    if not nonces.use(ticket.nonce, ticket.expires_at + SKEW_S):
        raise TicketRefused("replayed", "the ticket was already used")
    return ticket
