"""One camera, end to end: frames -> people -> tracks -> counts and incidents -> the hub.

Raw frames stay inside :func:`run_camera`: an incident's snapshot is made by
:func:`~.masking.mask_frame` from the frame and its detected people, and only that
MaskedFrame goes on to :mod:`.snapshot` and the hub. An unreadable source fails before
anything is written; a source that drops mid-way leaves the camera ``disconnected`` with an
Alert.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from typing import Any

from .cameradevice import CameraHealth
from .counting import FrameCounts, IntervalCounter, LineCounter, count_frame
from .incidents import Incident, IncidentRules
from .masking import MaskedFrame, MaskPolicy, mask_frame
from .model import Camera
from .people import Box, HogDetector, PeopleDetector, make_detector
from .publish import HubPublisher
from .source import CaptureFactory, Frame, FrameSource, default_capture, open_source
from .tracker import CentroidTracker
from .zones import CountingLine, Zone


@dataclass(frozen=True)
class PipelineConfig:
    """How a camera is processed (the service's settings fill it in)."""

    detector: str = "motion-knn"
    work_width: int = 640
    hog_every: int = 25
    mask: MaskPolicy = field(default_factory=MaskPolicy)
    interval_s: float = 60.0
    hold_s: float = 2.0
    snapshot_max_side: int = 480
    snapshot_max_bytes: int = 32_768
    snapshot_hog: bool = True  # a HOG pass before masking a snapshot finds still people too
    track_distance: float = 0.04  # of the frame's diagonal, per frame
    track_max_missed: int = 10
    line_margin: float = 6.0
    reconnect_attempts: int = 3
    reconnect_wait_s: float = 1.0


@dataclass
class RunResult:
    """What a run saw and did (also the CLI's ``--json``)."""

    camera: str
    source: str
    width: int = 0
    height: int = 0
    frames: int = 0
    seconds: float = 0.0  # wall time spent
    video_seconds: float = 0.0
    people_peak: int = 0
    people_mean: float = 0.0
    zones_peak: dict[str, int] = field(default_factory=dict)
    crossed_in: int = 0
    crossed_out: int = 0
    incidents: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    intervals: int = 0
    state: str = "ok"
    error: str = ""

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "camera": self.camera,
            "source": self.source,
            "size": [self.width, self.height],
            "frames": self.frames,
            "seconds": round(self.seconds, 3),
            "fps": round(self.fps, 2),
            "video_seconds": round(self.video_seconds, 3),
            "people_peak": self.people_peak,
            "people_mean": round(self.people_mean, 2),
            "zones_peak": self.zones_peak,
            "crossed_in": self.crossed_in,
            "crossed_out": self.crossed_out,
            "incidents": self.incidents,
            "alerts": self.alerts,
            "intervals": self.intervals,
            "state": self.state,
            "error": self.error,
        }


FrameHook = Callable[[Frame, Sequence[Box], FrameCounts], None]


def _local_time(origin: datetime) -> Callable[[float], clock]:
    def at(t: float) -> clock:
        return (origin + timedelta(seconds=t)).time()

    return at


