"""EMVCo merchant-presented QR (MPM) codec: the tag-length-value text, its CRC and the rules
every national scheme shares (EMV QRCPS Merchant-Presented Mode v1.1).

A payload is ``ID LL VALUE ...``: a 2-digit id, a 2-digit length counted in characters and
the value; ``00`` (payload format) comes first and ``63`` (CRC) last. Tags 26-51 (merchant
account information), 62 (additional data) and 64 (alternate language) are templates whose
values are TLV again; 80-99 (unreserved) are read as templates when they parse as one and
kept as text when they do not (DuitNow puts a bare hash in 82). The CRC is CRC-16/CCITT-FALSE
(poly 0x1021, init 0xFFFF) over the UTF-8 bytes of everything before its 4 hex digits, "6304"
included, so a tag-64 name in Khmer or Thai counts one per character in its length but all its
bytes in the CRC.

:func:`parse` reads the structure (and refuses a wrong CRC), :func:`check` applies the shared
rules, :func:`encode` writes tags back. Scheme detection and the scheme rules live in
:mod:`.schemes`, whose ``decode`` is the one callers use.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import NoReturn, Union

from .errors import PayloadError

Value = Union[str, "Tags"]
Tags = dict[str, Value]

MAX_PAYLOAD = 512  # characters: EMVCo's limit for the whole payload
MAX_VALUE = 99  # a length is two digits

# EMVCo marks these mandatory (Table 3.3), with at least one merchant account (02-51)
MANDATORY = ("00", "52", "53", "58", "59", "60", "63")

NAMES = {
    "00": "payload format indicator",
    "01": "point of initiation method",
    "52": "merchant category code",
    "53": "transaction currency",
    "54": "transaction amount",
    "55": "tip or convenience indicator",
    "56": "convenience fee (fixed)",
    "57": "convenience fee (percentage)",
    "58": "country code",
    "59": "merchant name",
    "60": "merchant city",
    "61": "postal code",
    "62": "additional data template",
    "63": "CRC",
    "64": "merchant information (alternate language)",
}

# sub-tags of 62, by the names Decoded uses
ADDITIONAL = {
    "01": "bill_number",
    "02": "mobile",
    "03": "store",
    "04": "loyalty",
    "05": "reference",
    "06": "customer",
    "07": "terminal",
    "08": "purpose",
    "09": "consumer_data_request",
    "10": "merchant_tax_id",
    "11": "merchant_channel",
}

# ISO 4217 minor-unit exponents by numeric code: the most decimals tag 54 may carry
EXPONENTS = {
    "116": 2, "704": 0, "764": 2, "360": 2, "608": 2, "458": 2, "702": 2, "418": 2,
    "104": 2, "096": 2, "840": 2, "978": 2, "392": 0, "156": 2, "410": 0, "356": 2,
}  # fmt: skip

STATIC, DYNAMIC = "11", "12"

_AMOUNT = re.compile(r"[0-9]+(?:\.[0-9]*)?")
_PERCENT = re.compile(r"[0-9]{1,2}(?:\.[0-9]{1,2})?")
_HEX4 = re.compile(r"[0-9A-Fa-f]{4}")
_COUNTRY = re.compile(r"[A-Z]{2}")


def error(tag: str, message: str) -> PayloadError:
    """A PayloadError whose message starts with the tag at fault."""
    return PayloadError(f"tag {tag}: {message}", tag=tag)


def crc16(data: str) -> str:
    """CRC-16/CCITT-FALSE of ``data``'s UTF-8 bytes as 4 uppercase hex digits.

    ``binascii.crc_hqx`` is that CRC (poly 0x1021, not reflected) run from the given initial
    value, in C."""
    return f"{binascii.crc_hqx(data.encode('utf-8'), 0xFFFF):04X}"


def is_template(tag: str) -> bool:
    """Tags whose value must be TLV: merchant accounts 26-51, additional data, language."""
    return "26" <= tag <= "51" or tag == "62" or tag == "64"


def is_merchant_account(tag: str) -> bool:
    return "02" <= tag <= "51"


_IDS = frozenset(f"{i:02d}" for i in range(100))
_LENGTHS = {f"{i:02d}": i for i in range(100)}


def split(data: str, parent: str = "") -> list[tuple[str, str]]:
    """``data`` as ``[(id, value), ...]``; a PayloadError naming the tag if it is not TLV."""
    out: list[tuple[str, str]] = []
    pos, end = 0, len(data)
    while pos < end:
        tid = data[pos : pos + 2]
        length = _LENGTHS.get(data[pos + 2 : pos + 4])
        start = pos + 4
        if tid not in _IDS or not length or start + length > end:
            _split_error(data, pos, parent)
        out.append((tid, data[start : start + length]))
        pos = start + length
    return out


def _split_error(data: str, pos: int, parent: str) -> NoReturn:
    """Say what is wrong at ``pos`` (the fast path above only knows that something is)."""
    tid, raw = data[pos : pos + 2], data[pos + 2 : pos + 4]
    tag = f"{parent}.{tid}" if parent else tid
    if tid not in _IDS:
        raise error(tag, f"an id is 2 digits (at character {pos})")
    if raw not in _LENGTHS:
        raise error(tag, f"length {raw!r} is not 2 digits")
    if raw == "00":
        raise error(tag, "length 00: a data object holds 1 to 99 characters")
    remain = len(data) - pos - 4
    raise error(tag, f"declares length {int(raw)} but only {remain} characters remain")


def _dict(pairs: list[tuple[str, str]], parent: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    prefix = f"{parent}." if parent else ""
    for tid, value in pairs:
        if tid in out:
            raise error(f"{prefix}{tid}", "appears twice; each id appears once")
        out[tid] = value
    return out


def template(value: str, parent: str) -> Tags:
    """A template's value as ``{sub-id: value}``, errors naming ``parent.sub``."""
    return dict(_dict(split(value, parent), parent))


