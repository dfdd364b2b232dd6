"""PromptPay (Thailand, Bank of Thailand / NITMX): a credit transfer to a PromptPay id under
AID A000000677010111 in tag 29 (sub-tag 01 a mobile as 0066 + 9 digits, 02 a 13-digit
national or tax id, 03 a 15-digit e-wallet id, 04 a bank account), or a bill payment under
A000000677010112 in tag 30 (01 biller id, 02 reference 1, 03 reference 2); THB (764), TH.
Codes in use (and the PyPI ``promptpay`` / ``promptpay-qr`` libraries) leave out the merchant
category, name and city, so those are optional here."""

from __future__ import annotations

import re

from ..emvco import Tags, error
from ._base import (
    Amount,
    Reading,
    Scheme,
    additional,
    finish,
    language,
    match,
    money,
    root,
    sub,
    text,
)

TRANSFER = "A000000677010111"
TRANSFER_ABROAD = "A000000677010114"  # the same template, for inbound cross-border transfers
BILL = "A000000677010112"
TARGETS = {"01": "mobile", "02": "national_id", "03": "ewallet", "04": "bank_account"}
_FORMS = {
    "01": (re.compile(r"[0-9]{13}"), "a mobile as 13 digits (0066 + 9)"),
    "02": (re.compile(r"[0-9]{13}"), "a 13-digit national or tax id"),
    "03": (re.compile(r"[0-9]{15}"), "a 15-digit e-wallet id"),
    "04": (re.compile(r"[0-9]{1,43}"), "a bank account number"),
}
_REF = re.compile(r"[0-9A-Za-z]{1,20}")


def claims(tag: str, value: Tags) -> bool:
    found = value.get("00")
    return found in (TRANSFER, TRANSFER_ABROAD, BILL)


def read(tags: Tags, tag: str) -> Reading:
    aid = tags[tag]["00"]  # type: ignore[index]
    if aid == BILL:
        if tag != "30":
            raise error(tag, "a PromptPay bill payment (A000000677010112) belongs in tag 30")
        biller = sub(tags, tag, "01", required=True, most=15) or ""
        match("30.01", biller, re.compile(r"[0-9]{1,15}"), "a biller id (digits)")
        ref1 = sub(tags, tag, "02", required=True) or ""
        match("30.02", ref1, _REF, "a reference (1-20 letters or digits)")
        extra = {"type": "bill", "ref1": ref1}
        ref2 = sub(tags, tag, "03")
        if ref2 is not None:
            extra["ref2"] = match("30.03", ref2, _REF, "a reference (1-20 letters or digits)")
        return Reading(account=biller, extra=extra)
    if tag != "29":
        raise error(tag, "a PromptPay credit transfer belongs in tag 29")
    present = [s for s in TARGETS if s in tags[tag]]  # type: ignore[operator]
    if len(present) != 1:
        raise error("29", "a PromptPay transfer names exactly one target (sub-tag 01-04)")
    subtag = present[0]
    value = sub(tags, "29", subtag) or ""
    pattern, what = _FORMS[subtag]
    match(f"29.{subtag}", value, pattern, what)
    return Reading(account=value, extra={"type": "transfer", "target_type": TARGETS[subtag]})


SCHEME = Scheme(
    name="promptpay",
    country="TH",
    currencies=("764",),
    claims=claims,
    read=read,
    mandatory=("00", "53", "58", "63"),
)


def normalize(target: str) -> tuple[str, str]:
    """(sub-tag, value) for a PromptPay id: a Thai mobile (0812345678, +66 81 234 5678,
    0066812345678) becomes 0066 + 9 digits; 13 digits a national/tax id; 15 an e-wallet."""
    if not isinstance(target, str):
        raise error("29", f"PromptPay target must be text, not {type(target).__name__}")
    digits = re.sub(r"[\s\-+().]", "", target)
    if digits.isascii() and digits.isdigit():
        if len(digits) == 10 and digits.startswith("0"):
            return "01", "0066" + digits[1:]
        if len(digits) == 11 and digits.startswith("66"):
            return "01", "00" + digits
        if len(digits) == 13 and digits.startswith("0066"):
            return "01", digits
        if len(digits) == 13:
            return "02", digits
        if len(digits) == 15:
            return "03", digits
    raise error(
        "29",
        f"PromptPay target {target!r} is not a Thai mobile (0 + 9 digits), "
        "a 13-digit national id or a 15-digit e-wallet id",
    )


def promptpay(
    target: str,
    amount: Amount | None = None,
    *,
    bill: bool = False,
    ref1: str | None = None,
    ref2: str | None = None,
    merchant_name: str | None = None,
    merchant_city: str | None = None,
    mcc: str | None = None,
    bill_number: str | None = None,
    reference: str | None = None,
    terminal: str | None = None,
    store: str | None = None,
    purpose: str | None = None,
    alt_language: str | None = None,
    alt_name: str | None = None,
    alt_city: str | None = None,
) -> str:
    """A PromptPay payload: a transfer to ``target`` (tag 29), or with ``bill=True`` a bill
    payment to biller id ``target`` with ``ref1`` (and ``ref2``) in tag 30."""
    if bill:
        biller = text(target, "30.01", 15, "the biller id")
        match("30.01", biller, re.compile(r"[0-9]{1,15}"), "a biller id (digits)")
        template: Tags = {"00": BILL, "01": biller}
        template["02"] = match("30.02", text(ref1, "30.02", 20, "ref1"), _REF, "a reference")
        if ref2 is not None:
            template["03"] = match("30.03", text(ref2, "30.03", 20, "ref2"), _REF, "a reference")
        accounts = {"30": template}
    else:
        subtag, value = normalize(target)
        accounts = {"29": {"00": TRANSFER, subtag: value}}
    tags = root(
        accounts=accounts,
        mcc=mcc,
        currency="764",
        amount=None if amount is None else money(amount, "764", cents=True),
        country="TH",
        name=None if merchant_name is None else text(merchant_name, "59", 25, "merchant_name"),
        city=None if merchant_city is None else text(merchant_city, "60", 15, "merchant_city"),
        extra62=additional(
            bill_number=bill_number,
            reference=reference,
            terminal=terminal,
            store=store,
            purpose=purpose,
        ),
        language=language(alt_language, alt_name, alt_city),
    )
    return finish(tags, "promptpay")