def run_camera(
    source: str,
    camera: Camera,
    *,
    client: Any = None,
    agent: Any = None,
    zones: Sequence[Zone] = (),
    line: CountingLine | None = None,
    config: PipelineConfig = PipelineConfig(),
    origin: datetime | None = None,
    max_frames: int = 0,
    detector: PeopleDetector | None = None,
    capture: CaptureFactory = default_capture,
    on_frame: FrameHook | None = None,
    on_progress: Callable[[FrameSource, int], None] | None = None,
) -> RunResult:
    """Process ``source`` as ``camera``. With ``client`` (a HubClient) the counts, alerts
    and the camera's health go to the hub (through ``agent``, the IoT agent, for the
    health when given); without, nothing is written and only the result is returned.
    ``origin``: the instant of the source's first frame (default: now, in local time)."""
    src = open_source(
        source,
        factory=capture,
        reconnect_attempts=config.reconnect_attempts,
        reconnect_wait_s=config.reconnect_wait_s,
    )  # raises before anything is written
    origin = origin or datetime.now(UTC).astimezone()
    result = RunResult(camera.camera_id, source, src.width, src.height)
    people = detector or make_detector(
        config.detector, work_width=config.work_width, hog_every=config.hog_every
    )
    publisher = None
    if client is not None:
        publisher = HubPublisher(
            client,
            camera,
            origin,
            zones=[z.name for z in zones],
            counts_crossings=line is not None,
            agent=agent,
            snapshot_max_side=config.snapshot_max_side,
            snapshot_max_bytes=config.snapshot_max_bytes,
        )
    tracker = CentroidTracker(
        max_distance=config.track_distance * math.hypot(src.width, src.height),
        max_missed=config.track_max_missed,
    )
    crossing = LineCounter(line, margin=config.line_margin) if line is not None else None
    intervals = IntervalCounter(config.interval_s)
    rules = IncidentRules(zones, _local_time(origin), hold_s=config.hold_s)
    still = HogDetector() if config.snapshot_hog and client is not None else None
    started = time.perf_counter()
    last_people = 0
    people_sum = 0

    def health(state: str, error: str = "") -> CameraHealth:
        spent = time.perf_counter() - started
        return CameraHealth(
            state,
            result.frames / spent if spent > 0 else 0.0,
            result.frames,
            last_people,
            origin + timedelta(seconds=src.last_t),
            error,
        )

    try:
        if publisher is not None:
            publisher.start()  # provisions the camera
            publisher.health(health("ok"))  # it shows up as soon as it runs
        for frame in src:
            boxes = people.detect(frame.image)
            points = [b.ground for b in boxes]
            tracks = tracker.update(points, frame.t)
            counts = count_frame(frame.t, points, zones, tracks, crossing)
            result.frames += 1
            last_people = counts.in_view
            people_sum += counts.in_view
            result.people_peak = max(result.people_peak, counts.in_view)
            for name, n in counts.zones.items():
                result.zones_peak[name] = max(result.zones_peak.get(name, 0), n)
            incidents = rules.update(counts, tracks)
            if incidents:
                _raise(result, incidents, frame, boxes, config, publisher, still)
            finished = intervals.add(counts)
            if finished is not None and publisher is not None:
                publisher.interval(finished)
                publisher.health(health("ok"))
            if on_frame is not None:
                on_frame(frame, boxes, counts)
            if on_progress is not None:
                on_progress(src, result.frames)
            if max_frames and result.frames >= max_frames:
                src.stop()
                break
        last = intervals.flush()
        result.seconds = time.perf_counter() - started
        result.video_seconds = src.last_t
        result.people_mean = people_sum / result.frames if result.frames else 0.0
        if crossing is not None:
            result.crossed_in, result.crossed_out = crossing.total_in, crossing.total_out
        if publisher is not None:
            if last is not None:
                publisher.interval(last)
            result.intervals = publisher.intervals
        if src.dropped:
            result.state, result.error = "disconnected", src.reason
            if publisher is not None:
                publisher.dropped(src.reason, health("disconnected", src.reason))
        elif publisher is not None:
            publisher.health(health("ok"))
    finally:
        src.release()
        if publisher is not None:
            result.alerts = list(publisher.alerts)
            publisher.close()
    return result


def people_for_snapshot(image: Any, boxes: Sequence[Box], still: HogDetector | None) -> list[Box]:
    """Everyone to mask in a snapshot: the detected people, plus those a HOG pass finds that
    no detected box covers (people standing still, whom a motion detector cannot see)."""
    people = list(boxes)
    if still is not None:
        people += [b for b in still.detect(image) if all(b.overlap(m) < 0.3 for m in boxes)]
    return people


def _raise(
    result: RunResult,
    incidents: Sequence[Incident],
    frame: Frame,
    boxes: Sequence[Box],
    config: PipelineConfig,
    publisher: HubPublisher | None,
    still: HogDetector | None,
) -> None:
    """Record the frame's incidents; with a hub, each becomes an Alert carrying one masked
    snapshot of the frame (masked once, however many incidents share it)."""
    masked: MaskedFrame | None = None
    for incident in incidents:
        record: dict[str, Any] = {
            "kind": incident.kind,
            "severity": incident.severity,
            "zone": incident.zone,
            "t": round(incident.t, 3),
            "description": incident.description,
        }
        if publisher is not None:
            if masked is None:  # the only way pixels leave the pipeline
                people = people_for_snapshot(frame.image, boxes, still)
                masked = mask_frame(frame.image, people, config.mask)
            record["alert"] = publisher.incident(incident, masked)
        result.incidents.append(record)
