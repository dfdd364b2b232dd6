"""Shared fixtures: real servers for integration tests (skipped with a reason, failed under CI)."""

from __future__ import annotations

import contextlib
import inspect
import os
import re
import uuid
from collections.abc import Iterator

import pytest

from cityos.hub.store.base import Store

POSTGRES_URL = os.environ.get(
    "CITYOS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def require_server(name: str, reachable: bool, how: str) -> None:
    """Skip when a server is missing, but fail under CI=true where it must be there."""
    if reachable:
        return
    msg = f"{name} is not reachable: {how}"
    if os.environ.get("CI") == "true":
        pytest.fail(msg)
    pytest.skip(msg)


def postgres_reachable(url: str = POSTGRES_URL) -> bool:
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3):
            return True
    except Exception:
        return False


def postgis_missing(url: str = POSTGRES_URL) -> str | None:
    """Why the PostgreSQL server at ``url`` cannot give the store PostGIS, with how to fix
    it; None when the extension is there (or this connection could create it)."""
    import psycopg

    with psycopg.connect(url, connect_timeout=3, autocommit=True) as conn:
        major = conn.info.server_version // 10000
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'postgis'").fetchone():
            return None
        available = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'"
        ).fetchone()
        create = f"psql '{url}' -c 'CREATE EXTENSION postgis'"
        if available:
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
                return None
            except psycopg.Error as e:
                reason = str(e).strip().splitlines()[0]
                return (
                    f"PostGIS is installed but not enabled ({reason}): as a superuser run {create}"
                )
    return f"PostGIS is missing on the PostgreSQL {major} server: " + postgis_install_help(
        url, major
    )


def postgis_install_help(url: str, major: int) -> str:
    return (
        f"install it with 'apt-get install postgresql-{major}-postgis-3' (Debian/Ubuntu), "
        f"then run psql '{url}' -c 'CREATE EXTENSION postgis'"
    )


def require_postgis(url: str = POSTGRES_URL) -> None:
    """Skip (fail under CI=true) with how to install PostGIS when the server lacks it."""
    missing = postgis_missing(url)
    if missing is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(missing)
    pytest.skip(missing)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    require_server(
        "PostgreSQL",
        postgres_reachable(),
        f"start it ({POSTGRES_URL}) with 'pg_ctlcluster 15 main start' or set CITYOS_TEST_POSTGRES_URL",
    )
    require_postgis()
    return POSTGRES_URL


MQTT_HOST, MQTT_PORT = "127.0.0.1", 1883


@pytest.fixture(scope="session")
def mosquitto() -> tuple[str, int]:
    import socket

    try:
        with socket.create_connection((MQTT_HOST, MQTT_PORT), timeout=2):
            reachable = True
    except OSError:
        reachable = False
    require_server(
        "Mosquitto", reachable, f"start it ({MQTT_HOST}:{MQTT_PORT}) with 'mosquitto -d'"
    )
    return MQTT_HOST, MQTT_PORT


