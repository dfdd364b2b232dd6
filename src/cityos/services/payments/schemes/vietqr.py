"""VietQR (Vietnam, NAPAS 247): tag 38 holds GUID A000000727, the beneficiary as a nested
template in sub-tag 01 (00 the bank's 6-digit NAPAS BIN, 01 the account or card number) and
the service code in 02 (QRIBFTTA to an account, QRIBFTTC to a card); VND (704, whole dong),
VN. As in NAPAS's VietQR spec v1.0 and the PyPI ``napas-qr-python`` / ``vietqr-emvco``
libraries; codes in use often leave out the merchant category, name and city."""

from __future__ import annotations

import re

from ..emvco import Tags, error, template
from ._base import Amount, Reading, Scheme, additional, finish, match, money, root, sub, text

GUID = "A000000727"
SERVICES = {"QRIBFTTA": "account", "QRIBFTTC": "card", "QRPUSH": "payment", "QRCASH": "cash"}
_BIN = re.compile(r"[0-9]{6}")
_ACCOUNT = re.compile(r"[0-9A-Za-z]{1,19}")
_CARD = re.compile(r"[0-9]{12,19}")


def claims(tag: str, value: Tags) -> bool:
    return value.get("00") == GUID


def read(tags: Tags, tag: str) -> Reading:
    if tag != "38":
        raise error(tag, "VietQR's NAPAS template (A000000727) belongs in tag 38")
    outer = tags["38"]
    assert isinstance(outer, dict)
    beneficiary = outer.get("01")
    if beneficiary is None:
        raise error("38.01", "the beneficiary (BIN and account) is mandatory and missing")
    if isinstance(beneficiary, str):
        beneficiary = outer["01"] = template(beneficiary, "38.01")
    bank, account = beneficiary.get("00"), beneficiary.get("01")
    if not isinstance(bank, str):
        raise error("38.01.00", "the bank's NAPAS BIN is mandatory and missing")
    if not isinstance(account, str):
        raise error("38.01.01", "the account or card number is mandatory and missing")
    match("38.01.00", bank, _BIN, "a NAPAS BIN (6 digits)")
    service = sub(tags, "38", "02", required=True) or ""
    if service not in SERVICES:
        raise error("38.02", f"service code {service!r} is not one of {', '.join(SERVICES)}")
    if service == "QRIBFTTC":
        match("38.01.01", account, _CARD, "a card number (12-19 digits)")
    else:
        match("38.01.01", account, _ACCOUNT, "an account number (1-19 letters or digits)")
    return Reading(account=account, extra={"bin": bank, "service": service})


SCHEME = Scheme(
    name="vietqr",
    country="VN",
    currencies=("704",),
    claims=claims,
    read=read,
    mandatory=("00", "53", "58", "63"),
)


def vietqr(
    bin: str,
    account: str,
    amount: Amount | None = None,
    *,
    service: str = "QRIBFTTA",
    purpose: str | None = None,
    bill_number: str | None = None,
    reference: str | None = None,
    terminal: str | None = None,
    store: str | None = None,
    merchant_name: str | None = None,
    merchant_city: str | None = None,
    mcc: str | None = None,
) -> str:
    """A VietQR payload paying ``account`` (``service="QRIBFTTC"``: a card number) at the bank
    with NAPAS BIN ``bin``; ``purpose`` is the transfer's message (tag 62.08)."""
    if service not in ("QRIBFTTA", "QRIBFTTC"):
        raise error(
            "38.02", f"service must be QRIBFTTA (account) or QRIBFTTC (card), not {service!r}"
        )
    match("38.01.00", text(bin, "38.01.00", 6, "bin"), _BIN, "a NAPAS BIN (6 digits)")
    text(account, "38.01.01", 19, "account")
    tags = root(
        accounts={"38": {"00": GUID, "01": {"00": bin, "01": account}, "02": service}},
        mcc=mcc,
        currency="704",
        amount=None if amount is None else money(amount, "704"),
        country="VN",
        name=None if merchant_name is None else text(merchant_name, "59", 25, "merchant_name"),
        city=None if merchant_city is None else text(merchant_city, "60", 15, "merchant_city"),
        extra62=additional(
            bill_number=bill_number,
            reference=reference,
            terminal=terminal,
            store=store,
            purpose=purpose,
        ),
    )
    return finish(tags, "vietqr")
