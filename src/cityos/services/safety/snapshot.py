"""The only code that turns pixels into bytes, a file or an attribute: masked frames only.

Every function here takes a :class:`~.masking.MaskedFrame` and refuses anything else with
:class:`~.errors.UnmaskedFrameError`, so a raw frame cannot be stored or sent through it
(and nothing else in the service encodes images).

Snapshots ride in the Alert entity as a ``data:image/jpeg;base64,...`` value: the alert is
self-contained, it travels through any HubClient (in process or over HTTP) and it is
deleted with the alert. To keep entities small it is shrunk to ``max_side`` pixels
(longest side) and its JPEG quality lowered, then its size, until it fits ``max_bytes``
(32 KiB by default: about 43 KiB of base64, far below the hub's 1 MiB request limit).
A smaller picture is also a safeguard: at 480 pixels across, a face in a wide view is a
few pixels.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from .errors import SafetyError, UnmaskedFrameError
from .masking import MaskedFrame
from .opencv import cv2

MIN_SIDE = 64


def _require_masked(frame: Any) -> MaskedFrame:
    if not isinstance(frame, MaskedFrame):
        raise UnmaskedFrameError(
            f"refusing to store or send a {type(frame).__name__}: only a MaskedFrame "
            "(from mask_frame) may leave the pipeline"
        )
    return frame


def encode_jpeg(frame: MaskedFrame, *, max_side: int = 480, max_bytes: int = 32_768) -> bytes:
    """The masked frame as a JPEG within ``max_side`` pixels and ``max_bytes``."""
    masked = _require_masked(frame)
    image = masked.pixels
    side = max(image.shape[:2])
    scale = min(1.0, max_side / side) if side else 1.0
    while True:
        if scale < 1.0:
            size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
            shown = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        else:
            shown = image
        for quality in (80, 65, 50, 35):
            ok, data = cv2.imencode(".jpg", shown, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if not ok:
                raise SafetyError("OpenCV could not encode the snapshot as JPEG")
            if len(data) <= max_bytes:
                return bytes(data)
        if max(shown.shape[:2]) <= MIN_SIDE:
            raise SafetyError(
                f"a snapshot does not fit in {max_bytes} bytes even at {MIN_SIDE} pixels; "
                "raise snapshot_max_bytes"
            )
        scale *= 0.75


def data_uri(frame: MaskedFrame, *, max_side: int = 480, max_bytes: int = 32_768) -> str:
    """The masked frame as a ``data:image/jpeg;base64,`` URI (the Alert's ``snapshot``)."""
    data = encode_jpeg(frame, max_side=max_side, max_bytes=max_bytes)
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")


def write_jpeg(
    frame: MaskedFrame, path: str | Path, *, max_side: int = 480, max_bytes: int = 32_768
) -> Path:
    """Write the masked frame to ``path`` as a JPEG."""
    data = encode_jpeg(frame, max_side=max_side, max_bytes=max_bytes)
    out = Path(path)
    out.write_bytes(data)
    return out


def decode_data_uri(uri: str) -> Any:
    """The image of a snapshot ``data:`` URI (for tests and viewers), as a BGR array."""
    import numpy as np

    prefix = "data:image/jpeg;base64,"
    if not uri.startswith(prefix):
        raise SafetyError("not a JPEG data URI")
    raw = np.frombuffer(base64.b64decode(uri[len(prefix) :]), dtype=np.uint8)
    return cv2.imdecode(raw, cv2.IMREAD_COLOR)