REDIS_URL = os.environ.get("CITYOS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A Redis server (rate limits shared by workers); skipped without one, failed under CI."""
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
        reachable = True
    except Exception:
        reachable = False
    require_server(
        "Redis",
        reachable,
        f"start it ({REDIS_URL}) with 'redis-server --daemonize yes' or set CITYOS_TEST_REDIS_URL",
    )
    return REDIS_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[Store]:
    """A migrated store, SQLite or PostgreSQL (in a schema of its own, dropped after): the
    contract, security and other suites run unchanged against every engine."""
    if request.param == "sqlite":
        from cityos.hub.store.sqlite import SqliteStore

        s: Store = SqliteStore(tmp_path / "city.db")
        s.migrate()
        yield s
        s.close()
    else:
        url = request.getfixturevalue("postgres_url")
        from cityos.hub.store.postgres import PostgresStore

        s = PostgresStore(url, schema=f"cityos_test_{uuid.uuid4().hex[:10]}")
        s.migrate()
        try:
            yield s
        finally:
            s.drop_schema()
            s.close()


# ---------------------------------------------------------------------------- markers
# `make test-fast` runs `-m "not slow and not sumo"`; `-m "not postgres and not mqtt"` runs
# without those servers. The marks are put on here, from what a test uses, rather than in
# every module: a test that asks for a server fixture, or is parametrised onto PostgreSQL
# (the `store`, `client`, `secured`, `hub_factory` ... fixtures), or runs SUMO.

# fixtures that build a SUMO network (netconvert) for the test
SUMO_FIXTURES = frozenset({"tiny", "tiny_pedestrians"})
# what a test's own code calls when it starts SUMO (netconvert, sumo, libsumo or traci)
# (`cityos traffic run|tune`, in-process or as a command, included)
SUMO_CALLS = re.compile(
    r"\b(run_scenario|run_through_hub|run_with_buses|Simulation|tiny_scenario|get_scenario"
    r"|make_bus_lines|sumo_binary|netconvert|tune|libsumo|traci)\b"
    r"|[\[(]\s*(\"traffic\",\s*)?\"(run|tune)\""
)
# tests that take more than ~3 s here (2 shared cores), by module or by module::name
# (measured with --durations=0 on `-m "not slow and not sumo"`)
SLOW = frozenset(
    {
        "tests/test_workers.py",
        "tests/test_crash.py",
        "tests/test_cli.py::test_demo_no_serve_loads_replays_and_answers",
        "tests/interop/test_filip.py",
        "tests/interop/test_ngsildclient.py",
        "tests/security/test_fuzz_api.py",
        "tests/hub/query/test_q_sql_equivalence.py",  # Hypothesis, on both engines
        "tests/hub/api/test_hostile_input.py::test_random_bodies_never_5xx_and_rejections_write_nothing",
        "tests/security/test_dos.py::test_health_answers_while_a_slow_context_is_fetched",
        "tests/devices/test_simulate.py::test_simulate_into_a_served_hub",
        "tests/test_serve.py::test_serve_with_an_unreachable_database_says_so_in_one_line",
        "tests/test_first_hour_cli.py::test_serve_with_a_bad_database_is_one_line",
        "tests/test_readme_examples.py",  # the demo, served
    }
)


def _relpath(item: pytest.Item) -> str:
    root = item.config.rootpath
    try:
        return item.path.relative_to(root).as_posix()
    except ValueError:
        return item.path.as_posix()


def _calls_sumo(function: object) -> bool:
    try:
        return bool(SUMO_CALLS.search(inspect.getsource(function)))  # type: ignore[arg-type]
    except (OSError, TypeError):
        return False


def _starts_sumo(item: pytest.Item) -> bool:
    """The test, or a fixture it uses (its own module's, say), starts SUMO."""
    if set(getattr(item, "fixturenames", ())) & SUMO_FIXTURES:
        return True
    functions = [getattr(item, "function", None)]
    info = getattr(item, "_fixtureinfo", None)
    for defs in getattr(info, "name2fixturedefs", {}).values():
        functions += [d.func for d in defs]
    return any(f is not None and _calls_sumo(f) for f in functions)


def _strings(values: object) -> set[str]:
    if isinstance(values, str):
        return {values}
    if isinstance(values, tuple | list):
        return {s for v in values for s in _strings(v)}
    return set()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        params = getattr(getattr(item, "callspec", None), "params", {})
        values = _strings(list(params.values()))
        module = _relpath(item)
        name = f"{module}::{item.name.split('[')[0]}"
        if "postgres_url" in names or "postgresql" in values:
            item.add_marker(pytest.mark.postgres)
        if "mosquitto" in names or "mqtt" in values:
            item.add_marker(pytest.mark.mqtt)
        if _starts_sumo(item):
            item.add_marker(pytest.mark.sumo)
        if module in SLOW or name in SLOW:
            item.add_marker(pytest.mark.slow)


# -- a real `cityos serve` ------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(env: dict[str, str], *args: str, timeout_s: float = 30) -> Iterator[str]:
    """`cityos serve` in its own process on a free port, with ``env`` over this one's (a
    CITYOS_DATABASE_URL at least); its base URL once /health answers. Stopped with SIGINT
    (killed after 10 s) when the block ends; what it printed is in a failed start's message."""
    import signal
    import subprocess
    import sys
    import tempfile
    import time

    import httpx

    port = free_port()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cityos.cli", "serve", "--port", str(port), *args],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    out.seek(0)
                    raise AssertionError(f"cityos serve did not start: {out.read().decode()}")
                time.sleep(0.1)
            yield base
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="session")
def serve_hub() -> object:
    """:func:`serving`, for tests: ``with serve_hub({"CITYOS_DATABASE_URL": …}) as url:``."""
    return serving
