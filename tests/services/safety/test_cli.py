"""``cityos safety``: bad input is one line and exit 2 (no traceback); a run prints its
counts and frame rate, as JSON for scripts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cityos.services.safety.cli import app
from cityos.services.safety.opencv import cv2

from .conftest import WALKERS_CLI, scene

runner = CliRunner()


def _clip(path: Path, frames: int = 40) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (640, 360))
    for image in scene(WALKERS_CLI, frames):
        writer.write(image)
    writer.release()
    return path


def _one_line_error(result, words: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and words in lines[-1], result.output
    assert "Traceback" not in result.output


@pytest.fixture()
def here(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in list(__import__("os").environ):
        if name.startswith("CITYOS_"):
            monkeypatch.delenv(name)
    return tmp_path


def test_unreadable_sources_are_one_line_exit_2_and_write_nothing(here: Path) -> None:
    (here / "notes.avi").write_text("not a video")
    db = f"sqlite:///{here}/hub.db"
    for source, words in (("missing.mp4", "no such file"), ("notes.avi", "not a video")):
        result = runner.invoke(app, ["run", "--source", source, "--database-url", db])
        _one_line_error(result, words)
    from cityos.config import Settings
    from cityos.hub.client import HubClient
    from cityos.hub.core import Hub

    hub = Hub(Settings(database_url=db))
    try:
        assert HubClient(hub).count() == 0
    finally:
        hub.close()


def test_bad_options_are_one_line_exit_2(here: Path) -> None:
    clip = _clip(here / "walk.avi", 10)
    (here / "zones.json").write_text('{"zones": [{"name": "a"}]}')
    cases = [
        (["--line", "1,2,3"], "expected four numbers"),
        (["--zones", "zones.json"], "polygon"),
        (["--zones", "nowhere.json"], "no such file"),
        (["--detector", "yolo"], "unknown detector"),
        (["--location", "500,1"], "out of range"),
        (["--start", "yesterday"], "ISO 8601"),
    ]
    for extra, words in cases:
        result = runner.invoke(app, ["run", "--source", str(clip), "--no-hub", *extra])
        _one_line_error(result, words)


def test_a_bad_setting_is_one_line(here: Path, monkeypatch) -> None:
    clip = _clip(here / "walk.avi", 10)
    monkeypatch.setenv("CITYOS_SAFETY_DETECTOR", "magic")
    result = runner.invoke(app, ["run", "--source", str(clip), "--no-hub"])
    _one_line_error(result, "safety.detector")


def test_a_run_prints_counts_and_fps_as_json(here: Path) -> None:
    clip = _clip(here / "walk.avi")
    db = f"sqlite:///{here}/hub.db"
    result = runner.invoke(
        app,
        ["run", "--source", str(clip), "--line", "0,180,640,180", "--database-url", db,
         "--json", "--camera-id", "gate-2", "--interval-s", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["camera"] == "gate-2" and out["frames"] == 40 and out["fps"] > 0
    assert (out["crossed_in"], out["crossed_out"]) == (2, 1)
    assert out["state"] == "ok" and out["intervals"] == 2  # 1.6 s of video, 1 s intervals
    listed = runner.invoke(app, ["cameras", "--database-url", db, "--json"])
    assert listed.exit_code == 0, listed.output
    [camera] = json.loads(listed.stdout)
    assert camera["id"] == "urn:ngsi-ld:Device:gate-2" and camera["deviceState"] == "ok"


def test_a_table_without_json(here: Path) -> None:
    clip = _clip(here / "walk.avi", 20)
    result = runner.invoke(app, ["run", "--source", str(clip), "--no-hub", "--max-frames", "12"])
    assert result.exit_code == 0, result.output
    assert "12 frames" in result.output and "fps" in result.output


def test_a_truncated_video_is_disconnected_exit_2_with_its_counts(here: Path) -> None:
    whole = _clip(here / "walk.avi", 50)
    cut = here / "cut.avi"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    db = f"sqlite:///{here}/hub.db"
    result = runner.invoke(app, ["run", "--source", str(cut), "--database-url", db, "--json"])
    assert result.exit_code == 2
    out = json.loads(result.stdout.strip().splitlines()[0])
    assert out["state"] == "disconnected" and out["frames"] > 0 and len(out["alerts"]) == 1
    assert "truncated" in result.output.splitlines()[-1]
    assert "Traceback" not in result.output
