"""The safety service keeps the template's rules (docs/services/README.md) and its own:
only snapshot.py turns pixels into bytes, the hub only through its client, and loading the
plug does not load OpenCV. Read from the import graph (grimp) and the sources."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import grimp
import pytest

from cityos.config import Settings
from cityos.hub.client import HubClient
from cityos.services.safety import SERVICE, SafetySettings
from cityos.services.safety import service as safety_service
from cityos.services.safety import settings as safety_settings
from cityos.services.safety.people import DETECTORS
from cityos.services.settings import settings_of

PKG = "cityos.services.safety"
SRC = Path(__file__).resolve().parents[3] / "src" / "cityos" / "services" / "safety"
HUB_ALLOWED = {"cityos.hub.client", "cityos.hub.errors", "cityos.hub.registry"}
CLI_ALLOWED = HUB_ALLOWED | {"cityos.hub.core", "cityos.devices.agent"}


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("cityos", include_external_packages=True, cache_dir=None)


def _modules(graph: grimp.ImportGraph) -> set[str]:
    return {m for m in graph.modules if m == PKG or m.startswith(PKG + ".")}


def test_no_import_cycles(graph: grimp.ImportGraph) -> None:
    nodes = _modules(graph) - {PKG}
    edges = {m: graph.find_modules_directly_imported_by(m) & nodes for m in nodes}
    state: dict[str, int] = {}

    def cyclic(v: str) -> bool:
        state[v] = 1
        for w in edges[v]:
            if state.get(w) == 1 or (w not in state and cyclic(w)):
                return True
        state[v] = 2
        return False

    assert [v for v in sorted(nodes) if v not in state and cyclic(v)] == []


def test_only_the_cli_imports_typer(graph: grimp.ImportGraph) -> None:
    users = {m for m in _modules(graph) if "typer" in graph.find_modules_directly_imported_by(m)}
    assert users == {f"{PKG}.cli"}


def test_the_hub_only_through_the_client(graph: grimp.ImportGraph) -> None:
    found = {}
    for m in _modules(graph):
        below = {
            i for i in graph.find_modules_directly_imported_by(m)
            if i.startswith(("cityos.hub", "cityos.devices", "cityos.security"))
        }  # fmt: skip
        extra = below - (CLI_ALLOWED if m == f"{PKG}.cli" else HUB_ALLOWED)
        if extra:
            found[m] = sorted(extra)
    assert found == {}


def test_only_snapshot_py_turns_pixels_into_bytes() -> None:
    """imencode / imwrite / VideoWriter appear in one module, whose functions all take a
    MaskedFrame (test_masking.py checks they refuse anything else)."""
    writes = re.compile(r"\b(imencode|imwrite|VideoWriter)\b")
    users = sorted(p.name for p in SRC.glob("*.py") if writes.search(p.read_text()))
    assert users == ["snapshot.py"]


def test_loading_the_plug_does_not_load_opencv() -> None:
    code = "import sys, cityos.services.safety.service; print('cv2' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "False"


def test_the_plug_and_its_settings() -> None:
    assert SERVICE is safety_service.SERVICE and SERVICE.name == "safety"
    assert set(SERVICE.writes) == {"CrowdFlowObserved", "Alert", "Device"}
    assert SERVICE.cli is not None and SERVICE.settings is SafetySettings and not SERVICE.builtin
    assert safety_settings.DETECTORS == DETECTORS
    core = Settings.load(env={"CITYOS_SAFETY_DETECTOR": "combined",
                              "CITYOS_SAFETY_MASK_BODIES": "true"})  # fmt: skip
    settings = settings_of(SERVICE, core)
    assert settings.detector == "combined" and settings.mask_bodies is True
    for env, words in (
        ({"CITYOS_SAFETY_DETECTOR": "yolo"}, "safety.detector"),
        ({"CITYOS_SAFETY_HEAD_FRACTION": "2"}, "head_fraction"),
        ({"CITYOS_SAFETY_MASK_STYLE": "emoji"}, "mask_style"),
        ({"CITYOS_SAFETY_SNAPSHOT_MAX_BYTES": "10"}, "snapshot_max_bytes"),
    ):
        with pytest.raises(ValueError, match=words):
            settings_of(SERVICE, Settings.load(env=env))


def test_health_with_no_camera_is_ok(client: HubClient) -> None:
    ctx = SimpleNamespace(client=client, settings=None)
    assert safety_service.health(ctx) == {"status": "ok", "cameras": 0, "disconnected": []}
    checks = safety_service.diagnostics(ctx)
    assert [c.ok for c in checks] == [True, True]
