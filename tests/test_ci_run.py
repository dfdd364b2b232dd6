""".ci/run: the CI entry point installs and starts every server the tests need (Redis too).

The script can be sourced: that defines its functions without running them, so each step
is tested on its own against real servers.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest

CI_RUN = Path(__file__).resolve().parents[1] / ".ci" / "run"


def _bash(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    exports = "".join(f"export {k}={v!s}; " for k, v in env.items())
    return subprocess.run(
        ["bash", "-c", f"{exports}source {CI_RUN}; {script}"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_redis_server_is_among_the_packages_installed() -> None:
    result = _bash('printf "%s\\n" "${PACKAGES[@]}"')
    assert result.returncode == 0, result.stderr
    assert "redis-server" in result.stdout.split()


def test_main_starts_redis_before_the_tests() -> None:
    result = _bash("declare -f main")
    assert result.returncode == 0, result.stderr
    body = result.stdout
    assert "start_redis" in body
    assert body.index("start_redis") < body.index("make test")


def test_redis_ready_answers_for_the_running_server(redis_url: str) -> None:
    assert _bash("redis_ready").returncode == 0


def test_redis_ready_is_false_where_nothing_listens() -> None:
    assert _bash("redis_ready", REDIS_PORT=str(_free_port())).returncode != 0


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
def test_start_redis_starts_one_server_and_is_safe_to_run_again(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        "REDIS_PORT": str(port),
        "REDIS_DIR": str(tmp_path / "data"),  # missing: start_redis must create it
        "REDIS_LOG_DIR": str(tmp_path / "log"),
    }
    try:
        first = _bash("start_redis", **env)
        assert first.returncode == 0, first.stderr
        assert "starting Redis" in first.stderr
        assert _bash("redis_ready", REDIS_PORT=str(port)).returncode == 0
        assert (tmp_path / "log" / "ci.log").exists()

        again = _bash("start_redis", **env)  # idempotent: finds it running, starts nothing
        assert again.returncode == 0, again.stderr
        assert "starting Redis" not in again.stderr
        assert "Redis is ready" in again.stderr
    finally:
        subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(port), "shutdown", "nosave"],
            capture_output=True,
            timeout=10,
        )
