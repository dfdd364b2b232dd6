"""Money as integer minor units of an ISO 4217 currency: never a float.

A ledger that adds floats loses riel and dong; every amount here is an ``int`` of the
currency's minor unit (its ISO 4217 exponent: 2 for KHR, THB, USD; 0 for VND, LAK... as the
standard lists them), parsed from and written as decimal strings with :mod:`decimal`.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from functools import lru_cache

# ISO 4217 minor-unit exponents of the currencies of ASEAN and their neighbours; others can
# be added here (a currency not listed is refused rather than guessed)
EXPONENTS: dict[str, int] = {
    "KHR": 2, "VND": 0, "THB": 2, "IDR": 2, "PHP": 2, "MYR": 2, "SGD": 2, "LAK": 2,
    "MMK": 2, "BND": 2, "USD": 2, "EUR": 2, "JPY": 0, "CNY": 2, "KRW": 0, "INR": 2,
}  # fmt: skip

# ISO 4217 numeric codes (EMVCo tag 53 carries these)
NUMERIC: dict[str, str] = {
    "KHR": "116", "VND": "704", "THB": "764", "IDR": "360", "PHP": "608", "MYR": "458",
    "SGD": "702", "LAK": "418", "MMK": "104", "BND": "096", "USD": "840", "EUR": "978",
    "JPY": "392", "CNY": "156", "KRW": "410", "INR": "356",
}  # fmt: skip
ALPHA = {v: k for k, v in NUMERIC.items()}

# the largest amount any one transfer or balance may hold: well inside a signed 64-bit
# column, so sums of many never overflow PostgreSQL's BIGINT
MAX_AMOUNT = 10**15


class MoneyError(ValueError):
    """An amount or currency that cannot be money: the message says which and why."""


def currency(code: str) -> str:
    """The alphabetic ISO 4217 code (an alphabetic or numeric one given), or MoneyError."""
    if not isinstance(code, str):
        raise MoneyError(f"currency must be a string such as 'KHR', not {code!r}")
    code = code.strip().upper()
    code = ALPHA.get(code, code)
    if code not in EXPONENTS:
        known = ", ".join(sorted(EXPONENTS))
        raise MoneyError(f"unknown currency {code!r}; known: {known}")
    return code


def exponent(code: str) -> int:
    return EXPONENTS[currency(code)]


def to_minor(amount: str | int | Decimal, code: str) -> int:
    """``"1500.50"`` KHR -> 150050. A float is refused (it is not exact); so is an amount
    with more decimals than the currency has, a negative one, or one over MAX_AMOUNT."""
    if isinstance(amount, (bool, float)):
        raise MoneyError(f"amount {amount!r} is a float: give a decimal string such as '1500.00'")
    exp = exponent(code)
    try:
        value = Decimal(str(amount).strip())
    except InvalidOperation:
        raise MoneyError(f"amount {amount!r} is not a decimal number") from None
    if not value.is_finite():
        raise MoneyError(f"amount {amount!r} is not a finite number")
    minor = value.scaleb(exp)
    if minor != minor.to_integral_value():
        raise MoneyError(f"amount {amount!r} has more than {exp} decimals for {currency(code)}")
    out = int(minor)
    if out < 0 or out > MAX_AMOUNT:
        raise MoneyError(f"amount {amount!r} is out of range (0 to {MAX_AMOUNT} minor units)")
    return out


def to_major(minor: int, code: str) -> str:
    """150050 KHR -> ``"1500.50"`` (the currency's decimals, always)."""
    exp = exponent(code)
    if exp == 0:
        return str(minor)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**exp)
    return f"{sign}{whole}.{frac:0{exp}d}"


@lru_cache(maxsize=4096)  # a day's explanations repeat the same few amounts
def show(minor: int, code: str) -> str:
    """For people: ``1,500.50 KHR``; whole amounts without decimals (``1,500 KHR``)."""
    exp = exponent(code)
    whole, frac = divmod(abs(minor), 10**exp) if exp else (abs(minor), 0)
    sign = "-" if minor < 0 else ""
    text = f"{sign}{whole:,}"
    if frac:
        text += f".{frac:0{exp}d}"
    return f"{text} {currency(code)}"
