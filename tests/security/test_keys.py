"""API keys for devices and services, on SQLite and PostgreSQL: kept only as hashes,
scoped, expiring, revocable with a reason; device keys bound to a service group; the CLI."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from cityos.cli import app
from cityos.config import Settings
from cityos.devices.agent import DEVICE, GROUP
from cityos.security import keys
from cityos.security.identity import authenticate
from cityos.security.principal import AuthError

runner = CliRunner()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A database URL the CLI opens (PostgreSQL: a database of its own, dropped after)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/city.db"
        return
    import psycopg

    base = request.getfixturevalue("postgres_url")
    name = f"cityos_keys_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_a_key_is_shown_once_and_kept_as_a_hash(store) -> None:
    key, doc = keys.create_key(
        store, tenants=["phnom-penh"], roles=["transit-operator"], name="bus-feed"
    )
    assert key.startswith("cok_") and keys.parse_key(key) == (doc["id"], key.split("_", 2)[2])
    secret = key.split("_", 2)[2]
    assert len(secret) == 43  # 32 random bytes
    raw = store.get_doc(keys.APIKEY, "", doc["id"])
    assert secret not in json.dumps(raw) and "hash" not in doc
    assert raw["hash"] == keys.hash_secret(doc["id"], secret)
    book = keys.ApiKeyBook(store)
    p = book.verify(key)
    assert p.subject == f"key:{doc['id']}" and p.kind == "service" and p.token_id == doc["id"]
    assert p.tenants == {"phnom-penh"} and p.roles == {"transit-operator"}
    assert p.expires_at is None and p.service_group is None
    wrong = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    with pytest.raises(AuthError, match="not valid"):
        book.verify(wrong)
    with pytest.raises(AuthError, match="not valid"):
        book.verify("cok_0123456789abcdef_" + secret)
    with pytest.raises(AuthError, match="not a CityOS API key"):
        book.verify("cok_short")
    assert [d["id"] for d in keys.list_keys(store)] == [doc["id"]]
    assert keys.list_keys(store, "siem-reap") == []
    assert "hash" not in keys.list_keys(store)[0]


def test_expired_and_revoked_keys_are_refused_with_the_reason(store) -> None:
    now = [time.time()]
    book = keys.ApiKeyBook(store, recheck_s=5, clock=lambda: now[0])
    key, doc = keys.create_key(store, tenants=["pp"], roles=["svc"], expires_in_s=3600)
    assert book.verify(key).expires_at == pytest.approx(doc["created"] + 3600)
    now[0] += 3601
    with pytest.raises(AuthError, match=f"API key {doc['id']} expired at 20"):
        book.verify(key)
    key2, doc2 = keys.create_key(store, tenants=["pp"], roles=["svc"])
    assert book.verify(key2)
    assert keys.revoke_key(store, doc2["id"], "leaked in a log")["revoked"] is not None
    assert keys.key_status(store.get_doc(keys.APIKEY, "", doc2["id"])) == "revoked"
    assert book.verify(key2)  # this worker learns within recheck_s ...
    now[0] += 5.1
    with pytest.raises(AuthError, match="was revoked: leaked in a log"):
        book.verify(key2)
    assert keys.revoke_key(store, "0000000000000000") is None
    # someone with only the id does not learn the key's state
    with pytest.raises(AuthError, match="not valid"):
        book.verify(f"cok_{doc2['id']}_" + "A" * 43)


def test_device_keys_are_bound_to_a_service_group(store) -> None:
    with pytest.raises(keys.ApiKeyError, match="provision it first"):
        keys.create_key(store, tenants=["pp"], roles=["device"], service_group="4jggokgpepnvsb2")
    store.put_doc(GROUP, "pp", "4jggokgpepnvsb2", {"apikey": "4jggokgpepnvsb2"})
    store.put_doc(DEVICE, "pp", "loop-7", {"device_id": "loop-7", "apikey": "4jggokgpepnvsb2"})
    with pytest.raises(keys.ApiKeyError, match="exactly one tenant"):
        keys.create_key(
            store, tenants=["pp", "sr"], roles=["device"], service_group="4jggokgpepnvsb2"
        )
    with pytest.raises(keys.ApiKeyError, match="no device"):
        keys.create_key(
            store,
            tenants=["pp"],
            roles=["device"],
            service_group="4jggokgpepnvsb2",
            device_id="nope",
        )
    key, doc = keys.create_key(
        store, tenants=["pp"], roles=["device"], service_group="4jggokgpepnvsb2"
    )
    p = keys.ApiKeyBook(store).verify(key)
    assert p.kind == "device" and p.service_group == "4jggokgpepnvsb2"
    assert p.may_send_as_device("pp", "4jggokgpepnvsb2", "loop-7")
    assert p.may_send_as_device("pp", "4jggokgpepnvsb2", "loop-8")
    assert not p.may_send_as_device("pp", "other-group", "loop-7")
    assert not p.may_send_as_device("sr", "4jggokgpepnvsb2", "loop-7")
    one, _ = keys.create_key(
        store, tenants=["pp"], roles=["device"], service_group="4jggokgpepnvsb2", device_id="loop-7"
    )
    p = keys.ApiKeyBook(store).verify(one)
    assert p.device_id == "loop-7" and p.may_send_as_device("pp", "4jggokgpepnvsb2", "loop-7")
    assert not p.may_send_as_device("pp", "4jggokgpepnvsb2", "loop-8")


def test_keys_through_authenticate(store, tmp_path) -> None:
    settings = Settings(token_key_path=str(tmp_path / "k.pem"))
    key, doc = keys.create_key(store, tenants=["*"], roles=["city-operator"])
    for headers in (
        {"X-API-Key": key},
        {"authorization": f"ApiKey {key}"},
        {"Authorization": f"Bearer {key}"},
    ):
        p = authenticate(headers, settings, store)
        assert p.token_id == doc["id"] and p.platform_admin and p.in_tenant("anything")


@pytest.mark.parametrize(
    "text,seconds",
    [("90s", 90), ("15m", 900), ("1h", 3600), ("30d", 2_592_000), ("2w", 1_209_600)],
)
def test_durations(text, seconds) -> None:
    assert keys.parse_duration(text) == seconds


def test_iso_durations_and_nonsense() -> None:
    assert keys.parse_duration("P30D") == 30 * 86400
    assert keys.parse_duration("PT1H") == 3600
    for bad in ("soon", "0d", "-1h", ""):
        with pytest.raises(ValueError):
            keys.parse_duration(bad)


def test_cli_keys_round_trip(db_url) -> None:
    r = runner.invoke(
        app,
        ["keys", "create", "-t", "phnom-penh", "-r", "transit-operator", "--expires", "30d"]
        + ["--name", "bus-feed", "-d", db_url],
    )
    assert r.exit_code == 0, r.output
    key = r.stdout.strip()
    assert keys.parse_key(key) is not None
    key_id = keys.parse_key(key)[0]
    assert "not shown again" in r.stderr
    r = runner.invoke(app, ["keys", "list", "--json", "-d", db_url])
    assert r.exit_code == 0, r.output
    (listed,) = json.loads(r.stdout)
    assert listed["id"] == key_id and listed["status"] == "active" and listed["name"] == "bus-feed"
    assert listed["expires"] - listed["created"] == pytest.approx(30 * 86400)
    assert key.split("_", 2)[2] not in r.stdout and "hash" not in listed
    from cityos.hub.store import open_store

    store = open_store(db_url)
    try:
        settings = Settings(database_url=db_url)
        p = authenticate({"X-API-Key": key}, settings, store)
        assert p.tenants == {"phnom-penh"} and p.roles == {"transit-operator"}
        r = runner.invoke(app, ["keys", "revoke", key_id, "--reason", "rotated", "-d", db_url])
        assert r.exit_code == 0, r.output
        fresh = settings.__class__(database_url=db_url)  # a new worker: no cache
        with pytest.raises(AuthError, match="revoked: rotated"):
            authenticate({"X-API-Key": key}, fresh, store)
        # a device key needs its service group; then it is bound to it
        r = runner.invoke(
            app, ["keys", "create", "-t", "pp", "--device", "4jggokgpepnvsb2", "-d", db_url]
        )
        assert r.exit_code == 2 and "provision it first" in " ".join(r.output.split())
        store.put_doc(GROUP, "pp", "4jggokgpepnvsb2", {"apikey": "4jggokgpepnvsb2"})
        r = runner.invoke(
            app,
            ["keys", "create", "-t", "pp", "--device", "4jggokgpepnvsb2", "--json", "-d", db_url],
        )
        assert r.exit_code == 0, r.output
        made = json.loads(r.stdout)
        assert made["kind"] == "device" and made["roles"] == ["device"]
        p = authenticate({"X-API-Key": made["key"]}, fresh, store)
        assert p.may_send_as_device("pp", "4jggokgpepnvsb2", "any-device")
    finally:
        store.close()
    r = runner.invoke(app, ["keys", "list", "--json", "--tenant", "pp", "-d", db_url])
    assert [d["kind"] for d in json.loads(r.stdout)] == ["device"]
    r = runner.invoke(app, ["keys", "list", "-d", db_url])
    assert r.exit_code == 0 and "revoked" in r.stdout and key_id in r.stdout
    r = runner.invoke(app, ["keys", "revoke", "0000000000000000", "-d", db_url])
    assert r.exit_code == 1
    r = runner.invoke(app, ["keys", "create", "-t", "pp", "--expires", "soon", "-d", db_url])
    assert r.exit_code == 2 and "--expires" in r.output
