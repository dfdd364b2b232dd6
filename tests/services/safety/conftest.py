"""Shared pieces of the safety tests: a hub on SQLite, fake captures (a scripted camera that
stops), synthetic scenes (white rectangles walking on black) and the test clip."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cityos.config import Settings
from cityos.hub.client import HubClient
from cityos.hub.core import Hub
from cityos.services.safety.opencv import cv2

ROOT = Path(__file__).resolve().parents[3]
VTEST = ROOT.parent / "shared" / "data" / "vtest.avi"  # /work/shared/data, never copied here
LABELS = Path(__file__).with_name("labels.json")


@pytest.fixture()
def hub(tmp_path: Path) -> Iterator[Hub]:
    the_hub = Hub(Settings(database_url=f"sqlite:///{tmp_path}/hub.db"))
    yield the_hub
    the_hub.close()


@pytest.fixture()
def client(hub: Hub) -> HubClient:
    return HubClient(hub)


@pytest.fixture()
def vtest() -> Path:
    if not VTEST.exists():
        pytest.skip(f"the test clip is not at {VTEST}")
    return VTEST


class FakeCapture:
    """A capture that plays a list of frames, then stops (``opened=False``: it never
    opens, as a dead camera)."""

    def __init__(
        self, frames: Sequence[Any], *, fps: float = 25.0, declared: int | None = None,
        opened: bool = True,
    ) -> None:  # fmt: skip
        self.frames = list(frames)
        self.fps = fps
        self.declared = len(self.frames) if declared is None else declared
        self.opened = opened
        self.pos = 0

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return self.opened

    def read(self) -> tuple[bool, Any]:
        if not self.opened or self.pos >= len(self.frames):
            return False, None
        frame = self.frames[self.pos]
        self.pos += 1
        return True, frame

    def get(self, prop: int) -> float:
        if prop == cv2.CAP_PROP_FPS:
            return self.fps
        if prop == cv2.CAP_PROP_FRAME_COUNT:
            return float(self.declared)
        if prop == cv2.CAP_PROP_POS_MSEC:
            return max(0, self.pos - 1) * 1000.0 / self.fps
        return 0.0

    def release(self) -> None:
        self.opened = False


@dataclass
class Walker:
    """A white rectangle that walks in a straight line from ``start`` (frame) on."""

    x: float
    y: float
    dx: float
    dy: float
    start: int = 0
    end: int = 10_000
    w: int = 20
    h: int = 40


def scene(walkers: Sequence[Walker], frames: int, size: tuple[int, int] = (640, 360)) -> list[Any]:
    """Frames (BGR) of walkers on black; a walker's (x, y) is where it stands (bottom
    centre)."""
    width, height = size
    out = []
    for n in range(frames):
        image = np.zeros((height, width, 3), np.uint8)
        for w in walkers:
            if not (w.start <= n < w.end):
                continue
            k = n - w.start
            gx, gy = w.x + w.dx * k, w.y + w.dy * k
            x0, y0 = round(gx - w.w / 2), round(gy - w.h)
            cv2.rectangle(image, (x0, y0), (x0 + w.w - 1, y0 + w.h - 1), (255, 255, 255), -1)
        out.append(image)
    return out


def fake_factory(*captures: FakeCapture):
    """A capture factory handing out ``captures`` in turn (then dead cameras)."""
    queue = list(captures)

    def factory(source: str) -> FakeCapture:
        return queue.pop(0) if queue else FakeCapture([], opened=False)

    return factory


def face_image(height: int = 150) -> Any:
    """A real face, offline: the Grace Hopper portrait matplotlib ships as sample data."""
    import matplotlib.cbook

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as fh:
        raw = np.frombuffer(fh.read(), np.uint8)
    image = cv2.imdecode(raw, cv2.IMREAD_COLOR)
    scale = height / image.shape[0]
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def face_boxes(image: Any, *, equalize: bool = True) -> list[tuple[int, int, int, int]]:
    """Faces the Haar cascades see (three frontal, and profile both ways), more sensitive
    than the service's own face finder (finer scale steps; contrast equalised, which on a
    near-uniform floor also finds specks: ``equalize=False`` there). (x, y, w, h) each."""
    base = cv2.data.haarcascades
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if equalize:
        gray = cv2.equalizeHist(gray)
    width = gray.shape[1]
    passes = (
        ("haarcascade_frontalface_default.xml", False),
        ("haarcascade_frontalface_alt.xml", False),
        ("haarcascade_frontalface_alt2.xml", False),
        ("haarcascade_profileface.xml", False),
        ("haarcascade_profileface.xml", True),
    )
    found = []
    for name, mirrored in passes:
        cascade = cv2.CascadeClassifier(base + name)
        img = cv2.flip(gray, 1) if mirrored else gray
        for x, y, w, h in cascade.detectMultiScale(img, 1.05, 3, minSize=(20, 20)):
            found.append((int(width - x - w) if mirrored else int(x), int(y), int(w), int(h)))
    return found


def faces_in(image: Any, *, equalize: bool = True) -> int:
    """How many faces :func:`face_boxes` finds."""
    return len(face_boxes(image, equalize=equalize))


WALKERS_CLI = [
    Walker(100, 60, 0, 4, start=6),  # down across y=180: in
    Walker(300, 80, 0, 4, start=6),  # down: in
    Walker(500, 300, 0, -4, start=6),  # up: out
]
