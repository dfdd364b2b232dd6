"""A camera as a device of the hub: provisioned through the IoT agent like every sensor, so
its health reaches its FIWARE ``Device`` entity the way other devices' measures do.

The camera is a device of the service group ``safety-cameras`` whose measures update its own
``Device`` entity (``urn:ngsi-ld:Device:<camera id>``, the entity where the agent also keeps
its message counters): ``deviceState`` (``ok``, ``disconnected``), ``frameRate`` (frames
processed per second), ``framesProcessed``, ``peopleCount`` (people in view at the report),
``dateLastFrame`` (the last frame's time), ``streamError`` and ``location``. A report the
agent refuses (its rate limit, a bad value) is counted on the Device entity like any other
device's, and does not stop the camera.

With no agent at hand (a remote hub reached by ``HttpHubClient``), :class:`CameraDevice`
writes the same attributes to the same entity through the client instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cityos.hub.errors import NgsiLdError

from .model import Camera, iso

log = logging.getLogger("cityos.services.safety")

CAMERA_KEY = "safety-cameras"
CAMERA_GROUP: dict[str, Any] = {
    "apikey": CAMERA_KEY,
    "entity_type": "Device",
    "protocol": "IoTA-JSON",
    "attributes": [
        {"object_id": "s", "name": "deviceState", "type": "Text"},
        {"object_id": "f", "name": "frameRate", "type": "Number"},
        {"object_id": "n", "name": "framesProcessed", "type": "Integer"},
        {"object_id": "p", "name": "peopleCount", "type": "Integer"},
        {"object_id": "t", "name": "dateLastFrame", "type": "Text"},
        {"object_id": "e", "name": "streamError", "type": "Text"},
        {"object_id": "l", "name": "location", "type": "geo:point"},
    ],
}
CATEGORY = "camera"  # deviceCategory of every camera (how /health finds them)


@dataclass
class CameraHealth:
    """What a camera reports about itself."""

    state: str  # "ok" or "disconnected"
    frame_rate: float
    frames: int
    people: int
    last_frame: datetime
    error: str = ""


class CameraDevice:
    """Provision a camera and report its health: through ``agent`` (a
    :class:`cityos.devices.agent.Agent` of the same hub) when given, else through
    ``client`` (any HubClient)."""

    def __init__(self, camera: Camera, client: Any, *, agent: Any = None) -> None:
        self.camera = camera
        self.client = client
        self.agent = agent
        self.tenant = getattr(client, "tenant", "")

    def provision(self) -> None:
        """Register the camera (again: an earlier run's registration is replaced; its
        Device entity and counters stay)."""
        statics = [
            {"name": "name", "type": "Text", "value": self.camera.name or self.camera.camera_id},
            {"name": "deviceCategory", "type": "Property", "value": [CATEGORY]},
            {"name": "controlledProperty", "type": "Property", "value": ["peopleCount"]},
        ]
        if self.agent is None:
            self.client.upsert(
                [
                    {
                        "id": self.camera.device,
                        "type": "Device",
                        **{s["name"]: {"type": "Property", "value": s["value"]} for s in statics},
                    }
                ],
                replace=False,
            )
            return
        agent = self.agent
        if agent.doc(agent.GROUP, self.tenant, CAMERA_KEY) is None:
            agent.add_group(self.tenant, CAMERA_GROUP)
        agent.delete_device(self.tenant, self.camera.camera_id)
        agent.add_device(
            self.tenant,
            {
                "device_id": self.camera.camera_id,
                "entity_name": self.camera.device,
                "entity_type": "Device",
                "apikey": CAMERA_KEY,
                "protocol": "IoTA-JSON",
                "transport": "HTTP",
                "static_attributes": statics,
            },
        )

    def report(self, health: CameraHealth) -> bool:
        """Send a health report; False when the hub refused it (logged, counted)."""
        at = iso(health.last_frame)
        measures: dict[str, Any] = {
            "s": health.state,
            "f": round(health.frame_rate, 2),
            "n": health.frames,
            "p": health.people,
            "t": at,
            "e": health.error,
        }
        if self.camera.location is not None:
            lon, lat = self.camera.location
            measures["l"] = f"{lat},{lon}"
        try:
            if self.agent is not None:
                self.agent.ingest(self.tenant, CAMERA_KEY, self.camera.camera_id, measures, at)
            else:
                self.client.upsert([self._entity(measures, at)], replace=False)
        except NgsiLdError as err:
            log.warning("camera %s: health report refused: %s", self.camera.camera_id, err)
            return False
        return True

    def _entity(self, measures: dict[str, Any], at: str) -> dict[str, Any]:
        names = {a["object_id"]: a["name"] for a in CAMERA_GROUP["attributes"]}
        attrs: dict[str, Any] = {}
        for key, value in measures.items():
            if key == "l":
                lon, lat = self.camera.location or (0.0, 0.0)
                attrs["location"] = {
                    "type": "GeoProperty",
                    "value": {"type": "Point", "coordinates": [lon, lat]},
                    "observedAt": at,
                }
            else:
                attrs[names[key]] = {"type": "Property", "value": value, "observedAt": at}
        return {"id": self.camera.device, "type": "Device", **attrs}

    def close(self) -> None:
        """Write the agent's counters now (a CLI run has no background flush)."""
        if self.agent is not None:
            self.agent.flush_stats()
