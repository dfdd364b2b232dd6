"""The layers hold: the import-linter contracts in pyproject.toml pass (CI runs `make test`,
so this is where CI checks them), and the hub, loaded on its own, loads nothing above it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ABOVE_THE_HUB = ("security", "devices", "services", "web", "twin", "cli", "demo")


def test_the_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    assert lint.exists(), "import-linter is missing: pip install -e '.[test]' (make setup)"
    run = subprocess.run(
        [str(lint), "--no-cache", "--no-logo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "The hub imports nothing above it KEPT" in run.stdout
    assert "0 broken." in run.stdout


def test_the_hub_loads_nothing_above_it() -> None:
    """What an import check cannot see: a module imported by name at run time. The whole
    hub (its application routes, delivery, contexts, stores) imported in a fresh
    interpreter leaves no module of a layer above it loaded."""
    code = (
        "import sys, pkgutil, importlib, cityos.hub as h\n"
        "for m in pkgutil.walk_packages(h.__path__, 'cityos.hub.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    loaded = run.stdout.split()
    above = [m for m in loaded if m.split(".")[:2] in [["cityos", x] for x in ABOVE_THE_HUB]]
    assert above == []


def test_a_service_is_handed_its_client_not_the_app(tmp_path: Path) -> None:
    """What an import check cannot see, at run time: under `cityos serve` a service's
    context carries a HubClient and its settings; only CityOS's own parts (devices,
    identity, audit) also get the app state they share with the door."""
    from cityos.config import Settings
    from cityos.hub.client import HubClient
    from cityos.services.registry import services
    from cityos.web.app import create_app

    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/l.db"))
    contexts = app.state.services
    assert set(contexts) == {s.name for s in services()}
    for service in services():
        ctx = contexts[service.name]
        assert isinstance(ctx.client, HubClient)
        assert ctx.app is (app.state if service.builtin else None), service.name
    builtin = {s.name for s in services() if s.builtin}
    assert builtin == {"audit", "devices", "identity"}  # no service under services/


def test_no_service_reads_the_app_state_but_its_own_context() -> None:
    """A service's routes find their client at ``request.app.state.services[<name>]``;
    nothing under services/ reaches for the hub, the agent or the audit log there."""
    pattern = re.compile(r"app\.state\.(?!services\[)|state\.hub\b|hub_of\(")
    hits = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted((ROOT / "src" / "cityos" / "services").rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line) and not line.lstrip().startswith(("#", ":class:", '"""'))
    ]
    assert hits == []
