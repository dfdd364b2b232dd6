"""Bearer tokens of an external identity provider: RS256 / ES256 / EdDSA against a JWKS
(file or URL), issuer, audience, expiry, not-before, and the attacks that must fail."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from cityos.config import Settings
from cityos.hub.store.sqlite import SqliteStore
from cityos.security import identity
from cityos.security.identity import Authenticator
from cityos.security.principal import AuthError, IdentityUnavailable
from cityos.security.tokens import JwksKeys, parse_jwks, principal_from_claims

ISSUER = "https://id.phnompenh.example/realms/city"
AUDIENCE = "cityos"


class Key:
    """A test signing key and its public JWK."""

    def __init__(self, alg: str, kid: str) -> None:
        self.alg, self.kid = alg, kid
        if alg == "RS256" or alg == "RS384":
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            cls = jwt.algorithms.RSAAlgorithm
        elif alg == "ES256":
            self.private = ec.generate_private_key(ec.SECP256R1())
            cls = jwt.algorithms.ECAlgorithm
        else:
            self.private = ed25519.Ed25519PrivateKey.generate()
            cls = jwt.algorithms.OKPAlgorithm
        self.jwk = {**json.loads(cls.to_jwk(self.private.public_key())), "kid": kid}
        self.jwk["use"] = "sig"
        self.public_pem = self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, claims: dict, **header) -> str:
        headers = {"kid": self.kid, **header}
        return jwt.encode(claims, self.private, algorithm=self.alg, headers=headers)


def claims(**extra) -> dict:
    now = int(time.time())
    base = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "c0ffee-1",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": "t-1",
        "tenants": ["phnom-penh"],
        "roles": ["traffic-engineer"],
    }
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


@pytest.fixture(scope="module")
def keys() -> dict[str, Key]:
    return {alg: Key(alg, f"kid-{alg.lower()}") for alg in ("RS256", "ES256", "EdDSA")}


@pytest.fixture
def store(tmp_path):
    s = SqliteStore(tmp_path / "city.db")
    s.migrate()
    yield s
    s.close()


def write_jwks(path, *ks: Key, extra: list | None = None) -> None:
    path.write_text(json.dumps({"keys": [k.jwk for k in ks] + (extra or [])}))


@pytest.fixture
def auth(tmp_path, keys, store) -> Authenticator:
    write_jwks(tmp_path / "jwks.json", *keys.values())
    settings = Settings(
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        jwks_path=str(tmp_path / "jwks.json"),
        token_key_path=str(tmp_path / "token-key.pem"),
    )
    return Authenticator(settings, store)


def refused(auth: Authenticator, token: str) -> str:
    with pytest.raises(AuthError) as info:
        auth.authenticate({"Authorization": f"Bearer {token}"})
    assert info.value.status == 401
    assert info.value.headers["WWW-Authenticate"].startswith('Bearer realm="cityos", error=')
    return info.value.detail


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_a_token_of_each_accepted_algorithm_gives_its_principal(auth, keys, alg) -> None:
    token = keys[alg].sign(claims(sub=f"user-{alg}"))
    p = auth.authenticate({"Authorization": f"Bearer {token}"})
    assert p is not None
    assert p.subject == f"user-{alg}" and p.kind == "user" and p.issuer == ISSUER
    assert p.tenants == {"phnom-penh"} and p.roles == {"traffic-engineer"}
    assert p.token_id == "t-1" and p.in_tenant("phnom-penh") and not p.in_tenant("siem-reap")


def test_wrong_issuer_audience_and_times_are_refused(auth, keys) -> None:
    k = keys["ES256"]
    now = int(time.time())
    assert "issuer" in refused(auth, k.sign(claims(iss="https://evil.example/realms/city")))
    assert "audience" in refused(auth, k.sign(claims(aud="another-app")))
    assert "'aud'" in refused(auth, k.sign(claims(aud=None)))  # aud is required
    assert "expired" in refused(auth, k.sign(claims(exp=now - 120)))
    assert "not valid yet" in refused(auth, k.sign(claims(nbf=now + 600)))
    assert "'exp'" in refused(auth, k.sign(claims(exp=None)))
    assert "'sub'" in refused(auth, k.sign(claims(sub=None)))
    # within the leeway (30 s) a little clock skew passes
    assert auth.authenticate({"Authorization": "Bearer " + k.sign(claims(exp=now - 5))})
    assert auth.authenticate({"Authorization": "Bearer " + k.sign(claims(nbf=now + 5))})


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _forge(header: dict, payload: dict, sign=lambda data: b"") -> str:
    head = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(payload).encode())
    return head + "." + _b64(sign(head.encode()))


def test_alg_none_hmac_confusion_and_forgeries_are_refused(auth, keys) -> None:
    rsa_key = keys["RS256"]
    # alg none: no signature at all
    assert "'none'" in refused(auth, _forge({"alg": "none", "kid": rsa_key.kid}, claims()))

    # HS256 "signed" with the RSA public key as the HMAC secret (key confusion)
    def hs(data: bytes, secret: bytes = rsa_key.public_pem) -> bytes:
        return hmac.new(secret, data, hashlib.sha256).digest()

    forged = _forge({"alg": "HS256", "typ": "JWT", "kid": rsa_key.kid}, claims(), hs)
    assert "'HS256'" in refused(auth, forged)
    # an HMAC (oct) key planted in the JWKS is dropped, never used
    assert parse_jwks({"keys": [{"kty": "oct", "k": _b64(b"s" * 32), "kid": "h"}]}) == {}
    # RS384 is a fine algorithm, but not on the list
    rs384 = Key("RS384", rsa_key.kid)
    assert "'RS384'" in refused(auth, rs384.sign(claims()))
    # a valid signature glued to another payload
    good = rsa_key.sign(claims())
    head, _, sig = good.split(".")
    evil = _b64(json.dumps(claims(roles=["city-operator"], tenants="*")).encode())
    assert "signature" in refused(auth, f"{head}.{evil}.{sig}")
    # a token claiming ES256 under the RSA key's kid, and one signed by an unknown key
    assert "RS256 key" in refused(auth, keys["ES256"].sign(claims(), kid=rsa_key.kid))
    stranger = Key("EdDSA", "kid-eddsa")  # same kid, other key
    assert "signature" in refused(auth, stranger.sign(claims()))
    assert "not among" in refused(auth, Key("ES256", "nobody").sign(claims()))
    assert "well-formed" in refused(auth, "not.a.jwt")
    assert "well-formed" in refused(auth, "garbage")


def test_a_token_without_kid_uses_the_one_key_of_its_algorithm(auth, keys) -> None:
    k = keys["EdDSA"]
    token = jwt.encode(claims(), k.private, algorithm="EdDSA")  # no kid
    assert auth.authenticate({"Authorization": f"Bearer {token}"}).subject == "c0ffee-1"


def test_claims_mapping_tenants_roles_kind() -> None:
    base = {"sub": "s", "iss": ISSUER, "exp": 2_000_000_000}
    p = principal_from_claims({**base, "tenants": "phnom-penh  siem-reap,@default"})
    assert p.tenants == {"phnom-penh", "siem-reap", ""} and p.roles == frozenset()
    keycloak = {**base, "realm_access": {"roles": ["traffic-engineer", "offline_access"]}}
    keycloak["preferred_username"] = "service-account-bus-feed"
    p = principal_from_claims(keycloak)
    assert p.roles == {"traffic-engineer", "offline_access"} and p.kind == "service"
    groups = {**base, "groups": ["/phnom-penh", "not a tenant!"], "scope": "openid city.read"}
    groups["resource_access"] = {"cityos": {"roles": ["researcher"]}}
    p = principal_from_claims(
        groups, tenants_claim="groups", roles_claim="resource_access.cityos.roles"
    )
    assert p.tenants == {"phnom-penh"} and p.roles == {"researcher"}
    # a configured roles claim that is absent does not fall back to realm roles
    p = principal_from_claims(keycloak, roles_claim="resource_access.cityos.roles")
    assert p.roles == frozenset()
    p = principal_from_claims(
        {**base, "https://city.example/tenants": ["*"]},
        tenants_claim="https://city.example/tenants",
    )
    assert p.platform_admin and p.in_tenant("anything")


def test_verified_tokens_are_cached_until_they_expire(auth, keys, monkeypatch) -> None:
    calls = []
    real = identity.decode
    monkeypatch.setattr(identity, "decode", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    now = [time.time()]
    auth.clock = lambda: now[0]
    token = keys["RS256"].sign(claims(exp=int(now[0]) + 60))
    for _ in range(5):
        assert auth.authenticate({"authorization": f"Bearer {token}"}).subject == "c0ffee-1"
    assert len(calls) == 1
    now[0] += 60 + auth.leeway + 1  # past exp and the leeway: out of the cache, verified again
    auth.authenticate({"authorization": f"Bearer {token}"})  # (PyJWT's clock is the real one)
    assert len(calls) == 2
    auth.CACHE_SIZE = 3
    for i in range(5):
        auth.verify_token(keys["ES256"].sign(claims(jti=f"j{i}")))
    assert len(auth._tokens) == 3


def test_jwks_file_rotation_is_picked_up(tmp_path, keys, store) -> None:
    old, new = Key("ES256", "2026-01"), Key("ES256", "2026-02")
    write_jwks(tmp_path / "jwks.json", old)
    settings = Settings(
        jwt_issuer=ISSUER, jwt_audience=AUDIENCE, jwks_path=str(tmp_path / "jwks.json")
    )
    auth = Authenticator(settings, store)
    assert auth.verify_token(old.sign(claims())).subject == "c0ffee-1"
    write_jwks(tmp_path / "jwks.json", new)
    import os

    os.utime(tmp_path / "jwks.json", (time.time() + 5, time.time() + 5))
    assert auth.verify_token(new.sign(claims())).subject == "c0ffee-1"


class JwksServer:
    """A tiny local IdP: serves whatever JWKS it holds, counting requests."""

    def __init__(self) -> None:
        self.doc: dict = {"keys": []}
        self.hits = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                owner.hits += 1
                body = json.dumps(owner.doc).encode()
                self.send_response(200 if self.path == "/certs" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/certs"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def idp():
    server = JwksServer()
    yield server
    server.close()


def test_jwks_url_rotation_refreshes_on_unknown_kid_rate_limited(idp, store) -> None:
    first, second, third = Key("RS256", "k1"), Key("EdDSA", "k2"), Key("ES256", "k3")
    idp.doc = {"keys": [first.jwk]}
    settings = Settings(
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        jwks_url=idp.url,
        jwks_allow_hosts=["127.0.0.1"],
    )
    auth = Authenticator(settings, store)
    now = [1000.0]
    auth.jwks.clock = lambda: now[0]
    assert auth.verify_token(first.sign(claims())).subject == "c0ffee-1"
    assert idp.hits == 1
    assert auth.verify_token(first.sign(claims(jti="again"))) and idp.hits == 1  # cached set
    idp.doc = {"keys": [second.jwk]}  # the IdP rotates
    assert auth.verify_token(second.sign(claims())).kind == "user"
    assert idp.hits == 2  # one refresh, for the unknown kid
    # a flood of unknown kids: refused without asking the IdP again ...
    for i in range(20):
        refused(auth, Key("EdDSA", f"forged-{i}").sign(claims()))
    assert idp.hits == 2  # the rotation used the one refresh min_refresh_s (30 s) allows
    idp.doc = {"keys": [second.jwk, third.jwk]}
    assert "not among" in refused(auth, third.sign(claims()))
    assert idp.hits == 2
    now[0] += 31  # ... until min_refresh_s has passed
    assert auth.verify_token(third.sign(claims())).subject == "c0ffee-1"
    assert idp.hits == 3
    refused(auth, Key("EdDSA", "forged-again").sign(claims()))
    assert idp.hits == 3


def test_jwks_is_refreshed_in_the_background_after_its_lifespan(idp, store) -> None:
    old, new = Key("ES256", "old"), Key("ES256", "new")
    idp.doc = {"keys": [old.jwk, new.jwk]}
    settings = Settings(
        jwt_issuer=ISSUER, jwt_audience=AUDIENCE, jwks_url=idp.url, jwks_allow_hosts=["127.0.0.1"]
    )
    auth = Authenticator(settings, store)
    now = [0.0]
    auth.jwks.clock = lambda: now[0]
    assert auth.verify_token(old.sign(claims()))
    idp.doc = {"keys": [new.jwk]}  # the old key is withdrawn (compromised)
    now[0] += 301
    assert auth.verify_token(old.sign(claims(jti="x")))  # served from the old set meanwhile
    auth.jwks._background.join(5)
    assert idp.hits == 2
    assert "not among" in refused(auth, old.sign(claims(jti="y")))
    assert auth.verify_token(new.sign(claims()))


def test_jwks_url_must_be_https_or_an_allowed_host(store) -> None:
    base = {"jwt_issuer": ISSUER, "jwt_audience": AUDIENCE}
    with pytest.raises(ValueError, match="https"):
        Authenticator(Settings(**base, jwks_url="http://idp.example/certs"), store)
    with pytest.raises(ValueError, match="https"):
        Authenticator(Settings(**base, jwks_url="file:///etc/passwd"), store)
    Authenticator(Settings(**base, jwks_url="https://idp.example/certs"), store)
    Authenticator(
        Settings(**base, jwks_url="http://keycloak:8080/certs", jwks_allow_hosts=["keycloak"]),
        store,
    )
    with pytest.raises(ValueError, match="jwt_issuer"):
        Authenticator(Settings(jwks_url="https://idp.example/certs"), store)
    with pytest.raises(ValueError, match="jwks_url"):
        Authenticator(Settings(jwt_issuer=ISSUER, jwt_audience=AUDIENCE), store)


def test_an_unreachable_idp_is_a_503_not_a_401(store, keys) -> None:
    keyset = JwksKeys(url="http://127.0.0.1:9/certs", allow_hosts=["127.0.0.1"], timeout_s=1)
    with pytest.raises(IdentityUnavailable) as info:
        keyset.key_for("kid-rs256", "RS256")
    assert info.value.status == 503 and keyset.fetches == 1
    with pytest.raises(IdentityUnavailable):  # not asked again on every request
        keyset.key_for("kid-rs256", "RS256")
    assert keyset.fetches == 1


def test_tokens_need_a_configured_issuer(tmp_path, keys, store) -> None:
    auth = Authenticator(Settings(token_key_path=str(tmp_path / "k.pem")), store)
    assert "none is configured" in refused(auth, keys["RS256"].sign(claims()))
