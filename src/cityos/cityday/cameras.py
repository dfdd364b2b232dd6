"""Cameras through the day (the safety service): the camera at the Central Market's east
entrance films the lunchtime rush and, after closing, the empty hall. Its footage is drawn
here (:mod:`.footage`); the service's own pipeline (``run_camera``) finds the people, counts
them in its zones and across its counting line (the flows zone's entrance, so crossings
count in the zone's crowd level), raises alerts with masked snapshots, and reports the
camera's health as a device of the hub.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cityos.devices.agent import Agent
from cityos.services.safety.masking import MaskPolicy
from cityos.services.safety.model import Camera
from cityos.services.safety.pipeline import PipelineConfig, RunResult, run_camera
from cityos.services.safety.settings import SafetySettings
from cityos.services.safety.zones import parse_line, zone_from

from . import footage
from .context import Day, Event, hhmm

CAMERA = Camera(
    "central-market-east",
    "Phsar Thmei east entrance",
    (104.9214, 11.5697),
    flow_zone="central-market",  # its counting line is that zone's entrance
)
ZONES = [
    {"name": "entrance", "polygon": [[0, 120], [640, 120], [640, 300], [0, 300]], "capacity": 6},
    {"name": "hall", "polygon": [[420, 0], [640, 0], [640, 360], [420, 360]],
     "closed": {"from": "18:00", "to": "06:00"}},
]  # fmt: skip
LINE = "0,180,640,180"  # walking down the picture is walking into the market
CLIPS = (  # (when, name, walkers, seconds of video)
    ("12:00", "lunchtime", footage.market_crowd, 30.0),
    ("22:30", "after closing", footage.night_visitor, 20.0),
)


@dataclass
class CameraPhase:
    day: Day
    settings: SafetySettings = field(default_factory=SafetySettings)
    name: str = "cameras"
    service: str = "safety"
    title: str = "Cameras"
    runs: list[RunResult] = field(default_factory=list)

    def events(self) -> list[Event]:
        return [
            Event(hhmm(at), lambda c=(at, what, walkers, s): self.film(*c))
            for at, what, walkers, s in CLIPS
        ]

    def _config(self) -> PipelineConfig:
        s = self.settings
        return PipelineConfig(
            detector="motion-knn",  # the footage is made for background subtraction
            work_width=s.work_width,
            mask=MaskPolicy(
                bodies=s.mask_bodies, head_fraction=s.head_fraction, style=s.mask_style
            ),  # fmt: skip
            interval_s=s.interval_s,
            hold_s=s.hold_s,
            snapshot_max_side=s.snapshot_max_side,
            snapshot_max_bytes=s.snapshot_max_bytes,
        )

    def film(self, at: str, what: str, walkers: Any, seconds: float) -> str:
        slug = what.replace(" ", "-")
        clip = footage.write_scene(
            self.day.folder / "cameras" / f"{CAMERA.camera_id}-{slug}.avi", walkers(), seconds
        )
        client = self.day.client(None)
        if self.settings.tenant:
            client = client.for_tenant(self.settings.tenant)
        # the served hub's own IoT agent when serving (a second one would take over its
        # command receiver); else one for this hub, as `cityos safety run` makes
        state = self.day.app_state
        agent = state.agent if state is not None else Agent(self.day.hub)
        result = run_camera(
            str(clip),
            CAMERA,
            client=client,
            agent=agent,
            zones=[zone_from(z, f"zone {i}") for i, z in enumerate(ZONES)],
            line=parse_line(LINE),
            config=self._config(),
            origin=self.day.clock.at(hhmm(at)),
        )
        self.runs.append(result)
        kinds = ", ".join(i["kind"] for i in result.incidents) or "no alert"
        return (f"Cameras: {CAMERA.name}, {what}: {result.people_peak} people in view at "
                f"most, {result.crossed_in} in / {result.crossed_out} out; {kinds}")  # fmt: skip

    def result(self) -> dict[str, Any]:
        return {
            "camera": CAMERA.camera_id,
            "clips": [r.as_json() | {"source": r.source.rsplit("/", 1)[-1]} for r in self.runs],
            "alerts": sum(len(r.alerts) for r in self.runs),
            "incidents": [i["kind"] for r in self.runs for i in r.incidents],
            "crossed_in": sum(r.crossed_in for r in self.runs),
            "crossed_out": sum(r.crossed_out for r in self.runs),
        }
