"""``cityos doctor`` (issue 12): CityOS's own checks and each registered part's, one line
each with what to do, exit 1 when one fails; nothing is changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cityos.cli import app


def _doctor(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict]:
    result = CliRunner().invoke(app, ["doctor", "--json", *args], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    findings = json.loads(result.stdout)
    return result.exit_code, {(f["part"], f["check"]): f for f in findings}


@pytest.fixture(autouse=True)
def _here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("CITYOS_DATABASE_URL", "CITYOS_MQTT_URL", "CITYOS_REDIS_URL", "CITYOS_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def test_a_fresh_installation_is_ready_and_nothing_is_made(tmp_path: Path) -> None:
    code, found = _doctor("--database-url", "sqlite:///data/city.db")
    assert code == 0
    assert found[("cityos", "database")]["ok"]
    assert "does not exist yet" in found[("cityos", "database")]["detail"]
    # each built-in part brings its own checks through the plug
    assert found[("devices", "MQTT broker")]["ok"]
    assert found[("audit", "audit signing key")]["ok"]
    assert found[("identity", "token signing key")]["ok"]
    assert not (tmp_path / "data").exists()  # no database, no key made


def test_a_migrated_database_is_at_the_newest_schema(tmp_path: Path) -> None:
    assert (
        CliRunner().invoke(app, ["db", "init", "--database-url", "sqlite:///h.db"]).exit_code == 0
    )
    code, found = _doctor("--database-url", "sqlite:///h.db")
    assert code == 0
    assert found[("cityos", "schema")]["ok"] and found[("cityos", "schema")]["detail"].startswith(
        "version "
    )


def test_an_old_schema_is_a_failure_with_the_fix(tmp_path: Path) -> None:
    import sqlite3

    sqlite3.connect(tmp_path / "old.db").close()  # an empty database: version 0
    code, found = _doctor("--database-url", "sqlite:///old.db")
    assert code == 1
    schema = found[("cityos", "schema")]
    assert not schema["ok"] and schema["detail"].startswith("at version 0 of ")
    assert "cityos db migrate" in schema["hint"]


@pytest.mark.parametrize(
    "env, key, hint",
    [
        ({"CITYOS_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x"}, ("cityos", "database"),
         "CITYOS_DATABASE_URL"),
        ({"CITYOS_REDIS_URL": "redis://127.0.0.1:1/0"}, ("cityos", "Redis"), "redis"),
        ({"CITYOS_MQTT_URL": "mqtt://127.0.0.1:1"}, ("devices", "MQTT broker"), "mosquitto"),
        ({"CITYOS_MQTT_URL": "http://broker"}, ("devices", "MQTT broker"), "mqtt://"),
        ({"CITYOS_POLICY_PATH": "missing.json"}, ("cityos", "roles"), "policy_path"),
        ({"CITYOS_JWT_ISSUER": "https://idp.example"}, ("identity", "external issuer"), "jwks"),
        ({"CITYOS_PORT": "99999"}, ("cityos", "port 127.0.0.1:99999"), "1-65535"),
    ],
)  # fmt: skip
def test_each_failure_is_one_line_with_what_to_do(env: dict, key: tuple, hint: str) -> None:
    env = {"CITYOS_DATABASE_URL": "sqlite:///h.db", **env}
    code, found = _doctor(env=env)
    assert code == 1
    assert not found[key]["ok"], found[key]
    assert hint.lower() in found[key]["hint"].lower()
    assert "\n" not in found[key]["detail"]


def test_the_table_a_person_reads(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["doctor"], env={"CITYOS_DATABASE_URL": "sqlite:///h.db", "COLUMNS": "160",
                              "CITYOS_MQTT_URL": "mqtt://127.0.0.1:1"}
    )  # fmt: skip
    assert result.exit_code == 1
    assert "FAIL" in result.output and "1 check(s) failed" in result.output
    assert "Traceback" not in result.output
