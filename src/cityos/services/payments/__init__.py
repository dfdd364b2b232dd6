"""Payments service: cashless fares and city payments over the ASEAN national QR schemes
(KHQR, PromptPay, VietQR, QRIS, DuitNow, QR Ph, PayNow), a double-entry ledger and signed
tickets. See docs/services/payments.md."""

from .service import SERVICE

__all__ = ["SERVICE"]
