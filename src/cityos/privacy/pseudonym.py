"""Pseudonyms: keyed hashes (HMAC-SHA256) whose key changes every period.

A raw identifier (a fare card number, a phone's MAC address, a number plate) goes in and
only its pseudonym comes out; nothing here stores or logs the raw value. The key of period
``n`` is ``HMAC(secret, "cityos/pseudonym/v1/<rotation>/<n>")``, so the same card has one
pseudonym all day (a tap-in and its tap-out pair up) and an unrelated one the next day:
without the secret, records of different periods cannot be linked. The city, which holds
the secret, can recompute a person's pseudonyms for the periods still within retention,
which is how access and erasure requests are answered (:mod:`cityos.privacy.requests`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import MissingKey
from .settings import KEY_HINT, MIN_KEY_CHARS, PrivacySettings

ALGORITHM = "HMAC-SHA256, 128-bit, key rotated per period"
ROTATIONS = {"daily": 1, "weekly": 7}
_MONDAY = date(1970, 1, 5)  # weekly periods start on Mondays
_NON_HEX = re.compile(r"[^0-9a-f]")
_NON_ALNUM = re.compile(r"[^0-9A-Z]")


def _card(raw: str) -> str:
    return re.sub(r"[\s\-]", "", raw)


def _mac(raw: str) -> str:
    digits = _NON_HEX.sub("", raw.lower())
    if len(digits) != 12:
        raise ValueError("a MAC address has 12 hexadecimal digits")
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def _plate(raw: str) -> str:
    return _NON_ALNUM.sub("", raw.upper())


# how each kind of identifier is written before hashing, so "AA-BB..." and "aabb..." agree
NORMALISE: dict[str, Callable[[str], str]] = {"card": _card, "mac": _mac, "plate": _plate}


@dataclass(frozen=True)
class Period:
    """One key period: its index, its first local day and its bounds in UTC."""

    index: int
    label: str  # the local date it starts on, YYYY-MM-DD
    start: datetime
    end: datetime


class Pseudonymiser:
    """Turns raw identifiers into period pseudonyms; holds the secret and nothing else."""

    def __init__(
        self, secret: str | bytes, *, rotation: str = "daily", timezone: str = "UTC"
    ) -> None:
        raw = secret.encode() if isinstance(secret, str) else bytes(secret)
        if not raw:
            raise MissingKey(f"no pseudonymisation key: {KEY_HINT}")
        if rotation not in ROTATIONS:
            raise ValueError(f"rotation {rotation!r}: use {' or '.join(ROTATIONS)}")
        try:
            self.zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"time zone {timezone!r} is not an IANA name (Asia/Bangkok)") from None
        self._secret = raw
        self.rotation = rotation
        self.days = ROTATIONS[rotation]
        self._key = lru_cache(maxsize=64)(self._derive)
        self._pads = lru_cache(maxsize=64)(self._hmac_pads)

    def __repr__(self) -> str:  # never shows the secret
        return f"Pseudonymiser(rotation={self.rotation!r}, timezone={self.zone.key!r})"

    @classmethod
    def from_settings(cls, settings: PrivacySettings) -> Pseudonymiser:
        """From the configured secret; :class:`MissingKey` when it is empty or short."""
        if len(settings.key) < MIN_KEY_CHARS:
            what = "no" if not settings.key else "a too short"
            raise MissingKey(f"{what} pseudonymisation key: {KEY_HINT}")
        return cls(settings.key, rotation=settings.rotation, timezone=settings.timezone)

    # -- periods ----------------------------------------------------------------------------
    def period_of(self, at: datetime) -> Period:
        """The period ``at`` (an aware datetime; naive is taken as UTC) falls in."""
        return self.period(self.index_of(at))

    def index_of(self, at: datetime) -> int:
        """The index of the period ``at`` falls in (what the key is derived from)."""
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        local = at.astimezone(self.zone).date()
        if self.days == 1:
            return local.toordinal()
        return (local - _MONDAY).days // 7

    def period(self, index: int) -> Period:
        first = date.fromordinal(index) if self.days == 1 else _MONDAY + timedelta(weeks=index)
        start = datetime.combine(first, time(), self.zone)
        end = datetime.combine(first + timedelta(days=self.days), time(), self.zone)
        return Period(index, first.isoformat(), start.astimezone(UTC), end.astimezone(UTC))

    def periods(self, since: datetime, until: datetime) -> list[Period]:
        """Every period that overlaps ``[since, until]``, oldest first."""
        first, last = self.period_of(since).index, self.period_of(until).index
        return [self.period(i) for i in range(first, last + 1)]

    # -- pseudonyms -------------------------------------------------------------------------
    def _derive(self, index: int) -> bytes:
        label = f"cityos/pseudonym/v1/{self.rotation}/{index}".encode()
        return hmac.new(self._secret, label, hashlib.sha256).digest()

    def _hmac_pads(self, index: int) -> tuple[Any, Any]:
        """HMAC-SHA256 (RFC 2104) with the period's key, its inner and outer hashes primed
        once: a million pseudonyms a day then cost two hash updates each."""
        key = self._key(index).ljust(64, b"\0")  # 32-byte keys: no pre-hash needed
        inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
        return inner, outer

    def pseudonym(self, raw: str, kind: str, at: datetime) -> str:
        """The pseudonym of identifier ``raw`` of ``kind`` (card, mac, plate) in the period
        of ``at``: 32 hex digits. ValueError for an unknown kind or a malformed identifier
        (the message never repeats the identifier)."""
        return self.pseudonym_in(raw, kind, self.index_of(at))

    def pseudonym_in(self, raw: str, kind: str, index: int) -> str:
        try:
            normalise = NORMALISE[kind]
        except KeyError:
            raise ValueError(f"identifier kind {kind!r}: use {', '.join(NORMALISE)}") from None
        value = normalise(raw)
        if not value:
            raise ValueError(f"an empty {kind} identifier")
        inner, outer = self._pads(index)
        h = inner.copy()
        h.update(f"{kind}\x00{value}".encode())
        out = outer.copy()
        out.update(h.digest())
        return out.hexdigest()[:32]

    def candidates(self, raw: str, kind: str, since: datetime, until: datetime) -> list[str]:
        """The identifier's pseudonyms in every period from ``since`` to ``until``: what an
        access or erasure request looks for."""
        return [self.pseudonym_in(raw, kind, p.index) for p in self.periods(since, until)]
