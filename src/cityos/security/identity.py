"""Identity: who a request is, from its credentials (docs/security.md, "Identity").

Accepted credentials, one per request:

* ``Authorization: Bearer <jwt>`` — a token of the city's identity provider (``jwt_issuer``
  with ``jwks_url`` / ``jwks_path``) or one CityOS issued itself (:mod:`.tokens`);
* ``X-API-Key: cok_…``, ``Authorization: ApiKey cok_…`` or ``Authorization: Bearer cok_…``
  — an API key (:mod:`.keys`); Bearer is accepted for clients that only know bearer tokens.

:func:`authenticate` answers a :class:`Principal`, None when the request carries no
credentials (the caller decides, with ``auth_required``, whether anonymous is allowed),
or raises :class:`AuthError` (401) saying what is wrong. It is meant for every request, so
it is cached: a verified JWT by its whole text (not by its signature alone: a signature
could be glued to another payload) for its remaining lifetime, bounded LRU; an API key's
document for ``auth_recheck_s``. CityOS's own tokens are re-checked against their user
every ``auth_recheck_s`` too, so a removed user is refused within that.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from operator import attrgetter
from typing import Any

from starlette.datastructures import Headers

from cityos.config import Settings
from cityos.hub.store.base import Store
from cityos.security.keys import PREFIX as KEY_PREFIX
from cityos.security.keys import ApiKeyBook
from cityos.security.principal import (
    ALL_TENANTS,
    DEFAULT_ALIAS,
    AuthError,
    IdentityUnavailable,
    Principal,
)
from cityos.security.tokens import (
    OWN_AUDIENCE,
    OWN_ISSUER,
    OWN_KID_PREFIX,
    JwksKeys,
    decode,
    own_key,
    principal_from_claims,
    routes,
    token_header,
)
from cityos.security.users import get_user

__all__ = [
    "ALL_TENANTS",
    "DEFAULT_ALIAS",
    "AuthError",
    "Authenticator",
    "IdentityUnavailable",
    "Principal",
    "authenticate",
    "authenticator",
    "credentials",
    "credentials_of",
    "routes",
]

HeadersLike = Mapping[str, str] | Iterable[tuple[bytes, bytes]]


def _header(headers: HeadersLike, name: str) -> str | None:
    if isinstance(headers, Mapping):
        value = headers.get(name)
        if value is None and not isinstance(headers, Headers):
            for k, v in headers.items():
                if k.lower() == name:
                    return v
        return value
    raw = name.encode()
    for k, v in headers:  # ASGI scope["headers"]: lower-case bytes pairs
        if k.lower() == raw:
            return v.decode("latin-1")
    return None


def credentials(headers: HeadersLike) -> tuple[str, str] | None:
    """``("jwt", token)`` or ``("apikey", key)`` from a request's headers; None without."""
    return credentials_of(_header(headers, "authorization"), _header(headers, "x-api-key"))


def credentials_of(auth: str | None, api_key: str | None) -> tuple[str, str] | None:
    """:func:`credentials` from the two headers' values (read by the caller in one pass)."""
    if auth is not None and api_key is not None:
        raise AuthError("send one credential: Authorization or X-API-Key, not both")
    if api_key is not None:
        api_key = api_key.strip()
        if not api_key:
            raise AuthError("X-API-Key is empty")
        return "apikey", api_key
    if auth is None:
        return None
    given, _, value = auth.strip().partition(" ")
    value = value.strip()
    scheme = given.lower()
    if scheme not in ("bearer", "apikey"):
        raise AuthError(
            f"Authorization scheme {given!r} is not supported: use Bearer <token> or ApiKey <key>",
            error="invalid_request",
        )
    if not value:
        raise AuthError(f"Authorization: {scheme} without a credential", error="invalid_request")
    if scheme == "apikey" or value.startswith(KEY_PREFIX):
        return "apikey", value
    return "jwt", value


