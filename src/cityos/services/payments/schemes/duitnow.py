"""DuitNow QR (Malaysia, PayNet): tag 26 with AID A0000006150001, sub-tag 01 the acquirer id
(6 digits, from PayNet's list), 02 the merchant or QR id the acquirer assigned (up to 28),
03 a descriptor, 04 a mobile; MYR (458), MY.

Payload format: EMVCo says tag 00 is "01", but PayNet's published examples and the stickers
banks print carry "02" (``000202...``); both are read, and :func:`duitnow` writes "02" unless
told otherwise. No independent library on PyPI implements DuitNow, so these rules rest on
PayNet's published examples (tests/services/payments/test_schemes.py decodes them)."""

from __future__ import annotations

import re

from ..emvco import Tags, error
from ._base import Amount, Reading, Scheme, additional, finish, match, money, root, sub, text

AID = "A0000006150001"
_ACQUIRER = re.compile(r"[0-9]{6}")
_ID = re.compile(r"[0-9A-Za-z]{1,28}")


def claims(tag: str, value: Tags) -> bool:
    return str(value.get("00", "")).upper() == AID


def read(tags: Tags, tag: str) -> Reading:
    acquirer = sub(tags, tag, "01", required=True) or ""
    match(f"{tag}.01", acquirer, _ACQUIRER, "an acquirer id (6 digits)")
    merchant = sub(tags, tag, "02", required=True) or ""
    match(f"{tag}.02", merchant, _ID, "a merchant id (up to 28 letters or digits)")
    extra = {"acquirer": acquirer, "payload_format": str(tags["00"])}
    for subtag, name, most in (("03", "descriptor", 20), ("04", "mobile", 15)):
        found = sub(tags, tag, subtag, most=most)
        if found is not None:
            extra[name] = found
    return Reading(account=merchant, extra=extra)


SCHEME = Scheme(
    name="duitnow",
    country="MY",
    currencies=("458",),
    claims=claims,
    read=read,
    payload_formats=("01", "02"),
)


def duitnow(
    acquirer_id: str,
    merchant_id: str,
    merchant_name: str,
    merchant_city: str,
    amount: Amount | None = None,
    *,
    mcc: str = "0000",
    descriptor: str | None = None,
    mobile: str | None = None,
    postal_code: str | None = None,
    bill_number: str | None = None,
    reference: str | None = None,
    terminal: str | None = None,
    store: str | None = None,
    purpose: str | None = None,
    payload_format: str = "02",
) -> str:
    """A DuitNow QR payload for the merchant id an acquirer (``acquirer_id``, 6 digits)
    assigned. Only an acquirer can register that id with PayNet: this writes the code, it
    does not create the account."""
    if payload_format not in ("01", "02"):
        raise error("00", f"payload_format must be '01' or '02', not {payload_format!r}")
    template: Tags = {
        "00": AID,
        "01": match("26.01", text(acquirer_id, "26.01", 6, "acquirer_id"), _ACQUIRER, "6 digits"),
        "02": match("26.02", text(merchant_id, "26.02", 28, "merchant_id"), _ID, "a merchant id"),
    }
    if descriptor is not None:
        template["03"] = text(descriptor, "26.03", 20, "descriptor")
    if mobile is not None:
        template["04"] = text(mobile, "26.04", 15, "mobile")
    tags = root(
        accounts={"26": template},
        mcc=mcc,
        currency="458",
        amount=None if amount is None else money(amount, "458", cents=True),
        country="MY",
        name=text(merchant_name, "59", 25, "merchant_name"),
        city=text(merchant_city, "60", 15, "merchant_city"),
        postal_code=None if postal_code is None else text(postal_code, "61", 10, "postal_code"),
        extra62=additional(
            bill_number=bill_number,
            reference=reference,
            terminal=terminal,
            store=store,
            purpose=purpose,
        ),
        payload_format=payload_format,
    )
    return finish(tags, "duitnow")