def _unreserved(value: str, tag: str) -> Value:
    """Tags 80-99: a template when the value parses as one, else the text itself."""
    try:
        return template(value, tag)
    except PayloadError:
        return value


def parse(payload: str) -> Tags:
    """The payload's tags (templates expanded), after checking its structure and CRC.

    Raises PayloadError naming the tag for: non-digit ids or lengths, a length past the end,
    a duplicate id, ``00`` not first, ``63`` missing, not last or not matching, a template
    that is not TLV, and a payload over 512 characters.
    """
    if not isinstance(payload, str):
        raise PayloadError(f"payload must be text, not {type(payload).__name__}")
    payload = payload.strip()
    if not payload:
        raise PayloadError("payload is empty")
    if len(payload) > MAX_PAYLOAD:
        raise PayloadError(
            f"payload is {len(payload)} characters; EMVCo allows at most {MAX_PAYLOAD}"
        )
    try:
        payload.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PayloadError(f"payload has a character UTF-8 cannot carry at {exc.start}") from exc
    pairs = split(payload)
    if pairs[0][0] != "00":
        raise error("00", "the payload format indicator must come first")
    last, given = pairs[-1]
    if last != "63":
        if any(tid == "63" for tid, _ in pairs):
            raise error("63", "the CRC must be the last data object")
        raise error("63", "the CRC is mandatory and missing")
    if not _HEX4.fullmatch(given):
        raise error("63", f"CRC {given!r} is not 4 hex digits")
    computed = crc16(payload[:-4])
    if computed != given.upper():
        raise error("63", f"CRC is {computed}, payload gives {given} (altered or mistyped)")
    tags: Tags = {}
    for tid, value in _dict(pairs).items():
        if is_template(tid):
            tags[tid] = template(value, tid)
        elif tid >= "80":
            tags[tid] = _unreserved(value, tid)
        else:
            tags[tid] = value
    return tags


def _text(tags: Tags, tag: str) -> str | None:
    value = tags.get(tag)
    if value is None or isinstance(value, str):
        return value
    raise error(tag, "is a template here; it must be a plain value")


def amount(text: str, currency: str | None = None, tag: str = "54") -> Decimal:
    """An EMVCo amount (digits, one optional '.', at most 13 characters, not zero) as a
    Decimal; no more decimals than the currency's ISO 4217 exponent."""
    if len(text) > 13:
        raise error(tag, f"amount {text!r} is {len(text)} characters; at most 13")
    if not _AMOUNT.fullmatch(text):
        raise error(
            tag,
            f"amount {text!r} is not digits with an optional '.' "
            "(no sign, exponent, comma or space)",
        )
    value = Decimal(text)
    if value == 0:
        raise error(tag, "amount is zero; leave the tag out for the payer to enter one")
    decimals = len(text.partition(".")[2])
    exp = EXPONENTS.get(currency or "")
    if exp is not None and decimals > exp:
        raise error(tag, f"amount {text} has {decimals} decimals; currency {currency} has {exp}")
    return value


def _check_fees(tags: Tags, currency: str) -> None:
    tip, fixed, percent = _text(tags, "55"), _text(tags, "56"), _text(tags, "57")
    if tip is not None and tip not in ("01", "02", "03"):
        raise error("55", f"is {tip!r}; 01 (prompt), 02 (fixed fee) or 03 (percentage)")
    if tip == "02" and fixed is None:
        raise error("56", "tip indicator 02 needs the fixed fee")
    if tip == "03" and percent is None:
        raise error("57", "tip indicator 03 needs the percentage")
    if fixed is not None:
        if tip != "02":
            raise error("56", "a fixed fee needs tip indicator 02 in tag 55")
        amount(fixed, currency, "56")
    if percent is not None:
        if tip != "03":
            raise error("57", "a percentage fee needs tip indicator 03 in tag 55")
        if not _PERCENT.fullmatch(percent) or not 0 < Decimal(percent) <= Decimal("99.99"):
            raise error("57", f"percentage {percent!r} must be 0.01 to 99.99")


