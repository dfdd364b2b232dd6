"""What every national scheme module shares: how a scheme is described to the decoder, and
the helpers its encoder uses (amounts, the additional-data template, the root's tag order)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from .. import emvco
from ..emvco import Tags, error
from ..errors import PayloadError


@dataclass
class Reading:
    """What a scheme's reader found: the payee and the scheme's own fields."""

    account: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    expires_ms: int | None = None


@dataclass(frozen=True)
class Scheme:
    """A national scheme as the decoder sees it.

    ``claims(tag, template)`` says whether a merchant account template (26-51) is this
    scheme's (by its GUID or AID); ``read(tags, tag)`` applies the scheme's rules to the
    payload and returns the payee, raising PayloadError naming the tag at fault.
    """

    name: str
    country: str
    currencies: tuple[str, ...]
    claims: Callable[[str, Tags], bool]
    read: Callable[[Tags, str], Reading]
    mandatory: tuple[str, ...] = emvco.MANDATORY
    payload_formats: tuple[str, ...] = ("01",)
    country_bound: bool = False  # claims only when tag 58 is the scheme's country (KHQR)

    def check_place(self, tags: Tags) -> None:
        """Country (58) and currency (53) consistent with the scheme."""
        country, currency = tags.get("58"), tags.get("53")
        if country != self.country:
            raise error("58", f"{self.name} codes are for {self.country}; payload gives {country}")
        if currency not in self.currencies:
            want = " or ".join(self.currencies)
            raise error("53", f"{self.name} takes currency {want}; payload gives {currency}")


def guid(value: Tags) -> str:
    """A merchant template's GUID (sub-tag 00), upper-cased for comparison."""
    found = value.get("00")
    return found.upper() if isinstance(found, str) else ""


def sub(tags: Tags, tag: str, subtag: str, *, required: bool = False, most: int = 99) -> str | None:
    """A sub-tag's text, checked for presence and length, errors naming ``tag.sub``."""
    value = tags.get(tag)
    found = value.get(subtag) if isinstance(value, dict) else None
    if found is None:
        if required:
            raise error(f"{tag}.{subtag}", "is mandatory for this scheme and missing")
        return None
    if not isinstance(found, str):
        raise error(f"{tag}.{subtag}", "is a template here; it must be a plain value")
    if len(found) > most:
        raise error(f"{tag}.{subtag}", f"is {len(found)} characters; at most {most}")
    return found


def match(tag: str, value: str, pattern: re.Pattern[str], what: str) -> str:
    if not pattern.fullmatch(value):
        raise error(tag, f"{value!r} is not {what}")
    return value


# --- encoding helpers -------------------------------------------------------------------

Amount = Decimal | int | str


def money(amount: Amount, currency: str, *, whole: bool = False, cents: bool = False) -> str:
    """Tag 54 text for ``amount``: no decimals when whole, else the currency's two; with
    ``cents`` always two (``15.00``), as PromptPay, DuitNow, QR Ph and PayNow codes write it.

    A float is refused (it is not exact), as in the ledger; so is a negative or zero amount.
    """
    if isinstance(amount, bool) or not isinstance(amount, Decimal | int | str):
        hint = "; give a Decimal or a string such as '12.50'" if isinstance(amount, float) else ""
        raise error(
            "54", f"amount must be a Decimal, int or str, not {type(amount).__name__}{hint}"
        )
    try:
        value = Decimal(str(amount).strip())
    except InvalidOperation:
        raise error("54", f"amount {amount!r} is not a number") from None
    if not value.is_finite() or value <= 0:
        raise error("54", f"amount {amount!r} must be a positive number")
    if value.adjusted() >= 13:
        raise error("54", f"amount {amount} is over 13 characters")
    exp = 0 if whole else emvco.EXPONENTS.get(currency, 2)
    if value != value.quantize(Decimal(1).scaleb(-exp)):
        unit = "whole units" if exp == 0 else f"at most {exp} decimals"
        raise error(
            "54", f"amount {amount} has too many decimals; currency {currency} takes {unit}"
        )
    if value == value.to_integral_value() and not (cents and exp == 2):
        text = str(int(value))
    else:
        text = f"{value.quantize(Decimal(1).scaleb(-exp)):f}"
    if len(text) > 13:
        raise error("54", f"amount {text} is {len(text)} characters; at most 13")
    return text


