"""Errors the payments service raises: each message says what was wrong and where."""

from __future__ import annotations


class PaymentsError(Exception):
    """Base class: anything the payments service refuses, with a message a user can act on."""


class PayloadError(PaymentsError, ValueError):
    """A QR payload (EMVCo merchant-presented) that cannot be read or written as given.

    The message starts with the tag at fault (``tag 63: CRC is 1A2B, payload gives 9F00``;
    ``tag 62.01`` for a sub-tag), and ``.tag`` holds it (``None`` for the payload as a whole)
    so an API can point at the field.
    """

    def __init__(self, message: str, *, tag: str | None = None) -> None:
        super().__init__(message)
        self.tag = tag
