"""PayNow (Singapore, in SGQR): a merchant template (26 in codes seen) with GUID
``SG.PAYNOW``, sub-tag 01 the proxy type (0 a mobile, 2 a UEN), 02 the proxy value, 03
whether the payer may edit the amount (1) or not (0), 04 an expiry as YYYYMMDD or
YYYYMMDDHHMMSS (Singapore time); SGD (702), SG. As in the PyPI ``pyPayNowSg`` library."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

from ..emvco import Tags, error
from ._base import Amount, Reading, Scheme, additional, finish, match, money, root, sub, text

GUID = "SG.PAYNOW"
PROXY_TYPES = {"0": "mobile", "2": "uen"}
SGT = timezone(timedelta(hours=8))
_MOBILE = re.compile(r"\+65[0-9]{8}")
_UEN = re.compile(r"[0-9A-Z]{9,10}")
_EXPIRY = re.compile(r"[0-9]{8}(?:[0-9]{6})?")


def claims(tag: str, value: Tags) -> bool:
    return str(value.get("00", "")).upper() == GUID


def expiry_ms(value: str, tag: str) -> int:
    """Epoch ms of a PayNow expiry (SGT); a date alone means the end of that day."""
    try:
        if len(value) == 8:
            end = datetime.strptime(value, "%Y%m%d") + timedelta(days=1, milliseconds=-1)
        else:
            end = datetime.strptime(value, "%Y%m%d%H%M%S")
    except ValueError:
        raise error(tag, f"expiry {value!r} is not a real date (YYYYMMDD[HHMMSS])") from None
    return int(end.replace(tzinfo=SGT).timestamp() * 1000)


def read(tags: Tags, tag: str) -> Reading:
    kind = sub(tags, tag, "01", required=True) or ""
    if not (len(kind) == 1 and kind.isdigit()):
        raise error(f"{tag}.01", f"proxy type {kind!r} is not one digit (0 mobile, 2 UEN)")
    proxy = sub(tags, tag, "02", required=True, most=20) or ""
    if kind == "0":
        match(f"{tag}.02", proxy, _MOBILE, "a Singapore mobile (+65 and 8 digits)")
    extra = {"proxy_type": PROXY_TYPES.get(kind, kind)}
    editable = sub(tags, tag, "03")
    if editable is not None:
        if editable not in ("0", "1"):
            raise error(f"{tag}.03", f"amount-editable flag {editable!r} is not 0 or 1")
        extra["editable"] = editable
    expires = None
    raw = sub(tags, tag, "04")
    if raw is not None:
        match(f"{tag}.04", raw, _EXPIRY, "an expiry as YYYYMMDD or YYYYMMDDHHMMSS")
        expires = expiry_ms(raw, f"{tag}.04")
        extra["expiry"] = raw
    return Reading(account=proxy, extra=extra, expires_ms=expires)


SCHEME = Scheme(name="paynow", country="SG", currencies=("702",), claims=claims, read=read)


def proxy_value(proxy: str, proxy_type: str) -> tuple[str, str]:
    """(type digit, value): a mobile as +65 and 8 digits, a UEN upper-cased."""
    if proxy_type == "mobile":
        digits = re.sub(r"[\s\-()]", "", str(proxy))
        digits = digits.removeprefix("+").removeprefix("65") if len(digits) > 8 else digits
        value = f"+65{digits}"
        return "0", match("26.02", value, _MOBILE, "a Singapore mobile (8 digits, +65 optional)")
    if proxy_type == "uen":
        value = str(proxy).strip().upper()
        return "2", match("26.02", value, _UEN, "a UEN (9 or 10 letters and digits)")
    raise error("26.01", f"proxy_type must be 'mobile' or 'uen', not {proxy_type!r}")


def _expiry(value: str | date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return (
            value.astimezone(SGT).strftime("%Y%m%d%H%M%S")
            if value.tzinfo
            else value.strftime("%Y%m%d%H%M%S")
        )
    if isinstance(value, date):
        return value.strftime("%Y%m%d")
    match("26.04", value, _EXPIRY, "an expiry as YYYYMMDD or YYYYMMDDHHMMSS")
    expiry_ms(value, "26.04")
    return value


def paynow(
    proxy: str,
    amount: Amount | None = None,
    *,
    proxy_type: str = "mobile",
    editable: bool | None = None,
    expiry: str | date | None = None,
    merchant_name: str = "NA",
    merchant_city: str = "Singapore",
    mcc: str = "0000",
    bill_number: str | None = None,
    reference: str | None = None,
    terminal: str | None = None,
) -> str:
    """A PayNow payload to a mobile or UEN ``proxy``. ``editable`` defaults to False with an
    amount (the payer pays exactly that) and True without; ``expiry`` is a date, a datetime
    (naive ones are Singapore time) or YYYYMMDD[HHMMSS]."""
    kind, value = proxy_value(proxy, proxy_type)
    if editable is None:
        editable = amount is None
    template: Tags = {"00": GUID, "01": kind, "02": value, "03": "1" if editable else "0"}
    written = _expiry(expiry)
    if written is not None:
        template["04"] = written
    tags = root(
        accounts={"26": template},
        mcc=mcc,
        currency="702",
        amount=None if amount is None else money(amount, "702", cents=True),
        country="SG",
        name=text(merchant_name, "59", 25, "merchant_name"),
        city=text(merchant_city, "60", 15, "merchant_city"),
        extra62=additional(bill_number=bill_number, reference=reference, terminal=terminal),
    )
    return finish(tags, "paynow")