def additional(
    *,
    bill_number: str | None = None,
    mobile: str | None = None,
    store: str | None = None,
    loyalty: str | None = None,
    reference: str | None = None,
    customer: str | None = None,
    terminal: str | None = None,
    purpose: str | None = None,
) -> Tags:
    """Tag 62's sub-tags for the labels given (each at most 25 characters, EMVCo)."""
    labels = {
        "01": bill_number, "02": mobile, "03": store, "04": loyalty,
        "05": reference, "06": customer, "07": terminal, "08": purpose,
    }  # fmt: skip
    out: Tags = {}
    for subtag, value in labels.items():
        if value is None:
            continue
        if not isinstance(value, str) or not 1 <= len(value) <= 25:
            raise error(f"62.{subtag}", f"{emvco.ADDITIONAL[subtag]} must be 1 to 25 characters")
        out[subtag] = value
    return out


def root(
    *,
    accounts: Mapping[str, Tags],
    currency: str,
    country: str,
    amount: str | None = None,
    dynamic: bool | None = None,
    mcc: str | None = None,
    name: str | None = None,
    city: str | None = None,
    postal_code: str | None = None,
    extra62: Tags | None = None,
    language: Tags | None = None,
    unreserved: Mapping[str, Tags | str] | None = None,
    payload_format: str = "01",
) -> Tags:
    """The root tags in ascending order (00 first; 63 is added by :func:`emvco.encode`).

    ``dynamic`` defaults to whether there is an amount: 12 for a one-off code, 11 for a
    sticker shown to many payers."""
    tags: Tags = {"00": payload_format}
    tags["01"] = (
        emvco.DYNAMIC if (amount is not None if dynamic is None else dynamic) else emvco.STATIC
    )
    for tag in sorted(accounts):
        tags[tag] = dict(accounts[tag])
    optional = {"52": mcc, "53": currency, "54": amount, "58": country, "59": name, "60": city}
    optional["61"] = postal_code
    tags.update({tag: value for tag, value in optional.items() if value is not None})
    if extra62:
        tags["62"] = dict(extra62)
    if language:
        tags["64"] = dict(language)
    for tag in sorted(unreserved or {}):
        tags[tag] = unreserved[tag]  # type: ignore[index]
    return tags


def language(code: str | None, name: str | None, city: str | None) -> Tags | None:
    """Tag 64 (merchant name and city in another language, e.g. Khmer or Thai)."""
    if code is None and name is None and city is None:
        return None
    if not code or not name:
        raise error("64", "an alternate language needs its ISO 639 code and the merchant name")
    out: Tags = {"00": code, "01": name}
    if city:
        out["02"] = city
    return out


def finish(tags: Tags, scheme: str) -> str:
    """Encode ``tags`` and decode the result, so the encoder is held to every rule the
    decoder applies; the payload must read back as ``scheme``."""
    from . import decode  # the registry imports the scheme modules, so import late

    payload = emvco.encode(tags)
    decoded = decode(payload)
    if decoded.scheme != scheme:  # pragma: no cover - a bug in an encoder, not in input
        raise PayloadError(f"payload reads back as {decoded.scheme}, not {scheme}")
    return payload


def text(value: object, tag: str, most: int, what: str) -> str:
    """An encoder argument that must be 1..most characters of text."""
    if not isinstance(value, str) or not value.strip():
        raise error(tag, f"{what} must be non-empty text")
    if len(value) > most:
        raise error(tag, f"{what} is {len(value)} characters; at most {most}")
    return value
