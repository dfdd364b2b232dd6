"""Security headers on every response, CORS only when configured, and the hardening stack.

:class:`SecurityHeaders` (pure ASGI) adds to every HTTP response, unless the application set
the header itself:

* ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``,
  ``X-Frame-Options: DENY``;
* ``Content-Security-Policy: default-src 'none'; frame-ancestors 'none'`` and
  ``Cache-Control: no-store``: every response of the hub is API data, none is a page to
  render or a document to keep in a shared cache;
* ``Strict-Transport-Security: max-age=N`` when ``hsts_max_age_s`` > 0 (set it when the hub
  is reached over TLS, directly or through a proxy; a browser ignores it over plain HTTP).

CORS is off (no ``Access-Control-*`` headers, so browsers keep other origins out) unless
``cors_origins`` lists the origins allowed; then Starlette's ``CORSMiddleware`` answers.

:func:`harden` wraps the application, outermost first: security headers, CORS, rate limits
(:mod:`cityos.security.ratelimit`), so a 429 or a CORS pre-flight answer gets the headers too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cityos.security.ratelimit import RateLimit

if TYPE_CHECKING:
    from cityos.config import Settings

BASE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"cache-control", b"no-store"),
)

CORS_METHODS = ["GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"]
CORS_REQUEST_HEADERS = [
    "Accept",
    "Authorization",
    "Content-Type",
    "Link",
    "NGSILD-Tenant",
    "NGSILD-Scope",
    "Fiware-Service",
    "Fiware-ServicePath",
]
CORS_EXPOSED_HEADERS = [
    "Location",
    "Link",
    "NGSILD-Results-Count",
    "NGSILD-Tenant",
    "Retry-After",
    "WWW-Authenticate",
]


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, hsts_max_age_s: int = 0) -> None:
        self.app = app
        headers = list(BASE_HEADERS)
        if hsts_max_age_s > 0:
            headers.append((b"strict-transport-security", f"max-age={hsts_max_age_s}".encode()))
        self.headers = tuple(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.headers

        async def add_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend((n, v) for n, v in extra if n not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, add_headers)


def harden(app: ASGIApp, settings: Settings) -> ASGIApp:
    """``app`` behind rate limits, CORS (when configured) and the security headers."""
    wrapped: ASGIApp = RateLimit(
        app, rate=settings.rate_per_s, burst=settings.rate_burst, redis_url=settings.redis_url
    )
    if settings.cors_origins:
        wrapped = CORSMiddleware(
            wrapped,
            allow_origins=settings.cors_origins,
            allow_methods=CORS_METHODS,
            allow_headers=CORS_REQUEST_HEADERS,
            expose_headers=CORS_EXPOSED_HEADERS,
            max_age=600,
        )
    return SecurityHeaders(wrapped, hsts_max_age_s=settings.hsts_max_age_s)
