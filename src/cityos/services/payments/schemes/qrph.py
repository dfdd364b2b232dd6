"""QR Ph (Philippines, BSP / PPMI): a person-to-person transfer over InstaPay in tag 27 under
GUID ``com.p2pqrpay`` (01 the receiving institution's BIC, 02 ``99964403`` in every code
seen, 04 the account, 05 a mobile), or a person-to-merchant payment in tag 28 under
``ph.ppmi.p2m`` (01 the acquirer's BIC, 03 the merchant id); PHP (608), PH.

PPMI's specification is not public: the layout here is read off published codes (PayMongo's
API reference, issued P2M codes) and the meaning of P2P sub-tag 02 is not documented."""

from __future__ import annotations

import re

from ..emvco import Tags, error
from ._base import Amount, Reading, Scheme, additional, finish, match, money, root, sub, text

P2P = "COM.P2PQRPAY"
P2M_PREFIX = "PH.PPMI."
P2P_NETWORK = "99964403"  # sub-tag 02 of every InstaPay P2P code seen; meaning unpublished
_BIC = re.compile(r"[A-Z]{6}[A-Z0-9]{2}(?:[A-Z0-9]{3})?")


def claims(tag: str, value: Tags) -> bool:
    found = str(value.get("00", "")).upper()
    return found == P2P or found.startswith(P2M_PREFIX)


def read(tags: Tags, tag: str) -> Reading:
    kind = "p2p" if str(tags[tag]["00"]).upper() == P2P else "p2m"  # type: ignore[index]
    bic = sub(tags, tag, "01", required=True) or ""
    match(f"{tag}.01", bic, _BIC, "a BIC (8 or 11 letters and digits)")
    extra = {"kind": kind, "bic": bic}
    if kind == "p2p":
        account = sub(tags, tag, "04", required=True, most=34) or ""
        mobile = sub(tags, tag, "05")
        if mobile is not None:
            extra["mobile"] = mobile
    else:
        account = sub(tags, tag, "03", required=True) or ""
    return Reading(account=account, extra=extra)


SCHEME = Scheme(name="qrph", country="PH", currencies=("608",), claims=claims, read=read)


def qrph(
    bic: str,
    merchant_name: str,
    merchant_city: str,
    amount: Amount | None = None,
    *,
    account: str | None = None,
    merchant_id: str | None = None,
    mobile: str | None = None,
    mcc: str | None = None,
    postal_code: str | None = None,
    bill_number: str | None = None,
    reference: str | None = None,
    terminal: str | None = None,
    store: str | None = None,
    purpose: str | None = None,
) -> str:
    """A QR Ph payload: give ``account`` for a P2P (InstaPay) code, ``merchant_id`` for a
    P2M one. ``mcc`` defaults to 6016 for P2P, as in the codes seen; P2M needs its own."""
    if (account is None) == (merchant_id is None):
        raise error("27-28", "give account (P2P, tag 27) or merchant_id (P2M, tag 28)")
    tag = "27" if account is not None else "28"
    match(f"{tag}.01", text(bic, f"{tag}.01", 11, "bic"), _BIC, "a BIC")
    if account is not None:
        template: Tags = {"00": "com.p2pqrpay", "01": bic, "02": P2P_NETWORK}
        template["04"] = text(account, "27.04", 34, "account")
        if mobile is not None:
            template["05"] = text(mobile, "27.05", 25, "mobile")
        mcc = mcc or "6016"
    else:
        template = {
            "00": "ph.ppmi.p2m",
            "01": bic,
            "03": text(merchant_id, "28.03", 25, "merchant_id"),
        }
        if mcc is None:
            raise error("52", "a QR Ph merchant (P2M) code needs its merchant category code")
    tags = root(
        accounts={tag: template},
        mcc=mcc,
        currency="608",
        amount=None if amount is None else money(amount, "608", cents=True),
        country="PH",
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
    )
    return finish(tags, "qrph")
