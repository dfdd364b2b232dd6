"""Bearer tokens: JWTs of a city's identity provider (OAuth2 / OIDC), and CityOS's own.

External tokens are verified against the issuer's JWKS (``jwks_url`` or ``jwks_path``),
with ``iss`` = ``jwt_issuer``, ``aud`` ∋ ``jwt_audience``, ``exp`` / ``nbf`` / ``iat``
within ``jwt_leeway_s``. Only RS256, ES256 and EdDSA are accepted: never ``none``, never
an HMAC algorithm (a public key used as an HMAC secret is the classic confusion attack),
and a JWK is bound to the one algorithm its type allows (PyJWT's ``PyJWK``).

CityOS's own tokens (for deployments without an IdP: ``cityos token create``,
``POST /auth/token``) are EdDSA-signed with an Ed25519 key in ``token_key_path``, made on
first use with mode 0600; their ``iss`` and ``aud`` are ``cityos`` and their ``kid``
starts with ``cityos-``. The public key is served at ``GET /auth/jwks.json`` for city
services that want to verify them too.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt import PyJWK

from cityos.security.principal import (
    KINDS,
    AuthError,
    IdentityUnavailable,
    Principal,
    tenant_name,
)

log = logging.getLogger("cityos.security")

ALGORITHMS = ("RS256", "ES256", "EdDSA")
OWN_ISSUER = "cityos"
OWN_AUDIENCE = "cityos"
OWN_KID_PREFIX = "cityos-"
MAX_TOKEN_CHARS = 8192
MAX_OWN_TTL_S = 7 * 86400  # longer-lived access: an API key


# -- external issuers: JWKS ---------------------------------------------------------------
class JwksKeys:
    """The signing keys of an external issuer, from a JWKS file or URL, kept in memory.

    Loaded on first use. A key id (``kid``) that is not known triggers one re-read, at most
    once per ``min_refresh_s`` (so a stream of forged kids cannot make CityOS hammer the
    IdP); the IdP's key rotation is picked up that way. Every ``lifespan_s`` the set is
    re-read in the background (removed keys stop verifying), the old set serving meanwhile;
    a failed fetch keeps the old set. A URL must be https, or http to a host in
    ``allow_hosts``; redirects are not followed.
    """

    RETRY_FAILED_S = 5.0  # before the first set is had, a failed fetch is retried this late

    def __init__(
        self,
        *,
        url: str = "",
        path: str = "",
        allow_hosts: Iterable[str] = (),
        timeout_s: float = 5.0,
        max_bytes: int = 512 * 1024,
        lifespan_s: float = 300.0,
        min_refresh_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if bool(url) == bool(path):
            raise ValueError("give either jwks_url or jwks_path")
        if url:
            check_jwks_url(url, allow_hosts)
        self.url, self.path = url, path
        self.timeout_s, self.max_bytes = timeout_s, max_bytes
        self.lifespan_s, self.min_refresh_s = lifespan_s, min_refresh_s
        self.clock = clock
        self.fetches = 0  # how many times the set was read (tests, diagnostics)
        self._keys: dict[str, PyJWK] | None = None
        self._loaded_at = 0.0
        self._unknown_refresh_at = -float("inf")
        self._mtime: float | None = None
        self._failed: tuple[float, IdentityUnavailable] | None = None
        self._lock = threading.Lock()
        self._background: threading.Thread | None = None

    @property
    def source(self) -> str:
        return self.url or self.path

    def keys(self) -> dict[str, PyJWK]:
        """The current key set, fetched on first use (IdentityUnavailable if it cannot be)."""
        return self._current()

    def key_for(self, kid: str | None, alg: str) -> PyJWK:
        """The key a token with this header must verify with; AuthError if there is none."""
        keys = self._current()
        key = _pick(keys, kid, alg)
        if key is None and self._may_refresh_for_unknown_kid():
            keys = self._reload(raise_errors=False) or keys
            key = _pick(keys, kid, alg)
        if key is None:
            if kid is None:
                raise AuthError(
                    f"the token names no key (kid) and {self.source} has no single {alg} key"
                )
            raise AuthError(f"the token's key {kid!r} is not among the issuer's keys")
        if key.algorithm_name != alg:
            raise AuthError(f"key {kid!r} is a {key.algorithm_name} key; the token says {alg}")
        return key

    def _current(self) -> dict[str, PyJWK]:
        keys = self._keys
        if keys is None:
            with self._lock:
                if self._keys is None:
                    now = self.clock()
                    if self._failed and now - self._failed[0] < self.RETRY_FAILED_S:
                        raise self._failed[1]  # the IdP is down: do not ask on every request
                    try:
                        self._keys = self._fetch()  # first use: IdentityUnavailable if it fails
                    except IdentityUnavailable as exc:
                        self._failed = (now, exc)
                        raise
                    self._loaded_at = now
                return self._keys
        if self.clock() - self._loaded_at > self.lifespan_s:
            self._refresh_in_background()
        return keys

    def _may_refresh_for_unknown_kid(self) -> bool:
        if self.path:  # a file: re-read only when it changed (a stat is cheap)
            try:
                return os.stat(self.path).st_mtime != self._mtime
            except OSError:
                return False
        with self._lock:
            now = self.clock()
            if now - self._unknown_refresh_at < self.min_refresh_s:
                return False
            self._unknown_refresh_at = now
            return True

    def _refresh_in_background(self) -> None:
        with self._lock:
            if self._background is not None and self._background.is_alive():
                return
            self._loaded_at = self.clock()  # one refresh per lifespan, even if it fails
            self._background = threading.Thread(
                target=self._reload, kwargs={"raise_errors": False}, daemon=True
            )
            self._background.start()

    def _reload(self, *, raise_errors: bool) -> dict[str, PyJWK] | None:
        try:
            keys = self._fetch()
        except IdentityUnavailable as exc:
            if raise_errors:
                raise
            log.warning("keeping the previous JWKS: %s", exc.detail)
            return None
        with self._lock:
            self._keys = keys
            self._loaded_at = self.clock()
        return keys

    def _fetch(self) -> dict[str, PyJWK]:
        self.fetches += 1
        try:
            if self.path:
                self._mtime = os.stat(self.path).st_mtime
                with open(self.path, "rb") as fh:
                    raw = fh.read(self.max_bytes + 1)
            else:
                raw = self._download()
            if len(raw) > self.max_bytes:
                raise ValueError(f"over {self.max_bytes} bytes")
            return parse_jwks(json.loads(raw))
        except IdentityUnavailable:
            raise
        except (OSError, ValueError) as exc:
            raise IdentityUnavailable(f"cannot read the JWKS {self.source}: {exc}") from None

    def _download(self) -> bytes:
        import httpx

        try:
            with httpx.stream(
                "GET",
                self.url,
                timeout=self.timeout_s,
                follow_redirects=False,
                headers={"Accept": "application/json"},
            ) as r:
                if r.status_code != 200:
                    raise IdentityUnavailable(f"JWKS {self.url}: HTTP {r.status_code}")
                chunks, size = [], 0
                for chunk in r.iter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise ValueError(f"over {self.max_bytes} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.HTTPError as exc:
            raise IdentityUnavailable(f"cannot fetch the JWKS {self.url}: {exc}") from None


def check_jwks_url(url: str, allow_hosts: Iterable[str]) -> None:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    allowed = {h.strip().lower() for h in allow_hosts if h.strip()}
    host = (parts.hostname or "").lower()
    hostport = f"{host}:{parts.port}" if parts.port else host
    if parts.scheme == "http" and host and (host in allowed or hostport in allowed):
        return
    raise ValueError(
        f"jwks_url {url!r}: use https, or put the host in jwks_allow_hosts to allow http"
    )


def parse_jwks(doc: Any) -> dict[str, PyJWK]:
    """Signing keys by kid (a key without one under ""): only RSA, EC P-256 and Ed25519
    keys for RS256 / ES256 / EdDSA; symmetric (``oct``) and encryption keys are dropped."""
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise ValueError('a JWKS is {"keys": [...]}')
    out: dict[str, PyJWK] = {}
    for jwk in doc["keys"]:
        if not isinstance(jwk, dict) or jwk.get("kty") not in ("RSA", "EC", "OKP"):
            continue
        if jwk.get("use", "sig") != "sig" or jwk.get("alg", ALGORITHMS[0]) not in ALGORITHMS:
            continue
        try:
            key = PyJWK(jwk)
        except jwt.PyJWTError as exc:
            log.warning("JWKS: skipping key %r: %s", jwk.get("kid"), exc)
            continue
        if key.algorithm_name in ALGORITHMS:
            out[str(jwk.get("kid", ""))] = key
    return out


def _pick(keys: dict[str, PyJWK], kid: str | None, alg: str) -> PyJWK | None:
    if kid is not None:
        return keys.get(kid)
    candidates = [k for k in keys.values() if k.algorithm_name == alg]
    return candidates[0] if len(candidates) == 1 else None


# -- CityOS's own issuer key --------------------------------------------------------------
class OwnKey:
    """CityOS's Ed25519 issuer key in ``path`` (PKCS#8 PEM), made on first signing with mode
    0600; several workers racing to make it end up with the same one (the first link wins)."""

    RETRY_S = 1.0

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._private: Ed25519PrivateKey | None = None
        self.kid = ""
        self._jwk: PyJWK | None = None
        self._public_jwk: dict[str, str] = {}
        self._tried_at = -float("inf")
        self._lock = threading.Lock()

    def signing_key(self) -> Ed25519PrivateKey:
        with self._lock:
            if self._private is None and not self._load():
                self._create()
                self._load()
            assert self._private is not None
            return self._private

    def verifying_key(self) -> PyJWK | None:
        """The public key, or None while there is no key file (looked for once a second)."""
        if self._jwk is not None:
            return self._jwk
        with self._lock:
            now = time.monotonic()
            if self._jwk is None and now - self._tried_at >= self.RETRY_S:
                self._tried_at = now
                self._load()
            return self._jwk

    def public_jwks(self) -> dict[str, Any]:
        return {"keys": [self._public_jwk]} if self.verifying_key() else {"keys": []}

    def _load(self) -> bool:
        try:
            pem = self.path.read_bytes()
        except FileNotFoundError:
            return False
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{self.path} must hold an Ed25519 private key (token_key_path)")
        if os.name == "posix" and self.path.stat().st_mode & 0o077:
            log.warning("%s is readable by others: chmod 600 it", self.path)
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        x = _b64(raw)
        thumb = _b64(hashlib.sha256(f'{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}'.encode()).digest())
        self.kid = OWN_KID_PREFIX + thumb  # RFC 7638 thumbprint
        self._public_jwk = {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": self.kid}
        self._public_jwk.update(alg="EdDSA", use="sig")
        self._jwk = PyJWK(self._public_jwk)
        self._private = key
        return True

    def _create(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(6)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, self.path)  # atomic; fails if another process made one first
                log.info("made CityOS's token issuer key %s", self.path)
            except FileExistsError:
                pass
        finally:
            tmp.unlink(missing_ok=True)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


_OWN_KEYS: dict[str, OwnKey] = {}
_OWN_KEYS_LOCK = threading.Lock()


def own_key(path: str | os.PathLike[str]) -> OwnKey:
    """One :class:`OwnKey` per key file and process."""
    resolved = str(Path(path).resolve())
    with _OWN_KEYS_LOCK:
        key = _OWN_KEYS.get(resolved)
        if key is None:
            key = _OWN_KEYS[resolved] = OwnKey(resolved)
        return key


def issue_token(
    key: OwnKey, user: dict[str, Any], ttl_s: float, *, now: float | None = None
) -> tuple[str, dict[str, Any]]:
    """A CityOS token for a user document (see :mod:`cityos.security.users`)."""
    if not 0 < ttl_s <= MAX_OWN_TTL_S:
        raise ValueError(
            f"a token lives between 1 s and {MAX_OWN_TTL_S // 86400} days; "
            "for longer-lived access create an API key"
        )
    issued = int(now if now is not None else time.time())
    claims = {
        "iss": OWN_ISSUER,
        "aud": OWN_AUDIENCE,
        "sub": user["name"],
        "tenants": list(user["tenants"]),
        "roles": list(user["roles"]),
        "kind": "user",
        "iat": issued,
        "nbf": issued,
        "exp": issued + int(ttl_s),
        "jti": secrets.token_hex(12),
        "stamp": user["stamp"],
    }
    private = key.signing_key()
    token = jwt.encode(claims, private, algorithm="EdDSA", headers={"kid": key.kid})
    return token, claims


# -- verification --------------------------------------------------------------------------
def token_header(token: str) -> dict[str, Any]:
    """The (unverified) header, checked: size, and an accepted algorithm."""
    if len(token) > MAX_TOKEN_CHARS:
        raise AuthError(f"the token is over {MAX_TOKEN_CHARS} characters")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise AuthError("the token is not a well-formed JWT") from None
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise AuthError(f"algorithm {alg!r} is not accepted (only {', '.join(ALGORITHMS)})")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise AuthError("the token's kid is not a string")
    return header


def decode(token: str, key: PyJWK, *, issuer: str, audience: str, leeway: float) -> dict[str, Any]:
    """The verified claims, or AuthError saying what is wrong."""
    required = ["exp", "iss", "sub"] + (["aud"] if audience else [])
    try:
        return jwt.decode(
            token,
            key,
            algorithms=[key.algorithm_name],
            issuer=issuer,
            audience=audience or None,
            leeway=leeway,
            options={"require": required, "verify_aud": bool(audience)},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("the token has expired") from None
    except jwt.ImmatureSignatureError:
        raise AuthError("the token is not valid yet (nbf / iat in the future)") from None
    except jwt.InvalidIssuerError:
        raise AuthError(f"the token's issuer is not {issuer!r}") from None
    except jwt.InvalidAudienceError:
        raise AuthError(f"the token is not for audience {audience!r}") from None
    except jwt.MissingRequiredClaimError as exc:
        raise AuthError(f"the token has no {exc.claim!r} claim") from None
    except jwt.InvalidSignatureError:
        raise AuthError("the token's signature does not verify") from None
    except jwt.InvalidAlgorithmError as exc:
        raise AuthError(f"the token's algorithm is refused: {exc}") from None
    except jwt.PyJWTError as exc:
        raise AuthError(f"the token is invalid: {exc}") from None


def claim(claims: dict[str, Any], path: str) -> Any:
    """A claim by name, or by a dotted path into nested objects (``realm_access.roles``);
    a name that itself has dots (``https://city.example/tenants``) is tried first."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def as_strings(value: Any) -> list[str]:
    """A claim as a list: a JSON list, or a string of names separated by spaces or commas."""
    if isinstance(value, str):
        return [v for v in re.split(r"[\s,]+", value) if v]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def principal_from_claims(
    claims: dict[str, Any], *, tenants_claim: str = "tenants", roles_claim: str = "roles"
) -> Principal:
    """The principal verified claims describe (see docs/security.md, "Claims")."""
    tenants = set()
    for raw in as_strings(claim(claims, tenants_claim)):
        try:
            tenants.add(tenant_name(raw.removeprefix("/")))  # Keycloak group paths: /name
        except ValueError:
            continue  # not a tenant name: ignore (an IdP group that is something else)
    roles_value = claim(claims, roles_claim)
    if roles_value is None and roles_claim == "roles":
        roles_value = claim(claims, "realm_access.roles")  # Keycloak's realm roles
    roles = {r for r in as_strings(roles_value) if len(r) <= 64}
    kind = claims.get("kind")
    if kind not in KINDS:
        username = str(claims.get("preferred_username", ""))
        kind = "service" if username.startswith("service-account-") else "user"
    exp = claims.get("exp")
    jti = claims.get("jti")
    return Principal(
        subject=str(claims["sub"]),
        tenants=frozenset(tenants),
        roles=frozenset(roles),
        kind=kind,
        token_id=str(jti) if jti is not None else None,
        issuer=str(claims.get("iss", "")),
        expires_at=float(exp) if isinstance(exp, int | float) else None,
    )


# -- HTTP: POST /auth/token (OAuth2 password grant), GET /auth/jwks.json --------------------
MAX_FORM_BYTES = 16_384


async def token_endpoint(request: Any) -> Any:
    """``POST /auth/token`` with ``grant_type=password&username=…&password=…`` as a form
    (``application/x-www-form-urlencoded``) or the same keys in JSON: a CityOS token as
    RFC 6749 §5.1 answers (``access_token``, ``token_type``, ``expires_in``); errors as
    §5.2 (``invalid_request``, ``unsupported_grant_type``, ``invalid_grant``)."""
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse

    from cityos.hub.api.common import read_limited
    from cityos.hub.errors import PayloadTooLarge
    from cityos.security.users import check_password, login_gate

    no_store = {"Cache-Control": "no-store", "Pragma": "no-cache"}

    def oauth_error(error: str, description: str, status: int = 400) -> Any:
        body = {"error": error, "error_description": description}
        return JSONResponse(body, status_code=status, headers=no_store)

    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    try:  # an over-long body is drained first, so the client reads the answer
        raw = await read_limited(request, MAX_FORM_BYTES)
    except PayloadTooLarge:
        answer = oauth_error("invalid_request", f"body over {MAX_FORM_BYTES} bytes", 413)
        answer.headers["Connection"] = "close"
        return answer
    try:
        if media == "application/x-www-form-urlencoded":
            form: Any = dict(parse_qsl(raw.decode(), keep_blank_values=True))
        elif media == "application/json":
            form = json.loads(raw)
        else:
            return oauth_error(
                "invalid_request", "send application/x-www-form-urlencoded or application/json"
            )
    except (UnicodeDecodeError, ValueError):
        return oauth_error("invalid_request", "the body cannot be parsed")
    if not isinstance(form, dict):
        return oauth_error("invalid_request", "the body must be an object")
    if form.get("grant_type") != "password":
        return oauth_error("unsupported_grant_type", "only grant_type=password is supported")
    username, password = form.get("username"), form.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username:
        return oauth_error("invalid_request", "give username and password")
    hub = request.app.state.hub
    settings = hub.settings
    gate = login_gate(
        settings.auth_max_concurrent_hashes,
        settings.auth_hash_queue,
        settings.auth_max_logins_per_client,
    )
    client = request.client.host if request.client else "unknown"
    refusal = gate.admit(client)
    if refusal is not None:  # before any hashing: a refusal costs no argon2 memory
        return login_refused(refusal, client, gate)

    def grant() -> tuple[str, dict[str, Any]] | None:
        with gate.hashing():  # argon2: off the event loop, a few at a time
            user = check_password(hub.store, username, password)
        if user is None:
            return None
        return issue_token(own_key(settings.token_key_path), user, settings.token_ttl_s)

    try:
        issued = await run_in_threadpool(grant)
    except (ValueError, OSError) as exc:  # token_ttl_s out of range, an unusable key file
        log.error("cannot issue a token: %s", exc)
        return oauth_error("server_error", "the hub cannot issue tokens; see its log", 500)
    finally:
        gate.release(client)
    if issued is None:
        return oauth_error("invalid_grant", "wrong user name or password")
    token, claims = issued
    body = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": claims["exp"] - claims["iat"],
    }
    return JSONResponse(body, headers=no_store)


