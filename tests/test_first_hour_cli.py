"""The first hour with `cityos serve` and `cityos demo` (issue 12): a wrong database, port or
number of minutes is one line and exit 2, before any work; help shows no `<bool>`; the demo
uses the configured database and counts notifications as notifications."""

from __future__ import annotations

import io
import json
import socket
from typing import Any

import pytest
import typer
import uvicorn
from rich.console import Console
from typer.testing import CliRunner

import cityos.demo
from cityos.cli import app
from cityos.config import Settings

runner = CliRunner()


@pytest.fixture(autouse=True)
def no_work(monkeypatch, tmp_path) -> list[Settings]:
    """Nothing here may start a server or run the demo's replay: if it does, the command did
    not refuse early. What run_demo was given is kept."""
    monkeypatch.chdir(tmp_path)  # no cityos.toml from the checkout
    for name in ("CITYOS_DATABASE_URL", "CITYOS_PORT", "CITYOS_HOST", "CITYOS_CONFIG"):
        monkeypatch.delenv(name, raising=False)

    def no_server(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("uvicorn.run was reached")

    given: list[Settings] = []

    def fake_demo(settings: Settings, **kwargs: Any) -> dict[str, Any]:
        given.append(settings)
        return {"database_url": settings.database_url, "curl": []}

    monkeypatch.setattr(uvicorn, "run", no_server)
    monkeypatch.setattr(cityos.demo, "run_demo", fake_demo)
    return given


def one_line_exit_2(result: Any) -> str:
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.mark.parametrize(
    "url",
    ["postgresql://postgres@127.0.0.1:1/x", "sqlite:///{tmp}/a-file/x.db", "foo://x"],
)
def test_serve_with_a_bad_database_is_one_line(url, tmp_path, monkeypatch) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    monkeypatch.setenv("CITYOS_DATABASE_URL", url.format(tmp=tmp_path))
    line = one_line_exit_2(runner.invoke(app, ["serve", "--port", "18999"]))
    assert "cannot open the database" in line and "CITYOS_DATABASE_URL" in line


def test_serve_with_a_bad_database_flag_is_one_line() -> None:
    line = one_line_exit_2(runner.invoke(app, ["serve", "-d", "foo://x"]))
    assert "unsupported database URL 'foo://x'" in line


@pytest.mark.parametrize("port", ["99999", "65536", "0", "-1"])
def test_serve_refuses_a_port_out_of_range(port, tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/ok.db"
    line = one_line_exit_2(runner.invoke(app, ["serve", "--port", port, "-d", url]))
    assert f"port {port} is out of range" in line and "1 to 65535" in line


def test_serve_refuses_a_configured_port_out_of_range(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CITYOS_PORT", "70000")
    line = one_line_exit_2(runner.invoke(app, ["serve", "-d", f"sqlite:///{tmp_path}/ok.db"]))
    assert "port 70000 is out of range" in line


def test_demo_help_names_its_real_default_database() -> None:
    r = runner.invoke(app, ["demo", "--help"])
    assert r.exit_code == 0
    text = "".join(r.output.replace("│", " ").split())
    assert "sqlite:///data/demo.db" in text and "CITYOS_DATABASE_URL" in text
    assert "sqlite:///data/city.db" not in text


def test_demo_honours_the_configured_database(no_work, tmp_path, monkeypatch) -> None:
    r = runner.invoke(app, ["demo", "--no-serve", "--json"])
    assert r.exit_code == 0, r.output
    assert no_work[-1].database_url == "sqlite:///data/demo.db"  # nothing configured
    url = f"sqlite:///{tmp_path}/mine.db"
    monkeypatch.setenv("CITYOS_DATABASE_URL", url)
    r = runner.invoke(app, ["demo", "--no-serve", "--json"])
    assert r.exit_code == 0, r.output
    assert no_work[-1].database_url == url
    assert json.loads(r.stdout)["database_url"] == url
    # the config file counts as much as the environment; the flag beats both
    monkeypatch.delenv("CITYOS_DATABASE_URL")
    (tmp_path / "cityos.toml").write_text(f'database_url = "{url}"\n')
    assert runner.invoke(app, ["demo", "--no-serve"]).exit_code == 0
    assert no_work[-1].database_url == url
    other = f"sqlite:///{tmp_path}/flag.db"
    assert runner.invoke(app, ["demo", "--no-serve", "-d", other]).exit_code == 0
    assert no_work[-1].database_url == other


def test_demo_with_a_bad_database_is_one_line(no_work, tmp_path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    for url in ("foo://x", f"sqlite:///{tmp_path}/a-file/demo.db"):
        line = one_line_exit_2(runner.invoke(app, ["demo", "--no-serve", "-d", url]))
        assert f"cannot open the database {url}" in line
    assert no_work == []


@pytest.mark.parametrize("minutes", ["0", "-5"])
def test_demo_refuses_fewer_than_one_minute(minutes, no_work) -> None:
    line = one_line_exit_2(runner.invoke(app, ["demo", "--no-serve", "--minutes", minutes]))
    assert f"--minutes {minutes}" in line and "at least 1 minute" in line
    assert no_work == []


def test_demo_finds_a_busy_port_before_any_work(no_work) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = one_line_exit_2(runner.invoke(app, ["demo", "--port", str(port)]))
    assert f"cannot listen on 127.0.0.1:{port}" in line and "--port" in line
    assert no_work == []  # refused before loading anything


def test_demo_refuses_a_port_out_of_range(no_work) -> None:
    line = one_line_exit_2(runner.invoke(app, ["demo", "--port", "99999"]))
    assert "port 99999 is out of range" in line
    assert no_work == []


def _commands(command: Any, path: list[str]) -> list[list[str]]:
    found = [path]
    if hasattr(command, "list_commands"):  # a group (Typer's own Click, not click's classes)
        ctx = command.make_context("cityos", [], resilient_parsing=True)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, name
            found += _commands(sub, [*path, name])
    return found


def test_no_bool_placeholder_in_any_help() -> None:
    paths = _commands(typer.main.get_command(app), [])
    assert ["demo"] in paths and ["db", "stats"] in paths and len(paths) > 20
    for path in paths:
        r = runner.invoke(app, [*path, "--help"])
        assert r.exit_code == 0 and "Usage" in r.output, (path, r.output)
        assert "<bool>" not in r.output, (path, r.output)
    # a flag shows no type; an option taking a value still shows its own
    r = runner.invoke(app, ["serve", "--help"])
    assert "<int>" in r.output and "<str>" in r.output


def test_congestion_watch_counts_notifications_and_the_flows_they_carry() -> None:
    out = io.StringIO()
    seen = cityos.demo._CongestionWatch(Console(file=out, width=200))
    flow = {"averageVehicleSpeed": 9, "intensity": 900, "dateObserved": "2026-11-30T01:00:00Z"}
    seen({"data": [{"id": f"urn:ngsi-ld:TrafficFlowObserved:s{i}", **flow} for i in range(5)]})
    seen({"data": [{"id": f"urn:ngsi-ld:TrafficFlowObserved:t{i}", **flow} for i in range(2)]})
    assert (seen.notifications, seen.flows) == (2, 7)
    assert "congested flows counted" in out.getvalue() and "alert" not in out.getvalue()
