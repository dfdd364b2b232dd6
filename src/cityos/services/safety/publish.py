"""What a camera run writes to the hub, through a HubClient only: counts per interval,
alerts with their masked snapshot, and the camera's health on its Device entity."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from .cameradevice import CameraDevice, CameraHealth
from .counting import Interval
from .incidents import Incident
from .masking import MaskedFrame
from .model import (
    Camera,
    crossing_entities,
    crowd_flow_entities,
    disconnected_alert,
    incident_alert,
)
from .snapshot import data_uri


class HubPublisher:
    """Writes one camera's results; ``origin`` is the instant of the source's time 0."""

    def __init__(
        self,
        client: Any,
        camera: Camera,
        origin: datetime,
        *,
        zones: Sequence[str] = (),
        counts_crossings: bool = False,
        agent: Any = None,
        snapshot_max_side: int = 480,
        snapshot_max_bytes: int = 32_768,
    ) -> None:
        self.client = client
        self.camera = camera
        self.origin = origin
        self.zones = list(zones)
        self.counts_crossings = counts_crossings
        self.device = CameraDevice(camera, client, agent=agent)
        self.snapshot_max_side = snapshot_max_side
        self.snapshot_max_bytes = snapshot_max_bytes
        self.alerts: list[str] = []
        self.intervals = 0

    def start(self) -> None:
        self.device.provision()

    def interval(self, interval: Interval) -> None:
        entities = crowd_flow_entities(self.camera, interval, self.origin, self.zones)
        if self.counts_crossings:
            entities += crossing_entities(self.camera, interval, self.origin)
        self.client.upsert(entities, replace=False)
        self.intervals += 1

    def incident(self, incident: Incident, snapshot: MaskedFrame) -> str:
        uri = data_uri(snapshot, max_side=self.snapshot_max_side, max_bytes=self.snapshot_max_bytes)
        entity = incident_alert(self.camera, incident, self.origin, uri)
        base, n = entity["id"], 1
        while entity["id"] in self.alerts:  # two at the same instant (loitering, two people)
            n += 1
            entity["id"] = f"{base}:{n}"
        self.client.upsert([entity], replace=True)
        self.alerts.append(entity["id"])
        return str(entity["id"])

    def health(self, health: CameraHealth) -> None:
        self.device.report(health)

    def dropped(self, reason: str, health: CameraHealth) -> str:
        """The stream stopped: the camera is ``disconnected`` and an Alert says why."""
        self.device.report(health)
        entity = disconnected_alert(self.camera, reason, health.last_frame)
        self.client.upsert([entity], replace=True)
        self.alerts.append(entity["id"])
        return str(entity["id"])

    def at(self, t: float) -> datetime:
        return self.origin + timedelta(seconds=t)

    def close(self) -> None:
        self.device.close()
