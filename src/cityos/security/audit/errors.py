"""What the audit log raises, shared by all of its parts."""

from __future__ import annotations


class AuditError(Exception):
    """The audit log cannot do what was asked (bad sizes, no key, no signed head, …)."""


class InvalidCheckpoint(Exception):
    """A checkpoint (or a pair of them) does not verify; the message says why."""
