"""``cityos traffic run`` as a new user meets it: a rerun, a setting for another network,
and JSON another program can read (issue 12, "the first hour")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CITYOS = [sys.executable, "-m", "cityos.cli"]


def _cityos(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CITYOS, "traffic", *args], capture_output=True, text=True, timeout=240, cwd=cwd
    )


def _devices(db: Path) -> list[str]:
    from cityos.config import Settings
    from cityos.devices.agent import DEVICE
    from cityos.hub.core import Hub

    hub = Hub(Settings(database_url=f"sqlite:///{db}"))
    try:
        return sorted(d["device_id"] for d in hub.store.list_docs(DEVICE, ""))
    finally:
        hub.store.close()


def test_a_rerun_against_the_same_hub_works_and_gives_the_same_figures(tmp_path: Path) -> None:
    db = tmp_path / "traffic.db"
    args = ("run", "--scenario", "cologne1", "--through-hub", f"sqlite:///{db}", "--json")
    first = _cityos(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    devices = _devices(db)
    assert devices  # the run provisioned its signals and detectors

    again = _cityos(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "already exists" not in again.stderr and "Traceback" not in again.stderr
    one, two = json.loads(first.stdout), json.loads(again.stdout)
    assert two["average_delay_s"] == one["average_delay_s"]
    assert two["hub"]["commands"] == one["hub"]["commands"] > 300  # the loop ran again
    assert _devices(db) == devices  # re-provisioned, not duplicated
