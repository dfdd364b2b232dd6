"""CityOS's own users and tokens, on SQLite and PostgreSQL: argon2id hashes, tokens signed
by the hub's own key, POST /auth/token, and the command line round trip."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from types import SimpleNamespace

import jwt
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient
from typer.testing import CliRunner

from cityos.cli import app
from cityos.config import Settings
from cityos.security import users
from cityos.security.identity import Authenticator, authenticate
from cityos.security.principal import AuthError
from cityos.security.tokens import OWN_KID_PREFIX, OwnKey, issue_token, own_key, routes

runner = CliRunner()


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(token_key_path=str(tmp_path / "keys" / "token-key.pem"))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_users_are_kept_as_argon2id_hashes(store) -> None:
    doc = users.add_user(
        store, "sokha", "monivong-1993", tenants=["phnom-penh", "@default"], roles=["resident"]
    )
    assert doc == {
        "name": "sokha",
        "tenants": ["", "phnom-penh"],
        "roles": ["resident"],
        "created": doc["created"],
        "stamp": doc["stamp"],
    }
    raw = store.get_doc(users.USER, "", "sokha")
    assert raw["password"].startswith("$argon2id$")
    assert "monivong-1993" not in json.dumps(raw)
    assert [u["name"] for u in users.list_users(store)] == ["sokha"]
    assert "password" not in users.list_users(store)[0]
    assert users.check_password(store, "sokha", "monivong-1993")["name"] == "sokha"
    assert users.check_password(store, "sokha", "monivong-1994") is None
    assert users.check_password(store, "nobody", "monivong-1993") is None
    with pytest.raises(users.UserError, match="exists"):
        users.add_user(store, "sokha", "other-pass-1", tenants=["x"], roles=["r"])
    with pytest.raises(users.UserError, match="at least 8"):
        users.add_user(store, "dara", "short", tenants=["x"], roles=["r"])
    with pytest.raises(users.UserError, match="user name"):
        users.add_user(store, "no spaces", "long-enough", tenants=["x"], roles=["r"])
    with pytest.raises(users.UserError, match="tenant"):
        users.add_user(store, "dara", "long-enough", tenants=["bad tenant"], roles=["r"])
    assert users.remove_user(store, "sokha") and not users.remove_user(store, "sokha")
    assert users.list_users(store) == []


def test_weaker_hashes_are_upgraded_on_login(store) -> None:
    from argon2 import PasswordHasher

    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
    users.add_user(store, "vanna", "wat-phnom-88", tenants=["pp"], roles=["resident"])
    doc = store.get_doc(users.USER, "", "vanna")
    store.put_doc(users.USER, "", "vanna", {**doc, "password": weak.hash("wat-phnom-88")})
    assert users.check_password(store, "vanna", "wat-phnom-88") is not None
    upgraded = store.get_doc(users.USER, "", "vanna")["password"]
    assert "m=65536,t=3,p=4" in upgraded


def test_own_tokens_authenticate_until_the_user_changes(store, settings) -> None:
    users.add_user(store, "sokha", "monivong-1993", tenants=["phnom-penh"], roles=["resident"])
    doc = users.check_password(store, "sokha", "monivong-1993")
    token, claims = issue_token(own_key(settings.token_key_path), doc, 600)
    assert claims["exp"] - claims["iat"] == 600
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"
    assert jwt.get_unverified_header(token)["kid"].startswith(OWN_KID_PREFIX)
    key_file = settings.token_key_path
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    now = [time.time()]
    auth = Authenticator(settings, store, clock=lambda: now[0])
    p = auth.authenticate(bearer(token))
    assert p.subject == "sokha" and p.tenants == {"phnom-penh"} and p.roles == {"resident"}
    assert p.kind == "user" and p.issuer == "cityos" and p.expires_at == claims["exp"]
    # the function form answers the same (and keeps its Authenticator)
    assert authenticate(bearer(token), settings, store) == p
    # replacing the user (new password) ends its tokens, within auth_recheck_s
    users.add_user(
        store, "sokha", "new-pass-2026", tenants=["phnom-penh"], roles=["resident"], replace=True
    )
    assert auth.authenticate(bearer(token)) == p  # cached for auth_recheck_s
    now[0] += settings.auth_recheck_s + 0.1
    with pytest.raises(AuthError, match="was changed"):
        auth.authenticate(bearer(token))
    fresh, _ = issue_token(own_key(key_file), users.get_user(store, "sokha"), 600)
    assert auth.authenticate(bearer(fresh)).subject == "sokha"
    users.remove_user(store, "sokha")
    now[0] += settings.auth_recheck_s + 0.1
    with pytest.raises(AuthError, match="no longer exists"):
        auth.authenticate(bearer(fresh))


def test_a_token_of_another_cityos_key_is_refused(store, settings, tmp_path) -> None:
    users.add_user(store, "sokha", "monivong-1993", tenants=["pp"], roles=["resident"])
    doc = users.get_user(store, "sokha")
    other = OwnKey(tmp_path / "elsewhere.pem")
    token, _ = issue_token(other, doc, 600)
    own_key(settings.token_key_path).signing_key()  # this hub has a key, a different one
    with pytest.raises(AuthError, match="does not have"):
        Authenticator(settings, store).authenticate(bearer(token))
    with pytest.raises(ValueError, match="longer-lived"):
        issue_token(own_key(settings.token_key_path), doc, 30 * 86400)


def test_workers_racing_to_make_the_key_share_one(tmp_path) -> None:
    path = tmp_path / "race" / "key.pem"
    kids: list[str] = []

    def make() -> None:
        k = OwnKey(path)
        k.signing_key()
        kids.append(k.kid)

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(kids)) == 1 and len(kids) == 8
    assert sorted(p.name for p in path.parent.iterdir()) == ["key.pem"]  # no temp files left


def test_token_endpoint_password_grant(store, settings) -> None:
    users.add_user(store, "sokha", "monivong-1993", tenants=["phnom-penh"], roles=["resident"])
    web = Starlette(routes=routes())
    web.state.hub = SimpleNamespace(settings=settings, store=store)
    client = TestClient(web)
    form = {"grant_type": "password", "username": "sokha", "password": "monivong-1993"}
    r = client.post("/auth/token", data=form)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == settings.token_ttl_s
    assert r.headers["cache-control"] == "no-store"
    p = authenticate(bearer(body["access_token"]), settings, store)
    assert p.subject == "sokha" and p.tenants == {"phnom-penh"}
    r = client.post("/auth/token", json=form)
    assert r.status_code == 200 and r.json()["access_token"] != body["access_token"]
    r = client.post("/auth/token", data={**form, "password": "wrong-password"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    r = client.post("/auth/token", data={**form, "username": "nobody"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    r = client.post("/auth/token", data={**form, "grant_type": "client_credentials"})
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    r = client.post("/auth/token", data={"grant_type": "password", "username": "sokha"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = client.post("/auth/token", content=b"x" * 20_000, headers={"content-type": "text/plain"})
    assert r.status_code == 413
    # the public key, for city services that verify CityOS tokens themselves
    jwks = client.get("/auth/jwks.json").json()
    key = jwt.PyJWK(jwks["keys"][0])
    claims = jwt.decode(body["access_token"], key, algorithms=["EdDSA"], audience="cityos")
    assert claims["sub"] == "sokha"


def test_cli_users_and_tokens_round_trip(tmp_path, monkeypatch, request) -> None:
    url = f"sqlite:///{tmp_path}/city.db"
    monkeypatch.setenv("CITYOS_TOKEN_KEY_PATH", str(tmp_path / "token-key.pem"))
    add = ["users", "add", "sokha", "-t", "phnom-penh", "-r", "resident", "-d", url]
    r = runner.invoke(app, [*add, "--password-stdin"], input="monivong-1993\n")
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, add, input="other-pass-1\nother-pass-1\n")  # prompted twice
    assert r.exit_code == 2 and "exists" in r.output
    r = runner.invoke(app, ["users", "list", "--json", "-d", url])
    assert r.exit_code == 0, r.output
    listed = json.loads(r.stdout)
    assert [(u["name"], u["tenants"], u["roles"]) for u in listed] == [
        ("sokha", ["phnom-penh"], ["resident"])
    ]
    assert "argon2" not in r.stdout
    create = ["token", "create", "--user", "sokha", "--ttl", "15m", "-d", url]
    r = runner.invoke(app, [*create, "--password-stdin"], input="monivong-1993\n")
    assert r.exit_code == 0, r.output
    token = r.stdout.strip()
    settings = Settings(database_url=url, token_key_path=str(tmp_path / "token-key.pem"))
    from cityos.hub.store import open_store

    store = open_store(url)
    try:
        p = authenticate(bearer(token), settings, store)
        assert p.subject == "sokha" and p.expires_at - time.time() <= 15 * 60 + 1
    finally:
        store.close()
    r = runner.invoke(app, [*create, "--password-stdin", "--json"], input="wrong-pass\n")
    assert r.exit_code == 1 and "wrong user name or password" in r.output
    r = runner.invoke(app, ["users", "remove", "sokha", "-d", url])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["users", "remove", "sokha", "-d", url])
    assert r.exit_code == 1
