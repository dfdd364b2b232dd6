"""Frames from a video file or a stream URL, with the two ways a source fails told apart.

- **unreadable**: nothing can be decoded (a missing file, a file that is not a video, a
  stream that does not answer): :func:`open_source` raises
  :class:`~.errors.UnreadableSourceError` before a single frame is seen, so nothing reaches
  the hub.
- **dropped**: frames came, then stopped. A stream (any URL) is tried again
  ``reconnect_attempts`` times; a file is *truncated* when its last decoded frame lies
  well before the duration its container declares. Either way :attr:`FrameSource.dropped`
  is set and the pipeline marks the camera disconnected and raises an Alert.

Timestamps come from the decoder (``CAP_PROP_POS_MSEC``) where it has them: container
frame rates are unreliable (the test clip declares 50 fps and 682 frames, and decodes 341
frames 40 ms apart; its declared duration, 13.64 s, is right).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UnreadableSourceError
from .opencv import cv2

Capture = Any  # a cv2.VideoCapture, or anything with isOpened/read/get/release
CaptureFactory = Callable[[str], Capture]
DEFAULT_FPS = 25.0


def is_stream(source: str) -> bool:
    """A URL (rtsp://, http://, …): it does not end on its own, so an end is a drop."""
    return "://" in source


def default_capture(source: str, timeout_ms: int = 10_000) -> Capture:
    """A ``cv2.VideoCapture`` through FFmpeg, with open and read timeouts for streams so an
    unreachable camera fails instead of hanging."""
    if is_stream(source):
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                  timeout_ms]  # fmt: skip
        return cv2.VideoCapture(source, cv2.CAP_FFMPEG, params)
    return cv2.VideoCapture(source)


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its index from 0, its time in seconds from the start of the
    source, and its pixels (BGR, the source's size). Raw: it never leaves the pipeline."""

    index: int
    t: float
    image: Any  # numpy.ndarray (H, W, 3) uint8


class FrameSource:
    """Iterate over a source's frames; afterwards :attr:`dropped` and :attr:`reason` say
    whether it ended early. Use :func:`open_source` to make one."""

    def __init__(
        self,
        source: str,
        capture: Capture,
        first: Any,
        *,
        factory: CaptureFactory,
        reconnect_attempts: int = 3,
        reconnect_wait_s: float = 1.0,
        truncation_tolerance_s: float = 0.5,
    ) -> None:
        self.source = source
        self.stream = is_stream(source)
        self._capture = capture
        self._first = first
        self._factory = factory
        self.reconnect_attempts = reconnect_attempts
        self.reconnect_wait_s = reconnect_wait_s
        self.truncation_tolerance_s = truncation_tolerance_s
        self.width = int(first.shape[1])
        self.height = int(first.shape[0])
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        count = float(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0)
        self.declared_fps = fps if 0 < fps < 1000 else 0.0
        # what the container promises, for telling a truncated file from a whole one
        self.declared_duration_s = count / fps if fps > 0 and count > 0 else None
        self.frames_read = 0
        self.last_t = 0.0
        self.dropped = False
        self.reason = ""

    @property
    def nominal_fps(self) -> float:
        return self.declared_fps or DEFAULT_FPS

    def _time(self, capture: Capture, index: int) -> float:
        ms = float(capture.get(cv2.CAP_PROP_POS_MSEC) or 0.0)
        if ms > 0 and ms / 1000.0 >= self.last_t:
            return ms / 1000.0
        return self.last_t + 1.0 / self.nominal_fps if index else 0.0

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        image = self._first
        self._first = None
        while image is not None:
            t = self._time(self._capture, index) if index else 0.0
            self.last_t = t
            self.frames_read = index + 1
            yield Frame(index, t, image)
            index += 1
            image = self._next()
        self._check_end()

    def _next(self) -> Any:
        ok, image = self._capture.read()
        if ok and image is not None:
            return image
        if not self.stream:
            return None
        for _ in range(self.reconnect_attempts):  # a stream that hiccups: open it again
            self._capture.release()
            time.sleep(self.reconnect_wait_s)
            self._capture = self._factory(self.source)
            if self._capture.isOpened():
                ok, image = self._capture.read()
                if ok and image is not None:
                    return image
        return None

    def _check_end(self) -> None:
        if self.stream:
            self.dropped = True
            self.reason = (
                f"stream {self.source} stopped sending frames after {self.frames_read} "
                f"frame(s) ({self.last_t:.1f} s); {self.reconnect_attempts} reconnection "
                "attempt(s) failed"
            )
            return
        declared = self.declared_duration_s
        frame_s = 1.0 / self.nominal_fps
        if declared is not None and self.last_t + frame_s < declared - self.truncation_tolerance_s:
            self.dropped = True
            self.reason = (
                f"{self.source} ends at {self.last_t:.1f} s, before the {declared:.1f} s its "
                f"container declares: the file is truncated or damaged after frame "
                f"{self.frames_read}"
            )

    def stop(self) -> None:
        """Stop early (``--max-frames``): not a drop."""
        self._capture.release()

    def release(self) -> None:
        self._capture.release()


def open_source(
    source: str,
    *,
    factory: CaptureFactory = default_capture,
    reconnect_attempts: int = 3,
    reconnect_wait_s: float = 1.0,
) -> FrameSource:
    """Open a file or a URL and decode its first frame; :class:`UnreadableSourceError` with
    what to do when there is none."""
    if not source:
        raise UnreadableSourceError("no video source given (a file path or a stream URL)")
    if not is_stream(source):
        path = Path(source)
        if not path.exists():
            raise UnreadableSourceError(f"{source}: no such file")
        if path.is_dir():
            raise UnreadableSourceError(f"{source} is a directory, not a video file")
    capture = factory(source)
    if not capture.isOpened():
        capture.release()
        if is_stream(source):
            raise UnreadableSourceError(
                f"{source}: the stream did not answer (check the URL and that the camera is on)"
            )
        raise UnreadableSourceError(
            f"{source} is not a video OpenCV can read (try a file a video player opens)"
        )
    ok, first = capture.read()
    if not ok or first is None or getattr(first, "size", 0) == 0:
        capture.release()
        raise UnreadableSourceError(
            f"{source}: opened, but no frame could be decoded (a damaged or empty video)"
        )
    return FrameSource(
        source,
        capture,
        first,
        factory=factory,
        reconnect_attempts=reconnect_attempts,
        reconnect_wait_s=reconnect_wait_s,
    )
