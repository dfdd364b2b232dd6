"""KHQR (Cambodia, National Bank of Cambodia's Bakong): the payee is a Bakong account id
``name@bank`` in tag 29 (an individual) or 30 (a merchant, with its merchant id and acquiring
bank); KHR (116, whole riel) or USD (840); tag 99 carries the creation and expiry times in
milliseconds, and a code with an amount must say when it expires. Rules as in NBC's own
``bakong-khqr`` SDK (npm) and the PyPI ``bakong-khqr`` / ``konthaina-khqr`` libraries."""

from __future__ import annotations

import re
import time
from decimal import Decimal

from ..emvco import Tags, error
from ._base import Amount, Reading, Scheme, additional, finish, language, money, root, sub, text

ACCOUNT = re.compile(r"[^@\s]+@[^@\s]+")
CURRENCIES = {"KHR": "116", "USD": "840", "116": "116", "840": "840"}
_MS = re.compile(r"[0-9]{13}")


def claims(tag: str, value: Tags) -> bool:
    found = value.get("00")
    return tag in ("29", "30") and isinstance(found, str) and bool(ACCOUNT.fullmatch(found))


def _ms(tags: Tags, subtag: str) -> int | None:
    found = sub(tags, "99", subtag)
    if found is None:
        return None
    if not _MS.fullmatch(found):
        raise error(f"99.{subtag}", f"{found!r} is not a time in milliseconds (13 digits)")
    return int(found)


def read(tags: Tags, tag: str) -> Reading:
    account = sub(tags, tag, "00", required=True, most=32)
    extra = {"type": "merchant" if tag == "30" else "individual"}
    if tag == "30":
        extra["merchant_id"] = sub(tags, tag, "01", required=True, most=32) or ""
        extra["acquiring_bank"] = sub(tags, tag, "02", required=True, most=32) or ""
    else:
        for subtag, name in (("01", "account_information"), ("02", "acquiring_bank")):
            found = sub(tags, tag, subtag, most=32)
            if found is not None:
                extra[name] = found
    amount = tags.get("54")
    if tags["53"] == "116" and isinstance(amount, str) and Decimal(amount) % 1:
        raise error("54", f"KHR amounts are whole riel; payload gives {amount}")
    if tags.get("01") == "12" and amount is None:
        raise error("54", "a dynamic KHQR (tag 01 = 12) carries an amount")
    if "99" in tags and not isinstance(tags["99"], dict):
        raise error("99", "the KHQR timestamp template is not TLV")
    created, expires = _ms(tags, "00"), _ms(tags, "01")
    if amount is not None and expires is None:
        raise error("99.01", "a KHQR with an amount carries its expiry time (ms)")
    if created is not None and expires is not None and expires < created:
        raise error("99.01", f"expiry {expires} is before creation {created}")
    if created is not None:
        extra["created_ms"] = str(created)
    return Reading(account=account, extra=extra, expires_ms=expires)


SCHEME = Scheme(
    name="khqr",
    country="KH",
    currencies=("116", "840"),
    claims=claims,
    read=read,
    country_bound=True,
)


def khqr(
    account: str,
    merchant_name: str,
    merchant_city: str = "Phnom Penh",
    currency: str = "KHR",
    amount: Amount | None = None,
    *,
    merchant: bool = False,
    merchant_id: str | None = None,
    acquiring_bank: str | None = None,
    account_information: str | None = None,
    bill_number: str | None = None,
    mobile: str | None = None,
    store: str | None = None,
    terminal: str | None = None,
    purpose: str | None = None,
    mcc: str = "5999",
    created_ms: int | None = None,
    expires_ms: int | None = None,
    alt_language: str | None = None,
    alt_name: str | None = None,
    alt_city: str | None = None,
) -> str:
    """A KHQR payload. With an amount it is dynamic (tag 01 = 12) and needs ``expires_ms``;
    ``created_ms`` defaults to now. ``merchant=True`` writes tag 30 with ``merchant_id`` and
    ``acquiring_bank``; otherwise tag 29 (an individual's account)."""
    tag = "30" if merchant else "29"
    text(account, f"{tag}.00", 32, "the Bakong account id")
    if not ACCOUNT.fullmatch(account):
        raise error(f"{tag}.00", f"Bakong account id {account!r} is not name@bank")
    code = CURRENCIES.get(str(currency).upper())
    if code is None:
        raise error("53", f"KHQR takes KHR or USD, not {currency!r}")
    template: Tags = {"00": account}
    if merchant:
        template["01"] = text(merchant_id, "30.01", 32, "merchant_id")
        template["02"] = text(acquiring_bank, "30.02", 32, "acquiring_bank")
    else:
        if account_information is not None:
            template["01"] = text(account_information, "29.01", 32, "account_information")
        if acquiring_bank is not None:
            template["02"] = text(acquiring_bank, "29.02", 32, "acquiring_bank")
    written = None if amount is None else money(amount, code, whole=code == "116")
    stamps: Tags = {}
    if written is not None or created_ms is not None or expires_ms is not None:
        if written is not None and expires_ms is None:
            raise error("99.01", "a KHQR with an amount needs expires_ms (its expiry time)")
        stamps["00"] = str(int(time.time() * 1000) if created_ms is None else created_ms)
        if expires_ms is not None:
            stamps["01"] = str(expires_ms)
    tags = root(
        accounts={tag: template},
        mcc=mcc,
        currency=code,
        amount=written,
        country="KH",
        name=text(merchant_name, "59", 25, "merchant_name"),
        city=text(merchant_city, "60", 15, "merchant_city"),
        extra62=additional(
            bill_number=bill_number, mobile=mobile, store=store, terminal=terminal, purpose=purpose
        ),
        language=language(alt_language, alt_name, alt_city),
        unreserved={"99": stamps} if stamps else None,
    )
    return finish(tags, "khqr")
