"""Regular expressions that clients send (``q`` ``~=``/``!~=``, ``idPattern``), run on RE2.

Python's ``re`` backtracks: ``(a+)+$`` against 24 ``a`` and a ``!`` takes seconds holding
the GIL, and every request of the worker waits (ReDoS). RE2 (``google-re2``) runs in time
linear in the input and refuses what needs backtracking (back-references, look-around),
so a client's pattern can cost at most a scan of the value. Patterns are checked when
the request is parsed, so a pattern RE2 refuses is a 400 naming the reason, never a 500
later in the database or in subscription matching.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2

from cityos.hub.errors import BadRequestData

# RE2's own bound on the compiled program (bytes); a pattern over it is refused, not run.
MAX_PROGRAM_BYTES = 8 << 20


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # the error goes to the client, not to stderr
    options.max_mem = MAX_PROGRAM_BYTES
    return options


_OPTIONS = _options()


def _why(exc: Exception) -> str:
    reason = exc.args[0] if exc.args else exc
    return reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)


@lru_cache(maxsize=512)
def _compile(pattern: str) -> Any:
    return re2.compile(pattern, _OPTIONS)


def client_regex(pattern: str, what: str = "regular expression") -> Any:
    """The compiled pattern (cached: one q runs against many entities); BadRequestData
    naming ``what`` when RE2 refuses it."""
    try:
        return _compile(pattern)
    except re2.error as exc:
        raise BadRequestData(
            f"{what} {pattern!r} is not a supported regular expression (RE2 syntax: no "
            f"back-references or look-around): {_why(exc)}"
        ) from None


def search(pattern: str, value: str) -> bool:
    """``re.search`` semantics in linear time; False for a pattern RE2 refuses."""
    try:
        return _compile(pattern).search(value) is not None
    except re2.error:
        return False


def fullmatch(pattern: str, value: str) -> bool:
    """The whole of ``value`` matches; False for a pattern RE2 refuses."""
    try:
        return _compile(pattern).fullmatch(value) is not None
    except re2.error:
        return False
