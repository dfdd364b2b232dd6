"""One example payload per scheme, with fictional payees (zero account numbers, an invalid
national id, made-up BICs and ids), for the docs' QR images and the tests. Paying one of these
codes reaches nobody: the ids do not exist or fail their scheme's checks."""

from __future__ import annotations

from decimal import Decimal

from . import duitnow, khqr, paynow, promptpay, qris, qrph, vietqr

# 2026-01-01T00:00:00Z and a day later: fixed, so the images do not change between runs
CREATED_MS = 1_767_225_600_000
EXPIRES_MS = CREATED_MS + 86_400_000


def examples() -> dict[str, str]:
    """``{scheme: payload}`` for the seven schemes, each a bus fare or a city payment."""
    return {
        "khqr": khqr(
            "cityos_example@demo",
            "CityOS Example Bus",
            "Phnom Penh",
            "KHR",
            1500,
            bill_number="EXAMPLE-0001",
            created_ms=CREATED_MS,
            expires_ms=EXPIRES_MS,
        ),
        "promptpay": promptpay("0000000000000", Decimal("15.00")),
        "vietqr": vietqr("970436", "0000000000000", 7000, purpose="CITYOS EXAMPLE"),
        "qris": qris("ID0000000000000", "CITYOS EXAMPLE", "JAKARTA", "10110", "4111", 3500),
        "duitnow": duitnow(
            "000000",
            "EXAMPLE0001",
            "CITYOS EXAMPLE",
            "KUALA LUMPUR",
            Decimal("1.50"),
            mcc="4111",
        ),
        "qrph": qrph("EXAMPHM1XXX", "CITYOS EXAMPLE", "MANILA", 15, account="000000000000"),
        "paynow": paynow(
            "EXAMPLE00X", Decimal("1.20"), proxy_type="uen", merchant_name="CITYOS EXAMPLE"
        ),
    }
