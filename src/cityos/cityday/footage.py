"""Camera footage for the day, made here with OpenCV: no video ships with CityOS and
nothing is downloaded, so the Central Market camera films a scene drawn frame by frame —
a tiled floor seen from above with sensor noise, and people (a body and a head each)
walking across it. The safety service's own motion detector, tracker, zones and
counting line then find them exactly as they would in a real clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cityos.services.safety.opencv import cv2

SIZE = (640, 360)  # width, height in pixels
FPS = 12
CLOTHES = ((40, 40, 160), (150, 60, 30), (30, 120, 40), (60, 60, 60), (20, 140, 200))
SKIN = (110, 150, 200)


@dataclass(frozen=True)
class Walker:
    """Someone crossing the picture: where they stand at ``start`` (a frame), and their
    step per frame (pixels)."""

    x: float
    y: float
    dx: float
    dy: float
    start: int = 0


def _floor(width: int, height: int) -> np.ndarray:
    floor = np.full((height, width, 3), (120, 128, 132), np.uint8)
    for x in range(0, width, 40):
        cv2.line(floor, (x, 0), (x, height), (105, 112, 116), 1)
    for y in range(0, height, 40):
        cv2.line(floor, (0, y), (width, y), (105, 112, 116), 1)
    return floor


def write_scene(path: Path, walkers: list[Walker], seconds: float, *, seed: int = 0) -> Path:
    """An MJPG AVI of ``walkers`` over ``seconds`` at :data:`FPS` frames a second."""
    width, height = SIZE
    rng = np.random.default_rng(seed)
    floor = _floor(width, height)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, SIZE)
    try:
        for n in range(round(seconds * FPS)):
            image = floor.copy()
            for k, w in enumerate(walkers):
                if n < w.start:
                    continue
                gx, gy = w.x + w.dx * (n - w.start), w.y + w.dy * (n - w.start)
                if not -60 < gy < height + 60:
                    continue
                cv2.ellipse(image, (int(gx), int(gy - 20)), (9, 20), 0, 0, 360,
                            CLOTHES[k % len(CLOTHES)], -1)  # fmt: skip
                cv2.circle(image, (int(gx), int(gy - 44)), 6, SKIN, -1)
            noise = rng.normal(0.0, 2.0, image.shape)
            out.write(np.clip(image + noise, 0, 255).astype(np.uint8))
    finally:
        out.release()
    return path


def market_crowd(n: int = 16, *, seed: int = 0) -> list[Walker]:
    """The lunchtime rush at the market's entrance: people in eight lanes, two of every
    three walking in (down the picture), one walking out."""
    rng = np.random.default_rng(seed)
    walkers = []
    for i in range(n):
        down = i % 3 != 2
        walkers.append(
            Walker(
                x=60 + (i % 8) * 70 + float(rng.integers(-8, 8)),
                y=-10.0 if down else SIZE[1] + 40.0,
                dx=float(rng.uniform(-0.3, 0.3)),
                dy=2.5 if down else -2.5,
                start=10 * i,
            )
        )
    return walkers


def night_visitor() -> list[Walker]:
    """After closing: one person walks in along the hall, another crosses the forecourt."""
    return [Walker(500.0, -10.0, 0.0, 2.0, start=6), Walker(-10.0, 330.0, 3.0, 0.0, start=30)]
