"""People detectors: what finds the people a camera sees, as boxes in the frame's pixels.

Four kinds, measured against hand labels by ``benchmarks/cameras.py`` (the figures are in
docs/services/safety.md):

- ``motion-knn`` / ``motion-mog2``: background subtraction (OpenCV's KNN or MOG2) at a
  reduced working width, shadows dropped, small specks opened away, blobs dilated so one
  walker's pieces join; each blob is a person. Fast (well over real time on one core); it
  misses people who stand still long enough to become background and merges people who walk
  close together.
- ``hog``: OpenCV's HOG + linear SVM people detector (Dalal–Triggs, 64×128 windows) on an
  upscaled frame, with non-maximum suppression. It sees still people too, but needs upright
  pedestrians of at least ~100 px, so it is slow on a wide view and misses many.
- ``combined``: motion on every frame, plus HOG every ``hog_every`` frames for the people
  motion cannot see (HOG boxes that no motion blob overlaps are kept until the next HOG run).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .errors import ConfigError
from .opencv import cv2

DETECTORS = ("motion-knn", "motion-mog2", "hog", "combined")
# how far a grey level must be from the background model to count as moving: OpenCV's
# defaults (400 and 16) are set for colour, where three channels add up; on grey frames
# half of each finds people better (measured on the labelled frames of the test clip)
THRESHOLDS = {"knn": 200.0, "mog2": 8.0}


@dataclass(frozen=True)
class Box:
    """A detected person, in the source frame's pixels. ``ground`` is where the person
    stands (bottom centre): zones and counting lines use it."""

    x: int
    y: int
    w: int
    h: int
    score: float = 1.0

    @property
    def ground(self) -> tuple[float, float]:
        return (self.x + self.w / 2.0, float(self.y + self.h))

    @property
    def area(self) -> int:
        return self.w * self.h

    def scaled(self, factor: float) -> Box:
        return Box(
            round(self.x * factor),
            round(self.y * factor),
            max(1, round(self.w * factor)),
            max(1, round(self.h * factor)),
            self.score,
        )

    def overlap(self, other: Box) -> float:
        """Intersection over the smaller box (1.0: one lies inside the other)."""
        ix = max(0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        smaller = min(self.area, other.area)
        return (ix * iy) / smaller if smaller else 0.0


class PeopleDetector(Protocol):
    """Called with every frame in order (motion detectors learn from each)."""

    name: str

    def detect(self, image: Any) -> list[Box]: ...


def _gray(image: Any) -> Any:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image


def _working(image: Any, width: int) -> tuple[Any, float]:
    """The frame shrunk to ``width`` (never enlarged), and the factor back to the source."""
    h, w = image.shape[:2]
    if w <= width:
        return image, 1.0
    factor = width / w
    small = cv2.resize(image, (width, round(h * factor)), interpolation=cv2.INTER_AREA)
    return small, 1.0 / factor


class MotionDetector:
    """People as moving blobs of a background model (KNN or MOG2)."""

    def __init__(
        self,
        method: str = "knn",
        *,
        work_width: int = 640,
        history: int = 500,
        threshold: float | None = None,
        min_blob_px: int = 60,
        dilate: int = 2,
        warmup: int = 5,
        max_blob_share: float = 0.5,
        seed: int = 0,
    ) -> None:
        if method not in THRESHOLDS:
            raise ConfigError(f"unknown background model {method!r}; use knn or mog2")
        level = THRESHOLDS[method] if threshold is None else threshold
        cv2.setRNGSeed(seed)  # KNN samples at random: the same frames give the same counts
        if method == "knn":
            self.model = cv2.createBackgroundSubtractorKNN(
                history=history, dist2Threshold=level, detectShadows=True
            )
        else:
            self.model = cv2.createBackgroundSubtractorMOG2(
                history=history, varThreshold=level, detectShadows=True
            )
        self.name = f"motion-{method}"
        self.work_width = work_width
        # blob sizes are set for a 640-pixel working width and scale with it
        self.min_area = min_blob_px * (work_width / 640.0) ** 2
        self.dilate = dilate
        # KNN marks nearly everything as moving for its first four frames: learn, report none
        self.warmup = warmup
        self.max_blob_share = max_blob_share  # a blob this big is light or a shaken camera
        self._frames = 0
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self.last_mask: Any = None  # the foreground of the last frame (working size)

    def detect(self, image: Any) -> list[Box]:
        small, back = _working(_gray(image), self.work_width)
        mask = self.model.apply(small)
        self._frames += 1
        if self._frames <= self.warmup:
            self.last_mask = None
            return []
        fg = np.where(mask == 255, 255, 0).astype(np.uint8)  # 127 is a shadow
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, self._kernel)
        if self.dilate:
            fg = cv2.dilate(fg, self._kernel, iterations=self.dilate)
        self.last_mask = fg
        contours, _ = cv2.findContours(fg, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        boxes = []
        too_big = self.max_blob_share * fg.shape[0] * fg.shape[1]
        for contour in contours:
            if not self.min_area <= cv2.contourArea(contour) <= too_big:
                continue
            x, y, w, h = cv2.boundingRect(contour)
            boxes.append(Box(x, y, w, h).scaled(back))
        return boxes


def non_max_suppression(boxes: Sequence[Box], threshold: float = 0.5) -> list[Box]:
    """Keep the best-scoring box of each cluster (overlap over the smaller box)."""
    kept: list[Box] = []
    for box in sorted(boxes, key=lambda b: -b.score):
        if all(box.overlap(k) < threshold for k in kept):
            kept.append(box)
    return kept


class HogDetector:
    """OpenCV's default HOG people detector on the frame scaled by ``upscale``."""

    name = "hog"

    def __init__(
        self, *, upscale: float = 1.5, hit_threshold: float = 0.0, nms: float = 0.5
    ) -> None:
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.upscale = upscale
        self.hit_threshold = hit_threshold
        self.nms = nms

    def detect(self, image: Any) -> list[Box]:
        gray = _gray(image)
        if self.upscale != 1.0:
            gray = cv2.resize(gray, None, fx=self.upscale, fy=self.upscale)
        rects, weights = self.hog.detectMultiScale(
            gray,
            hitThreshold=self.hit_threshold,
            winStride=(8, 8),
            padding=(8, 8),
            scale=1.05,
        )
        found = [
            Box(int(x), int(y), int(w), int(h), float(s)).scaled(1.0 / self.upscale)
            for (x, y, w, h), s in zip(rects, np.ravel(weights), strict=False)
        ]
        # HOG's own boxes are generous (a margin around the body); shrink to the person
        return [_shrink(b) for b in non_max_suppression(found, self.nms)]


