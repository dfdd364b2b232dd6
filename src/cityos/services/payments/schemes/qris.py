"""QRIS (Indonesia, Bank Indonesia / ASPI): the national merchant id (NMID) sits in tag 51
under GUID ``ID.CO.QRIS.WWW`` (sub-tag 02, with the merchant criteria in 03), each payment
provider in a template of its own in 26-45 (00 its GUID, 01 the merchant PAN, 02 its merchant
id, 03 criteria); the postal code (61) is mandatory; IDR (360), ID. As in the PyPI
``qriskit`` library."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .. import emvco
from ..emvco import Tags, error
from ._base import Amount, Reading, Scheme, additional, finish, match, money, root, sub, text

GUID = "ID.CO.QRIS.WWW"
CRITERIA = ("UMI", "UKE", "UME", "UBE", "URE")  # micro, small, medium, large, regular
_NMID = re.compile(r"[0-9A-Z]{1,15}")
_PAN = re.compile(r"[0-9]{1,19}")


@dataclass(frozen=True)
class Provider:
    """A payment provider's template (tags 26-45): its GUID (e.g. ``ID.CO.BANKX.WWW``),
    the merchant PAN it issued and/or its merchant id."""

    guid: str
    pan: str | None = None
    merchant_id: str | None = None
    criteria: str | None = None


def claims(tag: str, value: Tags) -> bool:
    return tag == "51" and str(value.get("00", "")).upper() == GUID


def read(tags: Tags, tag: str) -> Reading:
    nmid = sub(tags, "51", "02", required=True, most=15) or ""
    match("51.02", nmid, _NMID, "a national merchant id (NMID, up to 15 letters or digits)")
    extra = {"nmid": nmid}
    criteria = sub(tags, "51", "03")
    if criteria is not None:
        if criteria not in CRITERIA:
            raise error(
                "51.03", f"merchant criteria {criteria!r} is not one of {', '.join(CRITERIA)}"
            )
        extra["criteria"] = criteria
    providers = []
    for ptag in sorted(t for t in tags if "26" <= t <= "45"):
        pan = sub(tags, ptag, "01", most=19)
        if pan is not None:
            match(f"{ptag}.01", pan, _PAN, "a merchant PAN (up to 19 digits)")
        providers.append(f"{ptag}:{tags[ptag]['00']}")  # type: ignore[index]
    if providers:
        extra["providers"] = ",".join(providers)
    return Reading(account=nmid, extra=extra)


SCHEME = Scheme(
    name="qris",
    country="ID",
    currencies=("360",),
    claims=claims,
    read=read,
    mandatory=(*emvco.MANDATORY, "61"),
)


def qris(
    nmid: str,
    merchant_name: str,
    merchant_city: str,
    postal_code: str,
    mcc: str,
    amount: Amount | None = None,
    *,
    criteria: str = "UMI",
    providers: Sequence[Provider] = (),
    bill_number: str | None = None,
    reference: str | None = None,
    terminal: str | None = None,
    store: str | None = None,
    purpose: str | None = None,
) -> str:
    """A QRIS payload for the merchant with national id ``nmid`` (tag 51), and the
    ``providers`` that acquire it (tags 26, 27, ... in order)."""
    match("51.02", text(nmid, "51.02", 15, "nmid"), _NMID, "an NMID (up to 15 letters or digits)")
    if criteria not in CRITERIA:
        raise error("51.03", f"criteria must be one of {', '.join(CRITERIA)}, not {criteria!r}")
    if len(providers) > 20:
        raise error("26-45", "QRIS has room for 20 provider templates (tags 26-45)")
    accounts: dict[str, Tags] = {}
    for index, provider in enumerate(providers):
        ptag = f"{26 + index}"
        entry: Tags = {"00": text(provider.guid, f"{ptag}.00", 32, "provider GUID")}
        if provider.pan is not None:
            entry["01"] = match(f"{ptag}.01", provider.pan, _PAN, "a merchant PAN (digits)")
        if provider.merchant_id is not None:
            entry["02"] = text(provider.merchant_id, f"{ptag}.02", 15, "provider merchant id")
        if provider.criteria is not None:
            entry["03"] = provider.criteria
        accounts[ptag] = entry
    accounts["51"] = {"00": GUID, "02": nmid, "03": criteria}
    tags = root(
        accounts=accounts,
        mcc=mcc,
        currency="360",
        amount=None if amount is None else money(amount, "360"),
        country="ID",
        name=text(merchant_name, "59", 25, "merchant_name"),
        city=text(merchant_city, "60", 15, "merchant_city"),
        postal_code=text(postal_code, "61", 10, "postal_code"),
        extra62=additional(
            bill_number=bill_number,
            reference=reference,
            terminal=terminal,
            store=store,
            purpose=purpose,
        ),
    )
    return finish(tags, "qris")
