"""The safety service's settings: ``[services.safety]`` in cityos.toml, or
``CITYOS_SAFETY_<FIELD>``; checked when read, a bad value is one line naming it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NAME = "safety"
DETECTORS = ("motion-knn", "motion-mog2", "hog", "combined")  # as people.DETECTORS
MASK_STYLES = ("pixelate", "blur")


@dataclass(frozen=True)
class SafetySettings:
    """``[services.safety]`` in cityos.toml, or ``CITYOS_SAFETY_<FIELD>``."""

    detector: str = field(
        default="motion-knn",
        metadata={"help": "People detector: motion-knn, motion-mog2, hog or combined"},
    )
    work_width: int = field(
        default=640, metadata={"help": "Width (pixels) frames are shrunk to for detection"}
    )
    mask_bodies: bool = field(
        default=False, metadata={"help": "Mask each whole person in snapshots, not only heads"}
    )
    head_fraction: float = field(
        default=0.35,
        metadata={"help": "Top share of each person's box masked as the head (0..1)"},
    )
    mask_style: str = field(default="pixelate", metadata={"help": "pixelate or blur"})
    interval_s: float = field(
        default=60.0, metadata={"help": "Seconds of video per CrowdFlowObserved update"}
    )
    hold_s: float = field(
        default=2.0, metadata={"help": "Seconds a zone rule must hold before it alerts"}
    )
    snapshot_max_side: int = field(
        default=480, metadata={"help": "Longest side (pixels) of an alert's masked snapshot"}
    )
    snapshot_max_bytes: int = field(
        default=32_768, metadata={"help": "Largest JPEG snapshot (bytes) an alert carries"}
    )
    reconnect_attempts: int = field(
        default=3, metadata={"help": "Times a stream is reopened before it counts as dropped"}
    )
    tenant: str = field(default="", metadata={"help": "Tenant the camera entities live in"})

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise ValueError(
                f"safety.detector {self.detector!r}: use one of {', '.join(DETECTORS)}"
            )
        if self.mask_style not in MASK_STYLES:
            raise ValueError(f"safety.mask_style {self.mask_style!r}: use pixelate or blur")
        if not 0.0 <= self.head_fraction <= 1.0:
            raise ValueError(f"safety.head_fraction {self.head_fraction}: must be within 0..1")
        for name in ("work_width", "snapshot_max_side", "snapshot_max_bytes"):
            if getattr(self, name) < 64:
                raise ValueError(f"safety.{name} {getattr(self, name)}: must be 64 or more")
        if not self.interval_s >= 1:
            raise ValueError(f"safety.interval_s {self.interval_s}: must be 1 or more")
        if not self.hold_s >= 0:
            raise ValueError(f"safety.hold_s {self.hold_s}: must be 0 or more")
        if self.reconnect_attempts < 0:
            raise ValueError("safety.reconnect_attempts: must be 0 or more")


def read_settings() -> Any:
    """The settings as ``cityos serve`` reads them; ValueError (one line) when one is wrong."""
    from cityos.config import Settings
    from cityos.plug import Service
    from cityos.services.settings import settings_of

    return settings_of(Service(name=NAME, settings=SafetySettings), Settings.load())
