"""A tiny generated crossing (netconvert, once per session) and helpers for the traffic tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from cityos.services.traffic import Scenario, tiny_scenario


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    """Single signalised crossing, 5 minutes of default demand."""
    return tiny_scenario(tmp_path_factory.mktemp("tiny"), duration=300.0, seed=1)


@pytest.fixture(scope="session")
def tiny_pedestrians(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return tiny_scenario(tmp_path_factory.mktemp("tiny-ped"), duration=300.0, pedestrians=True)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
