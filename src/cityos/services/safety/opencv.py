"""OpenCV, imported once with its decoder quiet: FFmpeg's own messages (a truncated file's
"Invalid NAL unit size" lines) would otherwise reach the terminal beside our one-line errors.

Every module of the service imports ``cv2`` from here, so the environment is set before
OpenCV's first capture is opened.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

import cv2  # noqa: E402

__all__ = ["cv2", "opencv_version"]


def opencv_version() -> str:
    return str(cv2.__version__)