def _check_length(tags: Tags, tag: str, most: int) -> None:
    value = _text(tags, tag)
    if value is not None and len(value) > most:
        raise error(tag, f"{NAMES[tag]} is {len(value)} characters; at most {most}")


def check(
    tags: Tags,
    *,
    mandatory: tuple[str, ...] = MANDATORY,
    payload_formats: tuple[str, ...] = ("01",),
) -> None:
    """The rules every scheme shares; a PayloadError naming the first tag that breaks one.

    ``mandatory`` and ``payload_formats`` are the scheme's: PromptPay and VietQR codes in use
    leave out 52/59/60, DuitNow codes carry payload format 02.
    """
    for tag in mandatory:
        if tag not in tags:
            raise error(tag, f"{NAMES[tag]} is mandatory and missing")
    if not any(is_merchant_account(tag) for tag in tags):
        raise error("02-51", "no merchant account information; at least one is mandatory")
    if _text(tags, "00") not in payload_formats:
        raise error(
            "00", f"payload format is {tags['00']!r}; expected {' or '.join(payload_formats)}"
        )
    poi = _text(tags, "01")
    if poi is not None and poi not in (STATIC, DYNAMIC):
        raise error("01", f"is {poi!r}; 11 (static) or 12 (dynamic)")
    mcc = _text(tags, "52")
    if mcc is not None and not (len(mcc) == 4 and mcc.isascii() and mcc.isdigit()):
        raise error("52", f"merchant category code {mcc!r} is not 4 digits")
    currency = _text(tags, "53")
    if currency is not None and not (
        len(currency) == 3 and currency.isascii() and currency.isdigit()
    ):
        raise error("53", f"currency {currency!r} is not an ISO 4217 numeric code (3 digits)")
    text = _text(tags, "54")
    if text is not None:
        amount(text, currency)
    _check_fees(tags, currency or "")
    country = _text(tags, "58")
    if country is not None and not _COUNTRY.fullmatch(country):
        raise error("58", f"country {country!r} is not ISO 3166 alpha-2 (2 capital letters)")
    _check_length(tags, "59", 25)
    _check_length(tags, "60", 15)
    _check_length(tags, "61", 10)
    for tag, value in tags.items():
        if "26" <= tag <= "51" and isinstance(value, dict) and "00" not in value:
            raise error(f"{tag}.00", "a merchant account template starts with its GUID")
    language = tags.get("64")
    if isinstance(language, dict):
        if "00" not in language or "01" not in language:
            raise error("64", "an alternate-language template needs 00 (language) and 01 (name)")
        if len(language["00"]) != 2:
            raise error("64.00", f"language {language['00']!r} is not ISO 639 (2 letters)")
        if len(language["01"]) > 25:
            raise error("64.01", "alternate merchant name is over 25 characters")
        if len(language.get("02", "")) > 15:
            raise error("64.02", "alternate merchant city is over 15 characters")


def _tlv(tag: str, value: Value, path: str) -> str:
    if not (isinstance(tag, str) and len(tag) == 2 and tag.isascii() and tag.isdigit()):
        raise error(path, "an id is 2 digits")
    if isinstance(value, Mapping):
        value = "".join(_tlv(sub, v, f"{path}.{sub}") for sub, v in value.items())
    if not isinstance(value, str):
        raise error(path, f"value must be text or a template, not {type(value).__name__}")
    if not 1 <= len(value) <= MAX_VALUE:
        raise error(path, f"value is {len(value)} characters; 1 to {MAX_VALUE}")
    return f"{tag}{len(value):02d}{value}"


def encode(tags: Mapping[str, Value]) -> str:
    """The payload for ``tags`` (nested mappings are templates), with its CRC.

    Keeps the given order, puts ``00`` first (``"01"`` when absent) and writes ``63`` last
    (any ``63`` given is replaced). It checks structure only; the scheme encoders in
    :mod:`.schemes` also decode what they write, so every rule is applied.
    """
    parts = [_tlv("00", tags.get("00", "01"), "00")]
    parts += [_tlv(tag, value, tag) for tag, value in tags.items() if tag not in ("00", "63")]
    body = "".join(parts) + "6304"
    if len(body) + 4 > MAX_PAYLOAD:
        raise PayloadError(
            f"payload would be {len(body) + 4} characters; EMVCo allows at most {MAX_PAYLOAD}"
        )
    return body + crc16(body)
