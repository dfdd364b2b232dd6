"""The plug (issue 12): a package installed beside CityOS adds a service through the
``cityos.services`` entry points, with no edit to CityOS — its route, its OpenAPI path,
its CLI group and its health all appear; without it, none of them does.

The package is "installed" without pip: a module and a ``.dist-info`` directory
(METADATA, entry_points.txt) on PYTHONPATH, which is all ``importlib.metadata`` reads.
Each check runs in a fresh interpreter, since the registry is loaded once per process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

MODULE = '''
import asyncio
import os
from dataclasses import dataclass, field

import typer
from starlette.responses import JSONResponse
from starlette.routing import Route

from cityos.services.base import Check, Service

cli = typer.Typer(help="The example service.", no_args_is_help=True)


@cli.command()
def greet(name: str = "city") -> None:
    """Say hello."""
    print(f"hello, {name}")


async def hello(request):
    return JSONResponse({"hello": "world"})


def routes():
    return [Route("/services/example/hello", hello, methods=["GET"])]


async def beat(ctx):
    mark = os.environ["EXAMPLE_MARK"]
    with open(mark, "a") as f:
        f.write("started " + type(ctx.client).__name__ + " " + ctx.settings.greeting + "\\n")
    try:
        await asyncio.Event().wait()
    finally:
        with open(mark, "a") as f:
            f.write("stopped\\n")


@dataclass
class ExampleSettings:
    greeting: str = field(default="hello", metadata={"help": "what the example says"})


SERVICE = Service(
    name="example",
    reads=("WeatherObserved",),
    writes=(),
    routes=routes,
    cli=cli,
    openapi={
        "/services/example/hello": {
            "get": {
                "summary": "Say hello",
                "operationId": "get_services_example_hello",
                "responses": {"200": {"description": "OK"}},
            }
        }
    },
    tasks=(beat,),
    health=lambda ctx: {"status": "ok", "greeting": ctx.settings.greeting},
    settings=ExampleSettings,
    diagnostics=lambda ctx: [Check("greeting", bool(ctx.settings.greeting), ctx.settings.greeting)],
)
'''

PROBE = textwrap.dedent(
    """
    import json
    import os

    from starlette.testclient import TestClient
    from typer.testing import CliRunner

    from cityos.config import Settings
    from cityos.web.app import create_app

    settings = Settings.load()  # CITYOS_EXAMPLE_GREETING reaches the service's own settings
    settings.database_url = "sqlite:///" + {db!r}
    app = create_app(settings)
    out = {{}}
    with TestClient(app) as client:
        r = client.get("/services/example/hello")
        out["route"] = [r.status_code, r.json()]
        out["openapi"] = sorted(client.get("/openapi.json").json()["paths"])
        out["health"] = client.get("/health").json()
    out["task"] = open(os.environ["EXAMPLE_MARK"]).read() if os.path.exists(os.environ["EXAMPLE_MARK"]) else ""

    from cityos.cli import app as cli_app

    runner = CliRunner()
    out["help"] = runner.invoke(cli_app, ["--help"], env={{"COLUMNS": "200"}}).output
    greet = runner.invoke(cli_app, ["example", "greet", "--name", "plug"])
    out["greet"] = [greet.exit_code, greet.output]
    out["docs"] = runner.invoke(cli_app, ["services", "--markdown"]).output
    out["settings"] = runner.invoke(cli_app, ["services", "--settings"]).output
    doctor = runner.invoke(cli_app, ["doctor", "--json", "--database-url", "sqlite:///" + {db!r}])
    out["doctor"] = [f for f in json.loads(doctor.stdout) if f["part"] == "example"]
    print("RESULT " + json.dumps(out))
    """
)


def _probe(tmp_path: Path, pythonpath: Path | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYOS_")}
    if pythonpath is not None:  # before the caller's own PYTHONPATH, if any
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    env["EXAMPLE_MARK"] = str(tmp_path / "task.log")
    env["CITYOS_EXAMPLE_GREETING"] = "sua s'dei"
    code = PROBE.format(db=str(tmp_path / f"hub-{pythonpath is not None}.db"))
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """An installed distribution ``cityos-example-service`` with one entry point."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "cityos_example_service.py").write_text(MODULE)
    info = root / "cityos_example_service-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: cityos-example-service\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(
        "[cityos.services]\nexample = cityos_example_service:SERVICE\n"
    )
    return root


def test_an_installed_service_plugs_in_with_no_edit_to_cityos(tmp_path: Path, site: Path) -> None:
    out = _probe(tmp_path, site)
    assert out["route"] == [200, {"hello": "world"}]
    assert "/services/example/hello" in out["openapi"]
    assert "/services/traffic/gtfs" in out["openapi"]  # the built-in one is still there
    assert out["health"]["services"]["example"] == {"status": "ok", "greeting": "sua s'dei"}
    # the built-in parts report through the same plug
    assert {"audit", "devices", "identity"} <= set(out["health"]["services"])
    assert " example " in out["help"] and " traffic " in out["help"]
    assert out["greet"] == [0, "hello, plug\n"]
    assert (
        out["task"] == "started HubClient sua s'dei\nstopped\n"
    )  # run by the lifespan, cancelled at the end
    assert "| `example` | `WeatherObserved` | — | — | `/services/example/hello` |" in out["docs"]
    assert "| `traffic` |" in out["docs"]
    assert (
        "| `services.example.greeting` | `CITYOS_EXAMPLE_GREETING` | `str` | `hello` |"
        in out["settings"]
    )
    assert out["doctor"] == [
        {"part": "example", "check": "greeting", "ok": True, "detail": "sua s'dei", "hint": ""}
    ]


def test_without_the_package_there_is_no_example_service(tmp_path: Path) -> None:
    out = _probe(tmp_path, None)
    assert out["route"][0] == 404
    assert "/services/example/hello" not in out["openapi"]
    assert "/services/traffic/gtfs" in out["openapi"]
    assert "example" not in out["health"]["services"]
    assert " example " not in out["help"] and " traffic " in out["help"]
    assert out["greet"][0] != 0
    assert out["task"] == ""
    assert "`example`" not in out["docs"] and "| `traffic` |" in out["docs"]
    assert "example" not in out["settings"] and out["doctor"] == []


def test_the_docs_list_the_registered_services() -> None:
    """docs/services/README.md holds the table ``cityos services --markdown`` prints."""
    from typer.testing import CliRunner

    from cityos.cli import app

    table = CliRunner().invoke(app, ["services", "--markdown"]).output
    readme = (Path(__file__).parents[2] / "docs" / "services" / "README.md").read_text()
    begin, end = "<!-- services:begin -->\n", "<!-- services:end -->"
    assert readme[readme.index(begin) + len(begin) : readme.index(end)] == table


def test_a_broken_entry_point_is_one_line_naming_it(tmp_path: Path, site: Path) -> None:
    (site / "cityos_example_service-0.1.dist-info" / "entry_points.txt").write_text(
        "[cityos.services]\nexample = cityos_example_service:NOT_THERE\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYOS_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", "from cityos.cli import main; main()", "--help"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "'example'" in lines[0] and "cityos_example_service:NOT_THERE" in lines[0]


def test_an_entry_point_that_is_not_a_service_is_refused(tmp_path: Path, site: Path) -> None:
    (site / "cityos_example_service-0.1.dist-info" / "entry_points.txt").write_text(
        "[cityos.services]\nexample = cityos_example_service:routes\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYOS_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", "from cityos.cli import main; main()", "db", "--help"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "error: service entry point 'example' = 'cityos_example_service:routes' "
        "(group cityos.services) is a function, not a cityos.plug.Service"
    )
