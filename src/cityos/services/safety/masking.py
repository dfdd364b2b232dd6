"""Masking: the one step that turns a raw frame into pixels that may be stored or sent.

:func:`mask_frame` is the only producer of :class:`MaskedFrame`, and :mod:`.snapshot` (the
only code that encodes or writes pixels) accepts nothing else, so a raw frame cannot be
stored or sent by mistake: handing one over raises :class:`~.errors.UnmaskedFrameError`.
A MaskedFrame owns a copy of the pixels and is read-only, so it cannot be painted back.

What is masked, in every snapshot:

1. every face the Haar cascades find (frontal, and profile both ways);
2. the head region of every detected person: the top ``head_fraction`` of the person's box,
   widened by ``pad``. From above or behind, faces seldom look like faces to a cascade;
   the head region covers them anyway, so every *detected* person's face is masked by
   construction, whatever the cascade sees;
3. with ``bodies=True``, each whole person box.

People no detector found are covered only by step 1 (see docs/services/safety.md, "The
masking guarantee and its limits"). A face or head region becomes one flat patch of its
mean colour (``head_cells`` = 1): a grid of blocks can itself look like eyes and a mouth to
a face detector, a flat patch cannot. A body is pixelated into ``cells`` blocks across, so
the snapshot still shows where people are. ``style="blur"`` blurs instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import numpy as np

from .errors import ConfigError, UnmaskedFrameError
from .opencv import cv2
from .people import Box

Style = Literal["pixelate", "blur"]
_KEY = object()  # only this module can make a MaskedFrame


@dataclass(frozen=True)
class MaskPolicy:
    """What to mask and how (the service's settings fill it in)."""

    bodies: bool = False
    head_fraction: float = 0.35
    pad: float = 0.2
    style: Style = "pixelate"
    cells: int = 4  # blocks across a masked body
    head_cells: int = 1  # blocks across a face or head: one flat patch, no face-like pattern
    detect_faces: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.head_fraction <= 1.0:
            raise ConfigError(f"head_fraction {self.head_fraction} must be within 0..1")
        if self.style not in ("pixelate", "blur"):
            raise ConfigError(f"mask style {self.style!r}: use pixelate or blur")
        if self.cells < 1 or self.head_cells < 1:
            raise ConfigError("mask cells must be at least 1")


@dataclass(frozen=True)
class Region:
    """A masked rectangle, and why: a ``face`` the cascade found, a person's ``head``
    region, or a whole ``body``."""

    x: int
    y: int
    w: int
    h: int
    kind: Literal["face", "head", "body"]


class MaskedFrame:
    """Pixels after masking, with the regions that were masked. Made only by
    :func:`mask_frame`; read-only."""

    __slots__ = ("_pixels", "regions")

    def __init__(self, pixels: Any, regions: tuple[Region, ...], *, key: object = None) -> None:
        if key is not _KEY:
            raise UnmaskedFrameError(
                "a MaskedFrame is made only by cityos.services.safety.masking.mask_frame"
            )
        pixels.flags.writeable = False
        self._pixels = pixels
        self.regions = regions

    @property
    def pixels(self) -> Any:
        """The masked image (BGR, read-only)."""
        return self._pixels

    @property
    def width(self) -> int:
        return int(self._pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self._pixels.shape[0])


FACE_CASCADES = (  # (file, scan the mirrored image too)
    ("haarcascade_frontalface_default.xml", False),
    ("haarcascade_frontalface_alt2.xml", False),
    ("haarcascade_profileface.xml", True),  # trained on one side: the mirror finds the other
)


@cache
def _cascades() -> tuple[tuple[Any, bool], ...]:
    base = cv2.data.haarcascades
    loaded = tuple((cv2.CascadeClassifier(base + name), both) for name, both in FACE_CASCADES)
    if any(c.empty() for c, _ in loaded):
        raise ConfigError(f"the Haar face cascades are missing under {base}")
    return loaded


def find_faces(image: Any, *, min_size: int = 20, scale: float = 1.1) -> list[Box]:
    """Faces OpenCV's Haar cascades see: two frontal ones, and profile facing either way.
    Sensitive on purpose (a false face only masks a little more): about 1 s per 1280x720
    frame on one core, paid only for snapshots."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    width = gray.shape[1]
    flipped = cv2.flip(gray, 1)
    size = (min_size, min_size)
    found: list[Box] = []
    for cascade, both in _cascades():
        for x, y, w, h in cascade.detectMultiScale(gray, scale, 3, minSize=size):
            found.append(Box(int(x), int(y), int(w), int(h)))
        if both:
            for x, y, w, h in cascade.detectMultiScale(flipped, scale, 3, minSize=size):
                found.append(Box(int(width - x - w), int(y), int(w), int(h)))
    return found


def regions_for(
    people: Sequence[Box], faces: Sequence[Box], policy: MaskPolicy, width: int, height: int
) -> tuple[Region, ...]:
    """The rectangles to mask, clipped to the frame."""
    out: list[Region] = []

    def add(x: float, y: float, w: float, h: float, kind: Any) -> None:
        x0, y0 = max(0, int(np.floor(x))), max(0, int(np.floor(y)))
        x1, y1 = min(width, int(np.ceil(x + w))), min(height, int(np.ceil(y + h)))
        if x1 > x0 and y1 > y0:
            out.append(Region(x0, y0, x1 - x0, y1 - y0, kind))

    for face in faces:
        px, py = face.w * policy.pad, face.h * policy.pad
        add(face.x - px, face.y - py, face.w + 2 * px, face.h + 2 * py, "face")
    for person in people:
        px = person.w * policy.pad
        if policy.bodies:
            py = person.h * policy.pad / 2
            add(person.x - px, person.y - py, person.w + 2 * px, person.h + 2 * py, "body")
        elif policy.head_fraction > 0:
            head_h = person.h * policy.head_fraction
            # a head may stick out above a motion blob that caught only the body: reach up
            add(person.x - px, person.y - head_h * 0.5, person.w + 2 * px, head_h * 1.5, "head")
    return tuple(out)


def _pixelate(patch: Any, cells: int) -> Any:
    h, w = patch.shape[:2]
    block = max(1.0, max(w, h) / cells)
    cw, ch = max(1, round(w / block)), max(1, round(h / block))
    small = cv2.resize(patch, (cw, ch), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def _blur(patch: Any) -> Any:
    h, w = patch.shape[:2]
    k = max(3, (max(w, h) // 2) | 1)
    return cv2.GaussianBlur(patch, (k, k), 0)


def mask_frame(
    image: Any,
    people: Sequence[Box],
    policy: MaskPolicy = MaskPolicy(),
    *,
    faces: Sequence[Box] | None = None,
) -> MaskedFrame:
    """Mask a raw frame (it is copied, not changed). ``faces``: already found ones (None:
    run the cascades when the policy says so)."""
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
        raise ConfigError("mask_frame needs an image array")
    pixels = image.copy()
    height, width = pixels.shape[:2]
    if faces is None:
        faces = find_faces(image) if policy.detect_faces else []
    regions = regions_for(people, faces, policy, width, height)
    for r in regions:
        patch = pixels[r.y : r.y + r.h, r.x : r.x + r.w]
        if policy.style == "pixelate":
            patch[...] = _pixelate(patch, policy.cells if r.kind == "body" else policy.head_cells)
        else:
            patch[...] = _blur(patch)
    return MaskedFrame(pixels, regions, key=_KEY)
