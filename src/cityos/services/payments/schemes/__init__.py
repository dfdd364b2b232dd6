"""The ASEAN national QR schemes over the EMVCo merchant-presented codec.

:func:`decode` reads any payload: it checks structure and CRC (:mod:`..emvco`), finds the
scheme by the GUID or AID in a merchant account template (and, for KHQR, which has none, by
a Bakong id in tag 29/30 of a Cambodian code), applies the EMVCo rules as that scheme uses
them, then the scheme's own, and returns a :class:`Decoded`. A payload no scheme claims is
read as plain ``"emvco"`` under the full EMVCo rules. One encoder per scheme writes payloads
(``khqr``, ``promptpay``, ``vietqr``, ``qris``, ``duitnow``, ``qrph``, ``paynow``); each
decodes what it wrote, so nothing leaves that :func:`decode` would refuse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .. import emvco
from ..emvco import Tags
from ..errors import PayloadError
from . import duitnow as _duitnow
from . import khqr as _khqr
from . import paynow as _paynow
from . import promptpay as _promptpay
from . import qris as _qris
from . import qrph as _qrph
from . import vietqr as _vietqr
from ._base import Reading, Scheme
from .duitnow import duitnow
from .khqr import khqr
from .paynow import paynow
from .promptpay import promptpay
from .qris import Provider, qris
from .qrph import qrph
from .vietqr import vietqr

__all__ = [
    "NAMES",
    "SCHEMES",
    "Decoded",
    "PayloadError",
    "Provider",
    "decode",
    "duitnow",
    "khqr",
    "paynow",
    "promptpay",
    "qris",
    "qrph",
    "vietqr",
]

SCHEMES: tuple[Scheme, ...] = tuple(
    module.SCHEME for module in (_khqr, _promptpay, _vietqr, _qris, _duitnow, _qrph, _paynow)
)
NAMES = (*(scheme.name for scheme in SCHEMES), "emvco")


@dataclass(frozen=True)
class Decoded:
    """A payload as read: the scheme, every tag (templates as dicts) and the fields a payment
    needs. ``account`` is the payee as the scheme names it (a Bakong id, a PromptPay id, a
    bank account, an NMID, a PayNow proxy...); ``extra`` holds the scheme's other fields
    (bank BIN, service code, proxy type, acquirer, references...)."""

    scheme: str
    tags: Tags
    currency: str
    country: str | None
    amount: Decimal | None = None
    merchant_name: str | None = None
    merchant_city: str | None = None
    postal_code: str | None = None
    mcc: str | None = None
    dynamic: bool = False
    account: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    additional: dict[str, str] = field(default_factory=dict)
    expires_ms: int | None = None
    payload: str = ""

    @property
    def bill_number(self) -> str | None:
        return self.additional.get("bill_number")

    @property
    def reference(self) -> str | None:
        return self.additional.get("reference")

    @property
    def terminal(self) -> str | None:
        return self.additional.get("terminal")

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly: the amount as a decimal string, templates as nested objects."""
        return {
            "scheme": self.scheme,
            "account": self.account,
            "amount": None if self.amount is None else str(self.amount),
            "currency": self.currency,
            "country": self.country,
            "merchant_name": self.merchant_name,
            "merchant_city": self.merchant_city,
            "postal_code": self.postal_code,
            "mcc": self.mcc,
            "dynamic": self.dynamic,
            "expires_ms": self.expires_ms,
            "extra": dict(self.extra),
            "additional": dict(self.additional),
            "tags": _plain(self.tags),
            "payload": self.payload,
        }


def _plain(tags: Tags) -> dict[str, Any]:
    return {tag: _plain(value) if isinstance(value, dict) else value for tag, value in tags.items()}


def detect(tags: Tags) -> tuple[Scheme, str] | None:
    """The scheme a payload's merchant templates name, and the template's tag.

    Several may be named (an SGQR carries PayNow beside other networks): the one of the
    payload's country wins; KHQR, known by a Bakong id rather than a GUID, only in a
    Cambodian code."""
    found = [
        (scheme, tag)
        for tag, value in tags.items()
        if "26" <= tag <= "51" and isinstance(value, dict)
        for scheme in SCHEMES
        if scheme.claims(tag, value)
    ]
    country = tags.get("58")
    for scheme, tag in found:
        if scheme.country == country:
            return scheme, tag
    for scheme, tag in found:
        if not scheme.country_bound:
            return scheme, tag
    return None


def _text(tags: Tags, tag: str) -> str | None:
    value = tags.get(tag)
    return value if isinstance(value, str) else None


def decode(payload: str) -> Decoded:
    """Read a merchant-presented QR payload; PayloadError (naming the tag) if it is not one
    or breaks its scheme's rules."""
    tags = emvco.parse(payload)
    found = detect(tags)
    if found is None:
        emvco.check(tags)
        name = "emvco"
        guids = [
            str(value["00"])
            for tag, value in tags.items()
            if "26" <= tag <= "51" and isinstance(value, dict)
        ]
        reading = Reading(extra={"guids": ",".join(guids)} if guids else {})
    else:
        scheme, tag = found
        emvco.check(tags, mandatory=scheme.mandatory, payload_formats=scheme.payload_formats)
        scheme.check_place(tags)
        reading = scheme.read(tags, tag)
        name = scheme.name
    amount = _text(tags, "54")
    extra62 = tags.get("62")
    additional = (
        {emvco.ADDITIONAL.get(sub, sub): str(value) for sub, value in extra62.items()}
        if isinstance(extra62, dict)
        else {}
    )
    return Decoded(
        scheme=name,
        tags=tags,
        currency=str(tags["53"]),
        country=_text(tags, "58"),
        amount=None if amount is None else Decimal(amount),
        merchant_name=_text(tags, "59"),
        merchant_city=_text(tags, "60"),
        postal_code=_text(tags, "61"),
        mcc=_text(tags, "52"),
        dynamic=tags.get("01") == emvco.DYNAMIC,
        account=reading.account,
        extra=reading.extra,
        additional=additional,
        expires_ms=reading.expires_ms,
        payload=payload.strip(),
    )