class Authenticator:
    """Verifies credentials for one hub (its settings and store); make one per app and call
    :meth:`authenticate` per request. Thread-safe."""

    CACHE_SIZE = 4096

    def __init__(
        self, settings: Settings, store: Store, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.leeway = settings.jwt_leeway_s
        self.recheck_s = settings.auth_recheck_s
        self.tenants_claim = settings.jwt_tenants_claim
        self.roles_claim = settings.jwt_roles_claim
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.jwks: JwksKeys | None = None
        if settings.jwks_url or settings.jwks_path:
            if not settings.jwt_issuer or not settings.jwt_audience:
                raise ValueError(
                    "with jwks_url / jwks_path set jwt_issuer and jwt_audience too: "
                    "tokens are only accepted from one issuer, for CityOS"
                )
            self.jwks = JwksKeys(
                url=settings.jwks_url,
                path=settings.jwks_path,
                allow_hosts=settings.jwks_allow_hosts,
            )
        elif settings.jwt_issuer:
            raise ValueError("jwt_issuer is set: give its keys with jwks_url or jwks_path")
        self.own = own_key(settings.token_key_path)
        self.keys = ApiKeyBook(store, recheck_s=settings.auth_recheck_s, clock=clock)
        self._tokens: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        self._lock = threading.Lock()

    # -- per request ---------------------------------------------------------------------
    def authenticate(self, headers: HeadersLike) -> Principal | None:
        return self.verify(credentials(headers))

    def verify(self, found: tuple[str, str] | None) -> Principal | None:
        """:meth:`authenticate` for credentials already read (:func:`credentials_of`)."""
        if found is None:
            return None
        kind, value = found
        return self.verify_token(value) if kind == "jwt" else self.keys.verify(value)

    def verify_token(self, token: str) -> Principal:
        now = self.clock()
        with self._lock:
            hit = self._tokens.get(token)
            if hit is not None:
                if hit[0] > now:
                    self._tokens.move_to_end(token)
                    return hit[1]
                del self._tokens[token]
        principal, valid_until = self._verify(token, now)
        with self._lock:
            self._tokens[token] = (valid_until, principal)
            while len(self._tokens) > self.CACHE_SIZE:
                self._tokens.popitem(last=False)
        return principal

    def cached(self, headers: HeadersLike) -> Principal | None:
        """The principal if memory alone answers (no I/O, no signature check), else None:
        then :meth:`authenticate` has work to do (a signature, perhaps a database read or
        a JWKS fetch) and an event loop should run it in a thread."""
        try:
            found = credentials(headers)
        except AuthError:
            return None
        return self.cached_of(found)

    def cached_of(self, found: tuple[str, str] | None) -> Principal | None:
        """:meth:`cached` for credentials already read (:func:`credentials_of`)."""
        if found is None:
            return None
        kind, value = found
        if kind == "apikey":
            return self.keys.cached(value)
        hit = self._tokens.get(value)
        return hit[1] if hit is not None and hit[0] > self.clock() else None

    def forget(self) -> None:
        """Drop every cached verification (after a revocation in this process)."""
        with self._lock:
            self._tokens.clear()
        self.keys.forget()

    # -- verification --------------------------------------------------------------------
    def _verify(self, token: str, now: float) -> tuple[Principal, float]:
        header = token_header(token)
        kid, alg = header.get("kid"), header["alg"]
        if kid is not None and kid.startswith(OWN_KID_PREFIX):
            own = self.own.verifying_key()
            if (own is not None and kid == self.own.kid) or self.jwks is None:
                return self._verify_own(token, kid, alg, now)
        if self.jwks is None:
            raise AuthError(
                "a token from an identity provider, but none is configured "
                "(jwt_issuer, jwks_url / jwks_path)"
            )
        key = self.jwks.key_for(kid, alg)
        claims = decode(token, key, issuer=self.issuer, audience=self.audience, leeway=self.leeway)
        principal = principal_from_claims(
            claims, tenants_claim=self.tenants_claim, roles_claim=self.roles_claim
        )
        return principal, float(claims["exp"]) + self.leeway

    def _verify_own(self, token: str, kid: str, alg: str, now: float) -> tuple[Principal, float]:
        key = self.own.verifying_key()
        if key is None or kid != self.own.kid:
            raise AuthError("the token was signed by a CityOS key this hub does not have")
        if alg != "EdDSA":
            raise AuthError("CityOS's own tokens are EdDSA-signed")
        claims = decode(token, key, issuer=OWN_ISSUER, audience=OWN_AUDIENCE, leeway=self.leeway)
        user = get_user(self.store, str(claims["sub"]))
        if user is None:
            raise AuthError(f"user {claims['sub']!r} no longer exists")
        if user.get("stamp") != claims.get("stamp"):
            raise AuthError(f"user {claims['sub']!r} was changed since this token was issued")
        principal = principal_from_claims(claims)
        valid_until = min(float(claims["exp"]) + self.leeway, now + self.recheck_s)
        return principal, valid_until


# -- the function form, for middleware that has settings and a store at hand ----------------
_AUTHENTICATORS: OrderedDict[tuple[Any, ...], Authenticator] = OrderedDict()
_AUTH_LOCK = threading.Lock()
_FIELDS = (
    "jwt_issuer",
    "jwt_audience",
    "jwks_url",
    "jwks_path",
    "jwt_tenants_claim",
    "jwt_roles_claim",
    "jwt_leeway_s",
    "token_key_path",
    "auth_recheck_s",
)


_fingerprint = attrgetter(*_FIELDS)


def authenticator(settings: Settings, store: Store) -> Authenticator:
    """The :class:`Authenticator` for these settings and this store (kept, a few at most;
    a new one when a setting it depends on changed)."""
    key = (id(store), id(settings), _fingerprint(settings), tuple(settings.jwks_allow_hosts))
    auth = _AUTHENTICATORS.get(key)  # a dict read is atomic: no lock on the hot path
    if auth is not None:
        return auth
    auth = Authenticator(settings, store)  # holds store and settings: their ids stay unique
    with _AUTH_LOCK:
        auth = _AUTHENTICATORS.setdefault(key, auth)
        while len(_AUTHENTICATORS) > 8:
            _AUTHENTICATORS.popitem(last=False)
    return auth


def authenticate(headers: HeadersLike, settings: Settings, store: Store) -> Principal | None:
    """Who sent these headers: a :class:`Principal`, None when they carry no credentials,
    or :class:`AuthError` (HTTP 401, with ``.headers`` holding the ``WWW-Authenticate``
    challenge) for a bad, expired or revoked token or key. :class:`IdentityUnavailable`
    (503) when the identity provider's keys cannot be fetched. ``headers``: a mapping
    (Starlette's ``Headers``, a dict) or an ASGI scope's ``headers`` list."""
    return authenticator(settings, store).authenticate(headers)
