"""Response header names on the wire in their canonical case (``Location``, ``Link``,
``NGSILD-Results-Count``, ``Content-Type``), as most HTTP servers write them.

Header names are case-insensitive (RFC 9110 §5.1), but some clients look them up
case-sensitively: ETSI's NGSI-LD conformance suite reads ``Location`` from a plain dict,
and so do scripts and small device gateways. Starlette hands uvicorn lowercase names and
uvicorn's httptools protocol lowercases every name it writes (``name = name.lower()``);
its h11 protocol keeps the case but serves about a third fewer requests per second
(``benchmarks/results/header-case.json``). So each name goes to the server as a
:class:`CanonicalName`: bytes whose ``lower()`` keeps the canonical case. The three names
the server itself interprets (``content-length``, ``transfer-encoding``, ``connection``)
stay plain lowercase bytes, so its framing logic is untouched. A raw-socket test
(tests/test_header_case.py) shows the case on the wire, for each uvicorn protocol.
"""

from __future__ import annotations

from functools import lru_cache

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# names whose canonical case is not plain Title-Case
_SPECIAL = {
    b"ngsild-results-count": b"NGSILD-Results-Count",
    b"ngsild-tenant": b"NGSILD-Tenant",
    b"ngsild-warning": b"NGSILD-Warning",
    b"ngsild-entitymap": b"NGSILD-EntityMap",
    b"www-authenticate": b"WWW-Authenticate",
    b"content-security-policy": b"Content-Security-Policy",
    b"x-xss-protection": b"X-XSS-Protection",
    b"etag": b"ETag",
}
# the server reads these to frame the response: they keep the form it compares against
_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"connection"})


class CanonicalName(bytes):
    """A header name that stays in its canonical case when a server lowercases it."""

    __slots__ = ()

    def lower(self) -> bytes:  # type: ignore[override]
        return self


@lru_cache(maxsize=256)
def canonical(name: bytes) -> bytes:
    """``b"ngsild-results-count"`` -> ``CanonicalName(b"NGSILD-Results-Count")``."""
    low = bytes(name).lower()
    if low in _FRAMING:
        return low
    fixed = _SPECIAL.get(low) or b"-".join(part[:1].upper() + part[1:] for part in low.split(b"-"))
    return CanonicalName(fixed)


class CanonicalHeaderCase:
    """Outermost ASGI layer: every response header name in its canonical case."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_canonical(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(canonical(n), v) for n, v in message.get("headers", ())]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_canonical)
