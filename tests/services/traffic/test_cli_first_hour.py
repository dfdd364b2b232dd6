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


def _tuned_for(tmp_path: Path, network: str) -> Path:
    """A setting file as ``cityos traffic tune --out`` writes it, for ``network``."""
    path = tmp_path / f"{network}.json"
    params = {"switch_margin": 2.5, "hold_per_moving": 1.0}
    path.write_text(json.dumps({"network": network, "params": params, "history": []}))
    return path


def test_params_tuned_for_another_network_are_refused_in_one_line(tmp_path: Path) -> None:
    other = _tuned_for(tmp_path, "ingolstadt1")
    done = _cityos("run", "--scenario", "cologne1", "--params", str(other), cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "tuned for 'ingolstadt1', not 'cologne1'" in lines[0] and "--force" in lines[0]
    assert "Traceback" not in done.stderr


def test_force_uses_params_tuned_for_another_network(tmp_path: Path) -> None:
    other = _tuned_for(tmp_path, "ingolstadt1")
    done = _cityos(
        "run", "--scenario", "cologne1", "--params", str(other), "--force", "--json", cwd=tmp_path
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    used = json.loads(done.stdout)["controller_params"]
    assert used["switch_margin"] == 2.5 and used["hold_per_moving"] == 1.0


def test_params_tuned_for_the_same_network_need_no_force(tmp_path: Path) -> None:
    mine = _tuned_for(tmp_path, "cologne1")
    done = _cityos("run", "-s", "cologne1", "--params", str(mine), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["controller_params"]["switch_margin"] == 2.5


def _strict(text: str) -> object:
    """JSON as the standard defines it: Infinity and NaN are not numbers there."""

    def refuse(constant: str) -> object:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_run_json_is_valid_json_with_null_for_no_limit(tmp_path: Path) -> None:
    done = _cityos("run", "--scenario", "cologne1", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = _strict(done.stdout)
    assert isinstance(out, dict)
    # the cityos controller's green has no maximum: infinity in Python, null in JSON
    assert "max_green_s" in out["controller_params"]
    assert out["controller_params"]["max_green_s"] is None
