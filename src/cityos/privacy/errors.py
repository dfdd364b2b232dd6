"""What goes wrong in the privacy layer, each error with a message that says what to do."""

from __future__ import annotations


class PrivacyError(Exception):
    """The base: its message is one line a user can act on."""


class MissingKey(PrivacyError):
    """No pseudonymisation secret configured (or one too short to be a secret)."""


class UnknownDataset(PrivacyError):
    """A dataset name that no service has declared."""


class InvalidRelease(PrivacyError):
    """A release asked for with parameters that cannot be honoured (ε ≤ 0, δ out of range,
    cells outside the declared domain); nothing is charged and nothing stored."""


class BudgetExceeded(PrivacyError):
    """A release that would take a dataset's period over its privacy budget."""