LOGIN_RETRY_AFTER_S = 1


def login_refused(why: str, client: str, gate: Any) -> Any:
    """A login refused before hashing: 429 when this client already has logins in flight,
    503 when the hub's hashing queue is full; both with Retry-After, as a problem."""
    from starlette.responses import JSONResponse

    from cityos.hub.errors import ERROR_BASE

    if why == "client":
        status, title = 429, "Too many requests"
        detail = (
            f"{client} already has {gate.per_client} login(s) being checked; "
            f"retry after {LOGIN_RETRY_AFTER_S} s"
        )
    else:
        status, title = 503, "Service unavailable"
        detail = (
            f"the hub is checking {gate.in_flight} logins already; "
            f"retry after {LOGIN_RETRY_AFTER_S} s"
        )
    body = {
        "type": ERROR_BASE + "InvalidRequest",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": "/auth/token",
    }
    headers = {"Retry-After": str(LOGIN_RETRY_AFTER_S), "Cache-Control": "no-store"}
    return JSONResponse(
        body, status_code=status, headers=headers, media_type="application/problem+json"
    )


async def jwks_endpoint(request: Any) -> Any:
    """``GET /auth/jwks.json``: CityOS's own token-verification key (none before the first
    token is issued)."""
    from starlette.responses import JSONResponse

    key = own_key(request.app.state.hub.settings.token_key_path)
    return JSONResponse(key.public_jwks(), headers={"Cache-Control": "max-age=300"})


def routes() -> list[Any]:
    """The identity routes for the app: ``POST /auth/token`` and ``GET /auth/jwks.json``
    (both must stay reachable without credentials)."""
    from starlette.routing import Route

    return [
        Route("/auth/token", token_endpoint, methods=["POST"]),
        Route("/auth/jwks.json", jwks_endpoint, methods=["GET"]),
    ]
