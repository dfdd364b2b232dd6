"""Errors the safety service raises: each names what was wrong and what would work."""

from __future__ import annotations


class SafetyError(Exception):
    """Base class: anything the safety service refuses, with a message a user can act on."""


class UnreadableSourceError(SafetyError):
    """A video source that gives no frame: a missing file, a file that is not a video, a
    stream that does not answer. Nothing is written to the hub for it."""


class ConfigError(SafetyError):
    """A zones file, a counting line or a setting that cannot be used as given."""


class UnmaskedFrameError(SafetyError, TypeError):
    """Something other than a :class:`~.masking.MaskedFrame` was handed to the only code
    that stores or sends pixels: a raw frame never leaves the pipeline."""
