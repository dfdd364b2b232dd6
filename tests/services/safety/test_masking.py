"""Masking: only masked frames leave, masked regions carry no detail, no face survives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cityos.services.safety.errors import UnmaskedFrameError
from cityos.services.safety.masking import MaskedFrame, MaskPolicy, find_faces, mask_frame
from cityos.services.safety.people import Box
from cityos.services.safety.snapshot import data_uri, decode_data_uri, encode_jpeg, write_jpeg

from .conftest import face_image, faces_in


def _noise(h: int = 240, w: int = 320) -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_the_writers_refuse_a_raw_frame(tmp_path: Path) -> None:
    raw = _noise()
    for write in (
        lambda: encode_jpeg(raw),  # type: ignore[arg-type]
        lambda: data_uri(raw),  # type: ignore[arg-type]
        lambda: write_jpeg(raw, tmp_path / "x.jpg"),  # type: ignore[arg-type]
    ):
        with pytest.raises(UnmaskedFrameError, match="only a MaskedFrame"):
            write()
    assert not (tmp_path / "x.jpg").exists()
    with pytest.raises(UnmaskedFrameError, match="made only by"):
        MaskedFrame(raw, ())  # nobody but mask_frame makes one
    assert isinstance(UnmaskedFrameError("x"), TypeError)


def test_a_masked_frame_is_a_read_only_copy() -> None:
    raw = _noise()
    masked = mask_frame(raw, [Box(10, 10, 40, 80)], MaskPolicy(detect_faces=False))
    assert not masked.pixels.flags.writeable
    with pytest.raises(ValueError):
        masked.pixels[0, 0] = 0
    assert not np.shares_memory(raw, masked.pixels)
    assert np.array_equal(raw[200:, 200:], masked.pixels[200:, 200:])  # outside: untouched


def test_pixelated_regions_are_flat_blocks() -> None:
    raw = _noise()
    person = Box(100, 40, 60, 120)
    policy = MaskPolicy(bodies=True, cells=6, detect_faces=False)
    masked = mask_frame(raw, [person], policy)
    [region] = masked.regions
    assert region.kind == "body"
    patch = masked.pixels[region.y : region.y + region.h, region.x : region.x + region.w]
    colours = np.unique(patch.reshape(-1, 3), axis=0)
    assert len(colours) <= policy.cells * policy.cells  # at most 6 x 6 flat blocks
    assert patch.reshape(-1, 3).std(axis=0).max() < raw.reshape(-1, 3).std(axis=0).min() / 2


def test_heads_are_masked_by_default_and_the_head_region_reaches_above_the_box() -> None:
    raw = _noise()
    masked = mask_frame(raw, [Box(100, 80, 40, 100)], MaskPolicy(detect_faces=False))
    [head] = masked.regions
    assert head.kind == "head"
    assert head.y < 80 and head.y + head.h >= 80 + 0.35 * 100  # above the box, into the body
    assert head.x < 100 and head.x + head.w > 140
    below = masked.pixels[head.y + head.h + 1 :, 100:140]
    assert np.array_equal(below, raw[head.y + head.h + 1 :, 100:140])  # the body is not


def test_blur_takes_the_detail_out() -> None:
    raw = _noise()
    masked = mask_frame(raw, [Box(100, 40, 60, 120)], MaskPolicy(bodies=True, style="blur",
                                                                  detect_faces=False))  # fmt: skip
    [r] = masked.regions
    before = raw[r.y : r.y + r.h, r.x : r.x + r.w].astype(float)
    after = masked.pixels[r.y : r.y + r.h, r.x : r.x + r.w].astype(float)
    assert after.std() < before.std() / 4


@pytest.mark.slow
def test_a_face_nobody_detected_as_a_person_is_still_masked() -> None:
    """A clear frontal face (a real photograph) with no person box: the cascades find it,
    and nothing in the masked frame looks like a face to any of OpenCV's face cascades."""
    face = face_image(220)
    frame = np.full((360, 480, 3), 90, np.uint8)
    h, w = face.shape[:2]
    frame[60 : 60 + h, 120 : 120 + w] = face
    assert faces_in(frame) >= 1  # the test image does show a face
    found = find_faces(frame)
    assert found, "the service's cascades find the face"
    masked = mask_frame(frame, [])
    assert {r.kind for r in masked.regions} == {"face"}
    assert faces_in(np.array(masked.pixels)) == 0
    stored = decode_data_uri(data_uri(masked))  # what an Alert would carry
    assert faces_in(stored) == 0


def test_a_detected_persons_face_is_masked_even_when_the_cascades_are_off() -> None:
    face = face_image(200)
    frame = np.full((360, 480, 3), 90, np.uint8)
    h, w = face.shape[:2]
    frame[40 : 40 + h, 100 : 100 + w] = face
    person = Box(100 + w // 6, 40, w * 2 // 3, 300)  # the face is the top of the person
    masked = mask_frame(frame, [person], MaskPolicy(detect_faces=False, head_fraction=0.45))
    assert faces_in(np.array(masked.pixels)) == 0


def test_snapshots_fit_their_size_limit() -> None:
    masked = mask_frame(_noise(720, 1280), [], MaskPolicy(detect_faces=False))
    data = encode_jpeg(masked, max_side=480, max_bytes=20_000)
    assert len(data) <= 20_000
    image = decode_data_uri(data_uri(masked, max_side=480, max_bytes=20_000))
    assert max(image.shape[:2]) <= 480
