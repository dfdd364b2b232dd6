"""authenticate(): which headers carry credentials, what it answers, how it refuses."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from cityos.config import Settings
from cityos.hub.store.sqlite import SqliteStore
from cityos.security import keys, users
from cityos.security.identity import (
    AuthError,
    Principal,
    authenticate,
    authenticator,
    credentials,
)
from cityos.security.principal import clean_roles, tenant_label, tenant_name
from cityos.security.tokens import issue_token, own_key


@pytest.fixture
def store(tmp_path):
    s = SqliteStore(tmp_path / "city.db")
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(token_key_path=str(tmp_path / "token-key.pem"))


def test_credentials_from_every_header_form() -> None:
    key = "cok_0123456789abcdef_" + "A" * 43
    assert credentials({}) is None
    assert credentials({"Accept": "application/json"}) is None
    assert credentials({"Authorization": "Bearer eyJ.x.y"}) == ("jwt", "eyJ.x.y")
    assert credentials({"AUTHORIZATION": "bearer   eyJ.x.y "}) == ("jwt", "eyJ.x.y")
    assert credentials(Headers({"authorization": "Bearer eyJ.x.y"})) == ("jwt", "eyJ.x.y")
    assert credentials([(b"authorization", b"Bearer eyJ.x.y")]) == ("jwt", "eyJ.x.y")
    assert credentials({"X-API-Key": key}) == ("apikey", key)
    assert credentials([(b"x-api-key", key.encode())]) == ("apikey", key)
    assert credentials({"Authorization": f"ApiKey {key}"}) == ("apikey", key)
    assert credentials({"Authorization": f"Bearer {key}"}) == ("apikey", key)
    for bad, match in [
        ({"Authorization": "Basic c29raGE6cHc="}, "Basic"),
        ({"Authorization": "Bearer"}, "without a credential"),
        ({"X-API-Key": " "}, "empty"),
        ({"X-API-Key": key, "Authorization": "Bearer eyJ.x.y"}, "not both"),
    ]:
        with pytest.raises(AuthError, match=match):
            credentials(bad)


def test_anonymous_is_none_and_bad_credentials_are_401(store, settings) -> None:
    assert authenticate({}, settings, store) is None
    with pytest.raises(AuthError) as info:
        authenticate({"Authorization": "Bearer not-a-jwt"}, settings, store)
    err = info.value
    assert err.status == 401
    problem = err.to_problem("/ngsi-ld/v1/entities")
    assert problem["status"] == 401 and problem["title"] == "Unauthorized"
    assert problem["detail"] == "the token is not a well-formed JWT"
    assert err.headers == {
        "WWW-Authenticate": 'Bearer realm="cityos", error="invalid_token", '
        'error_description="the token is not a well-formed JWT"'
    }
    missing = AuthError("authentication required", error=None)
    assert missing.headers == {"WWW-Authenticate": 'Bearer realm="cityos"'}
    with pytest.raises(AuthError, match="not a CityOS API key"):
        authenticate({"X-API-Key": "whatever"}, settings, store)


def test_users_tokens_and_keys_give_principals(store, settings) -> None:
    users.add_user(store, "admin", "platform-admin-1", tenants=["*"], roles=["city-operator"])
    token, _ = issue_token(own_key(settings.token_key_path), users.get_user(store, "admin"), 60)
    admin = authenticate({"Authorization": f"Bearer {token}"}, settings, store)
    assert isinstance(admin, Principal) and admin.platform_admin and admin.in_tenant("")
    key, _ = keys.create_key(store, tenants=["@default"], roles=["researcher"])
    service = authenticate({"X-API-Key": key}, settings, store)
    assert service.kind == "service" and service.tenants == {""}
    assert service.in_tenant("") and not service.in_tenant("phnom-penh")
    assert not service.may_send_as_device("", "grp", "dev")  # only device keys (or admins)
    assert admin.may_send_as_device("", "grp", "dev")
    with pytest.raises(AttributeError):
        admin.roles = frozenset({"x"})  # type: ignore[misc]  # immutable: shared by caches


def test_cached_answers_from_memory_only(store, settings) -> None:
    auth = authenticator(settings, store)
    users.add_user(store, "dara", "riverside-22", tenants=["pp"], roles=["resident"])
    token, _ = issue_token(own_key(settings.token_key_path), users.get_user(store, "dara"), 60)
    key, _ = keys.create_key(store, tenants=["pp"], roles=["svc"])
    for headers in ({"Authorization": f"Bearer {token}"}, {"X-API-Key": key}):
        assert auth.cached(headers) is None  # not seen yet: authenticate() has work to do
        p = auth.authenticate(headers)
        assert auth.cached(headers) == p
    assert auth.cached({}) is None and auth.cached({"Authorization": "Basic x"}) is None
    assert auth.cached({"X-API-Key": key[:-1] + "!"}) is None


def test_one_authenticator_per_store_and_settings(store, settings, tmp_path) -> None:
    a = authenticator(settings, store)
    assert authenticator(settings, store) is a
    settings.auth_recheck_s = 1.0  # a changed setting: a new one
    assert authenticator(settings, store) is not a
    other = Settings(token_key_path=str(tmp_path / "token-key.pem"))
    assert authenticator(other, store) is not authenticator(settings, store)


def test_spelling_of_tenants_and_roles() -> None:
    assert tenant_name("@default") == "" and tenant_label("") == "@default"
    assert tenant_name("*") == "*" and tenant_name(" phnom-penh ") == "phnom-penh"
    for bad in ("a b", "x" * 65, "é", "../x"):
        with pytest.raises(ValueError):
            tenant_name(bad)
    assert clean_roles(["b", "a", "a"]) == ["a", "b"]
    with pytest.raises(ValueError):
        clean_roles(["has space"])


def test_auth_required_is_a_bool_setting() -> None:
    assert Settings.load(env={}).auth_required is False
    assert Settings.load(env={"CITYOS_AUTH_REQUIRED": "true"}).auth_required is True
    assert Settings.load(env={"CITYOS_AUTH_REQUIRED": "0"}).auth_required is False
    with pytest.raises(ValueError, match="auth_required"):
        Settings.load(env={"CITYOS_AUTH_REQUIRED": "maybe"})
    loaded = Settings.load(env={"CITYOS_JWKS_ALLOW_HOSTS": "keycloak, 127.0.0.1"})
    assert loaded.jwks_allow_hosts == ["keycloak", "127.0.0.1"]