def _shrink(box: Box, fx: float = 0.2, fy: float = 0.08) -> Box:
    dx, dy = round(box.w * fx), round(box.h * fy)
    return Box(box.x + dx, box.y + dy, box.w - 2 * dx, box.h - 2 * dy, box.score)


class CombinedDetector:
    """Motion blobs every frame; HOG every ``hog_every`` frames adds the still people."""

    name = "combined"

    def __init__(self, motion: MotionDetector, hog: HogDetector, *, hog_every: int = 25) -> None:
        self.motion = motion
        self.hog = hog
        self.hog_every = max(1, hog_every)
        self._frames = 0
        self._still: list[Box] = []

    def detect(self, image: Any) -> list[Box]:
        moving = self.motion.detect(image)
        if self._frames % self.hog_every == 0:
            found = self.hog.detect(image)
            self._still = [b for b in found if all(b.overlap(m) < 0.3 for m in moving)]
        self._frames += 1
        still = [b for b in self._still if all(b.overlap(m) < 0.3 for m in moving)]
        return moving + still


def make_detector(
    name: str, *, work_width: int = 640, hog_every: int = 25, seed: int = 0
) -> PeopleDetector:
    """A detector by name (one of :data:`DETECTORS`)."""
    if name == "motion-knn":
        return MotionDetector("knn", work_width=work_width, seed=seed)
    if name == "motion-mog2":
        return MotionDetector("mog2", work_width=work_width, seed=seed)
    if name == "hog":
        return HogDetector()
    if name == "combined":
        motion = MotionDetector("knn", work_width=work_width, seed=seed)
        return CombinedDetector(motion, HogDetector(), hog_every=hog_every)
    raise ConfigError(f"unknown detector {name!r}; known: {', '.join(DETECTORS)}")
