"""The suite's own machinery (tests/conftest.py): the markers `make test-fast` selects on,
and what the PostgreSQL fixture says when PostGIS is missing."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
ROOT = TESTS.parent

# where each marker is expected, and where it is not
SAMPLE = [
    "tests/hub/store/test_contract.py",
    "tests/hub/api/test_entities_api.py",
    "tests/devices/test_simulate.py",
    "tests/services/traffic",
    "tests/test_workers.py",
    "tests/security/test_fuzz_api.py",
    "tests/web",
]

DUMP = """
import json, os

def pytest_collection_finish(session):
    marks = {i.nodeid: sorted({m.name for m in i.iter_markers()}) for i in session.items}
    with open(os.environ["MARKS_OUT"], "w") as f:
        json.dump(marks, f)
"""


@pytest.fixture(scope="module")
def marks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """The markers of every test in SAMPLE, as pytest collects them (no test runs)."""
    where = tmp_path_factory.mktemp("marks")
    (where / "markdump.py").write_text(DUMP)
    out = where / "marks.json"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "markdump",
         "-p", "no:cacheprovider", *SAMPLE],
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(where), os.environ.get("PYTHONPATH")])),
            "MARKS_OUT": str(out),
        },
        capture_output=True,
        text=True,
        timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(out.read_text())


def ids(marks: dict[str, list[str]], path: str) -> dict[str, list[str]]:
    found = {k: v for k, v in marks.items() if k.startswith(path)}
    assert found, f"no test collected under {path}"
    return found


def test_tests_on_postgresql_are_marked_postgres_and_sqlite_ones_are_not(marks) -> None:
    contract = ids(marks, "tests/hub/store/test_contract.py")
    assert all(("postgres" in m) == ("[postgresql" in k) for k, m in contract.items())
    # a parametrised fixture (client, secured, hub_factory ...) counts as PostgreSQL too
    api = ids(marks, "tests/hub/api/test_entities_api.py")
    assert any("postgres" in m for k, m in api.items() if "[postgresql" in k)
    assert not any("postgres" in m for k, m in api.items() if "[sqlite" in k)


def test_tests_that_need_mosquitto_are_marked_mqtt(marks) -> None:
    simulate = ids(marks, "tests/devices/test_simulate.py::test_simulate_into_a_served_hub")
    assert all("mqtt" in m for m in simulate.values())
    assert "mqtt" not in marks["tests/web/test_app.py::test_health_names_the_engine_and_the_worker"]


def test_tests_that_start_sumo_are_marked_sumo_and_pure_ones_are_not(marks) -> None:
    traffic = ids(marks, "tests/services/traffic/")
    sumo = {k for k, m in traffic.items() if "sumo" in m}
    assert any("tiny" in k or "scenario" in k for k in sumo), sumo  # the tiny crossing
    assert any("test_cli.py::test_run_" in k for k in sumo)  # `cityos traffic run`
    safety = ids(marks, "tests/services/traffic/test_safety.py")  # pure Python
    assert not any("sumo" in m for m in safety.values())


def test_the_long_tests_are_marked_slow_and_the_fast_set_keeps_the_rest(marks) -> None:
    assert all("slow" in m for m in ids(marks, "tests/test_workers.py").values())
    assert all("slow" in m for m in ids(marks, "tests/security/test_fuzz_api.py").values())
    fast = [k for k, m in marks.items() if not {"slow", "sumo"} & set(m)]
    assert 0.5 * len(marks) < len(fast) < len(marks)


# ------------------------------------------------------------------------------ PostGIS
def load_conftest():
    spec = importlib.util.spec_from_file_location("suite_conftest", TESTS / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_the_install_help_names_the_package_and_the_extension_step() -> None:
    help = load_conftest().postgis_install_help("postgresql://pg@db:5432/city", 15)
    assert "apt-get install postgresql-15-postgis-3" in help
    assert "psql 'postgresql://pg@db:5432/city' -c 'CREATE EXTENSION postgis'" in help


@pytest.mark.parametrize("ci", ["true", ""])
def test_missing_postgis_skips_with_the_help_and_fails_under_ci(monkeypatch, ci) -> None:
    conftest = load_conftest()
    monkeypatch.setattr(conftest, "postgis_missing", lambda url: "PostGIS is missing: install")
    monkeypatch.setenv("CI", ci)
    outcome = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(outcome, match="PostGIS is missing: install"):
        conftest.require_postgis("postgresql://x")


def test_a_database_where_postgis_cannot_be_enabled_says_how(postgres_url) -> None:
    """A role that may not create PostGIS (not a superuser) is told the step to run."""
    import psycopg

    conftest = load_conftest()
    name = f"cityos_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
        admin.execute(f"CREATE ROLE {name} LOGIN")
    url = postgres_url.rsplit("/", 1)[0].replace("//postgres@", f"//{name}@") + f"/{name}"
    try:
        missing = conftest.postgis_missing(url)
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name}")
            admin.execute(f"DROP ROLE {name}")
    assert missing is not None
    assert "-c 'CREATE EXTENSION postgis'" in missing and "superuser" in missing
    assert conftest.postgis_missing(postgres_url) is None  # the suite's own server has it
